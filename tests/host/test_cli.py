"""The plugin-host command as a real process: run, status, state show, signals and one-line errors."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from helpers.cli import Lines, run_cli, status_until

pytestmark = pytest.mark.anyio

_HOST_HCL = """
state_dir = "st"
plugin "fs-device" {
  config {
    dir         = "devices"
    list_period = "50ms"
  }
}
"""


@pytest.fixture
def workdir(short_tmp: Path) -> Path:
    """A working directory with a host config using relative paths, and a device directory with dev0."""
    (short_tmp / "host.hcl").write_text(_HOST_HCL)
    (short_tmp / "devices").mkdir()
    (short_tmp / "devices" / "dev0").write_text("")
    (short_tmp / "devices" / "dev0").chmod(0o644)
    return short_tmp


def _sockets(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if stat.S_ISSOCK(p.lstat().st_mode)]


async def test_run_status_state_show_and_sigterm(workdir: Path) -> None:
    """run serves until SIGTERM; status sees a new device, state show works meanwhile; exit 0 with no sockets left."""
    stderr = (workdir / "run.err").open("wb")
    try:
        process = await anyio.open_process(
            [sys.executable, "-m", "plugin_host", "run", "--config", "host.hcl"],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stderr=stderr,
        )
        async with process:
            lines = Lines(process)
            await lines.until("plugin-host running")
            await lines.until("fs-device nomad/file/mock dev0 healthy")

            (workdir / "devices" / "dev1").write_text("")
            status = await status_until(workdir, "dev1")
            [plugin] = status["plugins"]
            assert plugin["name"] == "fs-device"
            assert plugin["state"] == "running"
            assert plugin["socket_path"] == str(workdir / "st" / "run" / "fs-device.sock")
            await lines.until("fs-device nomad/file/mock dev1 healthy")

            shown = await run_cli(workdir, "state", "show", "--json", "--config", "host.hcl")
            assert shown.returncode == 0, shown.stderr
            [registration] = json.loads(shown.stdout)["plugins"]
            assert (registration["type"], registration["name"], registration["alloc_id"]) == (
                "device",
                "fs-device",
                "host",
            )

            table = await run_cli(workdir, "status", "--config", "host.hcl")
            assert b"fs-device  nomad/file/mock  dev1    healthy" in table.stdout

            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(15):
                assert await process.wait() == 0
    finally:
        stderr.close()
    assert _sockets(workdir) == []


async def test_run_with_missing_config_exits_2_with_one_line(short_tmp: Path) -> None:
    """run --config missing.hcl exits 2 with one stderr line naming the path."""
    result = await run_cli(short_tmp, "run", "--config", "missing.hcl")
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()
    assert "missing.hcl" in line


async def test_bad_plugin_config_exits_2_naming_plugin_and_field(workdir: Path) -> None:
    """A bad fs-device config exits 2 with one line naming the plugin and the field."""
    (workdir / "host.hcl").write_text(_HOST_HCL.replace('"50ms"', '"0s"'))
    result = await run_cli(workdir, "run", "--config", "host.hcl")
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()
    assert 'plugin "fs-device" config' in line
    assert "list_period" in line


async def test_status_without_a_host_exits_1_with_one_line(workdir: Path) -> None:
    """status with no host running exits 1 with one stderr line saying so."""
    result = await run_cli(workdir, "status", "--config", "host.hcl")
    assert result.returncode == 1
    [line] = result.stderr.decode().splitlines()
    assert "no plugin-host is running" in line


async def test_state_show_without_a_state_file_exits_1_with_one_line(workdir: Path) -> None:
    """state show before any run exits 1 with one stderr line naming the state file."""
    result = await run_cli(workdir, "state", "show", "--config", "host.hcl")
    assert result.returncode == 1
    [line] = result.stderr.decode().splitlines()
    assert "plugin-host.db" in line


async def test_settle_gc_freezes_start_up_objects_and_makes_full_collections_rarer() -> None:
    """settle_gc (what `plugin-host run` calls once the host runs) freezes what exists and sets the third threshold
    to FULL_GC_EVERY, keeping the first two (checked in a fresh interpreter: the test process is left alone)."""
    code = (
        "import gc; from plugin_host.cli import FULL_GC_EVERY, settle_gc; before = gc.get_threshold(); settle_gc(); "
        "print(gc.get_freeze_count() > 1000, gc.get_threshold() == (*before[:2], FULL_GC_EVERY), FULL_GC_EVERY)"
    )
    with anyio.fail_after(20):
        done = await anyio.run_process([sys.executable, "-c", code])
    assert done.stdout.split() == [b"True", b"True", b"100"]
