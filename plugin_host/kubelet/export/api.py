"""The Kubernetes device plugin framework's contract, after Intel's ``pkg/deviceplugin``: tree, CDI and roles.

A :class:`Scanner` finds devices and hands a :class:`DeviceTree` (device type -> device id -> :class:`DeviceInfo`)
to a :class:`Notifier` whenever the picture changes. The :class:`~plugin_host.kubelet.Manager` serves every device
type to kubelet as ``<namespace>/<type>``. A scanner may also implement any of the optional hooks
(:class:`Allocator`, :class:`PostAllocator`, :class:`PreferredAllocator`, :class:`ContainerPreStarter`), sync or
async; the framework looks them up on the scanner object.

The request and response models the hooks take and return are kubelet's v1beta1 messages, in
:mod:`plugin_host.kubelet.api` (shared with the side that acts as a kubelet).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Iterator, Mapping
from types import MappingProxyType
from typing import Annotated, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from plugin_host.errors import InvalidPluginError
from plugin_host.kubelet import _names
from plugin_host.kubelet.api import (
    AllocateRequest,
    AllocateResponse,
    Health,
    KubeletDeviceSpec,
    KubeletMount,
    PreferredAllocationRequest,
    PreferredAllocationResponse,
    PreStartContainerRequest,
)
from plugin_host.kubelet.export import _cdi_rules

__all__ = [
    "DEFAULT_CDI_DIR",
    "USE_DEFAULT",
    "Allocator",
    "CdiContainerEdits",
    "CdiDevice",
    "CdiDeviceNode",
    "CdiHook",
    "CdiMount",
    "CdiSpec",
    "ContainerPreStarter",
    "DeviceInfo",
    "DeviceTree",
    "Notifier",
    "PostAllocator",
    "PreferredAllocator",
    "Scanner",
    "UseDefault",
]

logger = logging.getLogger(__name__)

_FROZEN = ConfigDict(frozen=True, extra="forbid")

DEFAULT_CDI_DIR = "/var/run/cdi"
"""Where container runtimes look for CDI spec files."""

_NonEmpty = Annotated[str, Field(min_length=1)]
_NumaNode = Annotated[int, Field(ge=0)]


# --- CDI (Container Device Interface) spec, field names as in the CDI SPEC.md -------------------------------------


class CdiDeviceNode(BaseModel):
    """A device node a CDI device adds (``deviceNodes[]``)."""

    model_config = _FROZEN

    path: _NonEmpty
    host_path: str = ""
    type: str = ""
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None
    permissions: str = ""
    uid: int | None = None
    gid: int | None = None


class CdiMount(BaseModel):
    """A mount a CDI device adds (``mounts[]``)."""

    model_config = _FROZEN

    host_path: _NonEmpty
    container_path: _NonEmpty
    options: tuple[str, ...] = ()
    type: str = ""


class CdiHook(BaseModel):
    """An OCI hook a CDI device adds (``hooks[]``), e.g. ``hook_name="createContainer"``."""

    model_config = _FROZEN

    hook_name: _NonEmpty
    path: _NonEmpty
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


class CdiContainerEdits(BaseModel):
    """Edits the runtime applies to the container's OCI spec (``containerEdits``); ``env`` entries are ``K=V``."""

    model_config = _FROZEN

    env: tuple[str, ...] = ()
    device_nodes: tuple[CdiDeviceNode, ...] = ()
    hooks: tuple[CdiHook, ...] = ()
    mounts: tuple[CdiMount, ...] = ()


class CdiDevice(BaseModel):
    """One CDI device of a spec; its fully qualified name is ``<kind>=<name>``."""

    model_config = _FROZEN

    name: str
    annotations: dict[str, str] = {}
    container_edits: CdiContainerEdits = CdiContainerEdits()


class CdiSpec(BaseModel):
    """A CDI spec file's content. ``kind`` is ``<vendor>/<class>``; it is checked when the device enters a
    :class:`DeviceTree`, together with the device's name."""

    model_config = _FROZEN

    cdi_version: str = "0.5.0"
    kind: str
    annotations: dict[str, str] = {}
    devices: tuple[CdiDevice, ...] = ()
    container_edits: CdiContainerEdits = CdiContainerEdits()


# --- the device tree ----------------------------------------------------------------------------------------------


class DeviceInfo(BaseModel):
    """One device as the framework serves it: health, what a container needs, NUMA nodes, and a CDI spec.

    ``topology`` is the NUMA node ids the device is attached to (None: unknown). ``cdi_spec``, when set, holds one
    CDI device: Allocate writes the spec to the CDI directory and returns the device's fully qualified name.
    """

    model_config = _FROZEN

    state: Health = "Healthy"
    nodes: tuple[KubeletDeviceSpec, ...] = ()
    mounts: tuple[KubeletMount, ...] = ()
    envs: dict[str, str] = {}
    annotations: dict[str, str] = {}
    topology: tuple[_NumaNode, ...] | None = None
    cdi_spec: CdiSpec | None = None


class DeviceTree(Mapping[str, Mapping[str, DeviceInfo]]):
    """Device type -> device id -> :class:`DeviceInfo`, built by a scanner with :meth:`add_device`.

    Reading it is like reading a mapping of read-only mappings. A scanner builds a fresh tree per scan (or keeps
    adding to one) and passes it to :meth:`Notifier.notify`, which takes a copy.
    """

    def __init__(self) -> None:
        self._types: dict[str, dict[str, DeviceInfo]] = {}

    def add_device(self, dev_type: str, dev_id: str, info: DeviceInfo) -> None:
        """Add (or replace) device ``dev_id`` of type ``dev_type``.

        The type becomes part of a resource name and a socket name, so it must be a Kubernetes name (letters,
        digits, ``-``, ``_``, ``.``; alphanumeric at both ends; at most 63 characters). A CDI spec with no devices is
        dropped and one with several keeps only the first (each with a warning); its kind must be
        ``<vendor>/<class>`` and its device name valid per the CDI rules. Raises :class:`InvalidPluginError`.
        """
        problem = _names.device_type_problem(dev_type)
        if problem is not None:
            raise InvalidPluginError(f"device type {dev_type!r} is invalid: {problem}")
        self._types.setdefault(dev_type, {})[dev_id] = checked_device(dev_type, dev_id, info)

    def device_type_count(self, dev_type: str) -> int:
        """How many devices of ``dev_type`` the tree holds (0 for an unknown type)."""
        return len(self._types.get(dev_type, ()))

    def snapshot(self) -> dict[str, dict[str, DeviceInfo]]:
        """A copy of the tree as plain dicts (the infos are immutable and shared)."""
        return {dev_type: dict(devices) for dev_type, devices in self._types.items()}

    def __getitem__(self, dev_type: str) -> Mapping[str, DeviceInfo]:
        return MappingProxyType(self._types[dev_type])

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def __repr__(self) -> str:
        counts = ", ".join(f"{dev_type!r}: {len(devices)}" for dev_type, devices in self._types.items())
        return f"DeviceTree({{{counts}}})"


def checked_device(dev_type: str, dev_id: str, info: DeviceInfo) -> DeviceInfo:
    """``info`` for device ``dev_id`` of ``dev_type`` once checked (its CDI spec trimmed to one device);
    :class:`InvalidPluginError` naming the device and what is wrong."""
    if not isinstance(dev_id, str) or not dev_id:
        raise InvalidPluginError(f"device id of type {dev_type!r} must be a non-empty string, got {dev_id!r}")
    try:
        dev_id.encode()
    except UnicodeEncodeError:
        # protobuf strings are UTF-8: such an id would fail every ListAndWatch message of the type.
        raise InvalidPluginError(
            f"device id {dev_id!r} of type {dev_type!r} is not valid Unicode text (a lone surrogate),"
            " expected a string that encodes to UTF-8"
        ) from None
    if not isinstance(info, DeviceInfo):
        raise InvalidPluginError(
            f"device {dev_id!r} of type {dev_type!r}: info must be a DeviceInfo, got {type(info).__name__}"
        )
    return _checked_cdi(dev_type, dev_id, info)


def _checked_cdi(dev_type: str, dev_id: str, info: DeviceInfo) -> DeviceInfo:
    spec = info.cdi_spec
    if spec is None:
        return info
    where = f"device {dev_id!r} of type {dev_type!r}"
    problem = _names.cdi_kind_problem(spec.kind)
    if problem is not None:
        raise InvalidPluginError(f"{where}: CDI spec kind {spec.kind!r} is invalid: {problem}")
    if not spec.devices:
        logger.warning("%s: its CDI spec (kind %r) defines no device, dropping the spec", where, spec.kind)
        return info.model_copy(update={"cdi_spec": None})
    if len(spec.devices) > 1:
        logger.warning(
            "%s: its CDI spec (kind %r) defines %d devices, only one per spec is supported: keeping %r",
            where,
            spec.kind,
            len(spec.devices),
            spec.devices[0].name,
        )
        spec = spec.model_copy(update={"devices": spec.devices[:1]})
        info = info.model_copy(update={"cdi_spec": spec})
    name = spec.devices[0].name
    problem = _names.cdi_device_name_problem(name)
    if problem is not None:
        raise InvalidPluginError(f"{where}: CDI device name {name!r} (kind {spec.kind!r}) is invalid: {problem}")
    problem = _cdi_rules.cdi_spec_problem(spec)
    if problem is not None:
        raise InvalidPluginError(f"{where}: CDI spec (kind {spec.kind!r}) would be refused by runtimes: {problem}")
    return info


# --- the scanner and its notifier ---------------------------------------------------------------------------------


@runtime_checkable
class Notifier(Protocol):
    """Receives the scanner's device tree; works out what changed. Synchronous, never blocks."""

    def notify(self, tree: DeviceTree) -> None:
        """Hand over the whole current picture (the notifier keeps a copy; reusing the tree afterwards is fine)."""
        ...


@runtime_checkable
class Scanner(Protocol):
    """Finds devices and reports them to the notifier, the whole tree at once, whenever they change."""

    async def scan(self, notifier: Notifier) -> None:
        """Run until cancelled, calling ``notifier.notify(tree)`` with each new picture. Returning ends scanning
        (the last picture stays served); raising stops the manager."""
        ...


# --- optional hooks -----------------------------------------------------------------------------------------------


class UseDefault(enum.Enum):
    """The type of :data:`USE_DEFAULT`."""

    USE_DEFAULT = "USE_DEFAULT"


USE_DEFAULT = UseDefault.USE_DEFAULT
"""Returned by an ``allocate`` hook to let the framework's default Allocate answer this request."""


@runtime_checkable
class Allocator(Protocol):
    """Replaces the default Allocate; may return :data:`USE_DEFAULT` for requests it leaves to the default."""

    def allocate(
        self, request: AllocateRequest
    ) -> AllocateResponse | UseDefault | Awaitable[AllocateResponse | UseDefault]: ...


@runtime_checkable
class PostAllocator(Protocol):
    """Sees (and may replace, by returning a new one) every Allocate response; raising fails the call."""

    def post_allocate(
        self, response: AllocateResponse
    ) -> AllocateResponse | Awaitable[AllocateResponse | None] | None: ...


@runtime_checkable
class PreferredAllocator(Protocol):
    """Answers GetPreferredAllocation (advertised to kubelet when present)."""

    def get_preferred_allocation(
        self, request: PreferredAllocationRequest
    ) -> PreferredAllocationResponse | Awaitable[PreferredAllocationResponse]: ...


@runtime_checkable
class ContainerPreStarter(Protocol):
    """Runs before a container with the devices starts, e.g. to reset a card (advertised when present)."""

    def pre_start_container(self, request: PreStartContainerRequest) -> Awaitable[None] | None: ...
