"""The two go-plugin RPCs the launcher itself makes: ``grpc.health.v1.Health/Check`` and ``GRPCController/Shutdown``."""

from __future__ import annotations

import os
from typing import Any, TypeVar

import anyio
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from plugin_host._grpc_cancel import native_cancels_undone
from plugin_host._grpc_client import unary_call
from plugin_host._proto.hashicorp.nomad.plugins.base import proto as wire_base
from plugin_host._proto.plugin import Empty
from plugin_host.base import convert as base_convert

__all__ = ["GO_PLUGIN_HEALTH_SERVICE", "health_status", "plugin_type", "shutdown"]

GO_PLUGIN_HEALTH_SERVICE = "plugin"
"""The service name go-plugin's server registers as SERVING (``grpc_server.go``)."""

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_SHUTDOWN = "/plugin.GRPCController/Shutdown"
_R = TypeVar("_R")
_FAILURES = (OSError, GRPCError, ProtocolError, StreamTerminatedError, ConnectionError)


async def health_status(socket_path: str | os.PathLike[str], *, limit: float) -> str:
    """The health of service ``plugin`` (``SERVING``, ...), or why it could not be asked (``unreachable: ...``)."""
    channel = Channel(path=os.fspath(socket_path))
    try:
        with anyio.fail_after(limit):
            reply = await _unary(
                channel, _HEALTH_CHECK, HealthCheckRequest(service=GO_PLUGIN_HEALTH_SERVICE), HealthCheckResponse
            )
    except TimeoutError:
        return f"unreachable: no answer within {limit:g}s"
    except _FAILURES as exc:
        return f"unreachable: {type(exc).__name__}: {exc}"
    finally:
        channel.close()
    return str(HealthCheckResponse.ServingStatus.Name(reply.status))


async def plugin_type(socket_path: str | os.PathLike[str], *, limit: float) -> str:
    """The plugin's type from ``BasePlugin/PluginInfo`` (``device``, ``driver``); errors as every client's."""
    channel = Channel(path=os.fspath(socket_path))
    try:
        reply = await unary_call(
            channel,
            "PluginInfo",
            f"{base_convert.BASE_SERVICE}/PluginInfo",
            wire_base.PluginInfoRequest(),
            wire_base.PluginInfoResponse,
            where=f"plugin at {os.fspath(socket_path)!r}",
            timeout=limit,
        )
    finally:
        channel.close()
    return base_convert.plugin_info_from_wire(reply).type


async def shutdown(socket_path: str | os.PathLike[str], *, limit: float) -> bool:
    """Ask the plugin to exit (``GRPCController/Shutdown``); False when it could not be asked."""
    channel = Channel(path=os.fspath(socket_path))
    try:
        with anyio.move_on_after(limit):
            await _unary(channel, _SHUTDOWN, Empty(), Empty)
            return True
        return False
    except _FAILURES:
        return False
    finally:
        channel.close()


async def _unary(channel: Channel, path: str, request: Any, reply_type: type[_R]) -> _R:
    # A plugin that exits while answering (Shutdown) loses the connection mid-call: see plugin_host._grpc_cancel.
    with native_cancels_undone():
        async with channel.request(path, Cardinality.UNARY_UNARY, type(request), reply_type) as stream:
            await stream.send_message(request, end=True)
            reply = await stream.recv_message()
            await stream.recv_trailing_metadata()
    if reply is None:
        raise ProtocolError(f"{path} returned no message")
    return reply
