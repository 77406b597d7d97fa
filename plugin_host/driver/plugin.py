"""The go-plugin glue of the task driver plugin type, as Nomad's ``plugins/drivers/plugin.go``: serve a
:class:`~plugin_host.driver.api.DriverPlugin` over go-plugin, and reach a launched one as a client.

A task driver program is one line::

    from plugin_host.driver.plugin import serve_driver_plugin

    raise SystemExit(serve_driver_plugin(MyDriver()))
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from plugin_host.driver.api import DriverPlugin
from plugin_host.driver.server import driver_plugin_handlers
from plugin_host.goplugin.serve import aserve_plugin, not_launched_message, serve_plugin

if TYPE_CHECKING:
    # The client side is imported where it is used: a plugin process serves and never dials.
    from plugin_host.driver.client import DriverPluginClient

__all__ = [
    "NOT_LAUNCHED_MESSAGE",
    "aserve_driver_plugin",
    "configure_driver_plugin",
    "driver_plugin_client",
    "serve_driver_plugin",
]

NOT_LAUNCHED_MESSAGE = not_launched_message("driver")
"""What a task driver program prints (to stderr, exiting 1) when started by hand instead of by a client."""


# --- the plugin's side ------------------------------------------------------------------------------------------


async def aserve_driver_plugin(
    plugin: DriverPlugin,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stop: anyio.Event | None = None,
) -> int:
    """Serve a task driver over go-plugin (BasePlugin and Driver services); as
    :func:`~plugin_host.device.plugin.aserve_device_plugin`."""
    return await aserve_plugin(
        driver_plugin_handlers(plugin), not_launched=NOT_LAUNCHED_MESSAGE, environ=environ, stdout=stdout, stop=stop
    )


def serve_driver_plugin(plugin: DriverPlugin, *, log_level: int | str = "INFO") -> int:
    """Run ``plugin`` as a go-plugin task driver process until told to stop; the process exit code.

    For a program's main: it takes over stdout (the handshake only), logs to stderr as hclog JSON at
    ``log_level``, stops on SIGTERM and ignores SIGINT (as go-plugin does).
    Use ``raise SystemExit(serve_driver_plugin(MyDriver()))``.
    """
    return serve_plugin(driver_plugin_handlers(plugin), not_launched=NOT_LAUNCHED_MESSAGE, log_level=log_level)


# --- the host's side --------------------------------------------------------------------------------------------


def driver_plugin_client(socket_path: str | os.PathLike[str]) -> DriverPluginClient:
    """A client (not yet open) of a launched task driver, over the Unix socket its handshake line announced."""
    from plugin_host.driver.client import DriverPluginClient

    return DriverPluginClient(socket_path)


async def configure_driver_plugin(client: DriverPluginClient, config: Mapping[str, Any]) -> None:
    """Make an open client's driver ready for use: ``SetConfig`` with its ``config {}`` block, then ``Init``."""
    await client.set_config(config)
    await client.init()
