"""DriverManager keeps each driver's latest fingerprint: the newest message wins, a failed stream leaves an error
message, removing the driver closes its stream, and asking for an unknown driver names it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from plugin_host.driver import DriverFingerprint, DriverManager, HealthState
from plugin_host.errors import DriverError, PluginNotFoundError
from plugin_host.plugins.rawexec import RawExecDriver

pytestmark = pytest.mark.anyio


class ScriptedHealthDriver(RawExecDriver):
    """raw-exec whose fingerprint stream sends what the test puts in ``health``; a ``None`` fails the stream."""

    def __init__(self, directory: Path) -> None:
        super().__init__({"state_dir": str(directory / "exec")})
        self.send, self._receive = anyio.create_memory_object_stream[DriverFingerprint | None](10)
        self.closed = anyio.Event()

    async def fingerprint(self) -> AsyncIterator[DriverFingerprint]:
        """Each message the test sends, until it sends None (then the stream fails)."""
        try:
            async for message in self._receive:
                if message is None:
                    raise DriverError("backend unreachable")
                yield message
        finally:
            self._receive.close()
            self.closed.set()


async def _settled() -> None:
    """Let every in-process task run until it waits (the manager has read what the driver sent)."""
    await anyio.wait_all_tasks_blocked()


async def test_raw_exec_fingerprint_is_kept_as_healthy(short_tmp: Path) -> None:
    """After add_driver, raw-exec's one fingerprint (healthy, "Healthy") is what fingerprint() returns."""
    async with DriverManager() as drivers:
        await drivers.add_driver("raw-exec", RawExecDriver({"state_dir": str(short_tmp / "exec")}))
        with anyio.fail_after(5):
            await _settled()
        fingerprint = drivers.fingerprint("raw-exec")
        assert fingerprint is not None
        assert (fingerprint.health, fingerprint.health_description, fingerprint.error) == (
            HealthState.HEALTHY,
            "Healthy",
            None,
        )


async def test_the_latest_fingerprint_wins_and_a_failed_stream_leaves_its_error(short_tmp: Path) -> None:
    """None before the first message; then the newest message; a stream that raises leaves an error message."""
    driver = ScriptedHealthDriver(short_tmp)
    with driver.send:
        async with DriverManager() as drivers:
            await drivers.add_driver("flaky", driver)
            with anyio.fail_after(5):
                await _settled()
                assert drivers.fingerprint("flaky") is None
                await driver.send.send(DriverFingerprint(health=HealthState.HEALTHY, health_description="ok"))
                await driver.send.send(DriverFingerprint(health=HealthState.UNHEALTHY, health_description="disk full"))
                await _settled()
                latest = drivers.fingerprint("flaky")
                assert latest is not None
                assert (latest.health, latest.health_description) == (HealthState.UNHEALTHY, "disk full")
                await driver.send.send(None)
                await driver.closed.wait()
                await _settled()
            failed = drivers.fingerprint("flaky")
            assert failed is not None
            assert failed.error == "backend unreachable"


async def test_removing_a_driver_closes_its_fingerprint_stream_and_forgets_it(short_tmp: Path) -> None:
    """remove_driver ends the stream (its generator is closed); fingerprint() then names the unknown driver."""
    driver = ScriptedHealthDriver(short_tmp)
    with driver.send:
        async with DriverManager() as drivers:
            await drivers.add_driver("flaky", driver)
            await drivers.remove_driver("flaky")
            with anyio.fail_after(5):
                await driver.closed.wait()
            with pytest.raises(PluginNotFoundError, match=r"no driver named 'flaky'; managed: \[\]"):
                drivers.fingerprint("flaky")
