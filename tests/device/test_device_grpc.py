"""DevicePluginServer and DevicePluginClient end to end: a real grpclib server on a Unix socket, a real client, and
a small fake plugin behind them."""

from __future__ import annotations

import socket
import stat
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import msgpack
import pytest
from grpclib.health.service import Health
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from plugin_host.base import hclspec
from plugin_host.base.api import PluginInfoResponse
from plugin_host.device import (
    ContainerReservation,
    Device,
    DeviceGroup,
    DeviceGroupStats,
    DevicePlugin,
    DevicePluginClient,
    DevicePluginServer,
    DeviceSpec,
    DeviceStats,
    FingerprintResponse,
    Mount,
    StatsResponse,
    StatValue,
)
from plugin_host.errors import (
    ConfigError,
    DeviceError,
    PluginRPCError,
    PluginTimeoutError,
    PluginUnavailableError,
    SocketInUseError,
)

pytestmark = pytest.mark.anyio

WAIT = 5.0  # bound on every wait for an event; the events normally fire within milliseconds

GROUP = DeviceGroup(
    vendor="example",
    type="file",
    name="mock",
    devices=(Device(id="dev-1", healthy=True), Device(id="dev-2", healthy=False, health_description="bad perms")),
)
SCHEMA = hclspec.obj(
    {
        "dir": hclspec.default(hclspec.attr("dir", "string"), hclspec.literal('"."')),
        "list_period": hclspec.default(hclspec.attr("list_period", "string"), hclspec.literal('"5s"')),
    }
)
T0 = datetime(2026, 8, 1, 12, 0, 0, 123_000, tzinfo=UTC)


class FakeDevicePlugin:
    """A device plugin that plays back scripted responses and records what it was asked."""

    def __init__(self) -> None:
        self.info = PluginInfoResponse(
            type="device", plugin_api_versions=("v0.1.0",), plugin_version="1.2.3", name="fake"
        )
        self.configs: list[Any] = []
        self.fail_set_config: Exception | None = None
        self.fingerprints: list[FingerprintResponse] = [FingerprintResponse(device_group=GROUP)]
        self.fingerprint_raises: Exception | None = None
        self.hold_open = False
        self.streams_sent = anyio.Event()
        self.fingerprint_closed = anyio.Event()
        self.stats_closed = anyio.Event()
        self.stats_intervals: list[float] = []
        self.stats_responses: list[StatsResponse] = []
        self.reserve_started = anyio.Event()
        self.reserve_blocks = False
        self.reserve_cancelled = anyio.Event()

    async def plugin_info(self) -> PluginInfoResponse:
        return self.info

    async def config_schema(self) -> hclspec.Spec:
        return SCHEMA

    async def set_config(self, config: Mapping[str, Any] | bytes | Any) -> None:
        if self.fail_set_config is not None:
            raise self.fail_set_config
        self.configs.append(msgpack.unpackb(config) if isinstance(config, bytes) else config)

    async def fingerprint(self) -> AsyncIterator[FingerprintResponse]:
        try:
            for response in self.fingerprints:
                yield response
            if self.fingerprint_raises is not None:
                raise self.fingerprint_raises
            if self.hold_open:
                self.streams_sent.set()
                await anyio.sleep_forever()
        finally:
            self.fingerprint_closed.set()

    async def reserve(self, device_ids: Sequence[str]) -> ContainerReservation:
        if self.reserve_blocks:
            self.reserve_started.set()
            try:
                await anyio.sleep_forever()
            finally:
                self.reserve_cancelled.set()
        unknown = [i for i in device_ids if i not in {"dev-1", "dev-2"}]
        if unknown:
            raise DeviceError(f"unknown device ids {unknown}, expected dev-1 or dev-2")
        return ContainerReservation(
            envs={"MOCK_DEVICES": ",".join(device_ids)},
            mounts=(Mount(task_path="/mock", host_path="/srv/mock", read_only=True),),
            devices=tuple(
                DeviceSpec(task_path=f"/dev/{i}", host_path=f"/dev/{i}", cgroup_perms="rw") for i in device_ids
            ),
        )

    async def stats(self, interval: float) -> AsyncIterator[StatsResponse]:
        self.stats_intervals.append(interval)
        try:
            for response in self.stats_responses:
                yield response
            if self.hold_open:
                self.streams_sent.set()
                await anyio.sleep_forever()
        finally:
            self.stats_closed.set()


class TrackedStream:
    """An async iterator object (not a generator): it stops only when someone calls aclose()."""

    def __init__(self, first: FingerprintResponse) -> None:
        self._first: FingerprintResponse | None = first
        self.closed = anyio.Event()

    def __aiter__(self) -> TrackedStream:
        return self

    async def __anext__(self) -> FingerprintResponse:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        self.closed.set()


class FakeWithStreamObject(FakeDevicePlugin):
    """A fake whose fingerprint() returns a TrackedStream."""

    def __init__(self) -> None:
        super().__init__()
        self.tracked = TrackedStream(FingerprintResponse(device_group=GROUP))

    def fingerprint(self) -> AsyncIterator[FingerprintResponse]:
        return self.tracked


def _typed(plugin: FakeDevicePlugin) -> DevicePlugin:
    return plugin  # mypy proves the fake satisfies the Protocol


@asynccontextmanager
async def serving(
    tmp: Path, plugin: FakeDevicePlugin | None = None, **client_kw: Any
) -> AsyncIterator[tuple[FakeDevicePlugin, DevicePluginClient]]:
    plugin = plugin or FakeDevicePlugin()
    path = tmp / "dev.sock"
    async with DevicePluginServer(_typed(plugin), path), DevicePluginClient(path, **client_kw) as client:
        yield plugin, client


# --- base plugin ------------------------------------------------------------------------------------------------


async def test_plugin_info_round_trips(short_tmp: Path) -> None:
    """plugin_info over gRPC returns what the plugin said."""
    async with serving(short_tmp) as (plugin, client):
        assert await client.plugin_info() == plugin.info


async def test_plugin_info_with_unknown_type_is_an_rpc_error(short_tmp: Path) -> None:
    """A plugin reporting a type Nomad cannot carry fails the call with an UNKNOWN status naming the type."""
    plugin = FakeDevicePlugin()
    plugin.info = plugin.info.model_copy(update={"type": "csi"})
    async with serving(short_tmp, plugin) as (_, client):
        with pytest.raises(PluginRPCError, match="unknown plugin type 'csi'") as caught:
            await client.plugin_info()
    assert caught.value.code == "UNKNOWN"


async def test_config_schema_round_trips(short_tmp: Path) -> None:
    """config_schema over gRPC returns the plugin's hclspec tree."""
    async with serving(short_tmp) as (_, client):
        assert await client.config_schema() == SCHEMA


async def test_set_config_sends_a_mapping_as_msgpack(short_tmp: Path) -> None:
    """A mapping given to set_config reaches the plugin as msgpack bytes that decode to the same mapping."""
    config = {"dir": "/srv/devices", "list_period": "1s", "nested": {"n": 3, "ok": True}}
    async with serving(short_tmp) as (plugin, client):
        await client.set_config(config)
        await client.set_config(msgpack.packb({"dir": "raw"}))
    assert plugin.configs == [config, {"dir": "raw"}]


async def test_set_config_rejects_other_types(short_tmp: Path) -> None:
    """set_config with neither a mapping nor bytes raises ConfigError naming the type and what was expected."""
    async with serving(short_tmp) as (_, client):
        with pytest.raises(ConfigError, match="is a list, expected a mapping or msgpack-encoded bytes"):
            await client.set_config(["dir"])


async def test_set_config_failure_is_an_rpc_error(short_tmp: Path) -> None:
    """A plugin refusing its config fails SetConfig with Nomad's 'SetConfig failed: ' message."""
    plugin = FakeDevicePlugin()
    plugin.fail_set_config = ValueError("dir '/nope' does not exist")
    async with serving(short_tmp, plugin) as (_, client):
        with pytest.raises(PluginRPCError) as caught:
            await client.set_config({"dir": "/nope"})
    assert caught.value.code == "UNKNOWN"
    assert caught.value.rpc_message == "SetConfig failed: dir '/nope' does not exist"


# --- fingerprint ------------------------------------------------------------------------------------------------


async def test_fingerprint_streams_groups_then_the_error(short_tmp: Path) -> None:
    """An error response ends the stream: the client yields it as a last response with error set, then stops."""
    plugin = FakeDevicePlugin()
    plugin.fingerprints = [
        FingerprintResponse(device_group=GROUP),
        FingerprintResponse(error="scan of /srv/devices failed"),
        FingerprintResponse(device_group=GROUP),  # never sent: the error ended the stream
    ]
    async with serving(short_tmp, plugin) as (_, client):
        received = [response async for response in client.fingerprint()]
        with anyio.fail_after(WAIT):
            await plugin.fingerprint_closed.wait()
    assert received == [
        FingerprintResponse(device_group=GROUP),
        FingerprintResponse(error="scan of /srv/devices failed"),
    ]


async def test_fingerprint_exception_becomes_an_error_response(short_tmp: Path) -> None:
    """An exception raised by the plugin's stream reaches the client as an error response carrying its message."""
    plugin = FakeDevicePlugin()
    plugin.fingerprint_raises = RuntimeError("device node vanished")
    async with serving(short_tmp, plugin) as (_, client):
        received = [response async for response in client.fingerprint()]
    assert received == [FingerprintResponse(device_group=GROUP), FingerprintResponse(error="device node vanished")]


async def test_fingerprint_ends_when_the_plugin_stream_ends(short_tmp: Path) -> None:
    """A plugin stream that simply finishes ends the client's iteration without an error response."""
    async with serving(short_tmp) as (_, client):
        received = [response async for response in client.fingerprint()]
    assert received == [FingerprintResponse(device_group=GROUP)]


async def test_breaking_out_of_fingerprint_closes_the_plugin_iterator(short_tmp: Path) -> None:
    """Leaving ``async for`` over the client's stream cancels the call and closes the plugin's iterator."""
    plugin = FakeDevicePlugin()
    plugin.hold_open = True
    async with serving(short_tmp, plugin) as (_, client):
        async for response in client.fingerprint():
            assert response.device_group == GROUP
            break
        with anyio.fail_after(WAIT):
            await plugin.fingerprint_closed.wait()


async def test_server_calls_aclose_on_the_plugin_iterator(short_tmp: Path) -> None:
    """When the client goes away the server calls aclose() on a plugin iterator that is not a generator."""
    plugin = FakeWithStreamObject()
    async with serving(short_tmp, plugin) as (_, client):
        async for _ in client.fingerprint():
            break
        with anyio.fail_after(WAIT):
            await plugin.tracked.closed.wait()


async def test_closing_the_client_stream_closes_the_plugin_iterator(short_tmp: Path) -> None:
    """aclose() on the client's stream closes the plugin's iterator on the server."""
    plugin = FakeDevicePlugin()
    plugin.hold_open = True
    async with serving(short_tmp, plugin) as (_, client):
        stream = client.fingerprint()
        assert (await anext(stream)).device_group == GROUP
        with anyio.fail_after(WAIT):
            await plugin.streams_sent.wait()
        assert not plugin.fingerprint_closed.is_set()
        await stream.aclose()
        with anyio.fail_after(WAIT):
            await plugin.fingerprint_closed.wait()


async def test_server_exit_closes_open_plugin_streams(short_tmp: Path) -> None:
    """Leaving the server's block with a stream in flight closes the plugin's iterator."""
    plugin = FakeDevicePlugin()
    plugin.hold_open = True
    path = short_tmp / "dev.sock"
    async with DevicePluginClient(path) as client:
        async with DevicePluginServer(_typed(plugin), path):
            stream = client.fingerprint()
            await anext(stream)
        with anyio.fail_after(WAIT):
            await plugin.fingerprint_closed.wait()
        await stream.aclose()


async def test_server_exit_ends_the_clients_open_stream(short_tmp: Path) -> None:
    """Leaving the server's block ends a client's open fingerprint stream at once with PluginUnavailableError."""
    plugin = FakeDevicePlugin()
    plugin.hold_open = True
    path = short_tmp / "dev.sock"
    async with DevicePluginClient(path) as client:
        stream = client.fingerprint()
        async with DevicePluginServer(_typed(plugin), path):
            assert (await anext(stream)).device_group == GROUP
        # Without the connection closed, the client would wait on the stream forever: nothing else ends it.
        with anyio.fail_after(WAIT), pytest.raises(PluginUnavailableError, match=str(path)):
            await anext(stream)
        await stream.aclose()


# --- reserve ----------------------------------------------------------------------------------------------------


async def test_reserve_returns_the_reservation(short_tmp: Path) -> None:
    """reserve over gRPC returns the plugin's ContainerReservation."""
    async with serving(short_tmp) as (plugin, client):
        reservation = await client.reserve(["dev-1", "dev-2"])
        assert reservation == await plugin.reserve(["dev-1", "dev-2"])
    assert reservation.envs == {"MOCK_DEVICES": "dev-1,dev-2"}


async def test_reserve_error_is_a_device_error_with_the_plugins_message(short_tmp: Path) -> None:
    """A plugin refusing a reservation raises DeviceError carrying the plugin's message and the ids."""
    async with serving(short_tmp) as (_, client):
        with pytest.raises(DeviceError, match=r"could not reserve devices \['dev-9'\]: unknown device ids \['dev-9'\]"):
            await client.reserve(["dev-9"])


async def test_reserve_past_the_timeout_raises_plugin_timeout(short_tmp: Path) -> None:
    """A call running past the client's timeout raises PluginTimeoutError and the plugin's call is cancelled."""
    plugin = FakeDevicePlugin()
    plugin.reserve_blocks = True
    async with serving(short_tmp, plugin, timeout=0.2) as (_, client):
        with pytest.raises(PluginTimeoutError, match="Reserve on device plugin at"):
            await client.reserve(["dev-1"])
        with anyio.fail_after(WAIT):
            await plugin.reserve_cancelled.wait()


async def test_cancelling_a_call_propagates_cancellation(short_tmp: Path) -> None:
    """Cancelling a task blocked in a call cancels it cleanly: no plugin_host error replaces the cancellation."""
    plugin = FakeDevicePlugin()
    plugin.reserve_blocks = True
    async with serving(short_tmp, plugin) as (_, client):
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.reserve, ["dev-1"])
                with anyio.fail_after(WAIT):
                    await plugin.reserve_started.wait()
                scope.cancel()
        assert scope.cancelled_caught
        with anyio.fail_after(WAIT):
            await plugin.reserve_cancelled.wait()


# --- stats ------------------------------------------------------------------------------------------------------


async def test_stats_stream_carries_groups_and_interval(short_tmp: Path) -> None:
    """stats(interval) passes the interval to the plugin and streams its responses back intact."""
    plugin = FakeDevicePlugin()
    response = StatsResponse(
        groups=(
            DeviceGroupStats(
                vendor="example",
                type="file",
                name="mock",
                instance_stats={"dev-1": DeviceStats(summary=StatValue(int_numerator_val=0, unit="B"), timestamp=T0)},
            ),
        )
    )
    plugin.stats_responses = [response, response]
    async with serving(short_tmp, plugin) as (_, client):
        received = [r async for r in client.stats(0.25)]
    assert received == [response, response]
    assert plugin.stats_intervals == [0.25]


async def test_stats_error_response_ends_the_stream(short_tmp: Path) -> None:
    """A stats error response reaches the client as a last response with error set."""
    plugin = FakeDevicePlugin()
    plugin.stats_responses = [StatsResponse(error="sensor offline"), StatsResponse()]
    async with serving(short_tmp, plugin) as (_, client):
        received = [r async for r in client.stats(1.0)]
    assert received == [StatsResponse(error="sensor offline")]


async def test_stats_zero_interval_defaults_to_one_second(short_tmp: Path) -> None:
    """A zero interval reaches the plugin as Nomad's default of one second."""
    plugin = FakeDevicePlugin()
    async with serving(short_tmp, plugin) as (_, client):
        assert [r async for r in client.stats(0)] == []
    assert plugin.stats_intervals == [1.0]


async def test_breaking_out_of_stats_closes_the_plugin_iterator(short_tmp: Path) -> None:
    """Leaving ``async for`` over stats closes the plugin's stats iterator."""
    plugin = FakeDevicePlugin()
    plugin.hold_open = True
    plugin.stats_responses = [StatsResponse()]
    async with serving(short_tmp, plugin) as (_, client):
        async for _ in client.stats(1.0):
            break
        with anyio.fail_after(WAIT):
            await plugin.stats_closed.wait()


# --- the socket -------------------------------------------------------------------------------------------------


async def test_socket_is_private_and_removed_after_exit(short_tmp: Path) -> None:
    """The server's socket has mode 0600 while it runs and is gone after the block."""
    path = short_tmp / "dev.sock"
    async with DevicePluginServer(_typed(FakeDevicePlugin()), path) as server:
        mode = path.lstat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
        assert server.socket_path == path
    assert not path.exists()


async def test_nothing_starts_before_enter(short_tmp: Path) -> None:
    """Constructing a DevicePluginServer creates no socket."""
    path = short_tmp / "dev.sock"
    DevicePluginServer(_typed(FakeDevicePlugin()), path)
    assert not path.exists()


async def test_stale_socket_is_replaced(short_tmp: Path) -> None:
    """A socket file left by a dead process is replaced and the new server answers on it."""
    path = short_tmp / "dev.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never listening, then closed: what a killed process leaves behind
    assert stat.S_ISSOCK(path.lstat().st_mode)
    async with serving(short_tmp) as (plugin, client):
        assert await client.plugin_info() == plugin.info


async def test_live_socket_is_refused(short_tmp: Path) -> None:
    """A second server on a path a live server holds raises SocketInUseError naming it; the first keeps working."""
    async with serving(short_tmp) as (plugin, client):
        with pytest.raises(SocketInUseError, match=r"another process is serving it") as caught:
            async with DevicePluginServer(_typed(FakeDevicePlugin()), short_tmp / "dev.sock"):
                pass
        assert str(short_tmp / "dev.sock") in str(caught.value)
        assert await client.plugin_info() == plugin.info


async def test_non_socket_path_is_refused_and_left_alone(short_tmp: Path) -> None:
    """A regular file at the socket path raises SocketInUseError and is not deleted."""
    path = short_tmp / "dev.sock"
    path.write_text("precious")
    with pytest.raises(SocketInUseError, match="exists and is not a socket"):
        async with DevicePluginServer(_typed(FakeDevicePlugin()), path):
            pass
    assert path.read_text() == "precious"


async def test_too_long_socket_path_is_a_config_error(short_tmp: Path) -> None:
    """A socket path over the Unix limit raises ConfigError naming its length and the limit."""
    path = short_tmp / ("x" * 120)
    with pytest.raises(ConfigError, match=r"expected at most 107"):
        async with DevicePluginServer(_typed(FakeDevicePlugin()), path):
            pass


async def test_missing_socket_is_unavailable(short_tmp: Path) -> None:
    """Calls to a socket nobody serves raise PluginUnavailableError naming the path, for calls and streams."""
    path = short_tmp / "nobody.sock"
    async with DevicePluginClient(path) as client:
        with pytest.raises(PluginUnavailableError, match=str(path)):
            await client.plugin_info()
        with pytest.raises(PluginUnavailableError, match=str(path)):
            async for _ in client.fingerprint():
                pass


async def test_handlers_compose_with_other_services(short_tmp: Path) -> None:
    """Extra grpclib services share the device plugin's server and socket."""
    path = short_tmp / "dev.sock"
    plugin = FakeDevicePlugin()
    async with DevicePluginServer(_typed(plugin), path, extra_handlers=[Health()]), DevicePluginClient(path) as client:
        assert await client.plugin_info() == plugin.info
        from grpclib.client import Channel

        async with Channel(path=str(path)) as channel:
            reply = await HealthStub(channel).Check(HealthCheckRequest())
    assert reply.status == HealthCheckResponse.SERVING
