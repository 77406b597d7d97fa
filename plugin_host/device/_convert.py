"""Wire ⇄ domain converters for the device plugin API (Nomad's ``plugins/device/util.go``).

Pure functions. Field names differ in a few places and are mapped here: ``DeviceGroup.type``/``name`` are
``device_type``/``device_name`` on the wire, ``Device`` is ``DetectedDevice``, ``DeviceSpec.cgroup_perms`` is
``permissions``. Stream errors are not part of these messages; the adapters carry them as gRPC statuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from plugin_host._proto.hashicorp.nomad.plugins import device as wire
from plugin_host.base.convert import (
    attributes_from_wire,
    attributes_to_wire,
    on_wire,
    stat_object_from_wire,
    stat_object_to_wire,
    stat_value_from_wire,
    stat_value_to_wire,
)
from plugin_host.device.api import (
    ContainerReservation,
    Device,
    DeviceGroup,
    DeviceGroupStats,
    DeviceLocality,
    DeviceSpec,
    DeviceStats,
    FingerprintResponse,
    Mount,
    StatsResponse,
)

# gRPC path prefix of the DevicePlugin service (package hashicorp.nomad.plugins.device).
DEVICE_SERVICE = "/hashicorp.nomad.plugins.device.DevicePlugin"

# Nomad's server substitutes this for a zero collection interval.
DEFAULT_STATS_INTERVAL = 1.0

# --- fingerprint ------------------------------------------------------------------------------------------------


def device_locality_to_wire(locality: DeviceLocality) -> Any:
    """``DeviceLocality`` → wire."""
    return wire.DeviceLocality(pci_bus_id=locality.pci_bus_id)


def device_locality_from_wire(message: Any) -> DeviceLocality:
    """Wire ``DeviceLocality`` → domain."""
    return DeviceLocality(pci_bus_id=message.pci_bus_id)


def device_to_wire(device: Device) -> Any:
    """``Device`` → wire ``DetectedDevice``; no locality stays unset."""
    return wire.DetectedDevice(
        id=device.id,
        healthy=device.healthy,
        health_description=device.health_description,
        hw_locality=None if device.hw_locality is None else device_locality_to_wire(device.hw_locality),
    )


def device_from_wire(message: Any) -> Device:
    """Wire ``DetectedDevice`` → ``Device``; an absent locality is ``None``."""
    return Device(
        id=message.id,
        healthy=message.healthy,
        health_description=message.health_description,
        hw_locality=device_locality_from_wire(message.hw_locality) if on_wire(message.hw_locality) else None,
    )


def device_group_to_wire(group: DeviceGroup) -> Any:
    """``DeviceGroup`` → wire (``type``/``name`` become ``device_type``/``device_name``)."""
    return wire.DeviceGroup(
        vendor=group.vendor,
        device_type=group.type,
        device_name=group.name,
        devices=[device_to_wire(d) for d in group.devices],
        attributes=attributes_to_wire(group.attributes),
    )


def device_group_from_wire(message: Any) -> DeviceGroup:
    """Wire ``DeviceGroup`` → domain."""
    return DeviceGroup(
        vendor=message.vendor,
        type=message.device_type,
        name=message.device_name,
        devices=tuple(device_from_wire(d) for d in message.devices),
        attributes=attributes_from_wire(message.attributes),
    )


def fingerprint_response_to_wire(response: FingerprintResponse) -> Any:
    """``FingerprintResponse`` → wire; ``error`` is not part of the message (see the server adapter)."""
    return wire.FingerprintResponse(device_group=[device_group_to_wire(g) for g in response.device_groups])


def fingerprint_response_from_wire(message: Any) -> FingerprintResponse:
    """Wire ``FingerprintResponse`` → domain."""
    return FingerprintResponse(device_groups=tuple(device_group_from_wire(g) for g in message.device_group))


# --- reserve ----------------------------------------------------------------------------------------------------


def reserve_request_to_wire(device_ids: Iterable[str]) -> Any:
    """Device ids → wire ``ReserveRequest``."""
    return wire.ReserveRequest(device_ids=list(device_ids))


def reserve_request_from_wire(message: Any) -> Sequence[str]:
    """Wire ``ReserveRequest`` → device ids."""
    return tuple(message.device_ids)


def mount_to_wire(mount: Mount) -> Any:
    """``Mount`` → wire."""
    return wire.Mount(task_path=mount.task_path, host_path=mount.host_path, read_only=mount.read_only)


def mount_from_wire(message: Any) -> Mount:
    """Wire ``Mount`` → domain."""
    return Mount(task_path=message.task_path, host_path=message.host_path, read_only=message.read_only)


def device_spec_to_wire(spec: DeviceSpec) -> Any:
    """``DeviceSpec`` → wire (``cgroup_perms`` becomes ``permissions``)."""
    return wire.DeviceSpec(task_path=spec.task_path, host_path=spec.host_path, permissions=spec.cgroup_perms)


def device_spec_from_wire(message: Any) -> DeviceSpec:
    """Wire ``DeviceSpec`` → domain."""
    return DeviceSpec(task_path=message.task_path, host_path=message.host_path, cgroup_perms=message.permissions)


def container_reservation_to_wire(reservation: ContainerReservation) -> Any:
    """``ContainerReservation`` → wire."""
    return wire.ContainerReservation(
        envs=dict(reservation.envs),
        mounts=[mount_to_wire(m) for m in reservation.mounts],
        devices=[device_spec_to_wire(d) for d in reservation.devices],
    )


def container_reservation_from_wire(message: Any) -> ContainerReservation:
    """Wire ``ContainerReservation`` → domain."""
    return ContainerReservation(
        envs=dict(message.envs),
        mounts=tuple(mount_from_wire(m) for m in message.mounts),
        devices=tuple(device_spec_from_wire(d) for d in message.devices),
    )


def reserve_response_to_wire(reservation: ContainerReservation) -> Any:
    """``ContainerReservation`` → wire ``ReserveResponse``."""
    return wire.ReserveResponse(container_res=container_reservation_to_wire(reservation))


def reserve_response_from_wire(message: Any) -> ContainerReservation:
    """Wire ``ReserveResponse`` → ``ContainerReservation`` (an absent one is empty)."""
    return container_reservation_from_wire(message.container_res)


# --- stats ------------------------------------------------------------------------------------------------------


def timestamp_to_wire(moment: datetime) -> datetime:
    """Normalise a moment for ``google.protobuf.Timestamp``: naive datetimes are local time, as in Python."""
    return moment.astimezone(UTC)


def stats_request_to_wire(interval: float) -> Any:
    """A collection interval in seconds → wire ``StatsRequest`` (a ``google.protobuf.Duration``)."""
    return wire.StatsRequest(collection_interval=timedelta(seconds=interval))


def stats_request_from_wire(message: Any) -> float:
    """Wire ``StatsRequest`` → interval in seconds; zero or absent means one second, as in Nomad's server."""
    seconds = float(message.collection_interval.total_seconds())
    return seconds if seconds > 0 else DEFAULT_STATS_INTERVAL


def device_stats_to_wire(stats: DeviceStats) -> Any:
    """``DeviceStats`` → wire; the timestamp becomes a ``google.protobuf.Timestamp`` in UTC."""
    return wire.DeviceStats(
        summary=None if stats.summary is None else stat_value_to_wire(stats.summary),
        stats=None if stats.stats is None else stat_object_to_wire(stats.stats),
        timestamp=timestamp_to_wire(stats.timestamp),
    )


def device_stats_from_wire(message: Any) -> DeviceStats:
    """Wire ``DeviceStats`` → domain; the timestamp is timezone-aware UTC (the epoch when absent)."""
    return DeviceStats(
        summary=stat_value_from_wire(message.summary) if on_wire(message.summary) else None,
        stats=stat_object_from_wire(message.stats) if on_wire(message.stats) else None,
        timestamp=message.timestamp,
    )


def device_group_stats_to_wire(group: DeviceGroupStats) -> Any:
    """``DeviceGroupStats`` → wire."""
    return wire.DeviceGroupStats(
        vendor=group.vendor,
        type=group.type,
        name=group.name,
        instance_stats={dev_id: device_stats_to_wire(s) for dev_id, s in group.instance_stats.items()},
    )


def device_group_stats_from_wire(message: Any) -> DeviceGroupStats:
    """Wire ``DeviceGroupStats`` → domain."""
    return DeviceGroupStats(
        vendor=message.vendor,
        type=message.type,
        name=message.name,
        instance_stats={dev_id: device_stats_from_wire(s) for dev_id, s in message.instance_stats.items()},
    )


def stats_response_to_wire(response: StatsResponse) -> Any:
    """``StatsResponse`` → wire; ``error`` is not part of the message (see the server adapter)."""
    return wire.StatsResponse(groups=[device_group_stats_to_wire(g) for g in response.groups])


def stats_response_from_wire(message: Any) -> StatsResponse:
    """Wire ``StatsResponse`` → domain."""
    return StatsResponse(groups=tuple(device_group_stats_from_wire(g) for g in message.groups))
