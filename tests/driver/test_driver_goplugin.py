"""raw-exec as an external go-plugin process: PluginLauncher dispenses it by its PluginInfo type to the
DriverManager; tasks run through it, survive a crash of the plugin process, and are recovered by its relaunch."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest
from helpers.driver import gated, make_fifo, release, task

from plugin_host.device import DeviceManager
from plugin_host.driver import DriverManager, DriverPluginClient
from plugin_host.loader.launcher import LaunchState, LaunchStatus, PluginLauncher, PluginSpec
from plugin_host.registry import Registry

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


def write_rawexec(plugin_dir: Path, name: str = "rawexec") -> Path:
    """An executable that execs ``python -m plugin_host.plugins.rawexec``."""
    path = plugin_dir / name
    path.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        f"os.environ['PYTHONPATH'] = {str(ROOT)!r}\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'plugin_host.plugins.rawexec'])\n"
    )
    path.chmod(0o755)
    return path


def running(status: LaunchStatus) -> bool:
    """The plugin runs."""
    return status.state is LaunchState.RUNNING


async def test_launched_driver_runs_tasks_and_its_relaunch_recovers_them(short_tmp: Path) -> None:
    """Start → wait through the launched plugin; after SIGKILL of the plugin, its relaunch recovers the task."""
    plugin_dir = short_tmp / "plugins"
    plugin_dir.mkdir()
    spec = PluginSpec(
        name="rawexec", executable=write_rawexec(plugin_dir), config={"state_dir": str(short_tmp / "exec")}
    )
    fifo = make_fifo(short_tmp)
    async with (
        Registry() as registry,
        DeviceManager(registry=registry, stats_interval=None) as devices,
        DriverManager() as drivers,
        PluginLauncher(
            [spec], devices=devices, drivers=drivers, start_timeout=20.0, backoff_initial=0.05, backoff_max=0.05
        ) as launcher,
    ):
        with anyio.fail_after(30):
            first = await launcher.wait_for("rawexec", running)
            assert drivers.driver_names() == ["rawexec"]
            assert isinstance(drivers.driver("rawexec"), DriverPluginClient)
            assert devices.snapshot().plugins == ()
            await drivers.start_task("rawexec", task("quick", "exit 9"))
            assert (await drivers.wait_task("quick")).exit_code == 9
            await drivers.start_task("rawexec", gated("slow", fifo, 4))
            assert first.pid is not None
            os.kill(first.pid, signal.SIGKILL)
            await launcher.wait_for("rawexec", lambda s: running(s) and s.pid != first.pid)
            assert set(drivers.tasks()) == {"quick", "slow"}
            await release(fifo)
            assert (await drivers.wait_task("slow")).exit_code == 4
            await drivers.destroy_task("slow")
            await drivers.destroy_task("quick")
