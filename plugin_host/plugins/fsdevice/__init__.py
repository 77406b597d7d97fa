"""The reference filesystem device plugin (Nomad's example fs-device): files in a directory are devices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_host._lazy import lazy_exports

if TYPE_CHECKING:
    from plugin_host.plugins.fsdevice.config import CONFIG_SPEC as CONFIG_SPEC
    from plugin_host.plugins.fsdevice.config import FsDeviceConfig as FsDeviceConfig
    from plugin_host.plugins.fsdevice.config import PermissionString as PermissionString
    from plugin_host.plugins.fsdevice.plugin import FsDevice as FsDevice


__all__ = ["CONFIG_SPEC", "FsDevice", "FsDeviceConfig", "PermissionString"]

# Imported on first use (see plugin_host._lazy): importing this package stays cheap.
_LAZY = {
    "CONFIG_SPEC": "plugin_host.plugins.fsdevice.config",
    "FsDeviceConfig": "plugin_host.plugins.fsdevice.config",
    "PermissionString": "plugin_host.plugins.fsdevice.config",
    "FsDevice": "plugin_host.plugins.fsdevice.plugin",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), __all__)
