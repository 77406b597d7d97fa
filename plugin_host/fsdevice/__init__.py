"""The reference filesystem device plugin at the path the design contract names (``shared/design.md`` §3).

The plugin lives in :mod:`plugin_host.plugins.fsdevice` with the other reference plugins; this module re-exports the
two names the contract promises, so ``from plugin_host.fsdevice import FsDevice, FsDeviceConfig`` keeps working.
Run the plugin with ``plugin-host-fs-device`` or ``python -m plugin_host.plugins.fsdevice``.
"""

from __future__ import annotations

from plugin_host.plugins.fsdevice import FsDevice as FsDevice
from plugin_host.plugins.fsdevice import FsDeviceConfig as FsDeviceConfig

__all__ = ["FsDevice", "FsDeviceConfig"]
