"""The reference filesystem device plugin (Nomad's example fs-device): files in a directory are devices."""

from __future__ import annotations

from plugin_host.plugins.fsdevice.config import CONFIG_SPEC as CONFIG_SPEC
from plugin_host.plugins.fsdevice.config import FsDeviceConfig as FsDeviceConfig
from plugin_host.plugins.fsdevice.config import PermissionString as PermissionString
from plugin_host.plugins.fsdevice.plugin import FsDevice as FsDevice

__all__ = ["CONFIG_SPEC", "FsDevice", "FsDeviceConfig", "PermissionString"]
