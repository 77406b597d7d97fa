"""fs-device over the wire: a real DevicePluginServer on a Unix socket, driven through a real DevicePluginClient."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

from plugin_host import __version__
from plugin_host._version import go_version
from plugin_host.base import hclspec
from plugin_host.device import DevicePluginClient, DevicePluginServer, FingerprintResponse, Mount
from plugin_host.errors import DeviceError
from plugin_host.plugins.fsdevice import FsDevice

pytestmark = pytest.mark.anyio

T = TypeVar("T")
CONFIG = {"list_period": "50ms"}


async def _next(stream: AsyncIterator[T]) -> T:
    with anyio.fail_after(5):
        return await anext(stream)


def _ids(response: FingerprintResponse) -> list[str]:
    assert response.error is None, response.error
    assert response.device_group is not None
    return [device.id for device in response.device_group.devices]


@pytest.fixture
def devices(short_tmp: Path) -> Path:
    """A device directory holding dev0 and dev1."""
    directory = short_tmp / "devices"
    directory.mkdir()
    for name in ("dev0", "dev1"):
        (directory / name).write_text(name)
        (directory / name).chmod(0o644)
    return directory


async def _configured_client(short_tmp: Path, devices: Path) -> tuple[DevicePluginServer, DevicePluginClient]:
    server = DevicePluginServer(FsDevice(), short_tmp / "fs.sock")
    await server.__aenter__()
    client = DevicePluginClient(short_tmp / "fs.sock", timeout=5)
    await client.__aenter__()
    # A mapping is sent msgpack-encoded, as Nomad sends SetConfig.
    await client.set_config({"dir": str(devices), **CONFIG})
    return server, client


async def _close(server: DevicePluginServer, client: DevicePluginClient) -> None:
    await client.__aexit__(None, None, None)
    await server.__aexit__(None, None, None)


async def test_identity_and_schema_over_the_wire(short_tmp: Path, devices: Path) -> None:
    """PluginInfo and ConfigSchema cross the wire intact: device type, fs-device, v0.1.0, the three config keys."""
    server, client = await _configured_client(short_tmp, devices)
    try:
        info = await client.plugin_info()
        assert (info.type, info.name, info.plugin_version, info.plugin_api_versions) == (
            "device",
            "fs-device",
            go_version(__version__),
            ("v0.1.0",),
        )
        schema = await client.config_schema()
        assert isinstance(schema, hclspec.Object)
        assert sorted(schema.attributes) == ["dir", "list_period", "unhealthy_perm"]
    finally:
        await _close(server, client)


async def test_fingerprint_follows_adds_removes_and_chmod_over_the_wire(short_tmp: Path, devices: Path) -> None:
    """Over gRPC the stream sends the group at once, then on add, on a chmod health flip, and on removal."""
    server, client = await _configured_client(short_tmp, devices)
    await client.set_config({"dir": str(devices), "unhealthy_perm": "-rw-rw-rw-", **CONFIG})
    try:
        async with aclosing(client.fingerprint()) as stream:
            first = await _next(stream)
            assert _ids(first) == ["dev0", "dev1"]
            assert first.device_group is not None
            assert (first.device_group.vendor, first.device_group.type, first.device_group.name) == (
                "nomad",
                "file",
                "mock",
            )
            (devices / "dev2").write_text("two")
            (devices / "dev2").chmod(0o644)
            assert _ids(await _next(stream)) == ["dev0", "dev1", "dev2"]
            (devices / "dev1").chmod(0o666)
            flipped = await _next(stream)
            assert flipped.device_group is not None
            dev1 = flipped.device_group.devices[1]
            assert (dev1.id, dev1.healthy, dev1.health_description) == (
                "dev1",
                False,
                'Device has bad permissions "-rw-rw-rw-"',
            )
            (devices / "dev0").unlink()
            assert _ids(await _next(stream)) == ["dev1", "dev2"]
    finally:
        await _close(server, client)


async def test_directory_error_ends_the_wire_stream_and_a_new_stream_recovers(short_tmp: Path, devices: Path) -> None:
    """A vanished directory reaches the client as one error response ending the stream (Nomad's wire semantics);
    once the directory is back, a new fingerprint stream lists the devices again."""
    server, client = await _configured_client(short_tmp, devices)
    try:
        async with aclosing(client.fingerprint()) as stream:
            assert _ids(await _next(stream)) == ["dev0", "dev1"]
            for child in devices.iterdir():
                child.unlink()
            devices.rmdir()
            error = await _next(stream)
            assert error.error is not None
            assert str(devices) in error.error
            with anyio.fail_after(5), pytest.raises(StopAsyncIteration):
                await anext(stream)
        devices.mkdir()
        (devices / "back").write_text("x")
        async with aclosing(client.fingerprint()) as stream:
            assert _ids(await _next(stream)) == ["back"]
    finally:
        await _close(server, client)


async def test_reserve_over_the_wire(short_tmp: Path, devices: Path) -> None:
    """Reserve returns one read-write mount per id; bad ids come back as DeviceError naming the id."""
    server, client = await _configured_client(short_tmp, devices)
    try:
        async with aclosing(client.fingerprint()) as stream:
            await _next(stream)
            reservation = await client.reserve(["dev1", "dev0"])
            assert reservation.mounts == (
                Mount(task_path="/tmp/task-mounts/dev1", host_path=os.path.join(devices, "dev1"), read_only=False),
                Mount(task_path="/tmp/task-mounts/dev0", host_path=os.path.join(devices, "dev0"), read_only=False),
            )
            for bad in (["nope"], ["../etc"], ["a/b"]):
                with pytest.raises(DeviceError, match=re.escape(f'"{bad[0]}"')):
                    await client.reserve(bad)
            with pytest.raises(DeviceError):
                await client.reserve([])
    finally:
        await _close(server, client)


async def test_stats_over_the_wire_skip_a_vanished_file(short_tmp: Path, devices: Path) -> None:
    """Stats carry the file size in bytes per device; a file removed since the last scan is skipped."""
    server, client = await _configured_client(short_tmp, devices)
    try:
        async with aclosing(client.stats(0.05)) as stream:
            first = await _next(stream)
            assert first.error is None
            (group,) = first.groups
            summary = group.instance_stats["dev0"].summary
            assert summary is not None
            assert (summary.int_numerator_val, summary.unit, summary.desc) == (4, "bytes", "Filesize in bytes")
            (devices / "dev1").unlink()
            with anyio.fail_after(5):
                async for response in stream:
                    if response.groups and "dev1" not in response.groups[0].instance_stats:
                        assert sorted(response.groups[0].instance_stats) == ["dev0"]
                        break
    finally:
        await _close(server, client)
