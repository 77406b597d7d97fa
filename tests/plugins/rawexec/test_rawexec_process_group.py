"""raw-exec tasks run in their own process group, and stopping or destroying a task kills what it left there, as
Nomad's executor kills the task's process group (hashicorp/nomad#3572); real tasks and grandchildren."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from helpers.driver import make_fifo, read_line, task

from plugin_host._process import process_start_time
from plugin_host.plugins.rawexec.driver import RawExecDriver

pytestmark = pytest.mark.anyio

WAIT = 20.0


def alive(pid: int) -> bool:
    """The process runs (a zombie does not count)."""
    return process_start_time(pid) is not None


async def test_grandchild_of_an_exited_task_is_killed_when_the_task_is_destroyed(short_tmp: Path) -> None:
    """A task that exits leaving a background grandchild: destroying the task kills the grandchild."""
    fifo = make_fifo(short_tmp)
    driver = RawExecDriver({"state_dir": str(short_tmp / "exec")})
    config = task("t1", f"sleep 300 & echo $! > {fifo}; exit 0")
    with anyio.fail_after(WAIT):
        await driver.start_task(config)
        grandchild = int(await read_line(fifo))
        assert (await driver.wait_task("t1")).exit_code == 0
        assert alive(grandchild)
        await driver.stop_task("t1", 1.0)
        await driver.destroy_task("t1")
    assert not alive(grandchild)


async def test_grandchild_ignoring_sigterm_is_killed_when_the_task_is_stopped(short_tmp: Path) -> None:
    """A task (and its grandchild) ignoring SIGTERM: after the grace period the whole group gets SIGKILL."""
    fifo = make_fifo(short_tmp)
    driver = RawExecDriver({"state_dir": str(short_tmp / "exec")})
    config = task("t2", f"trap '' TERM; sleep 300 & echo $! > {fifo}; wait")
    with anyio.fail_after(WAIT):
        await driver.start_task(config)
        grandchild = int(await read_line(fifo))
        await driver.stop_task("t2", 0.5)
        assert (await driver.wait_task("t2")).signal == 9
    assert not alive(grandchild)
    await driver.destroy_task("t2")
