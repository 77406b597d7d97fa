"""plugin-host: an asyncio host for infrastructure plugins.

The names below are the public API; see ``shared/design.md`` for the contract.
"""

from __future__ import annotations

from plugin_host import _wire_logs
from plugin_host._version import __version__ as __version__
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
