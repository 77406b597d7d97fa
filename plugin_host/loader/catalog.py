"""The plugins built into plugin-host: one table, read by the config loader (to validate ``config {}``) and by the
host (to build them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from plugin_host.base.api import PLUGIN_TYPE_DEVICE, PLUGIN_TYPE_DRIVER
from plugin_host.config.validation import ConfigModel
from plugin_host.device.api import DevicePlugin
from plugin_host.driver.api import DriverPlugin
from plugin_host.errors import ConfigError
from plugin_host.plugins.fsdevice import FsDevice, FsDeviceConfig
from plugin_host.plugins.rawexec import RawExecConfig, RawExecDriver
from plugin_host.plugins.virt import VirtConfig

__all__ = ["BUILTIN_PLUGINS", "BuiltinPlugin"]


@dataclass(frozen=True, slots=True)
class BuiltinPlugin:
    """A built-in plugin: the model of its ``config {}`` block, how to make one, and its type (a device plugin the
    host serves and hands to its DeviceManager, or a task driver it hands to its DriverManager)."""

    config: type[ConfigModel]
    factory: Callable[[], DevicePlugin | DriverPlugin]
    type: str = PLUGIN_TYPE_DEVICE


def _virt_driver() -> DriverPlugin:
    # Imported here: the driver needs libvirt-python (the [virt] extra), only when `plugin "virt"` is configured.
    try:
        from plugin_host.plugins.virt.driver import VirtDriver
    except ImportError as exc:
        raise ConfigError(f'plugin "virt": needs the [virt] extra (pip install "plugin-host[virt]"): {exc}') from exc
    return VirtDriver()


BUILTIN_PLUGINS: Mapping[str, BuiltinPlugin] = {
    "fs-device": BuiltinPlugin(config=FsDeviceConfig, factory=FsDevice),
    "raw-exec": BuiltinPlugin(config=RawExecConfig, factory=RawExecDriver, type=PLUGIN_TYPE_DRIVER),
    "virt": BuiltinPlugin(config=VirtConfig, factory=_virt_driver, type=PLUGIN_TYPE_DRIVER),
}
