"""The plugins built into plugin-host: one table, read by the config loader (to validate ``config {}``) and by the
host (to build them)."""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from plugin_host.base.api import PLUGIN_TYPE_DEVICE, PLUGIN_TYPE_DRIVER
from plugin_host.config.validation import ConfigModel
from plugin_host.device.api import DevicePlugin
from plugin_host.driver.api import DriverPlugin
from plugin_host.errors import ConfigError

__all__ = ["BUILTIN_PLUGINS", "BuiltinPlugin"]


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True, slots=True)
class BuiltinPlugin:
    """A built-in plugin: the model of its ``config {}`` block, how to make one, and its type (a device plugin the
    host serves and hands to its DeviceManager, or a task driver it hands to its DriverManager).

    Both are named (``"module:attribute"``) and imported when first used: reading a host config loads the config
    models of the plugins it configures, and only a host that runs a plugin imports its implementation.
    """

    config_target: str
    factory_target: str
    type: str = PLUGIN_TYPE_DEVICE

    @property
    def config(self) -> builtins.type[ConfigModel]:
        """The model of the plugin's ``config {}`` block."""
        model: builtins.type[ConfigModel] = _load(self.config_target)
        return model

    @property
    def factory(self) -> Callable[[], DevicePlugin | DriverPlugin]:
        """Makes the plugin (a fresh, unconfigured instance)."""
        factory: Callable[[], DevicePlugin | DriverPlugin] = _load(self.factory_target)
        return factory


def virt_driver() -> DriverPlugin:
    """The virt driver, or a ConfigError saying it needs the ``[virt]`` extra (libvirt-python)."""
    try:
        from plugin_host.plugins.virt.driver import VirtDriver
    except ImportError as exc:
        raise ConfigError(f'plugin "virt": needs the [virt] extra (pip install "plugin-host[virt]"): {exc}') from exc
    return VirtDriver()


BUILTIN_PLUGINS: Mapping[str, BuiltinPlugin] = {
    "fs-device": BuiltinPlugin(
        "plugin_host.plugins.fsdevice.config:FsDeviceConfig", "plugin_host.plugins.fsdevice.plugin:FsDevice"
    ),
    "raw-exec": BuiltinPlugin(
        "plugin_host.plugins.rawexec.config:RawExecConfig",
        "plugin_host.plugins.rawexec.driver:RawExecDriver",
        type=PLUGIN_TYPE_DRIVER,
    ),
    "virt": BuiltinPlugin(
        "plugin_host.plugins.virt:VirtConfig", "plugin_host.loader.catalog:virt_driver", type=PLUGIN_TYPE_DRIVER
    ),
}
