"""The server edge of every gRPC service the host serves with grpclib: serving on a Unix socket, and stopping.

:class:`UnixSocketServer` is how a plugin server (device, driver, CSI) and the kubelet registration socket take a
path, serve on it and give it back. :class:`ClosingServer` makes a stop visible to clients: grpclib (and asyncio
before 3.12) leave accepted connections open after ``close()``, so a client with a stream open would wait on it
forever and an idle client would learn of the stop only on its next call. The small helpers are the pieces every
service's handlers share.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import anyio
from grpclib.const import Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.protocol import H2Protocol
from grpclib.server import Server, Stream

from plugin_host._grpc_status import StatusDetailsCodec
from plugin_host._sockets import bind_unix_socket, claim_socket_path, remove_socket_if_ours

__all__ = [
    "CLOSE_TIMEOUT",
    "ClosingServer",
    "Servable",
    "UnixSocketServer",
    "aclose_responses",
    "recv_request",
    "stop_server",
]

logger = logging.getLogger(__name__)

# Bounds on cleanup work done under a shielded scope, so shutdown cannot hang on a misbehaving plugin.
CLOSE_TIMEOUT = 5.0


class Servable(Protocol):
    """Anything a grpclib ``Server`` can serve: a service object mapping method paths to handlers."""

    def __mapping__(self) -> Mapping[str, Handler]: ...


class ClosingServer(Server):
    """A grpclib server that can also close the connections it accepted (see :func:`stop_server`).

    Relies on grpclib's ``_protocol_factory`` (grpclib is pinned below 0.5).
    """

    def __init__(self, handlers: Sequence[Servable]) -> None:
        # Status details (Nomad's RecoverableError) go out in grpc-status-details-bin, as Go's servers send them.
        super().__init__(list(handlers), status_details_codec=StatusDetailsCodec())
        self._protocols: weakref.WeakSet[H2Protocol] = weakref.WeakSet()

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        self._protocols.add(protocol)
        return protocol

    def close_connections(self) -> None:
        """Close every connection still open (after ``close()`` and ``wait_closed()``)."""
        for protocol in list(self._protocols):
            connection = getattr(protocol, "connection", None)
            if connection is not None:
                connection.close()


async def stop_server(server: ClosingServer, what: str) -> None:
    """Stop ``server``: refuse new connections, cancel calls in flight, then close the connections still open.

    Runs shielded and waits at most :data:`CLOSE_TIMEOUT` seconds for the handlers; ``what`` names the server in the
    warning logged when they take longer.
    """
    with anyio.CancelScope(shield=True):
        server.close()
        with anyio.move_on_after(CLOSE_TIMEOUT) as scope:
            await server.wait_closed()
        if scope.cancelled_caught:
            logger.warning("%s did not stop within %ss", what, CLOSE_TIMEOUT)
        server.close_connections()


async def recv_request(stream: Stream[Any, Any], rpc: str) -> Any:
    """The request message of a unary call; ``INVALID_ARGUMENT`` when the client sent none."""
    request = await stream.recv_message()
    if request is None:
        raise GRPCError(Status.INVALID_ARGUMENT, f"{rpc}: no request message, expected one")
    return request


async def aclose_responses(iterator: AsyncIterator[Any], rpc: str) -> None:
    """Close a plugin's response iterator so the work behind it stops, even while the call is being cancelled."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with anyio.move_on_after(CLOSE_TIMEOUT, shield=True) as scope:
        try:
            await aclose()
        except Exception:
            logger.warning("closing the %s stream of a plugin raised", rpc, exc_info=True)
    if scope.cancelled_caught:
        logger.warning("closing the %s stream of a plugin took longer than %ss", rpc, CLOSE_TIMEOUT)


class UnixSocketServer:
    """Serve ``handlers`` on the Unix socket ``path`` (mode 0600) for the lifetime of an ``async with`` block.

    Entering claims the path (a stale socket is replaced; a live one or a non-socket raises
    :class:`~plugin_host.errors.SocketInUseError`, naming the socket as ``what``) and starts serving. Leaving stops
    the server (see :func:`stop_server`) and removes the socket file if it is still the one we bound.
    """

    def __init__(self, path: Path, handlers: Sequence[Servable], *, what: str) -> None:
        self._path = path
        self._handlers = tuple(handlers)
        self._what = what
        self._server: ClosingServer | None = None
        self._inode: int | None = None

    @property
    def socket_path(self) -> Path:
        """Where the server listens."""
        return self._path

    async def __aenter__(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"the {self._what} server on {str(self._path)!r} is already running")
        await claim_socket_path(self._path, what=self._what)
        sock = bind_unix_socket(self._path)
        self._inode = self._path.stat().st_ino
        server = ClosingServer(self._handlers)
        try:
            await server.start(sock=sock)
        except BaseException:
            sock.close()
            self._remove_socket()
            raise
        self._server = server
        logger.debug("serving the %s on %s", self._what, self._path)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        try:
            await stop_server(server, f"the {self._what} server on {self._path}")
        finally:
            self._remove_socket()

    def _remove_socket(self) -> None:
        remove_socket_if_ours(self._path, self._inode)
        self._inode = None
