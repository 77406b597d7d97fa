"""CsiClient over real Unix sockets: every RPC the hostpath example implements, replies that break the spec, and the
failures of the transport (missing socket, regular file, garbage bytes, a hanging plugin) each mapped to one error."""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from grpclib.server import Server

from plugin_host._proto.csi import v1 as wire
from plugin_host.csi import CsiClient, CsiClients, CsiPluginServer, api
from plugin_host.errors import (
    ConfigError,
    InvalidRequestError,
    PluginProtocolError,
    PluginRPCError,
    PluginTimeoutError,
    PluginUnavailableError,
)
from plugin_host.plugins.csi_hostpath.hostpath import DEFAULT_NAME, TOPOLOGY_KEY, VERSION, HostpathPlugin

MOUNT = {"mount": {}, "access_mode": {"mode": "SINGLE_NODE_WRITER"}}


@asynccontextmanager
async def hostpath(tmp: Path, **kwargs: Any) -> AsyncIterator[tuple[HostpathPlugin, CsiClient]]:
    """The hostpath example served in-process on a real socket, and a client connected to it."""
    plugin = HostpathPlugin(tmp / "data", node_id="node-1", **kwargs)
    async with CsiPluginServer(plugin, tmp / "csi.sock"), CsiClient(tmp / "csi.sock", timeout=10) as client:
        yield plugin, client


# --- the example plugin, RPC by RPC -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_identity_rpcs(short_tmp: Path) -> None:
    """GetPluginInfo, GetPluginCapabilities and Probe come back as models; Probe follows the plugin's readiness."""
    async with hostpath(short_tmp) as (plugin, client):
        info = await client.get_plugin_info()
        assert (info.name, info.vendor_version) == (DEFAULT_NAME, VERSION)
        capabilities = await client.get_plugin_capabilities()
        services = {cap.service.type for cap in capabilities.capabilities if cap.service is not None}
        assert services == {"CONTROLLER_SERVICE", "VOLUME_ACCESSIBILITY_CONSTRAINTS"}
        assert await client.probe() is True
        plugin.ready = False
        assert await client.probe() is False


@pytest.mark.anyio
async def test_node_info_and_capabilities(short_tmp: Path) -> None:
    """NodeGetInfo carries the node id, volume limit and topology; NodeGetCapabilities lists GET_VOLUME_STATS."""
    async with hostpath(short_tmp, max_volumes_per_node=7) as (_, client):
        info = await client.node_get_info()
        assert info == api.NodeGetInfoResponse(
            node_id="node-1",
            max_volumes_per_node=7,
            accessible_topology=api.Topology(segments={TOPOLOGY_KEY: "node-1"}),
        )
        capabilities = await client.node_get_capabilities()
        assert [cap.rpc.type for cap in capabilities.capabilities if cap.rpc] == ["GET_VOLUME_STATS"]


@pytest.mark.anyio
async def test_controller_volume_lifecycle(short_tmp: Path) -> None:
    """Create, validate, list, get capacity and delete a volume through the client, with dict and model inputs."""
    async with hostpath(short_tmp) as (_, client):
        capabilities = await client.controller_get_capabilities()
        assert {cap.rpc.type for cap in capabilities.capabilities if cap.rpc} == {
            "CREATE_DELETE_VOLUME",
            "LIST_VOLUMES",
            "GET_CAPACITY",
        }
        created = await client.create_volume(
            name="data", volume_capabilities=[MOUNT], capacity_range=api.CapacityRange(required_bytes=4096)
        )
        volume = created.volume
        assert volume.capacity_bytes == 4096
        assert (short_tmp / "data" / "volumes" / volume.volume_id).is_dir()

        confirmed = await client.validate_volume_capabilities(volume_id=volume.volume_id, volume_capabilities=[MOUNT])
        assert confirmed.confirmed is not None
        assert confirmed.confirmed.volume_capabilities == (api.VolumeCapability.model_validate(MOUNT),)
        block = {"block": {}, "access_mode": {"mode": "SINGLE_NODE_WRITER"}}
        refused = await client.validate_volume_capabilities(volume_id=volume.volume_id, volume_capabilities=[block])
        assert refused.confirmed is None
        assert "block" in refused.message

        listed = await client.list_volumes()
        assert [entry.volume for entry in listed.entries] == [volume]
        capacity = await client.get_capacity()
        assert capacity.available_capacity > 0

        await client.delete_volume(volume_id=volume.volume_id)
        assert (await client.list_volumes()).entries == ()


@pytest.mark.anyio
async def test_node_publish_stats_and_unpublish(short_tmp: Path) -> None:
    """A published volume is reachable at the target path; stats report its capacity; unpublish takes it away."""
    async with hostpath(short_tmp) as (_, client):
        volume = (
            await client.create_volume(
                name="v", volume_capabilities=[MOUNT], capacity_range={"required_bytes": 1 << 20}
            )
        ).volume
        target = short_tmp / "target"
        await client.node_publish_volume(volume_id=volume.volume_id, target_path=str(target), volume_capability=MOUNT)
        await client.node_publish_volume(volume_id=volume.volume_id, target_path=str(target), volume_capability=MOUNT)
        (target / "hello.txt").write_bytes(b"x" * 100)
        assert (short_tmp / "data" / "volumes" / volume.volume_id / "hello.txt").read_bytes() == b"x" * 100

        stats = await client.node_get_volume_stats(volume_id=volume.volume_id, volume_path=str(target))
        assert stats.usage == (api.VolumeUsage(total=1 << 20, used=100, available=(1 << 20) - 100, unit="BYTES"),)

        await client.node_unpublish_volume(volume_id=volume.volume_id, target_path=str(target))
        await client.node_unpublish_volume(volume_id=volume.volume_id, target_path=str(target))
        assert not target.exists()


@pytest.mark.anyio
async def test_unimplemented_rpc_is_an_rpc_error_with_code_unimplemented(short_tmp: Path) -> None:
    """An RPC the plugin does not implement raises PluginRPCError with code UNIMPLEMENTED, naming the RPC."""
    async with hostpath(short_tmp) as (_, client):
        with pytest.raises(PluginRPCError, match=r"CreateSnapshot on CSI plugin at '.*csi\.sock'") as caught:
            await client.create_snapshot(source_volume_id="v", name="s")
        assert caught.value.code == "UNIMPLEMENTED"


@pytest.mark.anyio
async def test_error_status_from_the_plugin_keeps_code_and_message(short_tmp: Path) -> None:
    """A NOT_FOUND answer becomes PluginRPCError(code='NOT_FOUND') carrying the plugin's message."""
    async with hostpath(short_tmp) as (_, client):
        with pytest.raises(PluginRPCError) as caught:
            await client.node_unpublish_volume(volume_id="nope", target_path="/x")
        assert caught.value.code == "NOT_FOUND"
        assert caught.value.rpc_message == "volume 'nope' does not exist"


@pytest.mark.anyio
async def test_one_client_serves_many_concurrent_tasks(short_tmp: Path) -> None:
    """Fifty tasks sharing one client all get their answers over its single channel."""
    results: list[str] = []
    async with hostpath(short_tmp) as (_, client):

        async def ask() -> None:
            results.append((await client.get_plugin_info()).name)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(ask)
    assert results == [DEFAULT_NAME] * 50


# --- replies out of spec ------------------------------------------------------------------------------------------


class OutOfSpecIdentity(wire.IdentityBase):  # type: ignore[misc]  # generated code is not type-checked
    """Answers GetPluginInfo with whatever it was given."""

    def __init__(self, info: wire.GetPluginInfoResponse) -> None:
        self.info = info

    async def get_plugin_info(self, request: wire.GetPluginInfoRequest) -> wire.GetPluginInfoResponse:
        return self.info


class OutOfSpecController(wire.ControllerBase):  # type: ignore[misc]
    """Answers the volume RPCs with malformed volumes."""

    async def create_volume(self, request: wire.CreateVolumeRequest) -> wire.CreateVolumeResponse:
        if request.name == "no-volume":
            return wire.CreateVolumeResponse()
        return wire.CreateVolumeResponse(volume=wire.Volume(capacity_bytes=5))

    async def list_volumes(self, request: wire.ListVolumesRequest) -> wire.ListVolumesResponse:
        good = wire.ListVolumesResponseEntry(volume=wire.Volume(volume_id="a"))
        without_id = wire.ListVolumesResponseEntry(volume=wire.Volume(capacity_bytes=1))
        return wire.ListVolumesResponse(entries=[good, without_id])

    async def create_snapshot(self, request: wire.CreateSnapshotRequest) -> wire.CreateSnapshotResponse:
        return wire.CreateSnapshotResponse(snapshot=wire.Snapshot(source_volume_id="v"))


class OutOfSpecNode(wire.NodeBase):  # type: ignore[misc]
    """Answers node RPCs with required fields left out."""

    async def node_get_info(self, request: wire.NodeGetInfoRequest) -> wire.NodeGetInfoResponse:
        return wire.NodeGetInfoResponse(max_volumes_per_node=3)

    async def node_get_volume_stats(self, request: wire.NodeGetVolumeStatsRequest) -> wire.NodeGetVolumeStatsResponse:
        return wire.NodeGetVolumeStatsResponse(usage=[wire.VolumeUsage(total=10)])


@asynccontextmanager
async def out_of_spec(path: Path, info: wire.GetPluginInfoResponse) -> AsyncIterator[CsiClient]:
    """A grpclib server with out-of-spec Identity, Controller and Node services, and a client for it."""
    server = Server([OutOfSpecIdentity(info), OutOfSpecController(), OutOfSpecNode()])
    await server.start(path=os.fspath(path))
    try:
        async with CsiClient(path, timeout=10) as client:
            yield client
    finally:
        server.close()
        await server.wait_closed()


_Call = Callable[[CsiClient], Any]

OUT_OF_SPEC: list[tuple[str, wire.GetPluginInfoResponse, _Call, str]] = [
    (
        "empty name",
        wire.GetPluginInfoResponse(name="", vendor_version="1.0"),
        lambda c: c.get_plugin_info(),
        r"GetPluginInfo reply from CSI plugin at '.*' is out of spec: field 'name' is empty",
    ),
    (
        "empty vendor_version",
        wire.GetPluginInfoResponse(name="x.example.com"),
        lambda c: c.get_plugin_info(),
        r"GetPluginInfo reply .* field 'vendor_version' is empty",
    ),
    (
        "volume without id",
        wire.GetPluginInfoResponse(),
        lambda c: c.create_volume(name="v", volume_capabilities=[MOUNT]),
        r"CreateVolume reply .* field 'volume\.volume_id' is empty",
    ),
    (
        "no volume at all",
        wire.GetPluginInfoResponse(),
        lambda c: c.create_volume(name="no-volume", volume_capabilities=[MOUNT]),
        r"CreateVolume reply .* field 'volume' is missing",
    ),
    (
        "listed volume without id",
        wire.GetPluginInfoResponse(),
        lambda c: c.list_volumes(),
        r"ListVolumes reply .* field 'entries\[1\]\.volume\.volume_id' is empty",
    ),
    (
        "snapshot without id",
        wire.GetPluginInfoResponse(),
        lambda c: c.create_snapshot(source_volume_id="v", name="s"),
        r"CreateSnapshot reply .* field 'snapshot\.snapshot_id' is empty",
    ),
    (
        "node without id",
        wire.GetPluginInfoResponse(),
        lambda c: c.node_get_info(),
        r"NodeGetInfo reply .* field 'node_id' is empty",
    ),
    (
        "usage without unit",
        wire.GetPluginInfoResponse(),
        lambda c: c.node_get_volume_stats(volume_id="v", volume_path="/p"),
        r"NodeGetVolumeStats reply .* field 'usage\[0\]' unit is UNKNOWN",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("info", "call", "message"), [row[1:] for row in OUT_OF_SPEC], ids=[r[0] for r in OUT_OF_SPEC])
async def test_out_of_spec_reply_is_a_protocol_error_naming_rpc_and_field(
    short_tmp: Path, info: wire.GetPluginInfoResponse, call: _Call, message: str
) -> None:
    """A reply missing a field the spec REQUIRES raises PluginProtocolError naming the RPC and the field path."""
    async with out_of_spec(short_tmp / "bad.sock", info) as client:
        with pytest.raises(PluginProtocolError, match=message):
            await call(client)


# --- the transport ------------------------------------------------------------------------------------------------


@asynccontextmanager
async def raw_server(path: Path, handler: Callable[[anyio.abc.SocketStream], Any]) -> AsyncIterator[None]:
    """A plain Unix socket server (no gRPC) running ``handler`` per connection."""
    listener = await anyio.create_unix_listener(path)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handler)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


async def _http1_and_hang_up(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        await stream.send(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nnot HTTP/2 at all")


async def _flood(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        await stream.send(bytes(range(256)) * 200)
        await anyio.sleep_forever()


async def _silent(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        await anyio.sleep_forever()


@pytest.mark.anyio
async def test_missing_socket_is_unavailable_naming_the_path(short_tmp: Path) -> None:
    """A socket path that does not exist raises PluginUnavailableError naming the path."""
    path = short_tmp / "missing.sock"
    async with CsiClient(path, timeout=5) as client:
        with pytest.raises(PluginUnavailableError, match=f"CSI plugin at '{path}' is unreachable during GetPluginInfo"):
            await client.get_plugin_info()


@pytest.mark.anyio
async def test_regular_file_is_unavailable_naming_the_path(short_tmp: Path) -> None:
    """A regular file where the socket should be raises PluginUnavailableError naming the path."""
    path = short_tmp / "file.sock"
    path.write_text("not a socket")
    async with CsiClient(path, timeout=5) as client:
        with pytest.raises(PluginUnavailableError, match=f"CSI plugin at '{path}' is unreachable during Probe"):
            await client.probe()


@pytest.mark.anyio
@pytest.mark.parametrize("handler", [_http1_and_hang_up, _flood], ids=["http1-then-close", "flood"])
async def test_garbage_bytes_are_unavailable_and_the_client_survives(
    short_tmp: Path, handler: Callable[[anyio.abc.SocketStream], Any]
) -> None:
    """A peer that answers bytes that are not HTTP/2 raises PluginUnavailableError; the client keeps working after."""
    bad, good = short_tmp / "garbage.sock", short_tmp / "good"
    good.mkdir()
    async with raw_server(bad, handler), CsiClient(bad, timeout=10) as client:
        with anyio.fail_after(5), pytest.raises(PluginUnavailableError, match=f"CSI plugin at '{bad}'"):
            await client.get_plugin_info()
    async with hostpath(good) as (_, healthy):
        assert (await healthy.get_plugin_info()).name == DEFAULT_NAME


@contextmanager
def _elapsed() -> Iterator[list[float]]:
    started = time.monotonic()
    box: list[float] = []
    try:
        yield box
    finally:
        box.append(time.monotonic() - started)


@pytest.mark.anyio
async def test_silent_peer_times_out_at_the_client_deadline(short_tmp: Path) -> None:
    """A peer that accepts and never answers fails the call with PluginTimeoutError (a TimeoutError) at the deadline."""
    path = short_tmp / "silent.sock"
    async with raw_server(path, _silent), CsiClient(path, timeout=0.3) as client:
        with _elapsed() as took, pytest.raises(TimeoutError, match=r"GetPluginInfo on CSI plugin at .* within 0\.3s"):
            await client.get_plugin_info()
    assert 0.25 <= took[0] < 3


class HangingIdentity(wire.IdentityBase):  # type: ignore[misc]
    """A real gRPC plugin whose Probe never returns."""

    async def probe(self, request: wire.ProbeRequest) -> wire.ProbeResponse:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


@pytest.mark.anyio
async def test_hanging_plugin_times_out_at_the_per_call_deadline(short_tmp: Path) -> None:
    """timeout= on a call overrides the client's default: a hanging Probe fails with PluginTimeoutError after it."""
    path = short_tmp / "hang.sock"
    server = Server([HangingIdentity()])
    await server.start(path=os.fspath(path))
    try:
        async with CsiClient(path, timeout=60) as client:
            with _elapsed() as took, pytest.raises(PluginTimeoutError, match="Probe on CSI plugin at"):
                await client.probe(timeout=0.3)
    finally:
        server.close()
        await server.wait_closed()
    assert 0.25 <= took[0] < 3


# --- bad arguments ------------------------------------------------------------------------------------------------

BAD_CALLS: list[tuple[str, _Call, str]] = [
    (
        "empty name",
        lambda c: c.create_volume(name="", volume_capabilities=[MOUNT]),
        r"CreateVolume request to CSI plugin at '.*': field 'name' is empty, expected a non-empty string",
    ),
    (
        "no capabilities",
        lambda c: c.create_volume(name="v", volume_capabilities=[]),
        r"field 'volume_capabilities' is empty, expected at least one entry",
    ),
    (
        "unknown access mode",
        lambda c: c.create_volume(
            name="v", volume_capabilities=[{"mount": {}, "access_mode": {"mode": "EVERYONE_WRITES"}}]
        ),
        r"field 'volume_capabilities\[0\]\.access_mode\.mode' is invalid: Input should be 'UNKNOWN', 'SINGLE_NODE_",
    ),
    (
        "both access types",
        lambda c: c.node_publish_volume(volume_id="v", target_path="/t", volume_capability={**MOUNT, "block": {}}),
        r"field 'volume_capability' oneof 'access_type' needs exactly one of block, mount set",
    ),
    (
        "unknown nested field",
        lambda c: c.create_volume(name="v", volume_capabilities=[{**MOUNT, "size": 3}]),
        r"field 'volume_capabilities\[0\]\.size' is invalid: Extra inputs are not permitted",
    ),
    (
        "negative capacity",
        lambda c: c.controller_expand_volume(volume_id="v", capacity_range={"required_bytes": -1}),
        r"field 'capacity_range\.required_bytes' is negative",
    ),
    ("zero timeout", lambda c: c.probe(timeout=0), r"Probe timeout is 0, expected a positive number of seconds"),
    ("nan timeout", lambda c: c.probe(timeout=math.nan), r"Probe timeout is nan, expected a positive number"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("call", "message"), [row[1:] for row in BAD_CALLS], ids=[row[0] for row in BAD_CALLS])
async def test_bad_arguments_are_refused_before_sending(short_tmp: Path, call: _Call, message: str) -> None:
    """Arguments that break the spec raise InvalidRequestError (a ValueError) naming the RPC and field; no call."""
    async with CsiClient(short_tmp / "missing.sock") as client:
        with pytest.raises(InvalidRequestError, match=message):
            await call(client)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("",), {}, "CSI plugin socket path is empty, expected the path of a Unix socket"),
        (("/x.sock",), {"timeout": 0}, "CsiClient timeout is 0, expected a positive number of seconds"),
        (("/x.sock",), {"timeout": -2.5}, "CsiClient timeout is -2.5, expected a positive number of seconds"),
    ],
)
def test_bad_client_settings_are_config_errors(args: tuple[str], kwargs: dict[str, Any], message: str) -> None:
    """An empty socket path or a non-positive default timeout is a ConfigError naming the setting and value."""
    with pytest.raises(ConfigError, match=message):
        CsiClient(*args, **kwargs)


@pytest.mark.anyio
async def test_calls_need_an_open_client(short_tmp: Path) -> None:
    """A client used outside its async with block says so; socket_path and timeout are readable any time."""
    client = CsiClient(short_tmp / "x.sock", timeout=2)
    assert (client.socket_path, client.timeout) == (short_tmp / "x.sock", 2.0)
    with pytest.raises(RuntimeError, match="is not open; use it with 'async with'"):
        await client.probe()


@pytest.mark.anyio
async def test_a_released_shared_client_is_unavailable(short_tmp: Path) -> None:
    """A caller still holding a dispensed client after its channel was released (plugin deregistered) or the cache
    closed (host stopped) gets PluginUnavailableError naming the socket, for calls and streams; a new one works."""
    sock = short_tmp / "csi.sock"
    closed = (
        f"CSI plugin at {str(sock)!r}: the client was closed (the plugin was deregistered or the host stopped);"
        " dispense a new client"
    )
    async with CsiPluginServer(HostpathPlugin(short_tmp / "data", node_id="node-1"), sock):
        async with CsiClients(timeout=10) as clients:
            held = await clients.get(sock)
            assert await held.probe() is True
            await clients.release(sock)
            with pytest.raises(PluginUnavailableError) as caught:
                await held.probe()
            assert str(caught.value) == closed
            with pytest.raises(PluginUnavailableError, match="the client was closed"):
                async for _ in held.get_metadata_allocated(snapshot_id="snap-1"):
                    pass
            fresh = await clients.get(sock)
            assert fresh is not held
            assert await fresh.probe() is True
        with pytest.raises(PluginUnavailableError) as caught:
            await fresh.get_plugin_info()
        assert str(caught.value) == closed
