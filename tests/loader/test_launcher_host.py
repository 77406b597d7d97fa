"""External plugins across a killed host: `plugin-host run` SIGKILLed while its go-plugin plugin runs, then started
again, reattaches to the same plugin process instead of starting a second one."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest
from helpers.cli import Lines, status_until
from helpers.launcher import write_fsdevice

from plugin_host.loader.store import PluginProcessRecord
from plugin_host.state import SqliteStateStore

pytestmark = pytest.mark.anyio


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (a reparented child may wait for its reaper)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


async def _records(workdir: Path) -> list[PluginProcessRecord]:
    async with SqliteStateStore(workdir / "st" / "plugin-host.db", read_only=True) as store:
        return await store.list_plugin_processes()


async def _start_host(workdir: Path) -> tuple[anyio.abc.Process, Lines]:
    with (workdir / "run.err").open("ab") as stderr:  # the child keeps its own descriptor
        process = await anyio.open_process(
            [sys.executable, "-m", "plugin_host", "run", "--config", "host.hcl"], cwd=workdir, stderr=stderr
        )
    lines = Lines(process)
    await lines.until("plugin-host running")
    return process, lines


async def test_killed_host_reattaches_to_its_running_plugin(short_tmp: Path) -> None:
    """SIGKILL the host: its plugin keeps running; the next host reattaches to that pid, and its clean stop ends it."""
    (short_tmp / "plugins").mkdir()
    (short_tmp / "devices").mkdir()
    (short_tmp / "devices" / "dev0").write_text("zero")
    write_fsdevice(short_tmp / "plugins")
    (short_tmp / "host.hcl").write_text(
        'state_dir = "st"\nplugin_dir = "plugins"\n'
        f'plugin "fsdev" {{\n  config {{\n    dir = "{short_tmp / "devices"}"\n    list_period = "50ms"\n  }}\n}}\n'
    )
    first, _ = await _start_host(short_tmp)
    plugin_pid = None
    try:
        await status_until(short_tmp, "dev0")
        (record,) = await _records(short_tmp)
        plugin_pid = record.pid
        first.send_signal(signal.SIGKILL)
        with anyio.fail_after(10):
            await first.wait()
        assert _running(plugin_pid), "the plugin must outlive a killed host"

        second, _ = await _start_host(short_tmp)
        try:
            status = await status_until(short_tmp, "dev0")
            (again,) = await _records(short_tmp)
            assert (again.pid, again.start_time) == (record.pid, record.start_time)
            assert [p["name"] for p in status["plugins"]] == ["fsdev"]
        finally:
            second.send_signal(signal.SIGTERM)
            with anyio.fail_after(20):
                assert await second.wait() == 0
        assert not _running(plugin_pid)
        assert await _records(short_tmp) == []
    finally:
        if first.returncode is None:
            first.kill()
        if plugin_pid is not None and _running(plugin_pid):
            os.kill(plugin_pid, signal.SIGKILL)
