"""The reference CSI plugin: a small hostpath plugin whose volumes are directories; see README.md.

Serve it in-process with ``CsiPluginServer(HostpathPlugin(data_dir), socket_path)``, or as its own process with
``python -m plugin_host.plugins.csi_hostpath --socket PATH --data-dir DIR``.
"""

from __future__ import annotations

from plugin_host.plugins.csi_hostpath.hostpath import DEFAULT_CAPACITY as DEFAULT_CAPACITY
from plugin_host.plugins.csi_hostpath.hostpath import DEFAULT_NAME as DEFAULT_NAME
from plugin_host.plugins.csi_hostpath.hostpath import VERSION as VERSION
from plugin_host.plugins.csi_hostpath.hostpath import HostpathPlugin as HostpathPlugin

__all__ = ["DEFAULT_CAPACITY", "DEFAULT_NAME", "VERSION", "HostpathPlugin"]
