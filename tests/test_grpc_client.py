"""The shared gRPC client edge (plugin_host._grpc_client) against real grpclib servers on Unix sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from betterproto.lib.google.protobuf import BytesValue, StringValue
from grpclib.client import Channel
from grpclib.const import Cardinality, Handler
from grpclib.server import Server, Stream

from plugin_host._grpc_client import unary_call
from plugin_host.errors import PluginProtocolError

pytestmark = pytest.mark.anyio

PATH = "/test.Echo/Reply"


class _Replies:
    """Answers every call with ``reply``, whatever the client expects."""

    def __init__(self, reply: bytes) -> None:
        self._reply = reply

    async def _handle(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(BytesValue(value=self._reply))

    def __mapping__(self) -> dict[str, Handler]:
        return {PATH: Handler(self._handle, Cardinality.UNARY_UNARY, BytesValue, BytesValue)}


@asynccontextmanager
async def served(directory: Path, reply: bytes) -> AsyncIterator[Channel]:
    server = Server([_Replies(reply)])
    socket = directory / "s.sock"
    await server.start(path=str(socket))
    channel = Channel(path=str(socket))
    try:
        yield channel
    finally:
        channel.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("reply", "why"),
    [(b"\xff\xfe", "does not decode"), (b"ok", None)],
)
async def test_a_reply_that_does_not_decode_is_a_protocol_error(short_tmp: Path, reply: bytes, why: str | None) -> None:
    """Bytes that are not the RPC's reply message (here invalid UTF-8 in a string field) raise PluginProtocolError
    naming the plugin and the RPC; a well-formed reply still decodes."""
    async with served(short_tmp, reply) as channel:
        call = unary_call(channel, "Reply", PATH, BytesValue(), StringValue, where="plugin at 's.sock'", timeout=5)
        if why is None:
            assert (await call).value == "ok"
            return
        with pytest.raises(PluginProtocolError, match=r"plugin at 's.sock' sent a reply to Reply that does not decode"):
            await call
