"""Serve a CSI plugin written in Python over gRPC on a Unix socket, speaking the models of this package.

A plugin is a :class:`~plugin_host.csi.api.CsiPlugin`: an object with async methods named after the CSI RPCs in
snake_case (at least the Identity service's), each taking the request model of :mod:`plugin_host.csi.requests` and
returning the reply model of :mod:`plugin_host.csi.api`::

    class MyPlugin:
        async def get_plugin_info(self, request: GetPluginInfoRequest) -> GetPluginInfoResponse: ...
        async def probe(self, request: ProbeRequest) -> ProbeResponse: ...

RPCs the object has no method for (and the SnapshotMetadata streams) answer ``UNIMPLEMENTED``. A request that
breaks the spec (a REQUIRED field empty) is answered ``INVALID_ARGUMENT`` naming the field before the plugin sees it.
To fail a call, raise ``grpclib.exceptions.GRPCError(status, message)``; any other exception answers ``INTERNAL``.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream
from pydantic import BaseModel, ValidationError

from plugin_host._grpc_server import UnixSocketServer, recv_request
from plugin_host.csi._convert import describe_validation_error, from_wire, to_wire
from plugin_host.csi._rpcs import RPCS, Rpc
from plugin_host.csi._secrets import scrub, scrub_exception, secret_values
from plugin_host.csi.api import CsiPlugin

__all__ = ["CsiPluginServer", "csi_handlers", "rpc_method_name"]

logger = logging.getLogger(__name__)

_Impl = Callable[[Any], Awaitable[BaseModel]]


def rpc_method_name(rpc: str) -> str:
    """The snake_case method name of a CSI RPC (``NodeGetInfo`` → ``node_get_info``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", rpc).lower()


class _Services:
    """A grpclib servable: the mapping of method paths to handlers."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)

    def __mapping__(self) -> Mapping[str, Handler]:
        return self._handlers


def _handler(rpc: Rpc, impl: _Impl) -> Handler:
    async def handle(stream: Stream[Any, Any]) -> None:
        message = await recv_request(stream, rpc.name)
        try:
            request = from_wire(message, rpc.request)
        except ValidationError as exc:
            raise GRPCError(
                Status.INVALID_ARGUMENT, f"{rpc.name}: " + "; ".join(describe_validation_error(exc))
            ) from None
        logger.debug("CSI %s request: %r", rpc.name, request)
        try:
            reply = await impl(request)
        except GRPCError as exc:
            # A status the plugin chose may quote the request's credentials too: they must not go on the wire, where
            # the host (and hpack's DEBUG log) would see them.
            scrub_exception(exc, secret_values(request))
            raise
        except Exception as exc:
            # The exception may quote the request's credentials anywhere it renders them (a command line in a
            # CalledProcessError, an exception group's members, notes, pydantic's error details): scrub the rendered
            # text, not attributes, before it is logged or sent back, and keep the raw exception out of any chain.
            values = secret_values(request)
            scrub_exception(exc, values)
            trace = scrub("".join(traceback.format_exception(exc)), values)
            logger.warning("CSI plugin raised during %s:\n%s", rpc.name, trace.rstrip("\n"))
            raise GRPCError(Status.INTERNAL, scrub(f"{rpc.name}: {type(exc).__name__}: {exc}", values)) from None
        if not isinstance(reply, rpc.reply):
            raise GRPCError(
                Status.INTERNAL,
                f"{rpc.name}: the plugin returned {type(reply).__name__}, expected {rpc.reply.__name__}",
            )
        await stream.send_message(to_wire(reply, rpc.wire_reply))

    return Handler(handle, Cardinality.UNARY_UNARY, rpc.wire_request, rpc.wire_reply)


def _unimplemented(rpc: Rpc) -> Handler:
    # grpclib answers an unknown path without a content-type, which its own client reports as UNKNOWN; an explicit
    # handler answers UNIMPLEMENTED properly.
    async def handle(stream: Stream[Any, Any]) -> None:
        raise GRPCError(Status.UNIMPLEMENTED, f"{rpc.name} is not implemented by this plugin")

    cardinality = Cardinality.UNARY_STREAM if rpc.streaming else Cardinality.UNARY_UNARY
    return Handler(handle, cardinality, rpc.wire_request, rpc.wire_reply)


def csi_handlers(plugin: CsiPlugin) -> _Services:
    """The grpclib servable for every CSI RPC: ``plugin``'s method where it has one, ``UNIMPLEMENTED`` elsewhere."""
    handlers: dict[str, Handler] = {}
    for rpc in RPCS.values():
        impl = None if rpc.streaming else getattr(plugin, rpc_method_name(rpc.name), None)
        handlers[rpc.path] = _handler(rpc, impl) if callable(impl) else _unimplemented(rpc)
    return _Services(handlers)


class CsiPluginServer(UnixSocketServer):
    """Serve ``plugin`` on a Unix socket (mode 0600) for the lifetime of an ``async with`` block.

    Entering claims the path (a stale socket is replaced; a live one or a non-socket raises
    :class:`~plugin_host.errors.SocketInUseError`) and starts serving; leaving stops the server, cancels calls in
    flight, closes the clients' connections and removes the socket file.
    """

    def __init__(self, plugin: CsiPlugin, socket_path: str | os.PathLike[str]) -> None:
        super().__init__(Path(socket_path), [csi_handlers(plugin)], what="CSI plugin socket")
