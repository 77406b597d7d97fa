"""Nomad's device plugin contract (``plugins/device``), async, as a Protocol and frozen pydantic models.

A device plugin fingerprints groups of devices (a stream that sends the whole picture at once and again on every
change), reserves devices for a task (the mounts, device nodes and environment a container needs), and streams
statistics at an interval.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, model_validator

from plugin_host.base.api import BasePlugin
from plugin_host.base.structs import Attribute, StatObject, StatValue

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class DeviceLocality(BaseModel):
    """Where a device sits on the host (its PCI bus id)."""

    model_config = _FROZEN

    pci_bus_id: str = ""


class Device(BaseModel):
    """One device instance of a group."""

    model_config = _FROZEN

    id: str
    healthy: bool
    health_description: str = ""
    hw_locality: DeviceLocality | None = None


class DeviceGroup(BaseModel):
    """Devices that share vendor, type and name (``<vendor>/<type>/<name>`` identifies the group)."""

    model_config = _FROZEN

    vendor: str
    type: str
    name: str
    devices: tuple[Device, ...] = ()
    attributes: dict[str, Attribute] = {}

    @property
    def id(self) -> str:
        """``vendor/type/name``, as Nomad names a device group in job specs."""
        return f"{self.vendor}/{self.type}/{self.name}"


class FingerprintResponse(BaseModel):
    """One message of the fingerprint stream: the device groups, or an error.

    Nomad's wire message carries a list of groups; ``device_group`` is the first (most plugins have one group) and
    ``device_groups`` all of them. ``FingerprintResponse(device_group=g)`` is accepted as a shorthand.
    """

    model_config = _FROZEN

    device_groups: tuple[DeviceGroup, ...] = ()
    error: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _single_group(cls, data: Any) -> Any:
        if isinstance(data, dict) and "device_group" in data:
            data = dict(data)
            group = data.pop("device_group")
            if "device_groups" in data:
                raise ValueError("pass either device_group or device_groups, not both")
            data["device_groups"] = () if group is None else (group,)
        return data

    @property
    def device_group(self) -> DeviceGroup | None:
        """The first device group, or None when the message carries an error or no group."""
        return self.device_groups[0] if self.device_groups else None


class Mount(BaseModel):
    """A host path bind-mounted into the task."""

    model_config = _FROZEN

    task_path: str
    host_path: str
    read_only: bool = False


class DeviceSpec(BaseModel):
    """A device node made available in the task, with its cgroup permissions (``rwm``)."""

    model_config = _FROZEN

    task_path: str
    host_path: str
    cgroup_perms: str = ""


class ContainerReservation(BaseModel):
    """What a task needs to use the reserved devices."""

    model_config = _FROZEN

    envs: dict[str, str] = {}
    mounts: tuple[Mount, ...] = ()
    devices: tuple[DeviceSpec, ...] = ()


class DeviceStats(BaseModel):
    """Statistics of one device instance at one moment."""

    model_config = _FROZEN

    summary: StatValue | None = None
    stats: StatObject | None = None
    timestamp: datetime


class DeviceGroupStats(BaseModel):
    """Statistics of every instance of one device group, keyed by device id."""

    model_config = _FROZEN

    vendor: str
    type: str
    name: str
    instance_stats: dict[str, DeviceStats] = {}


class StatsResponse(BaseModel):
    """One message of the stats stream: per-group statistics, or an error."""

    model_config = _FROZEN

    groups: tuple[DeviceGroupStats, ...] = ()
    error: str | None = None


@runtime_checkable
class DevicePlugin(BasePlugin, Protocol):
    """A Nomad device plugin, async.

    ``fingerprint()`` and ``stats()`` are async iterators; leaving the ``async for`` loop (or closing the
    iterator) stops the work behind them.
    """

    def fingerprint(self) -> AsyncIterator[FingerprintResponse]:
        """Stream the device groups: the first message at once, then one per change."""
        ...

    async def reserve(self, device_ids: Sequence[str]) -> ContainerReservation:
        """Reserve devices for a task; raises :class:`plugin_host.errors.DeviceError` when it cannot."""
        ...

    def stats(self, interval: float) -> AsyncIterator[StatsResponse]:
        """Stream device statistics every ``interval`` seconds."""
        ...
