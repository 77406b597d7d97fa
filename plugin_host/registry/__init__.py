"""The dynamic plugin registry: register, list, dispense, wait for and subscribe to plugins by type."""

from __future__ import annotations

from plugin_host.registry.models import PLUGIN_TYPE_CSI_CONTROLLER as PLUGIN_TYPE_CSI_CONTROLLER
from plugin_host.registry.models import PLUGIN_TYPE_CSI_NODE as PLUGIN_TYPE_CSI_NODE
from plugin_host.registry.models import PLUGIN_TYPE_DEVICE as PLUGIN_TYPE_DEVICE
from plugin_host.registry.models import EventType as EventType
from plugin_host.registry.models import PluginConnectionInfo as PluginConnectionInfo
from plugin_host.registry.models import PluginInfo as PluginInfo
from plugin_host.registry.models import PluginUpdateEvent as PluginUpdateEvent
from plugin_host.registry.registry import Dispenser as Dispenser
from plugin_host.registry.registry import Registry as Registry

__all__ = [
    "PLUGIN_TYPE_CSI_CONTROLLER",
    "PLUGIN_TYPE_CSI_NODE",
    "PLUGIN_TYPE_DEVICE",
    "Dispenser",
    "EventType",
    "PluginConnectionInfo",
    "PluginInfo",
    "PluginUpdateEvent",
    "Registry",
]
