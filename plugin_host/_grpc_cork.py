"""One write per loop turn for a grpclib server: :class:`CorkedServer`.

grpclib writes every HTTP/2 frame batch to the transport as soon as h2 produces it: a unary call's answer is three
``send`` system calls (response headers, the message, trailers) plus one for the flow-control update of the
request, and each wakes the peer (kubelet's Go client) for a fragment of the answer. On a busy two-core machine
those sends were the largest single cost of an Allocate. The corked transport collects what is written during
one turn of the event loop and sends it with one ``write`` at the end of the turn (``call_soon``), so a unary
answer leaves in one system call, in the order it was written. Nothing waits longer than the current loop turn.

Flow control is unchanged: the real transport still buffers, and still calls the protocol's ``pause_writing`` and
``resume_writing``, which grpclib waits on before writing more.
"""

from __future__ import annotations

import asyncio
from typing import Any

from grpclib.protocol import H2Protocol

from plugin_host._grpc_server import ClosingServer

__all__ = ["CorkedServer"]


class _CorkedTransport:
    """A transport whose writes of one loop turn go out together; everything else is the real transport's."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _CorkedH2Protocol(H2Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(_CorkedTransport(transport))  # type: ignore[arg-type]  # duck-typed transport


class CorkedServer(ClosingServer):
    """A :class:`~plugin_host._grpc_server.ClosingServer` whose connections send once per loop turn."""

    def _protocol_factory(self) -> H2Protocol:
        protocol = super()._protocol_factory()
        # grpclib builds the protocol itself (with its handler and configuration); only connection_made differs.
        protocol.__class__ = _CorkedH2Protocol
        return protocol
