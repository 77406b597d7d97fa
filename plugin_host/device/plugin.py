"""The go-plugin glue of the device plugin type, as Nomad's ``plugins/device/plugin.go``: serve a
:class:`~plugin_host.device.api.DevicePlugin` over go-plugin, and reach a launched one as a client.

A device plugin program is one line::

    from plugin_host.device.plugin import serve_device_plugin

    raise SystemExit(serve_device_plugin(MyPlugin()))
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from plugin_host.device.api import DevicePlugin
from plugin_host.device.server import device_plugin_handlers
from plugin_host.goplugin.serve import aserve_plugin, not_launched_message, serve_plugin

if TYPE_CHECKING:
    # The client side is imported where it is used: a plugin process serves and never dials.
    from plugin_host.device.client import DevicePluginClient

__all__ = [
    "NOT_LAUNCHED_MESSAGE",
    "aserve_device_plugin",
    "configure_device_plugin",
    "device_plugin_client",
    "serve_device_plugin",
]

NOT_LAUNCHED_MESSAGE = not_launched_message("device")
"""What a device plugin program prints (to stderr, exiting 1) when started by hand instead of by a client."""


# --- the plugin's side ------------------------------------------------------------------------------------------


async def aserve_device_plugin(
    plugin: DevicePlugin,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stop: anyio.Event | None = None,
) -> int:
    """Serve ``plugin`` over go-plugin until the client calls ``Shutdown`` or ``stop`` is set; the exit code.

    ``environ`` defaults to ``os.environ`` and ``stdout`` (where the handshake line goes) to ``sys.stdout``.
    Returns 1 without serving when the magic cookie is missing (the message goes to stderr) or the socket cannot be
    created (logged); 0 after a clean stop. The socket and its directory are removed on every way out.
    """
    return await aserve_plugin(
        device_plugin_handlers(plugin), not_launched=NOT_LAUNCHED_MESSAGE, environ=environ, stdout=stdout, stop=stop
    )


def serve_device_plugin(plugin: DevicePlugin, *, log_level: int | str = "INFO") -> int:
    """Run ``plugin`` as a go-plugin device plugin process until told to stop; the process exit code.

    For a program's main: it takes over stdout (the handshake only), logs to stderr as hclog JSON at
    ``log_level``, stops on SIGTERM and ignores SIGINT (as go-plugin does).
    Use ``raise SystemExit(serve_device_plugin(MyPlugin()))``.
    """
    return serve_plugin(device_plugin_handlers(plugin), not_launched=NOT_LAUNCHED_MESSAGE, log_level=log_level)


# --- the host's side --------------------------------------------------------------------------------------------


def device_plugin_client(socket_path: str | os.PathLike[str]) -> DevicePluginClient:
    """A client (not yet open) of a launched device plugin, over the Unix socket its handshake line announced."""
    from plugin_host.device.client import DevicePluginClient

    return DevicePluginClient(socket_path)


async def configure_device_plugin(client: DevicePluginClient, config: Mapping[str, Any]) -> None:
    """Make an open client's plugin ready for use: ``SetConfig`` with its ``config {}`` block."""
    await client.set_config(config)
