"""Serve a :class:`DevicePlugin` over gRPC, wire-compatible with Nomad (``plugins/base/server.go``,
``plugins/device/server.go``).

Errors follow Nomad's server: an exception from the plugin becomes the call's gRPC status (``UNKNOWN`` with the
exception's message), and an error carried in a fingerprint or stats response ends the stream with that status,
which Nomad's client turns back into a response with ``Error`` set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import anyio
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

from plugin_host._proto.hashicorp.nomad.plugins import device as wire_device
from plugin_host._proto.hashicorp.nomad.plugins.base import proto as wire_base
from plugin_host._sockets import bind_unix_socket, claim_socket_path, remove_socket_if_ours
from plugin_host.base import _convert as base_convert
from plugin_host.base.api import BasePlugin
from plugin_host.device import _convert as convert
from plugin_host.device.api import DevicePlugin
from plugin_host.errors import PluginHostError

__all__ = ["DevicePluginServer", "device_plugin_handlers"]

logger = logging.getLogger(__name__)

# Bounds on cleanup work done under a shielded scope, so shutdown cannot hang on a misbehaving plugin.
_CLOSE_TIMEOUT = 5.0

_R = TypeVar("_R")


class Servable(Protocol):
    """Anything a grpclib ``Server`` can serve: a service object mapping method paths to handlers."""

    def __mapping__(self) -> Mapping[str, Handler]: ...


class _HasError(Protocol):
    @property
    def error(self) -> str | None: ...


@contextmanager
def _plugin_errors(rpc: str, prefix: str = "") -> Iterator[None]:
    """Turn an exception from the plugin into the gRPC status Nomad's server would send (UNKNOWN + message)."""
    try:
        yield
    except GRPCError:
        raise
    except Exception as exc:
        if not isinstance(exc, PluginHostError):
            logger.warning("device plugin raised during %s", rpc, exc_info=True)
        raise GRPCError(Status.UNKNOWN, f"{prefix}{str(exc) or type(exc).__name__}") from exc


async def _recv_request(stream: Stream[Any, Any], rpc: str) -> Any:
    request = await stream.recv_message()
    if request is None:
        raise GRPCError(Status.INVALID_ARGUMENT, f"{rpc}: no request message, expected one")
    return request


async def _aclose(iterator: AsyncIterator[Any], rpc: str) -> None:
    """Close a plugin's stream iterator so the work behind it stops, even while the call is being cancelled."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True) as scope:
        try:
            await aclose()
        except Exception:
            logger.warning("closing the %s stream of a device plugin raised", rpc, exc_info=True)
    if scope.cancelled_caught:
        logger.warning("closing the %s stream of a device plugin took longer than %ss", rpc, _CLOSE_TIMEOUT)


async def _serve_stream(
    rpc: str,
    stream: Stream[Any, Any],
    open_responses: Callable[[], AsyncIterator[_R]],
    to_wire: Callable[[_R], Any],
    error_of: Callable[[_R], str | None],
) -> None:
    """Send each response of the plugin's iterator; an error response or exception ends the call with its status."""
    with _plugin_errors(rpc):
        responses = open_responses()
    try:
        while True:
            with _plugin_errors(rpc):
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
        await _aclose(responses, rpc)


class _BasePluginService:
    """``hashicorp.nomad.plugins.base.proto.BasePlugin`` backed by a :class:`BasePlugin`."""

    def __init__(self, plugin: BasePlugin) -> None:
        self._plugin = plugin

    def __mapping__(self) -> dict[str, Handler]:
        unary = Cardinality.UNARY_UNARY
        return {
            f"{base_convert.BASE_SERVICE}/PluginInfo": Handler(
                self._plugin_info, unary, wire_base.PluginInfoRequest, wire_base.PluginInfoResponse
            ),
            f"{base_convert.BASE_SERVICE}/ConfigSchema": Handler(
                self._config_schema, unary, wire_base.ConfigSchemaRequest, wire_base.ConfigSchemaResponse
            ),
            f"{base_convert.BASE_SERVICE}/SetConfig": Handler(
                self._set_config, unary, wire_base.SetConfigRequest, wire_base.SetConfigResponse
            ),
        }

    async def _plugin_info(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        with _plugin_errors("PluginInfo"):
            reply = base_convert.plugin_info_to_wire(await self._plugin.plugin_info())
        await stream.send_message(reply)

    async def _config_schema(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        with _plugin_errors("ConfigSchema"):
            spec = base_convert.spec_to_wire(await self._plugin.config_schema())
        await stream.send_message(wire_base.ConfigSchemaResponse(spec=spec))

    async def _set_config(self, stream: Stream[Any, Any]) -> None:
        request = await _recv_request(stream, "SetConfig")
        # Our BasePlugin takes the config only; the negotiated API version is informational here.
        logger.debug("SetConfig with plugin API version %r", request.plugin_api_version)
        with _plugin_errors("SetConfig", prefix="SetConfig failed: "):
            await self._plugin.set_config(bytes(request.msgpack_config))
        await stream.send_message(wire_base.SetConfigResponse())


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
        request = await _recv_request(stream, "Reserve")
        with _plugin_errors("Reserve"):
            reservation = await self._plugin.reserve(convert.reserve_request_from_wire(request))
            reply = convert.reserve_response_to_wire(reservation)
        await stream.send_message(reply)

    async def _stats(self, stream: Stream[Any, Any]) -> None:
        request = await _recv_request(stream, "Stats")
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
    return [_BasePluginService(plugin), _DevicePluginService(plugin)]


# --- the Unix socket --------------------------------------------------------------------------------------------


class DevicePluginServer:
    """Serve ``plugin`` on a Unix socket (mode 0600) for the lifetime of an ``async with`` block.

    Entering claims the path (a stale socket is replaced; a live one or a non-socket raises
    :class:`SocketInUseError`) and starts a grpclib server with the BasePlugin and DevicePlugin services plus
    ``extra_handlers``. Leaving stops it, cancels calls in flight (closing the plugin's stream iterators) and removes
    the socket file.
    """

    def __init__(
        self,
        plugin: DevicePlugin,
        socket_path: str | os.PathLike[str],
        *,
        extra_handlers: Sequence[Servable] = (),
    ) -> None:
        self._plugin = plugin
        self._path = Path(socket_path)
        self._extra_handlers = tuple(extra_handlers)
        self._server: Server | None = None
        self._inode: int | None = None

    @property
    def socket_path(self) -> Path:
        """Where the server listens."""
        return self._path

    async def __aenter__(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"DevicePluginServer on {str(self._path)!r} is already running")
        await claim_socket_path(self._path)
        sock = bind_unix_socket(self._path)
        self._inode = self._path.stat().st_ino
        server = Server([*device_plugin_handlers(self._plugin), *self._extra_handlers])
        try:
            await server.start(sock=sock)
        except BaseException:
            sock.close()
            self._remove_socket()
            raise
        self._server = server
        logger.debug("serving device plugin on %s", self._path)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        try:
            server.close()
            with anyio.move_on_after(_CLOSE_TIMEOUT, shield=True) as scope:
                await server.wait_closed()
            if scope.cancelled_caught:
                logger.warning("device plugin server on %s did not stop within %ss", self._path, _CLOSE_TIMEOUT)
        finally:
            self._remove_socket()

    def _remove_socket(self) -> None:
        remove_socket_if_ours(self._path, self._inode)
        self._inode = None
