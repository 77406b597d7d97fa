"""kubelet's device plugin API v1beta1 (``k8s.io/kubelet/pkg/apis/deviceplugin``): constants and message models.

Both sides of the API use these: :mod:`plugin_host.kubelet.export` serves devices to kubelet with them, and a kubelet
(:mod:`plugin_host.kubelet.host`, the fake kubelet in :mod:`plugin_host.testing`) reads a plugin's answers into them.
The models mirror kubelet's messages, with CDI device names as plain strings; :mod:`plugin_host.kubelet._convert`
turns them into wire messages and back.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "API_VERSION",
    "DEFAULT_PLUGIN_DIR",
    "HEALTHY",
    "KUBELET_SOCKET_NAME",
    "UNHEALTHY",
    "AllocateRequest",
    "AllocateResponse",
    "ContainerAllocateRequest",
    "ContainerAllocateResponse",
    "ContainerPreferredAllocationRequest",
    "ContainerPreferredAllocationResponse",
    "DevicePluginOptions",
    "Health",
    "KubeletDevice",
    "KubeletDeviceSpec",
    "KubeletMount",
    "PreStartContainerRequest",
    "PreferredAllocationRequest",
    "PreferredAllocationResponse",
    "RegisterRequest",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

HEALTHY = "Healthy"
"""A device kubelet may allocate."""
UNHEALTHY = "Unhealthy"
"""A device kubelet keeps counted but never allocates."""
Health = Literal["Healthy", "Unhealthy"]

API_VERSION = "v1beta1"
"""The device plugin API version kubelet accepts in Register."""
DEFAULT_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
"""Where kubelet listens (``kubelet.sock``) and where device plugins put their sockets."""
KUBELET_SOCKET_NAME = "kubelet.sock"
"""kubelet's registration socket, inside the plugin directory."""

_NonEmpty = Annotated[str, Field(min_length=1)]


# --- what a container gets ----------------------------------------------------------------------------------------


class KubeletMount(BaseModel):
    """A host path bind-mounted into the container (kubelet's ``Mount``)."""

    model_config = _FROZEN

    container_path: _NonEmpty
    host_path: _NonEmpty
    read_only: bool = False


class KubeletDeviceSpec(BaseModel):
    """A device node made available in the container, with its cgroup permissions (kubelet's ``DeviceSpec``)."""

    model_config = _FROZEN

    container_path: _NonEmpty
    host_path: _NonEmpty
    permissions: str = "rw"

    @field_validator("permissions")
    @classmethod
    def _check_permissions(cls, value: str) -> str:
        if not value or not set(value) <= set("rwm") or len(set(value)) != len(value):
            raise ValueError(f"permissions must be some of 'r', 'w', 'm', each at most once, got {value!r}")
        return value


# --- requests and responses (kubelet's v1beta1 messages) ----------------------------------------------------------


class ContainerAllocateRequest(BaseModel):
    """The devices kubelet allocates to one container."""

    model_config = _FROZEN

    devices_ids: tuple[str, ...] = ()


class AllocateRequest(BaseModel):
    """An Allocate call: one entry per container (kubelet sends one)."""

    model_config = _FROZEN

    container_requests: tuple[ContainerAllocateRequest, ...] = ()


class ContainerAllocateResponse(BaseModel):
    """What the runtime applies to one container; ``cdi_devices`` are fully qualified CDI names."""

    model_config = _FROZEN

    envs: dict[str, str] = {}
    mounts: tuple[KubeletMount, ...] = ()
    devices: tuple[KubeletDeviceSpec, ...] = ()
    annotations: dict[str, str] = {}
    cdi_devices: tuple[str, ...] = ()


class AllocateResponse(BaseModel):
    """The answer to Allocate: one entry per container request, in order."""

    model_config = _FROZEN

    container_responses: tuple[ContainerAllocateResponse, ...] = ()


class ContainerPreferredAllocationRequest(BaseModel):
    """Which ``allocation_size`` devices to prefer among ``available_device_ids`` (must include some)."""

    model_config = _FROZEN

    available_device_ids: tuple[str, ...] = ()
    must_include_device_ids: tuple[str, ...] = ()
    allocation_size: int = 0


class PreferredAllocationRequest(BaseModel):
    """A GetPreferredAllocation call, one entry per container."""

    model_config = _FROZEN

    container_requests: tuple[ContainerPreferredAllocationRequest, ...] = ()


class ContainerPreferredAllocationResponse(BaseModel):
    """The devices preferred for one container."""

    model_config = _FROZEN

    device_ids: tuple[str, ...] = ()


class PreferredAllocationResponse(BaseModel):
    """The answer to GetPreferredAllocation, one entry per container request."""

    model_config = _FROZEN

    container_responses: tuple[ContainerPreferredAllocationResponse, ...] = ()


class PreStartContainerRequest(BaseModel):
    """The devices of a container about to start."""

    model_config = _FROZEN

    devices_ids: tuple[str, ...] = ()


class DevicePluginOptions(BaseModel):
    """What a plugin supports beyond Allocate and ListAndWatch."""

    model_config = _FROZEN

    pre_start_required: bool = False
    get_preferred_allocation_available: bool = False


class RegisterRequest(BaseModel):
    """A plugin's Register call to kubelet: API version, socket name in the plugin directory, resource name."""

    model_config = _FROZEN

    version: str
    endpoint: str
    resource_name: str
    options: DevicePluginOptions = DevicePluginOptions()


class KubeletDevice(BaseModel):
    """One device as ListAndWatch reports it to kubelet: id, health and NUMA nodes (None: no topology sent)."""

    model_config = _FROZEN

    id: str
    health: str
    topology: tuple[int, ...] | None = None
