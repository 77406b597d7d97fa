"""The plugins built into plugin-host: one table, read by the config loader (to validate ``config {}``) and by the
host (to build them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from plugin_host.config.validation import ConfigModel
from plugin_host.device.api import DevicePlugin
from plugin_host.fsdevice import FsDevice, FsDeviceConfig

__all__ = ["BUILTIN_PLUGINS", "BuiltinPlugin"]


@dataclass(frozen=True, slots=True)
class BuiltinPlugin:
    """A built-in device plugin: the model of its ``config {}`` block and how to make one."""

    config: type[ConfigModel]
    factory: Callable[[], DevicePlugin]


BUILTIN_PLUGINS: Mapping[str, BuiltinPlugin] = {"fs-device": BuiltinPlugin(config=FsDeviceConfig, factory=FsDevice)}
