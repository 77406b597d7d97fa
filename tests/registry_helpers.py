"""Builders shared by the registry and state tests."""

from __future__ import annotations

from plugin_host import PluginConnectionInfo, PluginInfo


def make_info(
    name: str = "hostpath",
    ptype: str = "csi-node",
    alloc_id: str = "alloc-1",
    socket_path: str | None = None,
    version: str = "1.0.0",
    **options: str,
) -> PluginInfo:
    """A valid registration; the socket path defaults to one derived from name and alloc."""
    return PluginInfo(
        name=name,
        type=ptype,
        version=version,
        alloc_id=alloc_id,
        connection_info=PluginConnectionInfo(socket_path=socket_path or f"/run/csi/{name}-{alloc_id}.sock"),
        options=dict(options),
    )
