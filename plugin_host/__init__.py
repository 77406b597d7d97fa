"""plugin-host: an asyncio host for infrastructure plugins.

The names below are the public API; see ``shared/design.md`` for the contract. They load on first use (PEP 562), so
``import plugin_host`` is cheap: a plugin process or ``plugin-host --version`` imports only what it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_host import _wire_logs
from plugin_host._lazy import lazy_exports
from plugin_host._version import __version__ as __version__

if TYPE_CHECKING:
    from plugin_host.host import PluginHost as PluginHost
    from plugin_host.host_config import HostConfig as HostConfig
    from plugin_host.registry import PLUGIN_TYPE_CSI_CONTROLLER as PLUGIN_TYPE_CSI_CONTROLLER
    from plugin_host.registry import PLUGIN_TYPE_CSI_NODE as PLUGIN_TYPE_CSI_NODE
    from plugin_host.registry import PLUGIN_TYPE_DEVICE as PLUGIN_TYPE_DEVICE
    from plugin_host.registry import EventType as EventType
    from plugin_host.registry import PluginConnectionInfo as PluginConnectionInfo
    from plugin_host.registry import PluginInfo as PluginInfo
    from plugin_host.registry import PluginUpdateEvent as PluginUpdateEvent
    from plugin_host.registry import Registry as Registry
    from plugin_host.state import MemoryStateStore as MemoryStateStore
    from plugin_host.state import SqliteStateStore as SqliteStateStore

# hpack and h2 (under grpclib) log header values at DEBUG, and a plugin's grpc-message may quote credentials.
_wire_logs.guard_wire_loggers()

# Where each public name lives, imported when first asked for.
_LAZY = {
    "PluginHost": "plugin_host.host",
    "HostConfig": "plugin_host.host_config",
    "PLUGIN_TYPE_CSI_CONTROLLER": "plugin_host.registry",
    "PLUGIN_TYPE_CSI_NODE": "plugin_host.registry",
    "PLUGIN_TYPE_DEVICE": "plugin_host.registry",
    "EventType": "plugin_host.registry",
    "PluginConnectionInfo": "plugin_host.registry",
    "PluginInfo": "plugin_host.registry",
    "PluginUpdateEvent": "plugin_host.registry",
    "Registry": "plugin_host.registry",
    "MemoryStateStore": "plugin_host.state",
    "SqliteStateStore": "plugin_host.state",
}

__all__ = [
    "PLUGIN_TYPE_CSI_CONTROLLER",
    "PLUGIN_TYPE_CSI_NODE",
    "PLUGIN_TYPE_DEVICE",
    "EventType",
    "HostConfig",
    "MemoryStateStore",
    "PluginConnectionInfo",
    "PluginHost",
    "PluginInfo",
    "PluginUpdateEvent",
    "Registry",
    "SqliteStateStore",
    "__version__",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
