"""PluginLauncher with real processes: handshake checks, DeviceManager hand-over, crash restart, reattach, stop."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import anyio
import pytest
from helpers.launcher import fs_spec, launched, running, wait_devices, write_plugin

from plugin_host._process import process_start_time
from plugin_host.device import Device, DeviceManager
from plugin_host.errors import ConfigError
from plugin_host.loader.launcher import LaunchState, LaunchStatus, plugin_specs_from_dir
from plugin_host.registry import PLUGIN_TYPE_DEVICE, EventType
from plugin_host.state import MemoryStateStore, SqliteStateStore


def failed(status: LaunchStatus) -> bool:
    """A launch attempt failed."""
    return status.last_error is not None


BAD_PLUGINS = {
    "garbled": ("print('hello there', flush=True); time.sleep(30)", "unrecognized plugin handshake 'hello there'"),
    "appver": ("print('1|9|unix|/x|grpc', flush=True); time.sleep(30)", "unsupported app protocol version 9"),
    "netrpc": ("print('1|2|unix|/x|netrpc', flush=True); time.sleep(30)", "unsupported plugin protocol 'netrpc'"),
    "nosock": (
        "print('1|2|unix|' + os.environ['PLUGIN_UNIX_SOCKET_DIR'] + '/none.sock|grpc', flush=True); time.sleep(30)",
        "which does not exist",
    ),
    "exits": (
        "sys.stderr.write('boom: no config\\n'); sys.exit(3)",
        r"exited with status 3 before printing .*boom: no config",
    ),
    "silent": ("sys.stderr.write('thinking\\n'); sys.stderr.flush(); time.sleep(30)", "start timeout of 1s"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(BAD_PLUGINS))
async def test_bad_plugin_fails_with_clear_error_naming_it(short_tmp: Path, name: str) -> None:
    """Each broken plugin yields an error naming the plugin and the problem; the launcher and its peers keep running."""
    body, expected = BAD_PLUGINS[name]
    write_plugin(short_tmp, name, body)
    write_plugin(short_tmp, "other", BAD_PLUGINS["garbled"][0])
    specs = plugin_specs_from_dir(short_tmp, {})
    async with launched(specs, start_timeout=1.0) as (launcher, _devices, _registry):
        with anyio.fail_after(15):
            status = await launcher.wait_for(name, failed)
            other = await launcher.wait_for("other", failed)
        assert status.last_error is not None
        assert f"plugin {name!r}" in status.last_error
        assert pytest.importorskip("re").search(expected, status.last_error), status.last_error
        assert status.state is LaunchState.BACKOFF
        assert other.last_error is not None
        assert "plugin 'other'" in other.last_error
    if name == "silent":
        assert "thinking" in status.last_error


def test_non_executable_file_is_skipped_with_warning(short_tmp: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file without the executable bit is not a plugin; the warning names it."""
    write_plugin(short_tmp, "notexec", "pass", mode=0o644)
    write_plugin(short_tmp, "ok", "pass")
    with caplog.at_level(logging.WARNING):
        specs = plugin_specs_from_dir(short_tmp, {"ok": (("--flag",), {"secret": "s3cr3t"})})
    assert [(s.name, s.args) for s in specs] == [("ok", ("--flag",))]
    assert "notexec" in caplog.text
    assert "not executable" in caplog.text
    assert "s3cr3t" not in repr(specs)


def test_missing_plugin_dir_is_config_error(short_tmp: Path) -> None:
    """A plugin_dir that does not exist is a ConfigError naming the path."""
    missing = short_tmp / "nope"
    with pytest.raises(ConfigError, match=str(missing)):
        plugin_specs_from_dir(missing, {})


def test_stderr_lines_are_forwarded_with_hclog_levels(caplog: pytest.LogCaptureFixture) -> None:
    """hclog JSON lines keep their level and message; plain lines are logged as they are."""
    from plugin_host.loader._launch_stderr import StderrForwarder

    forwarder = StderrForwarder("demo")
    with caplog.at_level(logging.DEBUG, logger="plugin_host.plugins.demo"):
        forwarder.feed(b'{"@level":"warn","@message":"disk low","@timestamp":"x","free":"1G"}')
        forwarder.feed(b"just text")
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert records == [
        ("plugin_host.plugins.demo", logging.WARNING, "disk low free=1G"),
        ("plugin_host.plugins.demo", logging.INFO, "just text"),
    ]


def test_deeply_nested_stderr_line_is_logged_as_text(caplog: pytest.LogCaptureFixture) -> None:
    """A stderr line that looks like hclog JSON but nests thousands deep is logged as plain text, not a crash."""
    from plugin_host.loader._launch_stderr import StderrForwarder

    line = b'{"@message":' + b"[" * 5000
    with caplog.at_level(logging.DEBUG, logger="plugin_host.plugins.demo"):
        StderrForwarder("demo").feed(line)
    assert [r.getMessage() for r in caplog.records] == [line.decode()]


@pytest.mark.anyio
async def test_output_without_newlines_comes_in_bounded_pieces() -> None:
    """A plugin writing without ever ending its line is read in pieces of at most MAX_LINE bytes, not buffered whole."""
    from plugin_host._process import MAX_LINE, LineReader

    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    reader = LineReader(read_end)

    def write_all() -> None:
        with os.fdopen(write_end, "wb") as out:
            out.write(b"x" * (2 * MAX_LINE + 5))

    sizes = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, write_all)
            while (line := await reader.readline()) is not None:
                sizes.append(len(line))
    reader.close()
    assert sizes == [MAX_LINE, MAX_LINE, 5]


async def _wait_health(devices: DeviceManager, *, healthy: bool) -> list[Device]:
    """Wait until the manager lists devices and every one has the given health; return them."""

    def current() -> list[Device] | None:
        found = [d for p in devices.snapshot().plugins for g in p.groups for d in g.devices]
        return found if found and all(d.healthy is healthy for d in found) else None

    async with devices.subscribe() as changes:
        if (found := current()) is not None:
            return found
        async for _ in changes:
            if (found := current()) is not None:
                return found
    raise AssertionError("the device manager closed")


def _gone(pid: int) -> bool:
    return process_start_time(pid) is None


@pytest.mark.anyio
async def test_fsdevice_launched_restarted_and_stopped(short_tmp: Path) -> None:
    """The fs-device plugin is launched, registered with its devices, restarted after SIGKILL, and stopped clean."""
    (short_tmp / "plugins").mkdir()
    (short_tmp / "devs").mkdir()
    specs = fs_spec(short_tmp / "plugins", short_tmp / "devs")
    async with launched(specs, backoff_initial=0.1, backoff_max=0.2) as (launcher, devices, registry):
        with anyio.fail_after(30):
            first = await launcher.wait_for("fsdev", running)
            await wait_devices(devices, 2)
        assert [p.name for p in await registry.list_plugins(PLUGIN_TYPE_DEVICE)] == ["fsdev"]
        reservation = await devices.reserve("nomad/file/mock", ["b"])
        assert [(m.task_path, m.host_path) for m in reservation.mounts] == [
            ("/tmp/task-mounts/b", str(short_tmp / "devs" / "b"))
        ]
        assert first.pid is not None
        assert first.socket_path is not None
        async with registry.subscribe(PLUGIN_TYPE_DEVICE) as events:
            os.kill(first.pid, signal.SIGKILL)
            with anyio.fail_after(30):
                down = await _wait_health(devices, healthy=False)
                second = await launcher.wait_for("fsdev", lambda s: running(s) and s.pid != first.pid)
                up = await _wait_health(devices, healthy=True)
                seen = [await events.__anext__() for _ in range(2)]
        assert sorted(d.id for d in down) == ["a", "b"]
        assert all("restarting" in d.health_description for d in down)
        assert sorted(d.id for d in up) == ["a", "b"]
        assert [e.event_type for e in seen] == [EventType.DEREGISTERED, EventType.REGISTERED]
        assert seen[1].info.connection_info is not None
        assert seen[1].info.connection_info.socket_path == second.socket_path
        assert second.restarts == 1
        assert "exited" in (second.last_error or "")
        assert second.pid is not None
        assert second.socket_path is not None
    assert _gone(second.pid)
    assert not Path(second.socket_path).exists()


@pytest.mark.anyio
async def test_restarted_launcher_reattaches_to_running_plugin(short_tmp: Path) -> None:
    """A launcher started after one that left its plugin running reattaches to the same pid instead of starting one."""
    (short_tmp / "plugins").mkdir()
    (short_tmp / "devs").mkdir()
    specs = fs_spec(short_tmp / "plugins", short_tmp / "devs")
    async with SqliteStateStore(short_tmp / "state.db") as store:
        async with launched(specs, state=store) as (launcher, _devices, _registry):
            with anyio.fail_after(30):
                first = await launcher.wait_for("fsdev", running)
            launcher.leave_running()
        assert first.pid is not None
        assert first.socket_path is not None
        assert not _gone(first.pid)
        assert [r.pid for r in await store.list_plugin_processes()] == [first.pid]
        async with launched(specs, state=store) as (launcher, devices, _registry):
            with anyio.fail_after(30):
                again = await launcher.wait_for("fsdev", running)
                await wait_devices(devices, 2)
            assert (again.pid, again.reattached) == (first.pid, True)
        assert _gone(first.pid)
        assert not Path(first.socket_path).exists()
        assert await store.list_plugin_processes() == []


@pytest.mark.anyio
async def test_dead_recorded_process_is_replaced(short_tmp: Path) -> None:
    """A record whose process is gone is not reattached: a fresh process is started and recorded."""
    from plugin_host.loader.store import PluginProcessRecord

    (short_tmp / "plugins").mkdir()
    (short_tmp / "devs").mkdir()
    specs = fs_spec(short_tmp / "plugins", short_tmp / "devs")
    store = MemoryStateStore()
    stale = PluginProcessRecord("fsdev", 2**22 + 7, 1, str(short_tmp / "gone.sock"), str(specs[0].executable))
    await store.save_plugin_process(stale)
    async with launched(specs, state=store) as (launcher, _devices, _registry):
        with anyio.fail_after(30):
            status = await launcher.wait_for("fsdev", running)
        assert not status.reattached
        assert [r.pid for r in await store.list_plugin_processes()] == [status.pid]


@pytest.mark.anyio
async def test_host_launches_plugin_dir_plugins_and_stops_them_on_exit(short_tmp: Path) -> None:
    """A PluginHost with a plugin_dir launches its fs-device wrapper: devices appear, it is registered as a device
    plugin and recorded; leaving the host stops the process, removes its socket and forgets its record."""
    from plugin_host.host import PluginHost
    from plugin_host.host_config import HostConfig

    (short_tmp / "plugins").mkdir()
    (short_tmp / "devs").mkdir()
    fs_spec(short_tmp / "plugins", short_tmp / "devs")
    config = HostConfig.from_mapping(
        {
            "state_dir": str(short_tmp / "st"),
            "plugin_dir": str(short_tmp / "plugins"),
            "plugins": {"fsdev": {"config": {"dir": str(short_tmp / "devs"), "list_period": "1s"}}},
        }
    )
    async with PluginHost(config) as host:
        launcher = host.launcher
        assert launcher is not None
        with anyio.fail_after(30):
            status = await launcher.wait_for("fsdev", running)
            await wait_devices(host.devices, 2)
        assert [p.name for p in host.devices.snapshot().plugins] == ["fsdev"]
        assert [p.name for p in await host.registry.list_plugins(PLUGIN_TYPE_DEVICE)] == ["fsdev"]
        assert status.pid is not None
        assert status.socket_path is not None
        async with SqliteStateStore(config.state_file, read_only=True) as reader:
            assert [r.pid for r in await reader.list_plugin_processes()] == [status.pid]
    assert _gone(status.pid)
    assert not Path(status.socket_path).exists()
    async with SqliteStateStore(config.state_file) as store:
        assert await store.list_plugin_processes() == []
