"""Nomad's device plugin API: the ``DevicePlugin`` Protocol and its models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_host._lazy import lazy_exports

if TYPE_CHECKING:
    from plugin_host.base.structs import Attribute as Attribute
    from plugin_host.base.structs import StatObject as StatObject
    from plugin_host.base.structs import StatValue as StatValue
    from plugin_host.device._manager_models import DeviceManagerChange as DeviceManagerChange
    from plugin_host.device._manager_models import DeviceManagerSnapshot as DeviceManagerSnapshot
    from plugin_host.device._manager_models import PluginChange as PluginChange
    from plugin_host.device._manager_models import PluginSnapshot as PluginSnapshot
    from plugin_host.device._manager_models import PluginState as PluginState
    from plugin_host.device._manager_models import SnapshotChange as SnapshotChange
    from plugin_host.device._manager_subscribers import DeviceChanges as DeviceChanges
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
    from plugin_host.device.client import DevicePluginClient as DevicePluginClient
    from plugin_host.device.manager import DeviceManager as DeviceManager
    from plugin_host.device.server import DevicePluginServer as DevicePluginServer
    from plugin_host.device.server import device_plugin_handlers as device_plugin_handlers


__all__ = [
    "Attribute",
    "ContainerReservation",
    "Device",
    "DeviceChanges",
    "DeviceGroup",
    "DeviceGroupStats",
    "DeviceLocality",
    "DeviceManager",
    "DeviceManagerChange",
    "DeviceManagerSnapshot",
    "DevicePlugin",
    "DevicePluginClient",
    "DevicePluginServer",
    "DeviceSpec",
    "DeviceStats",
    "FingerprintResponse",
    "Mount",
    "PluginChange",
    "PluginSnapshot",
    "PluginState",
    "SnapshotChange",
    "StatObject",
    "StatValue",
    "StatsResponse",
    "device_plugin_handlers",
]

# Imported on first use (see plugin_host._lazy): importing this package stays cheap.
_LAZY = {
    "Attribute": "plugin_host.base.structs",
    "StatObject": "plugin_host.base.structs",
    "StatValue": "plugin_host.base.structs",
    "DeviceManagerChange": "plugin_host.device._manager_models",
    "DeviceManagerSnapshot": "plugin_host.device._manager_models",
    "PluginChange": "plugin_host.device._manager_models",
    "PluginSnapshot": "plugin_host.device._manager_models",
    "PluginState": "plugin_host.device._manager_models",
    "SnapshotChange": "plugin_host.device._manager_models",
    "DeviceChanges": "plugin_host.device._manager_subscribers",
    "ContainerReservation": "plugin_host.device.api",
    "Device": "plugin_host.device.api",
    "DeviceGroup": "plugin_host.device.api",
    "DeviceGroupStats": "plugin_host.device.api",
    "DeviceLocality": "plugin_host.device.api",
    "DevicePlugin": "plugin_host.device.api",
    "DeviceSpec": "plugin_host.device.api",
    "DeviceStats": "plugin_host.device.api",
    "FingerprintResponse": "plugin_host.device.api",
    "Mount": "plugin_host.device.api",
    "StatsResponse": "plugin_host.device.api",
    "DevicePluginClient": "plugin_host.device.client",
    "DeviceManager": "plugin_host.device.manager",
    "DevicePluginServer": "plugin_host.device.server",
    "device_plugin_handlers": "plugin_host.device.server",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
