"""fs-device as an external go-plugin process, driven by a small go-plugin client written here: spawn with the
cookie, parse the handshake, connect, call what Nomad calls, and stop it the ways Nomad does."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from betterproto.lib.google.protobuf import Empty
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from plugin_host._proto import plugin as wire
from plugin_host.device import DevicePluginClient
from plugin_host.device.plugin import NOT_LAUNCHED_MESSAGE, aserve_device_plugin
from plugin_host.goplugin._stdio import HclogJsonFormatter
from plugin_host.goplugin.handshake import ENV_UNIX_SOCKET_DIR, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, parse_handshake
from plugin_host.plugins.fsdevice import FsDevice

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
WAIT = 15.0


@dataclass
class Plugin:
    """A launched plugin process and what its handshake said."""

    process: Process
    stdout: BufferedByteReceiveStream
    socket_path: Path
    handshake_line: bytes

    async def exit_code(self) -> int:
        """Wait (bounded) for the process to exit."""
        with anyio.fail_after(WAIT):
            return await self.process.wait()

    async def rest_of_stdout(self) -> bytes:
        """Everything the process wrote to stdout after the handshake line, once it has exited."""
        chunks = [self.stdout.buffer]
        with anyio.fail_after(WAIT):
            try:
                while True:
                    chunks.append(await self.stdout.receive())
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                pass
        return b"".join(chunks)

    async def stderr_lines(self) -> list[str]:
        """The process's stderr, line by line, once it has exited."""
        assert self.process.stderr is not None
        data = b""
        with anyio.fail_after(WAIT):
            try:
                while True:
                    data += await self.process.stderr.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                pass
        return data.decode().splitlines()


def _env(socket_dir: Path, cookie: str | None = MAGIC_COOKIE_VALUE) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != MAGIC_COOKIE_KEY}
    env[ENV_UNIX_SOCKET_DIR] = str(socket_dir)
    if cookie is not None:
        env[MAGIC_COOKIE_KEY] = cookie
    return env


@asynccontextmanager
async def launched(socket_dir: Path) -> AsyncIterator[Plugin]:
    """Start ``python -m plugin_host.plugins.fsdevice`` as go-plugin's client does and read its handshake."""
    process = await anyio.open_process(
        [sys.executable, "-m", "plugin_host.plugins.fsdevice"], env=_env(socket_dir), cwd=REPO
    )
    try:
        assert process.stdout is not None
        stdout = BufferedByteReceiveStream(process.stdout)
        with anyio.fail_after(WAIT):
            line = await stdout.receive_until(b"\n", 4096)
        handshake = parse_handshake(line.decode())
        assert handshake.network == "unix"
        yield Plugin(process, stdout, Path(handshake.address), line)
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True), anyio.move_on_after(WAIT):
            await process.wait()
        await process.aclose()


class _Out(io.StringIO):
    """A text stream that signals when something was written and flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = anyio.Event()

    def flush(self) -> None:
        super().flush()
        if self.getvalue():
            self.flushed.set()


@pytest.fixture
def devices(short_tmp: Path) -> Path:
    """A device directory holding dev0 and dev1."""
    directory = short_tmp / "devices"
    directory.mkdir()
    for name in ("dev0", "dev1"):
        (directory / name).write_text(name)
    return directory


@pytest.fixture
def socket_dir(short_tmp: Path) -> Path:
    """The PLUGIN_UNIX_SOCKET_DIR handed to the plugin."""
    directory = short_tmp / "s"
    directory.mkdir()
    return directory


async def _health(channel: Channel, service: str) -> int:
    with anyio.fail_after(WAIT):
        reply = await HealthStub(channel).Check(HealthCheckRequest(service=service))
    return int(reply.status)


async def _shutdown(channel: Channel) -> None:
    with anyio.fail_after(WAIT):
        await wire.GrpcControllerStub(channel).shutdown(wire.Empty())


async def test_nomad_session_then_shutdown_exits_zero_and_cleans_up(socket_dir: Path, devices: Path) -> None:
    """Health, PluginInfo, SetConfig and Fingerprint work; Shutdown ends the stdio and broker streams and exits 0."""
    async with launched(socket_dir) as plugin:
        assert plugin.handshake_line == f"1|2|unix|{plugin.socket_path}|grpc".encode()
        assert plugin.socket_path.parent.parent == socket_dir
        assert stat.S_IMODE(plugin.socket_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(plugin.socket_path.parent.stat().st_mode) == 0o700
        channel = Channel(path=str(plugin.socket_path))
        try:
            stdio_data: list[wire.StdioData] = []
            broker_done = anyio.Event()

            async def read_stdio() -> None:
                stdio_data.extend([data async for data in wire.GrpcStdioStub(channel).stream_stdio(Empty())])

            async def hold_broker() -> None:
                async with channel.request(
                    "/plugin.GRPCBroker/StartStream", Cardinality.STREAM_STREAM, wire.ConnInfo, wire.ConnInfo
                ) as stream:
                    await stream.send_message(wire.ConnInfo(service_id=1, network="unix", address="/nowhere"))
                    async for _ in stream:
                        pass
                    await stream.end()
                broker_done.set()

            async with anyio.create_task_group() as tg:
                # Upstream's client opens both streams right after connecting.
                tg.start_soon(read_stdio)
                tg.start_soon(hold_broker)
                assert await _health(channel, "plugin") == HealthCheckResponse.SERVING
                async with DevicePluginClient(plugin.socket_path, timeout=WAIT) as client:
                    info = await client.plugin_info()
                    assert info.name == "fs-device"
                    await client.set_config({"dir": str(devices), "list_period": "50ms"})
                    async with aclosing(client.fingerprint()) as stream:
                        with anyio.fail_after(WAIT):
                            first = await anext(stream)
                    assert first.device_group is not None
                    assert sorted(d.id for d in first.device_group.devices) == ["dev0", "dev1"]
                await _shutdown(channel)
                assert await plugin.exit_code() == 0
                with anyio.fail_after(WAIT):
                    await broker_done.wait()
            assert stdio_data == []
        finally:
            channel.close()
        assert not plugin.socket_path.exists()
        assert list(socket_dir.iterdir()) == []
        assert await plugin.rest_of_stdout() == b""
        lines = await plugin.stderr_lines()
        assert lines
        for line in lines:
            entry = json.loads(line)
            assert {"@level", "@message", "@module", "@timestamp"} <= entry.keys(), line
        assert any(json.loads(line)["@message"] == "shutdown requested by the plugin client" for line in lines)


async def test_sigint_is_ignored_and_sigterm_exits_zero_and_removes_socket(socket_dir: Path) -> None:
    """SIGINT is ignored (go-plugin's server.go: a Ctrl-C on the agent reaches the plugin too), SIGTERM stops it
    cleanly: exit 0, socket and its directory gone, stdout only the handshake."""
    async with launched(socket_dir) as plugin:
        channel = Channel(path=str(plugin.socket_path))
        try:
            assert await _health(channel, "plugin") == HealthCheckResponse.SERVING
        finally:
            channel.close()
        # Delivered in order: the SIGINT is handled (ignored) before the SIGTERM stops the plugin.
        plugin.process.send_signal(signal.SIGINT)
        plugin.process.send_signal(signal.SIGTERM)
        assert await plugin.exit_code() == 0
        messages = [json.loads(line)["@message"] for line in await plugin.stderr_lines()]
        assert "received SIGTERM, stopping" in messages
        assert "received SIGINT, stopping" not in messages
        assert not plugin.socket_path.exists()
        assert list(socket_dir.iterdir()) == []
        assert await plugin.rest_of_stdout() == b""


@pytest.mark.parametrize("cookie", [None, "wrong"])
def test_without_the_cookie_exits_one_with_a_message(socket_dir: Path, cookie: str | None) -> None:
    """Run by hand (no or wrong magic cookie) the plugin says what it is on stderr, prints nothing, and exits 1."""
    result = subprocess.run(
        [sys.executable, "-m", "plugin_host.plugins.fsdevice"],
        env=_env(socket_dir, cookie),
        cwd=REPO,
        capture_output=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == b""
    assert "not meant to be run directly" in result.stderr.decode()
    assert list(socket_dir.iterdir()) == []


async def test_aserve_returns_zero_when_stop_is_set(socket_dir: Path) -> None:
    """In process, ``aserve_device_plugin`` writes the handshake to ``stdout`` and returns 0 once ``stop`` is set."""
    out = _Out()
    stop = anyio.Event()
    result: list[int] = []

    async def serve() -> None:
        result.append(await aserve_device_plugin(FsDevice(), environ=_env(socket_dir), stdout=out, stop=stop))

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(WAIT):
            await out.flushed.wait()
        handshake = parse_handshake(out.getvalue())
        channel = Channel(path=handshake.address)
        try:
            assert await _health(channel, "plugin") == HealthCheckResponse.SERVING
        finally:
            channel.close()
        stop.set()
    assert result == [0]
    assert list(socket_dir.iterdir()) == []


async def test_aserve_without_cookie_returns_one(socket_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``aserve_device_plugin`` refuses to serve without the cookie and writes nothing to ``stdout``."""
    out = io.StringIO()
    assert await aserve_device_plugin(FsDevice(), environ=_env(socket_dir, None), stdout=out) == 1
    assert out.getvalue() == ""
    assert capsys.readouterr().err == NOT_LAUNCHED_MESSAGE


def test_log_lines_are_hclog_json() -> None:
    """Records become hclog JSON with go-plugin's level names and the timestamp layout its client parses."""
    import logging

    record = logging.LogRecord("plugin_host.x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    entry = json.loads(HclogJsonFormatter().format(record))
    assert entry["@level"] == "warn"
    assert entry["@message"] == "hello world"
    assert entry["@module"] == "plugin_host.x"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry["@timestamp"])
