"""HashiCorp go-plugin, as Nomad uses it: the transport only (handshake, serve, stdio, controller, broker).

It knows no plugin type: each type's glue serves its handlers through :func:`serve_plugin` (see
:mod:`plugin_host.device.plugin` and :mod:`plugin_host.driver.plugin`), and launching external plugins is
:mod:`plugin_host.loader`.
"""

from __future__ import annotations

from plugin_host.goplugin.handshake import APP_PROTOCOL_VERSION as APP_PROTOCOL_VERSION
from plugin_host.goplugin.handshake import CORE_PROTOCOL_VERSION as CORE_PROTOCOL_VERSION
from plugin_host.goplugin.handshake import MAGIC_COOKIE_KEY as MAGIC_COOKIE_KEY
from plugin_host.goplugin.handshake import MAGIC_COOKIE_VALUE as MAGIC_COOKIE_VALUE
from plugin_host.goplugin.handshake import Handshake as Handshake
from plugin_host.goplugin.handshake import format_handshake as format_handshake
from plugin_host.goplugin.handshake import parse_handshake as parse_handshake
from plugin_host.goplugin.serve import HEALTH_SERVICE_NAME as HEALTH_SERVICE_NAME
from plugin_host.goplugin.serve import aserve_plugin as aserve_plugin
from plugin_host.goplugin.serve import launched_by_plugin_client as launched_by_plugin_client
from plugin_host.goplugin.serve import not_launched_message as not_launched_message
from plugin_host.goplugin.serve import serve_plugin as serve_plugin

__all__ = [
    "APP_PROTOCOL_VERSION",
    "CORE_PROTOCOL_VERSION",
    "HEALTH_SERVICE_NAME",
    "MAGIC_COOKIE_KEY",
    "MAGIC_COOKIE_VALUE",
    "Handshake",
    "aserve_plugin",
    "format_handshake",
    "launched_by_plugin_client",
    "not_launched_message",
    "parse_handshake",
    "serve_plugin",
]
