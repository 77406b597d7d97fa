"""The registry's data: plugin descriptions and update events (Nomad's ``dynamicplugins`` structs)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from plugin_host._sockets import UNIX_SOCKET_PATH_MAX as UNIX_SOCKET_PATH_MAX

PLUGIN_TYPE_CSI_CONTROLLER = "csi-controller"
PLUGIN_TYPE_CSI_NODE = "csi-node"
PLUGIN_TYPE_DEVICE = "device"


class PluginConnectionInfo(BaseModel):
    """How to reach a plugin: the absolute path of its Unix socket."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    socket_path: str


class PluginInfo(BaseModel):
    """One registration of a plugin, made by one allocation (or the host itself).

    Fields are checked when the plugin is registered (``Registry.register_plugin`` raises
    :class:`~plugin_host.errors.InvalidPluginError`), not when the model is built, so a description can be
    assembled step by step.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: str
    version: str = ""
    connection_info: PluginConnectionInfo | None = None
    alloc_id: str = ""
    options: dict[str, str] = {}


class EventType(StrEnum):
    """What happened to a registration."""

    REGISTERED = "registered"
    UPDATED = "updated"
    DEREGISTERED = "deregistered"


class PluginUpdateEvent(BaseModel):
    """A change to the registry; ``seq`` grows by one per event across the registry and survives restarts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    event_type: EventType
    info: PluginInfo
