"""The reference hostpath CSI plugin keeps to the spec (idempotency, ALREADY_EXISTS, NOT_FOUND, INVALID_ARGUMENT naming
the field, paging) and runs as its own process that stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from plugin_host._proto.csi import v1 as wire
from plugin_host.csi import CsiClient, CsiPlugin, CsiPluginServer
from plugin_host.errors import PluginRPCError
from plugin_host.plugins.csi_hostpath.hostpath import TOPOLOGY_KEY, HostpathPlugin

MODULE = "plugin_host.plugins.csi_hostpath"
MOUNT = {"mount": {}, "access_mode": {"mode": "SINGLE_NODE_WRITER"}}


@asynccontextmanager
async def served(tmp: Path) -> AsyncIterator[CsiClient]:
    """The example served in-process on a real socket, and a client for it."""
    async with (
        CsiPluginServer(HostpathPlugin(tmp / "data", node_id="n1"), tmp / "csi.sock"),
        CsiClient(tmp / "csi.sock", timeout=10) as client,
    ):
        yield client


async def _rpc_error(call: Any) -> PluginRPCError:
    with pytest.raises(PluginRPCError) as caught:
        await call
    return caught.value


@pytest.mark.anyio
async def test_create_volume_is_idempotent_and_refuses_an_incompatible_capacity(short_tmp: Path) -> None:
    """The same name with a compatible range returns the same volume; an incompatible one is ALREADY_EXISTS."""
    async with served(short_tmp) as client:
        first = await client.create_volume(
            name="db", volume_capabilities=[MOUNT], capacity_range={"required_bytes": 100}
        )
        again = await client.create_volume(
            name="db", volume_capabilities=[MOUNT], capacity_range={"required_bytes": 100}
        )
        looser = await client.create_volume(name="db", volume_capabilities=[MOUNT], capacity_range={"limit_bytes": 200})
        assert first == again == looser
        clash = await _rpc_error(
            client.create_volume(name="db", volume_capabilities=[MOUNT], capacity_range={"required_bytes": 101})
        )
        assert clash.code == "ALREADY_EXISTS"
        assert clash.rpc_message == "volume 'db' exists with capacity 100 bytes, incompatible with the requested range"
        assert len((await client.list_volumes()).entries) == 1


@pytest.mark.anyio
async def test_create_volume_honours_the_requisite_topology(short_tmp: Path) -> None:
    """The plugin advertises accessibility constraints: a requisite topology without this node is RESOURCE_EXHAUSTED
    for a new volume and ALREADY_EXISTS for an existing name; one that includes the node is served."""
    here = {"requisite": [{"segments": {TOPOLOGY_KEY: "n2"}}, {"segments": {TOPOLOGY_KEY: "n1"}}]}
    elsewhere = {"requisite": [{"segments": {TOPOLOGY_KEY: "n2"}}], "preferred": [{"segments": {TOPOLOGY_KEY: "n2"}}]}
    async with served(short_tmp) as client:
        refused = await _rpc_error(
            client.create_volume(name="far", volume_capabilities=[MOUNT], accessibility_requirements=elsewhere)
        )
        assert refused.code == "RESOURCE_EXHAUSTED"
        assert refused.rpc_message == "volume 'far' can only be provisioned on node 'n1', not in the requisite topology"
        created = await client.create_volume(name="near", volume_capabilities=[MOUNT], accessibility_requirements=here)
        assert created.volume.accessible_topology[0].segments == {TOPOLOGY_KEY: "n1"}
        clash = await _rpc_error(
            client.create_volume(name="near", volume_capabilities=[MOUNT], accessibility_requirements=elsewhere)
        )
        assert clash.code == "ALREADY_EXISTS"
        assert clash.rpc_message == "volume 'near' exists on node 'n1', not in the requisite topology"
        assert [e.volume.volume_id for e in (await client.list_volumes()).entries] == [created.volume.volume_id]


@pytest.mark.anyio
async def test_delete_volume_is_idempotent(short_tmp: Path) -> None:
    """Deleting twice, or deleting a volume that never existed, succeeds and leaves nothing behind."""
    async with served(short_tmp) as client:
        volume = (await client.create_volume(name="tmp", volume_capabilities=[MOUNT])).volume
        await client.delete_volume(volume_id=volume.volume_id)
        await client.delete_volume(volume_id=volume.volume_id)
        await client.delete_volume(volume_id="never-was")
        assert list((short_tmp / "data" / "volumes").iterdir()) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.validate_volume_capabilities(volume_id="ghost", volume_capabilities=[MOUNT]),
        lambda c: c.node_publish_volume(volume_id="ghost", target_path="/tmp/x", volume_capability=MOUNT),
        lambda c: c.node_unpublish_volume(volume_id="ghost", target_path="/tmp/x"),
        lambda c: c.node_get_volume_stats(volume_id="ghost", volume_path="/tmp"),
        lambda c: c.node_get_volume_stats(volume_id="../volumes", volume_path="/tmp"),
    ],
    ids=["validate", "publish", "unpublish", "stats", "path-like-id"],
)
async def test_unknown_volume_is_not_found(short_tmp: Path, call: Any) -> None:
    """Every RPC on a volume id the plugin never created answers NOT_FOUND naming the volume."""
    async with served(short_tmp) as client:
        error = await _rpc_error(call(client))
        assert error.code == "NOT_FOUND"
        assert "does not exist" in (error.rpc_message or "")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("stub", "method", "request_message", "message"),
    [
        (
            wire.ControllerStub,
            "create_volume",
            wire.CreateVolumeRequest(
                volume_capabilities=[
                    wire.VolumeCapability(
                        mount=wire.VolumeCapabilityMountVolume(),
                        access_mode=wire.VolumeCapabilityAccessMode(mode=1),
                    )
                ]
            ),
            "CreateVolume: field 'name' is empty, expected a non-empty string",
        ),
        (
            wire.ControllerStub,
            "create_volume",
            wire.CreateVolumeRequest(name="v"),
            "CreateVolume: field 'volume_capabilities' is empty, expected at least one entry",
        ),
        (
            wire.NodeStub,
            "node_publish_volume",
            wire.NodePublishVolumeRequest(volume_id="v"),
            "NodePublishVolume: field 'target_path' is empty, expected a non-empty string; "
            "field 'volume_capability' is missing, expected it to be set",
        ),
        (
            wire.ControllerStub,
            "delete_volume",
            wire.DeleteVolumeRequest(),
            "DeleteVolume: field 'volume_id' is empty, expected a non-empty string",
        ),
    ],
)
async def test_request_missing_a_required_field_is_invalid_argument_naming_it(
    short_tmp: Path, stub: Any, method: str, request_message: Any, message: str
) -> None:
    """A raw wire request that leaves out a REQUIRED field is answered INVALID_ARGUMENT naming the field."""
    async with CsiPluginServer(HostpathPlugin(short_tmp / "data"), short_tmp / "csi.sock"):
        channel = Channel(path=os.fspath(short_tmp / "csi.sock"))
        try:
            with pytest.raises(GRPCError) as caught:
                await getattr(stub(channel), method)(request_message, timeout=10)
        finally:
            channel.close()
    assert (caught.value.status, caught.value.message) == (Status.INVALID_ARGUMENT, message)


@pytest.mark.anyio
async def test_list_volumes_pages_with_next_token(short_tmp: Path) -> None:
    """max_entries splits the listing into pages joined by next_token; a bad token is ABORTED."""
    async with served(short_tmp) as client:
        created = {
            (await client.create_volume(name=f"v{i}", volume_capabilities=[MOUNT])).volume.volume_id for i in range(3)
        }
        first = await client.list_volumes(max_entries=2)
        second = await client.list_volumes(max_entries=2, starting_token=first.next_token)
        assert (len(first.entries), len(second.entries), second.next_token) == (2, 1, "")
        assert {entry.volume.volume_id for entry in first.entries + second.entries} == created
        bad = await _rpc_error(client.list_volumes(starting_token="zebra"))
        assert bad.code == "ABORTED"


@pytest.mark.anyio
async def test_publish_refuses_block_access_and_a_target_held_by_another_volume(short_tmp: Path) -> None:
    """Block access is INVALID_ARGUMENT; publishing a second volume at a taken target is ALREADY_EXISTS."""
    async with served(short_tmp) as client:
        a = (await client.create_volume(name="a", volume_capabilities=[MOUNT])).volume.volume_id
        b = (await client.create_volume(name="b", volume_capabilities=[MOUNT])).volume.volume_id
        target = str(short_tmp / "target")
        block = {"block": {}, "access_mode": {"mode": "SINGLE_NODE_WRITER"}}
        refused = await _rpc_error(client.node_publish_volume(volume_id=a, target_path=target, volume_capability=block))
        assert refused.code == "INVALID_ARGUMENT"
        await client.node_publish_volume(volume_id=a, target_path=target, volume_capability=MOUNT)
        try:
            taken = await _rpc_error(
                client.node_publish_volume(volume_id=b, target_path=target, volume_capability=MOUNT)
            )
            assert taken.code == "ALREADY_EXISTS"
        finally:
            await client.node_unpublish_volume(volume_id=a, target_path=target)


@pytest.mark.anyio
async def test_volumes_survive_a_plugin_restart(short_tmp: Path) -> None:
    """A new plugin on the same data directory lists the volumes the previous one created."""
    async with served(short_tmp) as client:
        volume = (await client.create_volume(name="keep", volume_capabilities=[MOUNT])).volume
    async with served(short_tmp) as client:
        assert [entry.volume for entry in (await client.list_volumes()).entries] == [volume]


# --- as a separate process ----------------------------------------------------------------------------------------


async def _start(socket_path: Path, data_dir: Path, *extra: str) -> tuple[anyio.abc.Process, str]:
    process = await anyio.open_process(
        [sys.executable, "-m", MODULE, "--socket", str(socket_path), "--data-dir", str(data_dir), *extra],
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    with anyio.fail_after(30):
        line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 4096)
    return process, line.decode()


@pytest.mark.anyio
async def test_plugin_process_serves_until_sigterm_and_removes_its_socket(short_tmp: Path) -> None:
    """Started with --name, the process prints its ready line, answers as that plugin, exits 0 on SIGTERM and
    removes its socket."""
    sock = short_tmp / "hostpath.sock"
    process, line = await _start(sock, short_tmp / "data", "--name", "example.csi.test", "--node-id", "n7")
    try:
        assert line == f"serving example.csi.test on {sock}"
        async with CsiClient(sock, timeout=10) as client:
            assert (await client.get_plugin_info()).name == "example.csi.test"
            assert (await client.node_get_info()).node_id == "n7"
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            assert await process.wait() == 0
        assert not sock.exists()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()


@pytest.mark.anyio
async def test_plugin_process_after_sigkill_replaces_the_stale_socket(short_tmp: Path) -> None:
    """A SIGKILLed plugin leaves its socket file behind; the next one on that path takes it over and answers."""
    sock = short_tmp / "hostpath.sock"
    first, _ = await _start(sock, short_tmp / "data")
    first.kill()
    await first.wait()
    await first.aclose()
    assert sock.exists()
    second, _ = await _start(sock, short_tmp / "data")
    try:
        async with CsiClient(sock, timeout=10) as client:
            assert await client.probe() is True
    finally:
        second.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            await second.wait()
        await second.aclose()


def test_the_reference_plugin_is_a_csi_plugin(short_tmp: Path) -> None:
    """HostpathPlugin implements the CsiPlugin Protocol the server is typed against (and mypy checks statically)."""
    plugin: CsiPlugin = HostpathPlugin(short_tmp / "data")
    assert isinstance(plugin, CsiPlugin)
