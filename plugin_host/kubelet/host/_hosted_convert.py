"""Wire ⇄ domain converters for Kubernetes device plugins hosted by the host (kubelet's side of v1beta1).

Pure functions. A kubelet resource ``<domain>/<resource>`` becomes the Nomad device group ``vendor=<domain>``,
``type=<resource>``, ``name=<resource>``: a Nomad job asking for ``device "<domain>/<resource>"`` (vendor/type)
names exactly the Kubernetes resource. Kubelet devices carry an id, a health string and NUMA nodes; Nomad's
``DeviceLocality`` only knows a PCI bus id, so NUMA topology is not carried over.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from plugin_host._proto import v1beta1 as wire
from plugin_host.base.structs import Attribute
from plugin_host.device.api import ContainerReservation, Device, DeviceGroup, DeviceSpec, Mount
from plugin_host.kubelet.api import HEALTHY, UNHEALTHY

__all__ = [
    "HEALTHY",
    "UNHEALTHY",
    "allocate_request_to_wire",
    "device_group_from_wire",
    "devices_from_wire",
    "group_for",
    "mark_unhealthy",
    "repeated_ids",
    "reservation_from_wire",
    "split_resource_name",
]

RESOURCE_ATTRIBUTE = "kubelet_resource"
"""Group attribute naming the Kubernetes resource the group came from."""


def split_resource_name(resource_name: str) -> tuple[str, str]:
    """``"<domain>/<resource>"`` → ``(domain, resource)``; the name was validated at registration."""
    domain, _, resource = resource_name.partition("/")
    return domain, resource


def devices_from_wire(devices: Iterable[Any], previous: Iterable[Device] = ()) -> tuple[Device, ...]:
    """Wire ``Device`` list → domain devices in the plugin's order; health other than ``Healthy`` is unhealthy.

    An id listed more than once is one device with the last entry's health, at its first place (kubelet keeps the
    devices in a map keyed by id, so the last entry wins there too). A device equal to one of ``previous`` (the
    last list) is that same object: building a pydantic model per device dominates a 100,000-device list, and
    reusing the unchanged ones makes the next list (and comparing it with the last one) cheap.
    """
    known = {device.id: device for device in previous}
    descriptions: dict[str, str] = {}
    out: dict[str, Device] = {}
    for device in devices:
        health = device.health
        healthy = health == HEALTHY
        description = ""
        if not healthy:
            description = descriptions.get(health, "")
            if not description:
                description = descriptions[health] = f"the device plugin reports health {health or 'unset'!r}"
        old = known.get(device.id)
        if (
            old is not None
            and old.healthy is healthy
            and old.health_description == description
            and old.hw_locality is None
        ):
            out[device.id] = old
        else:
            out[device.id] = Device(id=device.id, healthy=healthy, health_description=description)
    return tuple(out.values())


def repeated_ids(devices: Iterable[Any]) -> list[str]:
    """The ids listed more than once in a wire ``Device`` list, in order of their first repetition."""
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for device in devices:
        if device.id in seen:
            repeated[device.id] = None
        seen.add(device.id)
    return list(repeated)


def group_for(resource_name: str, devices: Sequence[Device]) -> DeviceGroup:
    """The Nomad device group of a kubelet resource holding ``devices``."""
    domain, resource = split_resource_name(resource_name)
    return DeviceGroup(
        vendor=domain,
        type=resource,
        name=resource,
        devices=tuple(devices),
        attributes={RESOURCE_ATTRIBUTE: Attribute(string_val=resource_name)},
    )


def device_group_from_wire(resource_name: str, response: Any) -> DeviceGroup:
    """A ``ListAndWatchResponse`` of ``resource_name`` → its device group (a full replacement of the last one)."""
    return group_for(resource_name, devices_from_wire(response.devices))


def mark_unhealthy(devices: Sequence[Device], reason: str) -> tuple[Device, ...]:
    """Every device unhealthy with ``reason`` (kubelet's ``markResourceUnhealthy`` when a plugin goes away)."""
    return tuple(Device(id=d.id, healthy=False, health_description=reason, hw_locality=d.hw_locality) for d in devices)


def allocate_request_to_wire(device_ids: Sequence[str]) -> Any:
    """One container asking for ``device_ids`` (kubelet sends one container request per Allocate)."""
    return wire.AllocateRequest(container_requests=[wire.ContainerAllocateRequest(devices_ids=list(device_ids))])


def reservation_from_wire(response: Any) -> ContainerReservation:
    """A ``ContainerAllocateResponse`` → the reservation a Nomad task applies (envs, mounts, device nodes).

    Annotations and CDI device names have no place in Nomad's reservation and are left out (the caller logs them).
    """
    return ContainerReservation(
        envs=dict(response.envs),
        mounts=tuple(
            Mount(task_path=m.container_path, host_path=m.host_path, read_only=m.read_only) for m in response.mounts
        ),
        devices=tuple(
            DeviceSpec(task_path=d.container_path, host_path=d.host_path, cgroup_perms=d.permissions)
            for d in response.devices
        ),
    )
