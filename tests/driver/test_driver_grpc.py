"""raw-exec over a real gRPC server and client on a Unix socket: start → wait → exit code, stop (signal, then
SIGKILL), destroy → TaskNotFoundError, inspect, recover by a fresh driver, events, stats, fingerprint, bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from helpers.driver import gated, make_fifo, read_line, release, task

from plugin_host.base.api import PLUGIN_TYPE_DRIVER
from plugin_host.base.structs import Attribute
from plugin_host.driver import DriverPluginClient, DriverPluginServer, HealthState, TaskState
from plugin_host.errors import DriverError, TaskConfigError, TaskExistsError, TaskNotFoundError
from plugin_host.plugins.rawexec import RawExecDriver

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def served(directory: Path, name: str = "d") -> AsyncIterator[DriverPluginClient]:
    """A fresh raw-exec driver (status files under ``directory/state``) behind a server and a client."""
    driver = RawExecDriver({"state_dir": str(directory / "state")})
    socket = directory / f"{name}.sock"
    async with DriverPluginServer(driver, socket), DriverPluginClient(socket, timeout=10) as client:
        yield client


async def test_start_wait_returns_the_exit_code_and_inspect_reports_it(short_tmp: Path) -> None:
    """A task that exits 3 reports exit code 3; wait answers again at once; inspect says exited with the result."""
    async with served(short_tmp) as client:
        handle, network = await client.start_task(task("t1", "exit 3"))
        assert (handle.config.id, handle.state, network) == ("t1", TaskState.RUNNING, None)
        with anyio.fail_after(10):
            result = await client.wait_task("t1")
            assert (result.exit_code, result.signal, result.err) == (3, 0, None)
            assert await client.wait_task("t1") == result
        status = await client.inspect_task("t1")
        assert status.state is TaskState.EXITED
        assert status.exit_result == result
        assert status.started_at is not None
        assert status.completed_at is not None
        assert status.completed_at >= status.started_at


async def test_stop_sends_the_signal_and_wait_stays_valid_after_stop(short_tmp: Path) -> None:
    """stop_task ends a running task with SIGTERM (exit 143, signal 15); wait still answers; stop again is a no-op."""
    async with served(short_tmp) as client:
        await client.start_task(task("t1", "exec sleep 60"))
        assert (await client.inspect_task("t1")).state is TaskState.RUNNING
        with anyio.fail_after(15):
            await client.stop_task("t1", 5.0)
            result = await client.wait_task("t1")
            await client.stop_task("t1", 5.0)
        assert (result.exit_code, result.signal) == (143, 15)


async def test_stop_kills_a_task_that_ignores_the_signal_after_the_timeout(short_tmp: Path) -> None:
    """A task ignoring SIGTERM is SIGKILLed once the stop timeout passes."""
    fifo = make_fifo(short_tmp)
    async with served(short_tmp) as client:
        await client.start_task(task("t1", f"trap '' TERM; echo ready > {fifo}; exec sleep 60"))
        with anyio.fail_after(15):
            assert await read_line(fifo) == "ready\n"
            await client.stop_task("t1", 0.2)
            result = await client.wait_task("t1")
        assert (result.exit_code, result.signal) == (137, 9)


async def test_destroy_refuses_a_running_task_without_force_then_forgets_it(short_tmp: Path) -> None:
    """destroy of a running task raises DriverError; with force it kills and forgets: every later call is not found."""
    async with served(short_tmp) as client:
        await client.start_task(task("t1", "exec sleep 60"))
        with pytest.raises(DriverError, match=r"task 't1' is still running; stop it first or pass force=True"):
            await client.destroy_task("t1")
        with anyio.fail_after(15):
            await client.destroy_task("t1", force=True)
        for call in (client.wait_task, client.inspect_task, lambda i: client.destroy_task(i, True)):
            with pytest.raises(TaskNotFoundError, match=r"for task 't1'.*task not found for given id"):
                await call("t1")


async def test_a_fresh_driver_recovers_a_running_task_and_sees_its_later_exit(short_tmp: Path) -> None:
    """Another driver instance (a restarted host) recovers from the handle alone and waits for the real exit."""
    fifo = make_fifo(short_tmp)
    async with served(short_tmp, "a") as first:
        handle, _ = await first.start_task(gated("t1", fifo, 5))
    async with served(short_tmp, "b") as second:
        await second.recover_task(handle)
        await second.recover_task(handle)  # already tracked: a no-op
        assert (await second.inspect_task("t1")).state is TaskState.RUNNING
        with anyio.fail_after(10):
            await release(fifo)
            assert (await second.wait_task("t1")).exit_code == 5


async def test_recovery_of_an_exited_task_and_of_a_destroyed_one(short_tmp: Path) -> None:
    """A task that exited while no driver watched recovers as exited; one whose state is gone is not found."""
    async with served(short_tmp, "a") as first:
        done, _ = await first.start_task(task("done", "exit 4"))
        gone, _ = await first.start_task(task("gone", "exit 0"))
        with anyio.fail_after(10):
            await first.wait_task("done")
            await first.wait_task("gone")
        await first.destroy_task("gone")
    async with served(short_tmp, "b") as second:
        await second.recover_task(done)
        status = await second.inspect_task("done")
        assert status.state is TaskState.EXITED
        assert status.exit_result is not None
        assert status.exit_result.exit_code == 4
        with pytest.raises(TaskNotFoundError, match=r"task 'gone'"):
            await second.recover_task(gone)


async def test_bad_task_input_is_reported_with_its_type_and_names(short_tmp: Path) -> None:
    """Invalid config lists every problem; a second task with the same id names it; an unknown signal is refused."""
    async with served(short_tmp) as client:
        bad = task("t1", "true").model_copy(update={"driver_config": {"args": "x", "image": "y"}})
        with pytest.raises(TaskConfigError, match=r"config.command: .*config.args: .*unknown keys \['image'\]"):
            await client.start_task(bad)
        await client.start_task(task("t1", "exec sleep 60"))
        with pytest.raises(TaskExistsError, match=r"a task with id 't1' already exists"):
            await client.start_task(task("t1", "true"))
        with pytest.raises(DriverError, match=r"unknown signal 'SIGNOPE'"):
            await client.signal_task("t1", "SIGNOPE")
        with pytest.raises(DriverError, match=r"cannot run command '/nonexistent/cmd'"):
            await client.start_task(
                task("t2", "").model_copy(update={"driver_config": {"command": "/nonexistent/cmd"}})
            )
        with anyio.fail_after(15):
            await client.destroy_task("t1", force=True)


async def test_identity_fingerprint_events_signals_and_stats(short_tmp: Path) -> None:
    """PluginInfo says driver; fingerprint is healthy; events report start and exit; signal and stats reach the task."""
    fifo = make_fifo(short_tmp)
    async with served(short_tmp) as client:
        info = await client.plugin_info()
        assert (info.type, info.name) == (PLUGIN_TYPE_DRIVER, "raw-exec")
        assert (await client.capabilities()).send_signals is True
        with anyio.fail_after(15):
            async for fingerprint in client.fingerprint():
                assert fingerprint.health is HealthState.HEALTHY
                assert fingerprint.attributes["driver.raw-exec"] == Attribute(bool_val=True)
                break
            events = client.task_events()
            started = anyio.Event()

            async def first_event() -> str:
                started.set()
                event = await anext(events)
                return event.message

            messages: list[str] = []
            async with anyio.create_task_group() as tg:

                async def collect() -> None:
                    messages.append(await first_event())

                tg.start_soon(collect)
                await started.wait()
                await anyio.wait_all_tasks_blocked()
                await client.start_task(task("t1", f"trap 'echo hup > {fifo}' HUP; while :; do sleep 0.05; done"))
            await events.aclose()
            assert messages
            assert messages[0].startswith("task started")
            async for sample in client.task_stats("t1", 0.05):
                assert sample.resource_usage.memory_stats.rss > 0
                assert sample.timestamp > 0
                break
            await client.signal_task("t1", "HUP")
            assert await read_line(fifo) == "hup\n"
            await client.destroy_task("t1", force=True)
