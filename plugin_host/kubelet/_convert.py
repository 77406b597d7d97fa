"""kubelet device plugin API v1beta1: wire messages (``plugin_host._proto.v1beta1``) <-> domain models. Pure."""

from __future__ import annotations

from plugin_host._proto import v1beta1 as wire
from plugin_host.kubelet.api import (
    AllocateRequest,
    AllocateResponse,
    ContainerAllocateRequest,
    ContainerAllocateResponse,
    ContainerPreferredAllocationRequest,
    ContainerPreferredAllocationResponse,
    DevicePluginOptions,
    KubeletDevice,
    KubeletDeviceSpec,
    KubeletMount,
    PreferredAllocationRequest,
    PreferredAllocationResponse,
    PreStartContainerRequest,
    RegisterRequest,
)

__all__ = [
    "DEVICE_PLUGIN_SERVICE",
    "REGISTRATION_SERVICE",
    "allocate_request_from_wire",
    "allocate_request_to_wire",
    "allocate_response_from_wire",
    "allocate_response_to_wire",
    "kubelet_device_from_wire",
    "kubelet_device_to_wire",
    "list_response_from_wire",
    "options_from_wire",
    "options_to_wire",
    "pre_start_request_from_wire",
    "pre_start_request_to_wire",
    "preferred_allocation_request_from_wire",
    "preferred_allocation_request_to_wire",
    "preferred_allocation_response_from_wire",
    "preferred_allocation_response_to_wire",
    "register_request_from_wire",
    "register_request_to_wire",
    "topology_to_wire",
]

DEVICE_PLUGIN_SERVICE = "/v1beta1.DevicePlugin"
REGISTRATION_SERVICE = "/v1beta1.Registration"


# --- devices ------------------------------------------------------------------------------------------------------


def topology_to_wire(topology: tuple[int, ...] | None) -> wire.TopologyInfo | None:
    if topology is None:
        return None
    return wire.TopologyInfo(nodes=[wire.NumaNode(id=node) for node in topology])


def kubelet_device_to_wire(device: KubeletDevice) -> wire.Device:
    """A listed device, back on the wire."""
    return wire.Device(id=device.id, health=device.health, topology=topology_to_wire(device.topology))


def kubelet_device_from_wire(device: wire.Device) -> KubeletDevice:
    """A device of a ListAndWatch message; an absent topology is None, a present one its NUMA node ids."""
    topology = None
    if device.is_set("topology"):
        topology = tuple(node.id for node in device.topology.nodes)
    return KubeletDevice(id=device.id, health=device.health, topology=topology)


def list_response_from_wire(response: wire.ListAndWatchResponse) -> tuple[KubeletDevice, ...]:
    """The devices of one ListAndWatch message."""
    return tuple(kubelet_device_from_wire(device) for device in response.devices)


# --- Allocate -----------------------------------------------------------------------------------------------------


def allocate_request_to_wire(request: AllocateRequest) -> wire.AllocateRequest:
    return wire.AllocateRequest(
        container_requests=[
            wire.ContainerAllocateRequest(devices_ids=list(container.devices_ids))
            for container in request.container_requests
        ]
    )


def allocate_request_from_wire(request: wire.AllocateRequest) -> AllocateRequest:
    return AllocateRequest(
        container_requests=tuple(
            ContainerAllocateRequest(devices_ids=tuple(container.devices_ids))
            for container in request.container_requests
        )
    )


def _container_response_to_wire(response: ContainerAllocateResponse) -> wire.ContainerAllocateResponse:
    return wire.ContainerAllocateResponse(
        envs=dict(response.envs),
        mounts=[
            wire.Mount(container_path=m.container_path, host_path=m.host_path, read_only=m.read_only)
            for m in response.mounts
        ],
        devices=[
            wire.DeviceSpec(container_path=d.container_path, host_path=d.host_path, permissions=d.permissions)
            for d in response.devices
        ],
        annotations=dict(response.annotations),
        cdi_devices=[wire.CdiDevice(name=name) for name in response.cdi_devices],
    )


def _container_response_from_wire(response: wire.ContainerAllocateResponse) -> ContainerAllocateResponse:
    return ContainerAllocateResponse(
        envs=dict(response.envs),
        mounts=tuple(
            KubeletMount(container_path=m.container_path, host_path=m.host_path, read_only=m.read_only)
            for m in response.mounts
        ),
        devices=tuple(
            KubeletDeviceSpec(container_path=d.container_path, host_path=d.host_path, permissions=d.permissions)
            for d in response.devices
        ),
        annotations=dict(response.annotations),
        cdi_devices=tuple(device.name for device in response.cdi_devices),
    )


def allocate_response_to_wire(response: AllocateResponse) -> wire.AllocateResponse:
    return wire.AllocateResponse(
        container_responses=[_container_response_to_wire(c) for c in response.container_responses]
    )


def allocate_response_from_wire(response: wire.AllocateResponse) -> AllocateResponse:
    """Raises pydantic's ``ValidationError`` (a ``ValueError``) for a mount or device spec that breaks the model
    (an empty path, unknown permissions)."""
    return AllocateResponse(
        container_responses=tuple(_container_response_from_wire(c) for c in response.container_responses)
    )


# --- GetPreferredAllocation, PreStartContainer --------------------------------------------------------------------


def preferred_allocation_request_to_wire(request: PreferredAllocationRequest) -> wire.PreferredAllocationRequest:
    return wire.PreferredAllocationRequest(
        container_requests=[
            wire.ContainerPreferredAllocationRequest(
                available_device_i_ds=list(c.available_device_ids),
                must_include_device_i_ds=list(c.must_include_device_ids),
                allocation_size=c.allocation_size,
            )
            for c in request.container_requests
        ]
    )


def preferred_allocation_request_from_wire(request: wire.PreferredAllocationRequest) -> PreferredAllocationRequest:
    return PreferredAllocationRequest(
        container_requests=tuple(
            ContainerPreferredAllocationRequest(
                available_device_ids=tuple(c.available_device_i_ds),
                must_include_device_ids=tuple(c.must_include_device_i_ds),
                allocation_size=c.allocation_size,
            )
            for c in request.container_requests
        )
    )


def preferred_allocation_response_to_wire(response: PreferredAllocationResponse) -> wire.PreferredAllocationResponse:
    return wire.PreferredAllocationResponse(
        container_responses=[
            wire.ContainerPreferredAllocationResponse(device_i_ds=list(c.device_ids))
            for c in response.container_responses
        ]
    )


def preferred_allocation_response_from_wire(
    response: wire.PreferredAllocationResponse,
) -> PreferredAllocationResponse:
    return PreferredAllocationResponse(
        container_responses=tuple(
            ContainerPreferredAllocationResponse(device_ids=tuple(c.device_i_ds)) for c in response.container_responses
        )
    )


def pre_start_request_to_wire(request: PreStartContainerRequest) -> wire.PreStartContainerRequest:
    return wire.PreStartContainerRequest(devices_ids=list(request.devices_ids))


def pre_start_request_from_wire(request: wire.PreStartContainerRequest) -> PreStartContainerRequest:
    return PreStartContainerRequest(devices_ids=tuple(request.devices_ids))


# --- options and registration -------------------------------------------------------------------------------------


def options_to_wire(options: DevicePluginOptions) -> wire.DevicePluginOptions:
    return wire.DevicePluginOptions(
        pre_start_required=options.pre_start_required,
        get_preferred_allocation_available=options.get_preferred_allocation_available,
    )


def options_from_wire(options: wire.DevicePluginOptions) -> DevicePluginOptions:
    return DevicePluginOptions(
        pre_start_required=options.pre_start_required,
        get_preferred_allocation_available=options.get_preferred_allocation_available,
    )


def register_request_to_wire(request: RegisterRequest) -> wire.RegisterRequest:
    return wire.RegisterRequest(
        version=request.version,
        endpoint=request.endpoint,
        resource_name=request.resource_name,
        options=options_to_wire(request.options),
    )


def register_request_from_wire(request: wire.RegisterRequest) -> RegisterRequest:
    """An absent ``options`` is all-false options, as kubelet reads it."""
    return RegisterRequest(
        version=request.version,
        endpoint=request.endpoint,
        resource_name=request.resource_name,
        options=options_from_wire(request.options),
    )
