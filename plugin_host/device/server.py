"""Serve a :class:`DevicePlugin` over gRPC, wire-compatible with Nomad (``plugins/base/server.go``,
``plugins/device/server.go``).

Errors follow Nomad's server: an exception from the plugin becomes the call's gRPC status (``UNKNOWN`` with the
exception's message), and an error carried in a fingerprint or stats response ends the stream with that status,
which Nomad's client turns back into a response with ``Error`` set.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from plugin_host._grpc_server import Servable, UnixSocketServer, aclose_responses, recv_request
from plugin_host._proto.hashicorp.nomad.plugins import device as wire_device
from plugin_host.base.service import BasePluginService, plugin_errors
from plugin_host.device import _convert as convert
from plugin_host.device.api import DevicePlugin

__all__ = ["DevicePluginServer", "device_plugin_handlers"]

_KIND = "device plugin"

_R = TypeVar("_R")


class _HasError(Protocol):
    @property
    def error(self) -> str | None: ...


async def _serve_stream(
    rpc: str,
    stream: Stream[Any, Any],
    open_responses: Callable[[], AsyncIterator[_R]],
    to_wire: Callable[[_R], Any],
    error_of: Callable[[_R], str | None],
) -> None:
    """Send each response of the plugin's iterator; an error response or exception ends the call with its status."""
    with plugin_errors(rpc, kind=_KIND):
        responses = open_responses()
    try:
        while True:
            with plugin_errors(rpc, kind=_KIND):
                try:
                    response = await anext(responses)
                except StopAsyncIteration:
                    return
                error = error_of(response)
                if error is not None:
                    raise GRPCError(Status.UNKNOWN, error)
                message = to_wire(response)
            await stream.send_message(message)
    finally:
        await aclose_responses(responses, rpc)


class _DevicePluginService:
    """``hashicorp.nomad.plugins.device.DevicePlugin`` backed by a :class:`DevicePlugin`."""

    def __init__(self, plugin: DevicePlugin) -> None:
        self._plugin = plugin

    def __mapping__(self) -> dict[str, Handler]:
        return {
            f"{convert.DEVICE_SERVICE}/Fingerprint": Handler(
                self._fingerprint,
                Cardinality.UNARY_STREAM,
                wire_device.FingerprintRequest,
                wire_device.FingerprintResponse,
            ),
            f"{convert.DEVICE_SERVICE}/Reserve": Handler(
                self._reserve, Cardinality.UNARY_UNARY, wire_device.ReserveRequest, wire_device.ReserveResponse
            ),
            f"{convert.DEVICE_SERVICE}/Stats": Handler(
                self._stats, Cardinality.UNARY_STREAM, wire_device.StatsRequest, wire_device.StatsResponse
            ),
        }

    async def _fingerprint(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await _serve_stream(
            "Fingerprint",
            stream,
            self._plugin.fingerprint,
            convert.fingerprint_response_to_wire,
            _error_of,
        )

    async def _reserve(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "Reserve")
        with plugin_errors("Reserve", kind=_KIND):
            reservation = await self._plugin.reserve(convert.reserve_request_from_wire(request))
            reply = convert.reserve_response_to_wire(reservation)
        await stream.send_message(reply)

    async def _stats(self, stream: Stream[Any, Any]) -> None:
        request = await recv_request(stream, "Stats")
        interval = convert.stats_request_from_wire(request)
        await _serve_stream(
            "Stats",
            stream,
            lambda: self._plugin.stats(interval),
            convert.stats_response_to_wire,
            _error_of,
        )


def _error_of(response: _HasError) -> str | None:
    return response.error


def device_plugin_handlers(plugin: DevicePlugin) -> list[Servable]:
    """The grpclib services (BasePlugin and DevicePlugin) for ``plugin``, to compose on one grpclib ``Server``."""
    return [BasePluginService(plugin, kind=_KIND), _DevicePluginService(plugin)]


# --- the Unix socket --------------------------------------------------------------------------------------------


class DevicePluginServer(UnixSocketServer):
    """Serve ``plugin`` on a Unix socket (mode 0600) for the lifetime of an ``async with`` block.

    Entering claims the path (a stale socket is replaced; a live one or a non-socket raises
    :class:`SocketInUseError`) and starts a grpclib server with the BasePlugin and DevicePlugin services plus
    ``extra_handlers``. Leaving stops it, cancels calls in flight (closing the plugin's stream iterators), closes the
    clients' connections (so their open streams end at once) and removes the socket file.
    """

    def __init__(
        self,
        plugin: DevicePlugin,
        socket_path: str | os.PathLike[str],
        *,
        extra_handlers: Sequence[Servable] = (),
    ) -> None:
        super().__init__(
            Path(socket_path), [*device_plugin_handlers(plugin), *extra_handlers], what="device plugin socket"
        )
