"""HashiCorp go-plugin, as Nomad uses it: serve a plugin to a Nomad agent, or launch an external plugin process.

A device plugin program is one line (a task driver's likewise, with ``serve_driver_plugin``)::

    from plugin_host.goplugin import serve_device_plugin

    raise SystemExit(serve_device_plugin(MyPlugin()))
"""

from __future__ import annotations

from plugin_host.goplugin.handshake import APP_PROTOCOL_VERSION as APP_PROTOCOL_VERSION
from plugin_host.goplugin.handshake import CORE_PROTOCOL_VERSION as CORE_PROTOCOL_VERSION
from plugin_host.goplugin.handshake import MAGIC_COOKIE_KEY as MAGIC_COOKIE_KEY
from plugin_host.goplugin.handshake import MAGIC_COOKIE_VALUE as MAGIC_COOKIE_VALUE
from plugin_host.goplugin.handshake import Handshake as Handshake
from plugin_host.goplugin.handshake import format_handshake as format_handshake
from plugin_host.goplugin.handshake import parse_handshake as parse_handshake
from plugin_host.goplugin.launcher import LaunchState as LaunchState
from plugin_host.goplugin.launcher import LaunchStatus as LaunchStatus
from plugin_host.goplugin.launcher import PluginLauncher as PluginLauncher
from plugin_host.goplugin.launcher import PluginSpec as PluginSpec
from plugin_host.goplugin.launcher import plugin_specs_from_config as plugin_specs_from_config
from plugin_host.goplugin.launcher import plugin_specs_from_dir as plugin_specs_from_dir
from plugin_host.goplugin.serve import aserve_device_plugin as aserve_device_plugin
from plugin_host.goplugin.serve import aserve_driver_plugin as aserve_driver_plugin
from plugin_host.goplugin.serve import serve_device_plugin as serve_device_plugin
from plugin_host.goplugin.serve import serve_driver_plugin as serve_driver_plugin

__all__ = [
    "APP_PROTOCOL_VERSION",
    "CORE_PROTOCOL_VERSION",
    "MAGIC_COOKIE_KEY",
    "MAGIC_COOKIE_VALUE",
    "Handshake",
    "LaunchState",
    "LaunchStatus",
    "PluginLauncher",
    "PluginSpec",
    "aserve_device_plugin",
    "aserve_driver_plugin",
    "format_handshake",
    "parse_handshake",
    "plugin_specs_from_config",
    "plugin_specs_from_dir",
    "serve_device_plugin",
    "serve_driver_plugin",
]
