"""The admin socket under hostile input: bounded nesting and line length on both sides, and the host keeps serving."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from plugin_host._json_limits import exceeds_depth, loads_bounded
from plugin_host.admin import (
    MAX_ANSWER_LINE,
    MAX_DEPTH,
    MAX_REQUEST_LINE,
    AdminServer,
    DeviceGroupStatus,
    DeviceStatus,
    EncodedJSON,
    HostStatus,
    PluginStatus,
    admin_request,
    query_status,
)
from plugin_host.errors import PluginHostError, PluginProtocolError

pytestmark = pytest.mark.anyio

WAIT = 10.0
STATUS = {"pid": 7, "version": "0", "state_file": "/s.db", "admin_socket": "/a.sock"}


@asynccontextmanager
async def serving(socket: Path) -> AsyncIterator[None]:
    """An AdminServer answering ``status`` on ``socket``."""

    async def status() -> Any:
        return STATUS

    async with AdminServer(socket, {"status": status}):
        yield
        # Let the server see every client's close before it stops: anyio raises InvalidStateError in a loop callback
        # when a UNIX stream's pending read is cancelled in the iteration its socket turned readable.
        await anyio.wait_all_tasks_blocked()


async def exchange(stream: SocketStream, reader: BufferedByteReceiveStream, line: bytes) -> Any:
    """Send one raw line, return the decoded answer line."""
    await stream.send(line)
    return json.loads(await reader.receive_until(b"\n", MAX_ANSWER_LINE))


async def test_deep_nesting_gets_an_error_naming_the_limit_and_the_connection_keeps_serving(short_tmp: Path) -> None:
    """A line of 1,500 '[' is answered with an error naming the depth limit; the same connection then answers status."""
    socket = short_tmp / "admin.sock"
    async with serving(socket):
        with anyio.fail_after(WAIT):
            stream = await anyio.connect_unix(socket)
            async with stream:
                reader = BufferedByteReceiveStream(stream)
                answer = await exchange(stream, reader, b"[" * 1500 + b"\n")
                assert answer["error"].startswith(f"request nests deeper than {MAX_DEPTH} levels")
                deep_object = b'{"a":' * 100 + b"1" + b"}" * 100 + b"\n"
                answer = await exchange(stream, reader, deep_object)
                assert f"deeper than {MAX_DEPTH} levels" in answer["error"]
                assert await exchange(stream, reader, b'{"method": "status"}\n') == {"result": STATUS}
            assert (await query_status(socket)).pid == 7


async def test_nesting_at_the_limit_is_parsed(short_tmp: Path) -> None:
    """A request exactly at the depth limit is parsed (and refused only for naming no method)."""
    socket = short_tmp / "admin.sock"
    async with serving(socket):
        with anyio.fail_after(WAIT):
            stream = await anyio.connect_unix(socket)
            async with stream:
                at_limit = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"\n"
                answer = await exchange(stream, BufferedByteReceiveStream(stream), at_limit)
    assert answer["error"].startswith("unknown method None")


async def test_overlong_line_gets_an_error_naming_the_limit_and_new_connections_are_served(short_tmp: Path) -> None:
    """A request line over the limit is answered with an error naming the byte limit; the host still answers status."""
    socket = short_tmp / "admin.sock"
    async with serving(socket):
        with anyio.fail_after(WAIT):
            stream = await anyio.connect_unix(socket)
            async with stream:
                answer = await exchange(stream, BufferedByteReceiveStream(stream), b"x" * (MAX_REQUEST_LINE + 10))
            assert answer == {
                "error": f"request line longer than {MAX_REQUEST_LINE} bytes; expected one short JSON line"
            }
            assert (await query_status(socket)).pid == 7
            assert await admin_request(socket, "status") == STATUS


@asynccontextmanager
async def hostile_host(socket: Path, answer: Callable[[], bytes]) -> AsyncIterator[None]:
    """A fake host that answers every request line with ``answer()``."""
    listener = await anyio.create_unix_listener(socket)

    async def handle(stream: SocketStream) -> None:
        async with stream:
            try:
                await BufferedByteReceiveStream(stream).receive_until(b"\n", 4096)
                await stream.send(answer())
            except (anyio.BrokenResourceError, anyio.EndOfStream, OSError):
                pass  # the client gave up on an answer over its limit

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"[" * 1500 + b"\n", f"answered JSON nested deeper than {MAX_DEPTH} levels"),
        (b'{"result": ' + b"[" * 100 + b"]" * 100 + b"}\n", f"nested deeper than {MAX_DEPTH} levels"),
        (b"[" + b"1," * 5000 + b"1]\n", "answered [1, 1, 1"),
    ],
    ids=["deep", "deep-result", "not-an-object"],
)
async def test_client_refuses_a_hostile_answer_with_a_protocol_error(
    short_tmp: Path, answer: bytes, expected: str
) -> None:
    """query_status raises PluginProtocolError naming the limit (or a truncated echo) for a hostile host's answer."""
    socket = short_tmp / "admin.sock"
    async with hostile_host(socket, lambda: answer):
        with anyio.fail_after(WAIT), pytest.raises(PluginProtocolError) as caught:
            await query_status(socket)
    assert expected in str(caught.value)
    assert len(str(caught.value)) < 500


async def test_client_refuses_an_answer_longer_than_its_bound(short_tmp: Path) -> None:
    """An answer line over ``max_answer`` bytes is a PluginProtocolError naming the bound (read no further)."""
    socket = short_tmp / "admin.sock"
    async with hostile_host(socket, lambda: b"x" * 100_000):
        with anyio.fail_after(WAIT), pytest.raises(PluginProtocolError) as caught:
            await query_status(socket, max_answer=4096)
    assert "answered a line longer than 4096 bytes" in str(caught.value)


async def test_status_of_30000_devices_over_a_mebibyte_is_read_whole(short_tmp: Path) -> None:
    """A status answer of 30,000 devices (about 2 MiB, encoded beforehand) reaches query_status whole."""
    devices = tuple(DeviceStatus(id=f"dev-{i:06d}", healthy=i % 2 == 0) for i in range(30_000))
    status = HostStatus(
        pid=1,
        version="0",
        state_file="/s",
        admin_socket="/a",
        plugins=(
            PluginStatus(
                name="big", type="device", state="running", groups=(DeviceGroupStatus(id="v/t/n", devices=devices),)
            ),
        ),
    )

    async def encoded() -> EncodedJSON:
        return EncodedJSON(status.model_dump_json().encode())

    socket = short_tmp / "admin.sock"
    async with AdminServer(socket, {"status": encoded}):
        with anyio.fail_after(WAIT):
            answer = await query_status(socket)
            # The server's connection task is done sending before it is cancelled (anyio's send of a large buffer
            # cancelled while it waits for the socket to drain sets a cancelled future's result: "invalid state").
            await anyio.wait_all_tasks_blocked()
    assert len(status.model_dump_json()) > 1 << 20
    assert MAX_ANSWER_LINE > 1 << 20
    assert answer == status


async def test_client_truncates_a_huge_error_message(short_tmp: Path) -> None:
    """A host's error message is passed on cut to a bounded length."""
    socket = short_tmp / "admin.sock"
    message = "e" * 100_000
    async with hostile_host(socket, lambda: json.dumps({"error": message}).encode() + b"\n"):
        with anyio.fail_after(WAIT), pytest.raises(PluginHostError) as caught:
            await admin_request(socket, "status")
    assert "(99500 more characters)" in str(caught.value)
    assert len(str(caught.value)) < 1000


def test_brackets_inside_strings_do_not_count_toward_the_depth() -> None:
    """Brackets and escaped quotes inside JSON strings are not nesting."""
    text = json.dumps({"method": "[" * 1000 + '"\\' + "{" * 1000}).encode()
    assert not exceeds_depth(text, 2)
    assert loads_bounded(text, max_depth=2)["method"].startswith("[[[")
    assert exceeds_depth(b'[["]"]]', 1)
