"""DriverManager: handles persisted on start and removed on destroy; recovery on add_driver after a reopen or a
SIGKILLed host (the later exit still arrives); gone tasks dropped, failed recoveries kept; events; bad input."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from helpers.driver import gated, make_fifo, release, task

from plugin_host.driver import DRIVER_NOT_CONFIGURED, DriverManager, TaskHandle
from plugin_host.errors import (
    ConfigError,
    DriverError,
    PluginNotFoundError,
    SubscriberLaggedError,
    TaskConfigError,
    TaskExistsError,
    TaskNotFoundError,
)
from plugin_host.plugins.rawexec import RawExecDriver
from plugin_host.state import SqliteStateStore

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def manager(directory: Path) -> AsyncIterator[tuple[DriverManager, SqliteStateStore]]:
    """A DriverManager on ``directory/state.db`` (no driver added yet)."""
    async with SqliteStateStore(directory / "state.db") as store, DriverManager(state=store) as drivers:
        yield drivers, store


def raw_exec(directory: Path) -> RawExecDriver:
    """A fresh raw-exec driver keeping its status files under ``directory/exec``."""
    return RawExecDriver({"state_dir": str(directory / "exec")})


class UnreachableDriver(RawExecDriver):
    """raw-exec whose backend is down: recovery fails with a driver error (as libvirt being unreachable would)."""

    async def recover_task(self, handle: TaskHandle) -> None:
        """Always fails."""
        raise DriverError("backend unreachable")


async def test_handle_is_stored_on_start_recovered_after_reopen_and_removed_on_destroy(short_tmp: Path) -> None:
    """A reopened manager recovers the task through a fresh driver; wait gets its later exit; destroy drops it."""
    fifo = make_fifo(short_tmp)
    async with manager(short_tmp) as (drivers, store):
        await drivers.add_driver("raw-exec", raw_exec(short_tmp))
        await drivers.start_task("raw-exec", gated("t1", fifo, 5))
        [record] = await store.list_task_handles()
        assert (record.task_id, record.driver, record.name) == ("t1", "raw-exec", "t1")
    async with manager(short_tmp) as (drivers, store):
        result = await drivers.add_driver("raw-exec", raw_exec(short_tmp))
        assert (result.recovered, result.dropped, result.failed) == (("t1",), (), {})
        assert drivers.tasks() == {"t1": "raw-exec"}
        with anyio.fail_after(10):
            await release(fifo)
            assert (await drivers.wait_task("t1")).exit_code == 5
        await drivers.destroy_task("t1")
        assert await store.list_task_handles() == []
        with pytest.raises(TaskNotFoundError, match=r"'t1'"):
            await drivers.inspect_task("t1")


HOST = """
import sys, anyio
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from helpers.driver import gated
from pathlib import Path
from plugin_host.driver import DriverManager
from plugin_host.plugins.rawexec import RawExecDriver
from plugin_host.state import SqliteStateStore

async def main():
    async with SqliteStateStore({db!r}) as store, DriverManager(state=store) as drivers:
        await drivers.add_driver("raw-exec", RawExecDriver({{"state_dir": {exec_dir!r}}}))
        await drivers.start_task("raw-exec", gated("t1", Path({fifo!r}), 6))
        print("started", flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


async def test_a_sigkilled_host_leaves_a_task_the_next_manager_recovers(short_tmp: Path) -> None:
    """Kill -9 the host process after start_task returned: the next manager recovers the task and gets its exit."""
    fifo = make_fifo(short_tmp)
    script = HOST.format(
        root=str(ROOT),
        tests=str(ROOT / "tests"),
        db=str(short_tmp / "state.db"),
        exec_dir=str(short_tmp / "exec"),
        fifo=str(fifo),
    )
    host = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None
        line = await anyio.to_thread.run_sync(host.stdout.readline)
        assert line == "started\n"
    finally:
        os.kill(host.pid, signal.SIGKILL)
        await anyio.to_thread.run_sync(host.wait)
        if host.stdout is not None:
            host.stdout.close()
    async with manager(short_tmp) as (drivers, _):
        assert (await drivers.add_driver("raw-exec", raw_exec(short_tmp))).recovered == ("t1",)
        with anyio.fail_after(10):
            await release(fifo)
            result = await drivers.wait_task("t1")
        assert (result.exit_code, result.err) == (6, None)
        await drivers.destroy_task("t1")


async def test_gone_tasks_are_dropped_and_failed_recoveries_keep_their_handle(short_tmp: Path) -> None:
    """TaskNotFoundError drops the handle; another failure keeps it, lists the task and names it in later calls."""
    fifo = make_fifo(short_tmp)
    async with manager(short_tmp) as (drivers, _):
        await drivers.add_driver("raw-exec", raw_exec(short_tmp))
        await drivers.start_task("raw-exec", task("gone", "exit 0"))
        await drivers.start_task("raw-exec", gated("kept", fifo, 0))
        with anyio.fail_after(10):
            await drivers.wait_task("gone")
    for status_file in (short_tmp / "exec").glob("*.json"):
        if "exit_code" in status_file.read_text():
            status_file.unlink()  # what a reboot that wiped the state directory leaves behind
    async with manager(short_tmp) as (drivers, store):
        result = await drivers.add_driver("raw-exec", UnreachableDriver({"state_dir": str(short_tmp / "exec")}))
        assert result.recovered == ()
        assert set(result.failed) == {"gone", "kept"}
        assert drivers.unrecovered() == {"gone": "backend unreachable", "kept": "backend unreachable"}
        with pytest.raises(DriverError, match=r"task 'kept' of driver 'raw-exec' was not recovered: backend"):
            await drivers.wait_task("kept")
        assert [r.task_id for r in await store.list_task_handles()] == ["gone", "kept"]
    async with manager(short_tmp) as (drivers, store):
        result = await drivers.add_driver("raw-exec", raw_exec(short_tmp))
        assert (result.recovered, result.dropped) == (("kept",), ("gone",))
        assert [r.task_id for r in await store.list_task_handles()] == ["kept"]
        with anyio.fail_after(15):
            await drivers.destroy_task("kept", force=True)
        assert await store.list_task_handles() == []


async def test_events_of_every_driver_reach_subscribers(short_tmp: Path) -> None:
    """A subscriber sees the task events of each managed driver, tagged with the driver's name."""
    async with manager(short_tmp) as (drivers, _):
        await drivers.add_driver("raw-exec", raw_exec(short_tmp))
        await drivers.add_driver("second", raw_exec(short_tmp / "second"))
        with anyio.fail_after(10):
            async with drivers.subscribe_events() as events:
                await anyio.wait_all_tasks_blocked()  # both drivers' event streams are open
                await drivers.start_task("second", task("t1", "exit 0"))
                event = await anext(events)
        assert (event.driver, event.event.task_id) == ("second", "t1")
        assert event.event.message.startswith("task started")


async def test_a_subscriber_that_stops_reading_gets_its_backlog_then_lagged_with_the_last_seq_it_got(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Events are numbered from 1. A subscriber with a buffer of 2 that never reads holds up neither the driver nor
    another subscriber; it then reads the two events it kept and SubscriberLaggedError with the last one's seq."""
    async with manager(short_tmp) as (drivers, _):
        await drivers.add_driver("raw-exec", raw_exec(short_tmp))
        with pytest.raises(ConfigError, match=r"subscribe_events buffer must be a positive integer, got 0"):
            async with drivers.subscribe_events(buffer=0):
                pass
        with anyio.fail_after(20):
            async with drivers.subscribe_events(buffer=2) as stalled, drivers.subscribe_events() as reader:
                await anyio.wait_all_tasks_blocked()  # the driver's event stream is open
                for n in range(1, 5):
                    await drivers.start_task("raw-exec", task(f"t{n}", "exit 0"))
                got = [await anext(reader) for _ in range(4)]
                assert [(e.seq, e.event.task_id) for e in got] == [(1, "t1"), (2, "t2"), (3, "t3"), (4, "t4")]
                assert [await anext(stalled) for _ in range(2)] == got[:2]
                with pytest.raises(SubscriberLaggedError, match=r"the last event it received had seq 2") as caught:
                    await anext(stalled)
                assert caught.value.last_seq == 2
                await drivers.start_task("raw-exec", task("t5", "exit 0"))
                assert (await anext(reader)).seq == 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["a task event subscriber fell more than 2 events behind and was dropped at seq 2"]


async def test_bad_input_is_refused_with_the_names_involved(short_tmp: Path) -> None:
    """Unknown driver, duplicate driver name, empty or duplicate task id, unknown task, negative stop timeout."""
    async with manager(short_tmp) as (drivers, _):
        await drivers.add_driver("raw-exec", raw_exec(short_tmp))
        with pytest.raises(ConfigError, match=r"a driver named 'raw-exec' is already managed"):
            await drivers.add_driver("raw-exec", raw_exec(short_tmp))
        with pytest.raises(ConfigError, match=r"driver name must be a non-empty string, got ''"):
            await drivers.add_driver("", raw_exec(short_tmp))
        with pytest.raises(PluginNotFoundError, match=r"no driver named 'virt'; managed: \['raw-exec'\]"):
            await drivers.start_task("virt", task("t1", "true"))
        with pytest.raises(TaskConfigError, match=r"task config of task 'x': id must not be empty"):
            await drivers.start_task("raw-exec", task("", "true").model_copy(update={"name": "x"}))
        await drivers.start_task("raw-exec", task("t1", "exec sleep 60"))
        with pytest.raises(TaskExistsError, match=r"a task with id 't1' already exists \(driver 'raw-exec'\)"):
            await drivers.start_task("raw-exec", task("t1", "true"))
        with pytest.raises(TaskNotFoundError, match=r"task not found for given id 'nope'"):
            await drivers.wait_task("nope")
        with pytest.raises(DriverError, match=r"stop_task timeout must be a non-negative number of seconds, got -1"):
            await drivers.stop_task("t1", -1)
        with anyio.fail_after(15):
            await drivers.destroy_task("t1", force=True)


async def test_handles_of_a_driver_not_configured_are_reported_kept_and_recovered_once_it_is(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On entering, one warning per unconfigured driver lists its task ids; the tasks show as unrecovered with the
    reason, calls for them name it, and adding the driver later recovers them; destroy forgets an orphan's handle."""
    async with manager(short_tmp) as (drivers, _):
        await drivers.add_driver("raw-exec", raw_exec(short_tmp))
        await drivers.add_driver("old", raw_exec(short_tmp / "old"))
        await drivers.start_task("raw-exec", task("kept", "exec sleep 60"))
        for task_id in ("o2", "o1"):
            await drivers.start_task("old", task(task_id, "exec sleep 60"))
        await drivers.add_driver("gone", raw_exec(short_tmp / "gone"))
        await drivers.start_task("gone", task("g1", "exit 0"))
    caplog.set_level(logging.WARNING, logger="plugin_host.driver.manager")
    async with (
        SqliteStateStore(short_tmp / "state.db") as store,
        DriverManager(state=store, configured_drivers={"raw-exec": {}}) as drivers,
    ):
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2
        assert "driver 'gone' is not configured" in warnings[0]
        assert warnings[0].endswith(
            "its 1 task(s) without recovering them: g1 (configure the driver again to recover "
            "them, or destroy the tasks to forget them)"
        )
        assert "driver 'old' is not configured" in warnings[1]
        assert "its 2 task(s) without recovering them: o1, o2 (" in warnings[1]
        assert drivers.unrecovered() == {
            "g1": DRIVER_NOT_CONFIGURED,
            "o1": DRIVER_NOT_CONFIGURED,
            "o2": DRIVER_NOT_CONFIGURED,
        }
        assert drivers.unrecovered_tasks()["o1"] == ("old", "driver not configured")
        with pytest.raises(DriverError, match=r"task 'o1' of driver 'old' was not recovered: driver not configured"):
            await drivers.inspect_task("o1")
        await drivers.add_driver("raw-exec", raw_exec(short_tmp))
        with pytest.raises(TaskExistsError, match=r"a task with id 'o1' already exists \(driver 'old'\)"):
            await drivers.start_task("raw-exec", task("o1", "true"))
        await drivers.destroy_task("g1")
        assert "g1" not in drivers.unrecovered()
        assert [r.task_id for r in await store.list_task_handles()] == ["kept", "o1", "o2"]
        result = await drivers.add_driver("old", raw_exec(short_tmp / "old"))
        assert result.recovered == ("o1", "o2")
        assert drivers.unrecovered() == {}
        for task_id in ("o1", "o2"):
            assert (await drivers.inspect_task(task_id)).id == task_id
            with anyio.fail_after(15):
                await drivers.destroy_task(task_id, force=True)
        with anyio.fail_after(15):
            await drivers.destroy_task("kept", force=True)
        assert await store.list_task_handles() == []


async def test_without_configured_drivers_nothing_is_reported(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """configured_drivers=None (the default) leaves stored handles of any driver alone until add_driver."""
    async with manager(short_tmp) as (drivers, _):
        await drivers.add_driver("old", raw_exec(short_tmp))
        await drivers.start_task("old", task("o1", "exit 0"))
    caplog.set_level(logging.WARNING, logger="plugin_host.driver.manager")
    async with manager(short_tmp) as (drivers, store):
        assert drivers.unrecovered() == {}
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        assert [r.task_id for r in await store.list_task_handles("old")] == ["o1"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("raw-exec", r"configured_drivers must be an iterable of driver names, got 'raw-exec'"),
        (3, r"configured_drivers must be an iterable of driver names, got 3"),
        (["raw-exec", "", 7], r"configured_drivers must hold non-empty strings, got '', 7"),
    ],
)
def test_bad_configured_drivers_are_refused(names: object, message: str) -> None:
    """configured_drivers must be an iterable (not a string) of non-empty driver names."""
    with pytest.raises(ConfigError, match=message):
        DriverManager(configured_drivers=names)  # type: ignore[arg-type]
