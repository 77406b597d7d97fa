"""Nomad's device plugin API: the ``DevicePlugin`` Protocol and its models."""

from __future__ import annotations

from plugin_host.base.structs import Attribute as Attribute
from plugin_host.base.structs import StatObject as StatObject
from plugin_host.base.structs import StatValue as StatValue
from plugin_host.device.api import ContainerReservation as ContainerReservation
from plugin_host.device.api import Device as Device
from plugin_host.device.api import DeviceGroup as DeviceGroup
from plugin_host.device.api import DeviceGroupStats as DeviceGroupStats
from plugin_host.device.api import DeviceLocality as DeviceLocality
from plugin_host.device.api import DevicePlugin as DevicePlugin
from plugin_host.device.api import DeviceSpec as DeviceSpec
from plugin_host.device.api import DeviceStats as DeviceStats
from plugin_host.device.api import FingerprintResponse as FingerprintResponse
from plugin_host.device.api import Mount as Mount
from plugin_host.device.api import StatsResponse as StatsResponse

__all__ = [
    "Attribute",
    "ContainerReservation",
    "Device",
    "DeviceGroup",
    "DeviceGroupStats",
    "DeviceLocality",
    "DevicePlugin",
    "DeviceSpec",
    "DeviceStats",
    "FingerprintResponse",
    "Mount",
    "StatObject",
    "StatValue",
    "StatsResponse",
]
