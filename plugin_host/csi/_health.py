"""What the CsiManager knows about one supervised CSI plugin (Nomad's ``structs.CSIInfo``, as a frozen model)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from plugin_host.csi.api import (
    ControllerServiceCapability,
    GetPluginInfoResponse,
    NodeGetInfoResponse,
    NodeServiceCapability,
    PluginCapability,
)

__all__ = ["CsiCapabilities", "CsiPluginHealth"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class CsiCapabilities(BaseModel):
    """The capabilities a plugin reported: its own (Identity), and its controller's or node's by its type."""

    model_config = _FROZEN

    plugin: tuple[PluginCapability, ...] = ()
    """From ``GetPluginCapabilities``."""
    controller: tuple[ControllerServiceCapability, ...] = ()
    """From ``ControllerGetCapabilities`` (``csi-controller`` plugins)."""
    node: tuple[NodeServiceCapability, ...] = ()
    """From ``NodeGetCapabilities`` (``csi-node`` plugins)."""


class CsiPluginHealth(BaseModel):
    """One supervised CSI plugin: whether it answers and is ready, and what its last fingerprint said.

    ``info``, ``capabilities`` and ``node_info`` keep the last successful fingerprint while the plugin is unhealthy
    (None until the first one). ``supervised`` is False only in the last record of a plugin, published when its
    registration went away and its supervision stopped.
    """

    model_config = _FROZEN

    name: str
    type: str
    """``csi-controller`` or ``csi-node``."""
    healthy: bool
    description: str
    """Why the plugin is unhealthy, or ``"healthy"``."""
    info: GetPluginInfoResponse | None = None
    capabilities: CsiCapabilities | None = None
    node_info: NodeGetInfoResponse | None = None
    """From ``NodeGetInfo`` (``csi-node`` plugins)."""
    socket_path: str = ""
    alloc_id: str = ""
    version: str = ""
    """The registered version."""
    supervised: bool = True
