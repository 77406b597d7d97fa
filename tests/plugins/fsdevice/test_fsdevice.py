"""FsDevice behaviour on real files: fingerprint stream, health, reserve and stats."""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import anyio
import pytest

from plugin_host import __version__
from plugin_host._version import go_version
from plugin_host.device import (
    Attribute,
    DevicePlugin,
    FingerprintResponse,
    Mount,
    StatsResponse,
)
from plugin_host.errors import DeviceError
from plugin_host.plugins.fsdevice import FsDevice

pytestmark = pytest.mark.anyio

PERIOD = 0.05
T = TypeVar("T")


def _plugin(directory: Path, period: float = PERIOD, **extra: str) -> FsDevice:
    return FsDevice({"dir": str(directory), "list_period": f"{round(period * 1000)}ms", **extra})


def _touch(path: Path, mode: int = 0o644, text: str = "x") -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def _ids(response: FingerprintResponse) -> list[str]:
    assert response.error is None, response.error
    assert response.device_group is not None
    return [device.id for device in response.device_group.devices]


async def _next(stream: AsyncIterator[T], limit: float = 5.0) -> T:
    with anyio.fail_after(limit):
        return await anext(stream)


async def _let_scans_run(periods: int = 4) -> None:
    """Let several scan periods pass: the scenario needs time to pass so that a message that must NOT be sent
    would have been sent by now."""
    await anyio.sleep(periods * PERIOD)


async def _leave_after_first(stream: AsyncIterator[object]) -> None:
    async for _ in stream:
        break


class _LogWatch(logging.Handler):
    """Records the plugin's log messages and wakes a waiter when one starts with the awaited text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self._waiting: tuple[str, anyio.Event] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.messages.append(message)
        if self._waiting is not None and message.startswith(self._waiting[0]):
            self._waiting[1].set()

    def count(self, prefix: str) -> int:
        return sum(1 for message in self.messages if message.startswith(prefix))

    async def wait_for(self, prefix: str) -> None:
        # The "stopped" messages are logged on the event loop thread, so setting the event there is safe.
        event = anyio.Event()
        self._waiting = (prefix, event)
        if not self.count(prefix):
            with anyio.fail_after(5):
                await event.wait()
        self._waiting = None


@pytest.fixture
def fslog() -> Iterator[_LogWatch]:
    """The fs-device's debug log, captured."""
    logger = logging.getLogger("plugin_host.plugins.fsdevice")
    watch = _LogWatch()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(old_level)


@pytest.fixture
def devdir(tmp_path: Path) -> Path:
    """A device directory with two healthy devices, dev0 and dev1."""
    directory = tmp_path / "devices"
    directory.mkdir()
    _touch(directory / "dev0", text="zero")
    _touch(directory / "dev1", text="one!")
    return directory


# --- identity -------------------------------------------------------------------------------------------------


async def test_plugin_info() -> None:
    """plugin_info names a device plugin fs-device at the package version in go-version spelling, device API v0.1.0."""
    info = await FsDevice().plugin_info()
    assert (info.type, info.name, info.plugin_version, info.plugin_api_versions) == (
        "device",
        "fs-device",
        go_version(__version__),
        ("v0.1.0",),
    )


async def test_satisfies_device_plugin_protocol() -> None:
    """FsDevice is a DevicePlugin."""
    assert isinstance(FsDevice(), DevicePlugin)


# --- fingerprint ----------------------------------------------------------------------------------------------


async def test_first_response_at_once(devdir: Path) -> None:
    """The first fingerprint arrives at once (not after list_period) with the nomad/file/mock group."""
    plugin = _plugin(devdir, period=3600)
    async with aclosing(plugin.fingerprint()) as stream:
        response = await _next(stream, limit=2)
    group = response.device_group
    assert group is not None
    assert (group.vendor, group.type, group.name, group.id) == ("nomad", "file", "mock", "nomad/file/mock")
    assert group.attributes == {"cool-attribute": Attribute(string_val="attribute-wearing-sunglasses")}
    assert [(d.id, d.healthy, d.health_description) for d in group.devices] == [("dev0", True, ""), ("dev1", True, "")]


async def test_empty_directory_sends_an_empty_group(tmp_path: Path) -> None:
    """An empty directory still gets a first message: the group with no devices."""
    async with aclosing(_plugin(tmp_path).fingerprint()) as stream:
        assert _ids(await _next(stream)) == []


async def test_added_and_removed_files_are_reported(devdir: Path) -> None:
    """A new file appears in the next message, and a removed file disappears from it."""
    async with aclosing(_plugin(devdir).fingerprint()) as stream:
        assert _ids(await _next(stream)) == ["dev0", "dev1"]
        _touch(devdir / "dev2")
        assert _ids(await _next(stream)) == ["dev0", "dev1", "dev2"]
        (devdir / "dev0").unlink()
        assert _ids(await _next(stream)) == ["dev1", "dev2"]
        (devdir / "dev1").unlink()
        (devdir / "dev2").unlink()
        assert _ids(await _next(stream)) == []


async def test_nothing_is_sent_without_a_change(devdir: Path) -> None:
    """Scans that find no change send nothing: the message after a quiet spell is the next change."""
    async with aclosing(_plugin(devdir).fingerprint()) as stream:
        await _next(stream)
        await _let_scans_run()
        (devdir / "dev0").write_text("new content, same mode")  # content is not part of the fingerprint
        await _let_scans_run()
        _touch(devdir / "dev9")
        assert _ids(await _next(stream)) == ["dev0", "dev1", "dev9"]


async def test_chmod_flips_health(devdir: Path) -> None:
    """A file whose mode becomes unhealthy_perm turns unhealthy with a description, and back again."""
    async with aclosing(_plugin(devdir).fingerprint()) as stream:
        await _next(stream)
        (devdir / "dev1").chmod(0o777)
        group = (await _next(stream)).device_group
        assert group is not None
        assert [(d.id, d.healthy, d.health_description) for d in group.devices] == [
            ("dev0", True, ""),
            ("dev1", False, 'Device has bad permissions "-rwxrwxrwx"'),
        ]
        (devdir / "dev1").chmod(0o640)
        group = (await _next(stream)).device_group
        assert group is not None
        assert [(d.id, d.healthy, d.health_description) for d in group.devices] == [
            ("dev0", True, ""),
            ("dev1", True, ""),
        ]


async def test_unhealthy_perm_is_configurable(devdir: Path) -> None:
    """unhealthy_perm chooses which ls -l mode string is unhealthy."""
    (devdir / "dev0").chmod(0o666)
    async with aclosing(_plugin(devdir, unhealthy_perm="-rw-rw-rw-").fingerprint()) as stream:
        group = (await _next(stream)).device_group
    assert group is not None
    assert [(d.id, d.healthy, d.health_description) for d in group.devices] == [
        ("dev0", False, 'Device has bad permissions "-rw-rw-rw-"'),
        ("dev1", True, ""),
    ]


async def test_directories_are_skipped(devdir: Path) -> None:
    """Subdirectories (and symlinks to directories) are not devices; symlinks to files are."""
    (devdir / "subdir").mkdir()
    (devdir / "dirlink").symlink_to(devdir / "subdir")
    (devdir / "filelink").symlink_to(devdir / "dev0")
    (devdir / "dangling").symlink_to(devdir / "nowhere")
    async with aclosing(_plugin(devdir).fingerprint()) as stream:
        assert _ids(await _next(stream)) == ["dev0", "dev1", "filelink"]
        (devdir / "subdir2").mkdir()
        _touch(devdir / "dev2")
        assert _ids(await _next(stream)) == ["dev0", "dev1", "dev2", "filelink"]


async def test_devices_sorted_by_id(tmp_path: Path) -> None:
    """Devices in every message are sorted by id, whatever the creation order."""
    for name in ["zeta", "b", "dev10", "a", "dev2", "B"]:
        _touch(tmp_path / name)
    async with aclosing(_plugin(tmp_path).fingerprint()) as stream:
        assert _ids(await _next(stream)) == ["B", "a", "b", "dev10", "dev2", "zeta"]
        _touch(tmp_path / "c")
        assert _ids(await _next(stream)) == ["B", "a", "b", "c", "dev10", "dev2", "zeta"]


async def test_directory_removed_gives_one_error_then_devices_come_back(devdir: Path) -> None:
    """A vanished directory yields one error (not one per scan); when it returns its devices are sent again."""
    plugin = _plugin(devdir)
    async with aclosing(plugin.fingerprint()) as stream:
        assert _ids(await _next(stream)) == ["dev0", "dev1"]
        shutil.rmtree(devdir)
        response = await _next(stream)
        assert response.device_group is None
        assert response.error is not None
        assert f'cannot list device directory "{devdir}": No such file or directory' in response.error
        with pytest.raises(DeviceError, match='unknown device "dev0"'):
            await plugin.reserve(["dev0"])
        await _let_scans_run()
        devdir.mkdir()
        _touch(devdir / "dev0")
        assert _ids(await _next(stream)) == ["dev0"]
        assert (await plugin.reserve(["dev0"])).mounts[0].host_path == str(devdir / "dev0")


async def test_missing_directory_at_start_gives_one_error(tmp_path: Path) -> None:
    """A directory that does not exist yet gives one error message, then its devices once it is created."""
    directory = tmp_path / "later"
    async with aclosing(_plugin(directory).fingerprint()) as stream:
        assert "No such file or directory" in str((await _next(stream)).error)
        await _let_scans_run()
        directory.mkdir()
        _touch(directory / "dev0")
        assert _ids(await _next(stream)) == ["dev0"]


async def test_directory_replaced_by_a_file_gives_an_error(devdir: Path) -> None:
    """A directory that can no longer be listed (here: replaced by a file) gives an error message."""
    async with aclosing(_plugin(devdir).fingerprint()) as stream:
        await _next(stream)
        shutil.rmtree(devdir)
        devdir.write_text("not a directory")
        response = await _next(stream)
        assert response.error is not None
        assert "No such file or directory" in response.error or "Not a directory" in response.error
        if "No such file" in response.error:  # the scan may run between rmtree and write_text
            assert "Not a directory" in str((await _next(stream)).error)


_UNREADABLE_CHILD = """
import os, sys, anyio
from contextlib import aclosing
from plugin_host.plugins.fsdevice import FsDevice, FsDeviceConfig

async def main(directory):
    if os.geteuid() == 0:  # root reads any directory: become the directory's owner, nobody
        os.setgid(65534)
        os.setuid(65534)
    plugin = FsDevice(FsDeviceConfig(dir=directory, list_period="50ms"))
    async with aclosing(plugin.fingerprint()) as stream:
        first = await stream.__anext__()
        print("devices", sorted(d.id for d in first.device_group.devices), flush=True)
        os.chmod(directory, 0)
        with anyio.fail_after(5):
            print("error", (await stream.__anext__()).error, flush=True)
        await anyio.sleep(0.25)  # several list periods: a second error must not be sent meanwhile
        os.chmod(directory, 0o755)
        with anyio.fail_after(5):
            after = await stream.__anext__()
        print("after", after.error, sorted(d.id for d in after.device_group.devices) if after.device_group else None)

anyio.run(main, sys.argv[1])
"""


def test_unreadable_directory_gives_one_error(devdir: Path) -> None:
    """A directory without read permission gives one error; devices come back when it is readable again."""
    if os.geteuid() == 0:
        os.chown(devdir, 65534, 65534)
        for parent in devdir.parents:
            parent.chmod(parent.stat().st_mode | 0o005)
    out = subprocess.run(
        [sys.executable, "-c", _UNREADABLE_CHILD, str(devdir)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "devices ['dev0', 'dev1']"
    assert lines[1].startswith("error ")
    assert "Permission denied" in lines[1]
    assert lines[2] == "after None ['dev0', 'dev1']"


async def test_set_config_while_streaming_switches_directory(devdir: Path, tmp_path: Path) -> None:
    """A running stream picks up a new directory from set_config at its next scan."""
    other = tmp_path / "other"
    other.mkdir()
    _touch(other / "gpu0")
    plugin = _plugin(devdir)
    async with aclosing(plugin.fingerprint()) as stream:
        assert _ids(await _next(stream)) == ["dev0", "dev1"]
        await plugin.set_config({"dir": str(other), "list_period": "50ms"})
        assert _ids(await _next(stream)) == ["gpu0"]


async def test_fingerprint_without_config_raises() -> None:
    """Fingerprinting before any config is a DeviceError saying the directory is not set."""
    with pytest.raises(DeviceError, match="device directory not set in config; call set_config"):
        await anext(FsDevice().fingerprint())


async def test_breaking_the_loop_stops_the_scanning(devdir: Path, fslog: _LogWatch) -> None:
    """Leaving the async for loop ends the stream: no scan happens afterwards and reserve scans afresh."""
    plugin = _plugin(devdir)
    await _leave_after_first(plugin.fingerprint())
    await fslog.wait_for("fs-device: fingerprint stream stopped")
    scans = fslog.count("fs-device: scanning")
    await _let_scans_run()
    assert fslog.count("fs-device: scanning") == scans
    # With no stream left, reserve looks at the directory itself rather than a stale stream's last scan.
    _touch(devdir / "dev7")
    assert [m.host_path for m in (await plugin.reserve(["dev7"])).mounts] == [str(devdir / "dev7")]


async def test_closing_the_stream_stops_it(devdir: Path) -> None:
    """An explicitly closed stream ends: the next call raises StopAsyncIteration."""
    stream = _plugin(devdir).fingerprint()
    await _next(stream)
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


# --- reserve --------------------------------------------------------------------------------------------------


async def test_reserve_mounts_each_device(devdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each id gets a read-write mount of <absolute dir>/<id> at /tmp/task-mounts/<id>, in the order given."""
    monkeypatch.chdir(devdir.parent)
    plugin = FsDevice({"dir": devdir.name})
    reservation = await plugin.reserve(["dev1", "dev0"])
    assert reservation.mounts == (
        Mount(task_path="/tmp/task-mounts/dev1", host_path=str(devdir / "dev1"), read_only=False),
        Mount(task_path="/tmp/task-mounts/dev0", host_path=str(devdir / "dev0"), read_only=False),
    )
    assert reservation.envs == {}
    assert reservation.devices == ()


async def test_reserve_unhealthy_device_is_allowed(devdir: Path) -> None:
    """Like upstream, an unhealthy device can still be reserved (the scheduler decides on health)."""
    (devdir / "dev0").chmod(0o777)
    assert len((await _plugin(devdir).reserve(["dev0"])).mounts) == 1


async def test_reserve_no_ids(devdir: Path) -> None:
    """Reserving no devices is a DeviceError."""
    with pytest.raises(DeviceError, match="no device ids given; expected at least one"):
        await _plugin(devdir).reserve([])


@pytest.mark.parametrize("bad", ["", "..", ".", "../dev0", "dev0/../dev1", "/etc/passwd", "sub/dev0", "dev\x000"])
async def test_reserve_refuses_path_like_ids(devdir: Path, bad: str) -> None:
    """An empty id, '.', '..' or an id with '/' is a DeviceError naming the id; nothing is mounted."""
    plugin = _plugin(devdir)
    with pytest.raises(DeviceError) as info:
        await plugin.reserve(["dev0", bad])
    assert str(info.value).startswith(f'fs-device: invalid device id "{bad}"; expected a file name')


async def test_reserve_unknown_id(devdir: Path) -> None:
    """An id that is not a detected device is a DeviceError naming it, as upstream's unknown device %q."""
    with pytest.raises(DeviceError, match=r'^unknown device "dev9"; detected devices: dev0, dev1$'):
        await _plugin(devdir).reserve(["dev0", "dev9"])


async def test_reserve_directory_is_unknown(devdir: Path) -> None:
    """A subdirectory is not a device, so reserving it is an unknown device."""
    (devdir / "subdir").mkdir()
    with pytest.raises(DeviceError, match='unknown device "subdir"'):
        await _plugin(devdir).reserve(["subdir"])


async def test_reserve_duplicate_id(devdir: Path) -> None:
    """The same id twice is a DeviceError naming it."""
    with pytest.raises(DeviceError, match='device "dev0" is listed twice'):
        await _plugin(devdir).reserve(["dev0", "dev0"])


async def test_reserve_a_bare_string(devdir: Path) -> None:
    """A single string (not a list of ids) is a DeviceError, not a reservation of its characters."""
    with pytest.raises(DeviceError, match='not the string "dev0"'):
        await _plugin(devdir).reserve("dev0")


async def test_reserve_without_config() -> None:
    """Reserving before any config is a DeviceError."""
    with pytest.raises(DeviceError, match="device directory not set"):
        await FsDevice().reserve(["dev0"])


async def test_reserve_uses_what_the_running_stream_reported(devdir: Path) -> None:
    """While a fingerprint stream runs, only devices it has seen can be reserved (Nomad knows no others)."""
    plugin = _plugin(devdir, period=3600)
    async with aclosing(plugin.fingerprint()) as stream:
        await _next(stream)
        _touch(devdir / "dev2")
        with pytest.raises(DeviceError, match='unknown device "dev2"'):
            await plugin.reserve(["dev2"])
        assert len((await plugin.reserve(["dev1"])).mounts) == 1


# --- stats ----------------------------------------------------------------------------------------------------

_GO_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})? [+-]\d{4} \S+$")


async def test_stats_first_message_at_once(devdir: Path) -> None:
    """The first stats message arrives at once with size, modify_time and mode of every device."""
    (devdir / "dev1").chmod(0o600)
    async with aclosing(_plugin(devdir).stats(3600)) as stream:
        response = await _next(stream, limit=2)
    assert response.error is None
    (group,) = response.groups
    assert (group.vendor, group.type, group.name) == ("nomad", "file", "mock")
    assert sorted(group.instance_stats) == ["dev0", "dev1"]
    dev1 = group.instance_stats["dev1"]
    assert dev1.summary is not None
    assert (dev1.summary.int_numerator_val, dev1.summary.unit, dev1.summary.desc) == (4, "bytes", "Filesize in bytes")
    assert dev1.stats is not None
    attrs = dev1.stats.attributes
    assert attrs["size"] == dev1.summary
    assert (attrs["mode"].string_val, attrs["mode"].desc, attrs["mode"].unit) == ("-rw-------", "File mode", "")
    assert attrs["modify_time"].desc == "Last modified"
    assert _GO_TIME.match(attrs["modify_time"].string_val or ""), attrs["modify_time"].string_val
    assert dev1.timestamp.tzinfo is not None
    assert abs((datetime.now(dev1.timestamp.tzinfo) - dev1.timestamp).total_seconds()) < 60
    assert group.instance_stats["dev0"].timestamp == dev1.timestamp


async def test_stats_follow_directory_changes(devdir: Path) -> None:
    """Without a fingerprint stream, each stats message reflects the directory at that moment."""
    async with aclosing(_plugin(devdir).stats(PERIOD)) as stream:
        await _next(stream)
        (devdir / "dev0").write_text("a longer content")
        _touch(devdir / "dev5")
        with anyio.fail_after(5):
            async for response in stream:
                stats = response.groups[0].instance_stats
                summary = stats["dev0"].summary
                if "dev5" in stats and summary is not None and summary.int_numerator_val == len("a longer content"):
                    break


async def test_stats_reuse_an_unchanged_files_statistics_and_renew_the_timestamp(devdir: Path) -> None:
    """A file whose size, mtime and mode are unchanged keeps its stat objects; a chmod-ed one gets new ones; every
    device's timestamp is that of the new message."""
    async with aclosing(_plugin(devdir).stats(PERIOD)) as stream:
        first = (await _next(stream)).groups[0].instance_stats
        (devdir / "dev1").chmod(0o600)
        second = (await _next(stream)).groups[0].instance_stats
    assert second["dev0"].stats is first["dev0"].stats
    assert second["dev0"].summary is first["dev0"].summary
    assert second["dev1"].stats is not first["dev1"].stats
    assert second["dev1"].stats is not None
    assert second["dev1"].stats.attributes["mode"].string_val == "-rw-------"
    assert second["dev0"].timestamp == second["dev1"].timestamp > first["dev0"].timestamp


async def test_stats_skip_a_file_that_vanished_since_the_last_scan(devdir: Path) -> None:
    """A device detected by the last scan whose file is gone is left out of the stats (the stream goes on)."""
    plugin = _plugin(devdir, period=3600)
    async with aclosing(plugin.fingerprint()) as fingerprint:
        assert _ids(await _next(fingerprint)) == ["dev0", "dev1"]
        (devdir / "dev1").unlink()
        async with aclosing(plugin.stats(PERIOD)) as stream:
            first = await _next(stream)
            assert list(first.groups[0].instance_stats) == ["dev0"]
            second = await _next(stream)
            assert list(second.groups[0].instance_stats) == ["dev0"]


async def test_stats_no_devices_no_message(tmp_path: Path) -> None:
    """With no devices no stats message is sent; the first one comes when a device appears."""
    async with aclosing(_plugin(tmp_path).stats(PERIOD)) as stream:
        async with anyio.create_task_group() as tg:
            received: list[StatsResponse] = []

            async def consume() -> None:
                received.append(await _next(stream))

            tg.start_soon(consume)
            await _let_scans_run()
            assert received == []
            _touch(tmp_path / "dev0")
        assert list(received[0].groups[0].instance_stats) == ["dev0"]


@pytest.mark.parametrize("interval", [0, -1.0, math.nan, math.inf, True])
async def test_stats_bad_interval(devdir: Path, interval: float) -> None:
    """A zero, negative or non-finite interval is a DeviceError naming the value."""
    with pytest.raises(DeviceError, match=rf"stats interval must be a positive number of seconds; got {interval!r}"):
        await anext(_plugin(devdir).stats(interval))


async def test_breaking_the_stats_loop_stops_it(devdir: Path, fslog: _LogWatch) -> None:
    """Leaving the stats async for loop ends the stream: nothing is collected afterwards."""
    await _leave_after_first(_plugin(devdir).stats(PERIOD))
    await fslog.wait_for("fs-device: stats stream stopped")
    rounds = fslog.count("fs-device: collecting stats")
    await _let_scans_run()
    assert fslog.count("fs-device: collecting stats") == rounds
