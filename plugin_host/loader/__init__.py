"""Launching external go-plugin plugins the way a Nomad agent's plugin loader does, and the catalog of built-ins.

:class:`PluginLauncher` runs each executable of ``plugin_dir`` as a go-plugin process, reattaches to the ones an
earlier host left running (their :class:`PluginProcessRecord` in the state store) and hands each to the host's
device or driver manager; :data:`BUILTIN_PLUGINS` is the table of plugins built into plugin-host.

The names load on first use: :mod:`plugin_host.state` imports :mod:`plugin_host.loader.store` (the records it
persists), which must not drag the launcher, the plugin types and the built-in plugins in with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plugin_host.loader.catalog import BUILTIN_PLUGINS as BUILTIN_PLUGINS
    from plugin_host.loader.catalog import BuiltinPlugin as BuiltinPlugin
    from plugin_host.loader.launcher import LaunchState as LaunchState
    from plugin_host.loader.launcher import LaunchStatus as LaunchStatus
    from plugin_host.loader.launcher import PluginLauncher as PluginLauncher
    from plugin_host.loader.launcher import PluginSpec as PluginSpec
    from plugin_host.loader.launcher import plugin_specs_from_config as plugin_specs_from_config
    from plugin_host.loader.launcher import plugin_specs_from_dir as plugin_specs_from_dir
    from plugin_host.loader.store import PluginProcessRecord as PluginProcessRecord
    from plugin_host.loader.store import PluginProcessStore as PluginProcessStore

_WHERE = {
    "BUILTIN_PLUGINS": "catalog",
    "BuiltinPlugin": "catalog",
    "LaunchState": "launcher",
    "LaunchStatus": "launcher",
    "PluginLauncher": "launcher",
    "PluginSpec": "launcher",
    "plugin_specs_from_config": "launcher",
    "plugin_specs_from_dir": "launcher",
    "PluginProcessRecord": "store",
    "PluginProcessStore": "store",
}

__all__ = [
    "BUILTIN_PLUGINS",
    "BuiltinPlugin",
    "LaunchState",
    "LaunchStatus",
    "PluginLauncher",
    "PluginProcessRecord",
    "PluginProcessStore",
    "PluginSpec",
    "plugin_specs_from_config",
    "plugin_specs_from_dir",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
