"""raw-exec's task event stream: a consumer that stops reading loses the events that do not fit its buffer (as
Nomad's eventer drops them for a consumer that is not keeping up), without holding up the driver or other consumers."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest
from helpers.driver import task

from plugin_host.plugins.rawexec import driver as rawexec_driver
from plugin_host.plugins.rawexec.driver import RawExecDriver

pytestmark = pytest.mark.anyio

WAIT = 20.0


async def test_a_consumer_that_stops_reading_loses_what_does_not_fit_and_holds_up_nothing(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With a buffer of 2, a stalled consumer keeps the next two events and loses the rest (one warning, naming the
    first lost); starts still return, another consumer gets every event, and the stalled one gets new events again
    once it has read its backlog."""
    monkeypatch.setattr(rawexec_driver, "_EVENT_BUFFER", 2)
    driver = RawExecDriver({"state_dir": str(short_tmp / "exec")})
    stalled, reader = driver.task_events(), driver.task_events()
    received: list[str] = []

    async def read_all() -> None:
        async for event in reader:
            received.append(event.task_id)
            if len(received) == 6:
                return

    async def read_one() -> None:
        received_by_stalled.append((await anext(stalled)).task_id)  # the generator subscribes on its first read

    received_by_stalled: list[str] = []
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_all)
            tg.start_soon(read_one)
            await anyio.wait_all_tasks_blocked()
            for n in range(1, 6):
                await driver.start_task(task(f"t{n}", "exit 0"))  # after t1 the stalled consumer reads nothing
                await anyio.wait_all_tasks_blocked()
            assert received == ["t1", "t2", "t3", "t4", "t5"]
            assert received_by_stalled == ["t1"]
            assert [(await anext(stalled)).task_id for _ in range(2)] == ["t2", "t3"]
            await driver.start_task(task("t6", "exit 0"))
            assert (await anext(stalled)).task_id == "t6"
        assert received[-1] == "t6"
        await stalled.aclose()
        await reader.aclose()
        for n in range(1, 7):
            await driver.destroy_task(f"t{n}", force=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "raw-exec: a task event subscriber is 2 events behind; dropping events for it until it reads" in warnings[0]
    assert "(first dropped: task 't4': 'task started (pid " in warnings[0]
