"""The dynamic plugin registry: register, list, dispense, wait for and subscribe to plugins by type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_host._lazy import lazy_exports

if TYPE_CHECKING:
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

# Imported on first use (see plugin_host._lazy): importing this package stays cheap.
_LAZY = {
    "PLUGIN_TYPE_CSI_CONTROLLER": "plugin_host.registry.models",
    "PLUGIN_TYPE_CSI_NODE": "plugin_host.registry.models",
    "PLUGIN_TYPE_DEVICE": "plugin_host.registry.models",
    "EventType": "plugin_host.registry.models",
    "PluginConnectionInfo": "plugin_host.registry.models",
    "PluginInfo": "plugin_host.registry.models",
    "PluginUpdateEvent": "plugin_host.registry.models",
    "Dispenser": "plugin_host.registry.registry",
    "Registry": "plugin_host.registry.registry",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
