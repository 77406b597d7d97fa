"""A launched plugin's whole process group is stopped, even once its leader has exited; a plugin that exits before
its handshake is reported at once, even while a grandchild holds its stdout (real scripted processes)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from plugin_host._process import process_start_time
from plugin_host.device import DeviceManager
from plugin_host.loader.launcher import LaunchStatus, PluginLauncher, plugin_specs_from_dir
from plugin_host.registry import Registry

pytestmark = pytest.mark.anyio

WAIT = 30.0


def write_forker(plugin_dir: Path, pids: Path, after: str, *, ignore_term: bool = False) -> None:
    """A plugin that starts a ``sleep 300`` grandchild (inheriting its stdout and stderr), appends the grandchild's
    pid to ``pids``, then runs ``after``."""
    preexec = "lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN)" if ignore_term else "None"
    path = plugin_dir / "forker"
    path.write_text(
        f"#!{sys.executable}\n"
        "import os, signal, subprocess, sys, time\n"
        f"child = subprocess.Popen(['sleep', '300'], preexec_fn={preexec})\n"
        f"with open({str(pids)!r}, 'a') as f:\n"
        "    f.write(f'{child.pid}\\n')\n"
        f"{after}\n"
    )
    path.chmod(0o755)


def alive(pid: int) -> bool:
    """The process runs (a zombie does not count)."""
    return process_start_time(pid) is not None


def recorded(pids: Path) -> list[int]:
    """The grandchild pids the plugin wrote down."""
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []


async def launch_until(
    plugins: Path,
    predicate: Callable[[LaunchStatus], bool],
    *,
    backoff: float = 30.0,
    start_timeout: float = 10.0,
    kill_timeout: float = 5.0,
) -> LaunchStatus:
    """Run a launcher over ``plugins`` until ``predicate`` holds for plugin 'forker', then stop it; the status."""
    async with (
        Registry() as registry,
        DeviceManager(registry=registry, stats_interval=None) as devices,
        PluginLauncher(
            plugin_specs_from_dir(plugins, {}),
            devices=devices,
            start_timeout=start_timeout,
            kill_timeout=kill_timeout,
            shutdown_timeout=0.5,
            backoff_initial=backoff,
            backoff_max=backoff,
        ) as launcher,
    ):
        with anyio.fail_after(WAIT):
            return await launcher.wait_for("forker", predicate)


def failed(status: LaunchStatus) -> bool:
    """A launch attempt failed."""
    return status.last_error is not None


async def test_exit_before_handshake_is_reported_at_once_while_a_grandchild_holds_stdout(short_tmp: Path) -> None:
    """A plugin that exits 0 leaving a grandchild on its stdout is reported as exited with status 0 before printing a
    handshake, long before the start timeout; the grandchild is gone once the launcher stopped."""
    pids = short_tmp / "pids"
    write_forker(short_tmp, pids, "sys.stderr.write('leaving early\\n'); sys.stderr.flush(); os._exit(0)")
    started = anyio.current_time()
    status = await launch_until(short_tmp, failed, start_timeout=60.0)
    assert anyio.current_time() - started < 15.0
    assert status.last_error is not None
    assert status.last_error.startswith(f"plugin 'forker' ({short_tmp / 'forker'}) exited with status 0 before")
    assert "printing a handshake" in status.last_error
    assert "leaving early" in status.last_error
    [grandchild] = recorded(pids)
    assert not alive(grandchild)


async def test_grandchildren_of_each_relaunch_are_stopped(short_tmp: Path) -> None:
    """Relaunching a plugin that exits leaving a grandchild stops that grandchild first; none survive the launcher."""
    pids = short_tmp / "pids"
    write_forker(short_tmp, pids, "os._exit(3)")
    status = await launch_until(short_tmp, lambda s: s.restarts >= 2 and failed(s), backoff=0.01)
    assert "exited with status 3" in (status.last_error or "")
    grandchildren = recorded(pids)
    assert len(grandchildren) >= 2
    assert [pid for pid in grandchildren if alive(pid)] == []


async def test_grandchild_ignoring_sigterm_is_killed_when_a_running_plugin_is_stopped(short_tmp: Path) -> None:
    """A plugin still running when stopped, whose grandchild ignores SIGTERM, leaves nothing behind: the group gets
    SIGKILL once its leader is gone."""
    pids = short_tmp / "pids"
    write_forker(short_tmp, pids, "print('not a handshake', flush=True); time.sleep(300)", ignore_term=True)
    status = await launch_until(short_tmp, failed, kill_timeout=1.0)
    assert "unrecognized plugin handshake 'not a handshake'" in (status.last_error or "")
    [grandchild] = recorded(pids)
    assert not alive(grandchild)
