"""PluginHost with the built-in raw-exec driver: ``host.drivers`` runs tasks; a host started later on the same state
file has recovered them before it is ready; a bad driver config names the plugin."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from helpers.driver import gated, make_fifo, release, task

from plugin_host.cli import render_status
from plugin_host.errors import ConfigError
from plugin_host.host import PluginHost
from plugin_host.host_config import HostConfig

pytestmark = pytest.mark.anyio


def host_config(root: Path, **driver_config: object) -> HostConfig:
    """A host with only raw-exec configured."""
    return HostConfig.from_mapping(
        {
            "state_dir": str(root / "st"),
            "plugins": {"raw-exec": {"config": {"state_dir": str(root / "exec"), **driver_config}}},
        }
    )


async def test_tasks_outlive_the_host_and_the_next_host_recovers_them_before_ready(short_tmp: Path) -> None:
    """A task started through host.drivers keeps running after the host stops; the next host already tracks it."""
    fifo = make_fifo(short_tmp)
    async with PluginHost(host_config(short_tmp)) as host:
        assert host.drivers.driver_names() == ["raw-exec"]
        await host.drivers.start_task("raw-exec", gated("t1", fifo, 3))
    async with PluginHost(host_config(short_tmp)) as host:
        assert host.drivers.tasks() == {"t1": "raw-exec"}
        with anyio.fail_after(10):
            await release(fifo)
            assert (await host.drivers.wait_task("t1")).exit_code == 3
        await host.drivers.destroy_task("t1")


async def test_bad_driver_config_fails_at_load_naming_the_plugin(short_tmp: Path) -> None:
    """An unknown key in raw-exec's config block is a ConfigError naming the plugin and the key."""
    with pytest.raises(ConfigError, match=r"plugin \"raw-exec\" config: unknown key 'bogus'"):
        host_config(short_tmp, bogus=1)


async def test_status_lists_the_drivers_and_their_tasks(short_tmp: Path) -> None:
    """host.status() and `plugin-host status` show each task with its driver, state and exit code."""
    fifo = make_fifo(short_tmp)
    async with PluginHost(host_config(short_tmp)) as host:
        await host.drivers.start_task("raw-exec", gated("t-running", fifo, 0))
        await host.drivers.start_task("raw-exec", task("t-done", "exit 3"))
        with anyio.fail_after(10):
            await host.drivers.wait_task("t-done")
        status = await host.status()
        assert status.drivers == ("raw-exec",)
        assert [(t.id, t.driver, t.state, t.exit_code) for t in status.tasks] == [
            ("t-done", "raw-exec", "exited", 3),
            ("t-running", "raw-exec", "running", None),
        ]
        lines = render_status(status).splitlines()
        assert lines[-3].split() == ["TASK", "DRIVER", "STATE", "EXIT", "DETAIL"]
        assert lines[-2].split() == ["t-done", "raw-exec", "exited", "3"]
        assert lines[-1].split() == ["t-running", "raw-exec", "running", "-"]
        with anyio.fail_after(10):
            await release(fifo)
            await host.drivers.wait_task("t-running")


async def test_tasks_of_a_driver_no_longer_configured_are_reported_not_dropped(short_tmp: Path) -> None:
    """A host whose config lost raw-exec keeps its stored task and shows it unrecovered ("driver not configured");
    configuring raw-exec again recovers it."""
    fifo = make_fifo(short_tmp)
    async with PluginHost(host_config(short_tmp)) as host:
        await host.drivers.start_task("raw-exec", gated("t1", fifo, 0))
    bare = HostConfig.from_mapping({"state_dir": str(short_tmp / "st")})
    async with PluginHost(bare) as host:
        [entry] = (await host.status()).tasks
        assert (entry.id, entry.state) == ("t1", "unrecovered")
        assert "driver not configured" in entry.detail
    async with PluginHost(host_config(short_tmp)) as host:
        assert host.drivers.tasks() == {"t1": "raw-exec"}
        with anyio.fail_after(10):
            await release(fifo)
            await host.drivers.wait_task("t1")
        await host.drivers.destroy_task("t1")
