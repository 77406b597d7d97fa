"""VirtDriver against a real libvirtd and qemu, booting the tiny guest of tests/virt_guest.py.

These tests need root, qemu-system-x86, qemu-utils and a running libvirtd (``tools/setup-test-env`` installs and
starts them). They never skip: with no libvirtd at qemu:///system they fail, saying so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import libvirt
import pytest
from helpers.virt import Layout, make_layout, task_config
from helpers.virt_guest import READY_MARK, build_guest

from plugin_host.driver.api import ExitResult, HealthState, TaskConfig, TaskHandle, TaskState
from plugin_host.plugins.virt import VirtConfig, VirtDriver

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(150)]

URI = "qemu:///system"
BOOT_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def guest() -> Path:
    """The guest disk image (built once, cached across runs); fails when libvirtd does not answer."""
    try:
        conn = libvirt.open(URI)
    except libvirt.libvirtError as exc:
        pytest.fail(f"libvirtd unreachable at {URI} ({exc.get_error_message()}); start it (see tools/setup-test-env)")
    conn.close()
    return build_guest()


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return make_layout(tmp_path)


def _config(layout: Layout, guest: Path) -> VirtConfig:
    return VirtConfig(emulator={"uri": URI}, data_dir=str(layout.data_dir), image_paths=(str(guest.parent),))


@pytest.fixture
async def driver(layout: Layout, guest: Path) -> AsyncIterator[VirtDriver]:
    async with VirtDriver(_config(layout, guest)) as d:
        yield d


@pytest.fixture(autouse=True)
def _no_leftover_domains() -> Iterator[None]:
    """Whatever a test leaves running is destroyed and undefined (only domains it created: virt-test-*)."""
    yield
    conn = libvirt.open(URI)
    try:
        for dom in conn.listAllDomains():
            if dom.name().startswith("virt-test-"):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
    finally:
        conn.close()


def _task(layout: Layout, guest: Path, script: str, **extra: Any) -> tuple[str, TaskConfig]:
    task_id = f"alloc-1/virt-test-{uuid.uuid4().hex[:8]}"
    config = task_config(
        layout, task_id, image=str(guest), use_thin_copy=True, user_data=f"#!/bin/sh\n{script}\n", **extra
    )
    return task_id, config


async def _console_shows(handle: TaskHandle, text: str) -> str:
    """Wait until the VM's serial console log contains ``text``; returns the log."""
    path = Path(json.loads(handle.driver_state)["console"])
    with anyio.fail_after(BOOT_TIMEOUT):
        while True:
            log = path.read_text(errors="replace") if path.exists() else ""
            if text in log:
                return log
            await anyio.sleep(0.1)


async def _wait(driver: VirtDriver, task_id: str) -> ExitResult:
    with anyio.fail_after(BOOT_TIMEOUT):
        return await driver.wait_task(task_id)


async def test_guest_poweroff_is_exit_zero(driver: VirtDriver, layout: Layout, guest: Path) -> None:
    """A started VM runs, reads its seed (instance id, hostname) and its power-off is exit code 0."""
    task_id, config = _task(layout, guest, "poweroff -f", hostname="guest-one")
    handle, _ = await driver.start_task(config)
    assert (await driver.inspect_task(task_id)).state is TaskState.RUNNING
    result = await _wait(driver, task_id)
    assert result == ExitResult(exit_code=0)
    log = await _console_shows(handle, "seed meta-data")
    domain = json.loads(handle.driver_state)["domain"]
    assert f'instance-id: "{domain}"' in log
    assert 'local-hostname: "guest-one"' in log
    await driver.destroy_task(task_id)
    assert layout.data_files() == []


async def test_guest_panic_is_a_crashed_exit(driver: VirtDriver, layout: Layout, guest: Path) -> None:
    """A guest kernel panic (reported by pvpanic) ends the task non-zero with a crashed error."""
    task_id, config = _task(layout, guest, "echo c > /proc/sysrq-trigger")
    await driver.start_task(config)
    result = await _wait(driver, task_id)
    assert result.exit_code != 0
    assert result.err is not None
    assert result.err.startswith("crashed")
    await driver.destroy_task(task_id)


async def test_stop_destroys_a_guest_that_ignores_acpi(driver: VirtDriver, layout: Layout, guest: Path) -> None:
    """stop_task presses the power button; a guest ignoring it is destroyed after the timeout."""
    task_id, config = _task(layout, guest, "touch /run/ignore-acpi")
    handle, _ = await driver.start_task(config)
    await _console_shows(handle, READY_MARK)
    with anyio.fail_after(30):
        await driver.stop_task(task_id, timeout=2.0)
    status = await driver.inspect_task(task_id)
    assert status.state is TaskState.EXITED
    assert status.exit_result == ExitResult(exit_code=137, signal=9, err="destroyed: the VM was powered off forcibly")
    assert "power button ignored" in await _console_shows(handle, "power button ignored")
    await driver.destroy_task(task_id)


_CHILD = """
import sys, anyio
from plugin_host.driver.api import TaskConfig
from plugin_host.plugins.virt import VirtConfig, VirtDriver

async def main() -> None:
    async with VirtDriver(VirtConfig.model_validate_json(sys.argv[1])) as driver:
        handle, _ = await driver.start_task(TaskConfig.model_validate_json(sys.argv[2]))
        print(handle.model_dump_json(), flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


async def test_a_killed_host_is_recovered_and_wait_sees_the_later_exit(
    layout: Layout, guest: Path, tmp_path: Path
) -> None:
    """A host process SIGKILLed while its VM runs: a fresh driver recovers from driver_state alone, and wait_task
    returns the exit that happens afterwards (a power-button press from outside the driver)."""
    task_id, config = _task(layout, guest, "true")
    plugin = _config(layout, guest)
    child = await anyio.open_process(
        [sys.executable, "-c", _CHILD, plugin.model_dump_json(), config.model_dump_json()],
        cwd=str(Path(__file__).resolve().parents[3]),
    )
    try:
        assert child.stdout is not None
        with anyio.fail_after(60):
            line = b""
            async for chunk in child.stdout:
                line += chunk
                if b"\n" in line:
                    break
    finally:
        child.send_signal(signal.SIGKILL)
        with anyio.CancelScope(shield=True):
            await child.wait()
            await child.aclose()
    handle = TaskHandle.model_validate_json(line.split(b"\n")[0])
    await _console_shows(handle, READY_MARK)

    async with VirtDriver(plugin) as fresh:
        await fresh.recover_task(handle)
        assert (await fresh.inspect_task(task_id)).state is TaskState.RUNNING
        domain = json.loads(handle.driver_state)["domain"]
        await anyio.run_process(["virsh", "-c", URI, "shutdown", domain])
        assert await _wait(fresh, task_id) == ExitResult(exit_code=0)
        await fresh.destroy_task(task_id)
    assert layout.data_files() == []


def _stop_libvirtd() -> None:
    pid = int(Path("/run/libvirtd.pid").read_text().strip())
    os.kill(pid, signal.SIGTERM)
    # libvirtd is not our child: wait for its /proc entry to go (bounded by the caller's fail_after).
    while Path(f"/proc/{pid}").exists():
        anyio.from_thread.run(anyio.sleep, 0.05)


def _start_libvirtd() -> None:
    subprocess.run(["libvirtd", "-d"], check=True)


async def _libvirtd_answers() -> None:
    with anyio.fail_after(60):
        while True:
            try:
                conn = await anyio.to_thread.run_sync(libvirt.open, URI)
            except libvirt.libvirtError:
                await anyio.sleep(0.1)
                continue
            conn.close()
            return


async def test_libvirtd_restart_is_survived(driver: VirtDriver, layout: Layout, guest: Path) -> None:
    """libvirtd restarts while a VM runs: the fingerprint goes undetected and back to healthy, and the next calls
    (inspect, stop by ACPI, wait) work on a new connection."""
    task_id, config = _task(layout, guest, "true")
    handle, _ = await driver.start_task(config)
    await _console_shows(handle, READY_MARK)
    fingerprints = VirtDriver(_config(layout, guest), fingerprint_period=0.5)
    async with fingerprints:
        stream = fingerprints.fingerprint()
        assert (await anext(stream)).health is HealthState.HEALTHY
        with anyio.fail_after(30):
            await anyio.to_thread.run_sync(_stop_libvirtd)
            down = await anext(stream)
        assert down.health is HealthState.UNDETECTED
        assert URI in down.health_description
        await anyio.to_thread.run_sync(_start_libvirtd)
        with anyio.fail_after(60):
            up = await anext(stream)
        assert up.health is HealthState.HEALTHY
        await stream.aclose()
    await _libvirtd_answers()
    assert (await driver.inspect_task(task_id)).state is TaskState.RUNNING
    with anyio.fail_after(60):
        await driver.stop_task(task_id, timeout=45.0)
    assert await _wait(driver, task_id) == ExitResult(exit_code=0)
    await driver.destroy_task(task_id)
