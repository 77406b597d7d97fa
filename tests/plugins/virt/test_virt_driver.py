"""VirtDriver against libvirt's in-process test driver (``test:///default``): the task life cycle without qemu."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import libvirt
import pytest
from helpers.virt import Layout, make_image, make_layout, qemu_img_calls, recording_qemu_img, task_config

from plugin_host.driver import _convert as convert
from plugin_host.driver.api import (
    Capabilities,
    DriverPlugin,
    FsIsolation,
    HealthState,
    MountConfigSupport,
    NetIsolationMode,
    TaskHandle,
    TaskState,
)
from plugin_host.errors import DriverError, TaskNotFoundError
from plugin_host.plugins.virt import VirtDriver
from plugin_host.plugins.virt import driver as virt_driver

pytestmark = pytest.mark.anyio


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return make_layout(tmp_path)


@pytest.fixture
async def driver(layout: Layout) -> AsyncIterator[VirtDriver]:
    async with VirtDriver(layout.plugin_config()) as d:
        yield d


@pytest.fixture
def image(layout: Layout) -> Path:
    return make_image(layout.images / "base.img")


def _task_id() -> str:
    return f"alloc-1/web/{uuid.uuid4().hex[:8]}"


def _domain(name: str) -> tuple[int, int] | None:
    conn = libvirt.open("test:///default")
    try:
        state, reason = conn.lookupByName(name).state()
        return state, reason
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()


def _external(name: str, action: str) -> None:
    conn = libvirt.open("test:///default")
    try:
        getattr(conn.lookupByName(name), action)()
    finally:
        conn.close()


async def test_virt_driver_is_a_driver_plugin_with_upstream_capabilities(driver: VirtDriver) -> None:
    """VirtDriver satisfies the DriverPlugin protocol; capabilities are nomad-driver-virt's."""
    assert isinstance(driver, DriverPlugin)
    info = await driver.plugin_info()
    assert (info.type, info.name) == ("driver", "virt")
    assert await driver.capabilities() == Capabilities(
        send_signals=False,
        exec=False,
        fs_isolation=FsIsolation.IMAGE,
        network_isolation_modes=(NetIsolationMode.HOST,),
        mount_configs=MountConfigSupport.NONE,
        disable_log_collection=True,
    )


async def test_fingerprint_reports_libvirt_and_emulator_versions(driver: VirtDriver) -> None:
    """A reachable libvirt fingerprints healthy with driver.virt=true and integer versions."""
    stream = driver.fingerprint()
    first = await anext(stream)
    await stream.aclose()
    assert first.health is HealthState.HEALTHY
    attrs = first.attributes
    assert attrs["driver.virt"].bool_val is True
    assert attrs["driver.virt.libvirt.version"].int_val == libvirt.getVersion()
    assert isinstance(attrs["driver.virt.emulator.version"].int_val, int)
    assert attrs["driver.virt.accelerator"].string_val == "test"


_UNSET_BY_NOMAD = (
    "hostname",
    "os",
    "user_data",
    "timezone",
    "cmds",
    "default_user_authorized_ssh_key",
    "default_user_password",
    "use_thin_copy",
    "primary_disk_size",
)


async def test_a_task_config_as_nomad_sends_it_boots(driver: VirtDriver, layout: Layout, image: Path) -> None:
    """Nomad sends every attribute of the task config spec, nil where the job set none (cty msgpack), and an
    empty list for absent network_interface blocks: such a task, received over the wire, starts."""
    nulls: dict[str, Any] = dict.fromkeys(_UNSET_BY_NOMAD)
    sent = task_config(layout, _task_id(), image=str(image), network_interface=[], **nulls)
    received = convert.task_config_from_wire(convert.task_config_to_wire(sent))
    await driver.start_task(received)
    assert (await driver.inspect_task(sent.id)).state == TaskState.RUNNING
    await driver.destroy_task(sent.id, force=True)


async def test_start_returns_a_handle_that_recovers_in_a_fresh_driver(
    driver: VirtDriver, layout: Layout, image: Path
) -> None:
    """The handle survives a JSON round trip; a fresh driver re-attaches from it alone and sees the later exit."""
    task_id = _task_id()
    handle, network = await driver.start_task(task_config(layout, task_id, image=str(image)))
    assert network is None
    assert handle.state is TaskState.RUNNING
    assert handle.version == 1
    state = json.loads(handle.driver_state)
    assert state["domain"] == task_id.split("/", 1)[1].replace("/", "-")
    assert _domain(state["domain"]) == (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_BOOTED)

    stored = TaskHandle.model_validate_json(handle.model_dump_json())
    async with VirtDriver(layout.plugin_config()) as fresh:
        await fresh.recover_task(stored)
        await fresh.recover_task(stored)  # already tracked: nothing happens
        assert (await fresh.inspect_task(task_id)).state is TaskState.RUNNING
        await fresh.stop_task(task_id, timeout=5)
        with anyio.fail_after(5):
            result = await fresh.wait_task(task_id)
        assert result.exit_code == 0
        assert result.err is None
        await fresh.destroy_task(task_id)
    # The first driver still tracks the task; libvirt no longer has its domain.
    with pytest.raises(TaskNotFoundError):
        await driver.recover_task(stored.model_copy(update={"config": stored.config.model_copy(update={"id": "x"})}))


async def test_recover_of_a_missing_domain_is_task_not_found(driver: VirtDriver, layout: Layout, image: Path) -> None:
    """A handle whose domain was undefined outside the driver recovers to TaskNotFoundError."""
    task_id = _task_id()
    handle, _ = await driver.start_task(task_config(layout, task_id, image=str(image)))
    name = json.loads(handle.driver_state)["domain"]
    await driver.destroy_task(task_id, force=True)
    async with VirtDriver(layout.plugin_config()) as fresh:
        with pytest.raises(TaskNotFoundError, match=f"domain '{name}'"):
            await fresh.recover_task(handle)
        with pytest.raises(TaskNotFoundError):
            await fresh.inspect_task(task_id)


async def test_a_stopped_domain_recovers_as_exited(driver: VirtDriver, layout: Layout, image: Path) -> None:
    """A VM destroyed while no driver watched recovers as exited, with the forced power-off as its exit."""
    task_id = _task_id()
    handle, _ = await driver.start_task(task_config(layout, task_id, image=str(image)))
    name = json.loads(handle.driver_state)["domain"]
    async with VirtDriver(layout.plugin_config()) as fresh:
        await anyio.to_thread.run_sync(_external, name, "destroy")
        await fresh.recover_task(handle)
        status = await fresh.inspect_task(task_id)
        assert status.state is TaskState.EXITED
        assert status.exit_result is not None
        assert status.exit_result.exit_code == 137
        with anyio.fail_after(1):
            assert (await fresh.wait_task(task_id)).signal == 9
        await fresh.destroy_task(task_id)


async def test_bad_driver_state_is_a_driver_error(driver: VirtDriver, layout: Layout, image: Path) -> None:
    """A handle whose driver_state is not ours is refused naming the task."""
    handle, _ = await driver.start_task(task_config(layout, _task_id(), image=str(image)))
    bad = handle.model_copy(
        update={"driver_state": b"not json", "config": handle.config.model_copy(update={"id": "b"})}
    )
    with pytest.raises(DriverError, match="task 'b': driver_state is not a virt driver state"):
        await driver.recover_task(bad)
    await driver.destroy_task(handle.config.id, force=True)


async def test_external_destroy_is_a_non_zero_exit(driver: VirtDriver, layout: Layout, image: Path) -> None:
    """A VM destroyed behind the driver's back ends wait_task (woken by the lifecycle event) with a non-zero exit."""
    task_id = _task_id()
    handle, _ = await driver.start_task(task_config(layout, task_id, image=str(image)))
    name = json.loads(handle.driver_state)["domain"]
    results = []

    async def wait() -> None:
        results.append(await driver.wait_task(task_id))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            await anyio.to_thread.run_sync(_external, name, "destroy")
    assert results[0].exit_code != 0
    assert "destroyed" in (results[0].err or "")
    await driver.destroy_task(task_id)


async def test_destroy_removes_domain_overlay_and_seed_and_forgets_the_task(
    driver: VirtDriver, layout: Layout, image: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """destroy without force refuses a running VM; after stop it undefines the domain, deletes the thin copy and
    the seed, and the id is unknown afterwards."""
    log = tmp_path / "qemu-img.log"
    recording_qemu_img(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    task_id = _task_id()
    handle, _ = await driver.start_task(task_config(layout, task_id, image=str(image), use_thin_copy=True))
    state = json.loads(handle.driver_state)
    assert sorted(layout.data_files()) == sorted(os.path.basename(state[k]) for k in ("overlay", "seed"))
    assert any(call.startswith("create -f qcow2 -b") and "-F raw" in call for call in qemu_img_calls(log))

    with pytest.raises(DriverError, match=f"task '{task_id}' is still running"):
        await driver.destroy_task(task_id)
    await driver.stop_task(task_id, timeout=5)
    await driver.stop_task(task_id, timeout=5)  # idempotent
    await driver.destroy_task(task_id)
    assert layout.data_files() == []
    assert _domain(state["domain"]) is None
    for call in (driver.wait_task(task_id), driver.inspect_task(task_id), driver.destroy_task(task_id)):
        with pytest.raises(TaskNotFoundError, match=task_id):
            await call


async def test_thin_copy_is_at_least_the_base_and_primary_disk_size(driver: VirtDriver, layout: Layout) -> None:
    """The overlay's backing format is the detected one and its virtual size is max(base, primary_disk_size)."""
    big = make_image(layout.images / "big.qcow2", size="3G", fmt="qcow2")
    small = make_image(layout.images / "small.img", size="16M")
    sizes = {}
    for base, disk_mb in ((big, 2000), (small, 2048)):
        task_id = _task_id()
        handle, _ = await driver.start_task(
            task_config(layout, task_id, image=str(base), use_thin_copy=True, primary_disk_size=disk_mb)
        )
        overlay = json.loads(handle.driver_state)["overlay"]
        info = json.loads(
            subprocess.run(["qemu-img", "info", "--output=json", overlay], check=True, capture_output=True).stdout
        )
        sizes[base.name] = (info["virtual-size"], info["backing-filename-format"])
        await driver.destroy_task(task_id, force=True)
    assert sizes == {"big.qcow2": (3 * 1024**3, "qcow2"), "small.img": (2048 * 1024**2, "raw")}


async def test_stats_are_bytes_and_nanoseconds(driver: VirtDriver, layout: Layout, image: Path) -> None:
    """Stats report memory in bytes and the timestamp in Unix nanoseconds, and end when the VM exits."""
    task_id = _task_id()
    await driver.start_task(task_config(layout, task_id, image=str(image)))
    before = time.time_ns()
    stream = driver.task_stats(task_id, interval=0.05)
    first = await anext(stream)
    second = await anext(stream)
    assert before <= first.timestamp <= time.time_ns()
    assert first.resource_usage.memory_stats.usage == 512 * 1024 * 1024
    assert "Usage" in first.resource_usage.memory_stats.measured
    assert second.resource_usage.cpu_stats.percent >= 0.0
    await driver.stop_task(task_id, timeout=5)
    with anyio.fail_after(5):
        rest = [usage async for usage in stream]
    assert len(rest) <= 1
    await driver.destroy_task(task_id)


async def test_task_events_tell_start_exit_and_destroy(driver: VirtDriver, layout: Layout, image: Path) -> None:
    """The event stream carries the start, the exit and the destroy of a task."""
    task_id = _task_id()
    events = driver.task_events()
    first = anext(events)  # subscribes before the start
    async with anyio.create_task_group() as tg:
        received = []

        async def collect() -> None:
            received.append(await first)
            received.extend([await anext(events) for _ in range(3)])

        tg.start_soon(collect)
        await anyio.wait_all_tasks_blocked()
        await driver.start_task(task_config(layout, task_id, image=str(image)))
        await driver.stop_task(task_id, timeout=5)
        await driver.destroy_task(task_id)
    await events.aclose()
    messages = [e.message for e in received]
    assert messages[0].startswith("VM ")
    assert "started" in messages[0]
    assert "exited with code 0" in messages[1]
    assert messages[2] == "VM shut down"
    assert "destroyed and its files removed" in messages[3]
    assert all(e.task_id == task_id for e in received)


async def test_signals_and_exec_are_refused(driver: VirtDriver, layout: Layout, image: Path) -> None:
    """signal_task and exec_task say the driver cannot; an unknown id is TaskNotFoundError first."""
    task_id = _task_id()
    await driver.start_task(task_config(layout, task_id, image=str(image)))
    with pytest.raises(DriverError, match="cannot send signals"):
        await driver.signal_task(task_id, "SIGHUP")
    with pytest.raises(DriverError, match="cannot exec"):
        await driver.exec_task(task_id, ["true"], 1.0)
    with pytest.raises(TaskNotFoundError):
        await driver.signal_task("nope", "SIGHUP")
    await driver.destroy_task(task_id, force=True)


async def test_password_never_reaches_logs_or_reprs(
    layout: Layout, image: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The emulator password and the default user's password appear in no log line and no repr."""
    secret, user_secret = "s3cret-emulator", "s3cret-user"
    caplog.set_level(logging.DEBUG, logger="plugin_host")
    plugin = {
        "emulator": {"uri": "test:///default", "user": "someone", "password": secret},
        "data_dir": str(layout.data_dir),
        "image_paths": [str(layout.images)],
    }
    async with VirtDriver(plugin) as d:
        assert secret not in repr(d.config)
        task_id = _task_id()
        await d.start_task(task_config(layout, task_id, image=str(image), default_user_password=user_secret))
        await d.destroy_task(task_id, force=True)
    assert secret not in caplog.text
    assert user_secret not in caplog.text


async def test_a_task_event_consumer_that_stops_reading_loses_what_does_not_fit_and_holds_up_nothing(
    driver: VirtDriver, layout: Layout, image: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With a buffer of 2, a stalled consumer keeps the next two events and loses the rest (one warning, naming the
    first lost); starts still return, another consumer gets every event, and the stalled one gets new events again
    once it has read its backlog (Nomad's eventer drops events for a consumer that is not keeping up)."""
    monkeypatch.setattr(virt_driver, "_EVENT_BUFFER", 2)
    ids = [_task_id() for _ in range(6)]
    stalled, reader = driver.task_events(), driver.task_events()
    received: list[str] = []
    received_by_stalled: list[str] = []

    async def read_all() -> None:
        async for event in reader:
            received.append(event.task_id)
            if len(received) == len(ids):
                return

    async def read_one() -> None:
        received_by_stalled.append((await anext(stalled)).task_id)  # the generator subscribes on its first read

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_all)
            tg.start_soon(read_one)
            await anyio.wait_all_tasks_blocked()
            for task_id in ids[:5]:
                await driver.start_task(task_config(layout, task_id, image=str(image)))
                await anyio.wait_all_tasks_blocked()  # after the first, the stalled consumer reads nothing
            assert received == ids[:5]
            assert received_by_stalled == ids[:1]
            assert [(await anext(stalled)).task_id for _ in range(2)] == ids[1:3]
            await driver.start_task(task_config(layout, ids[5], image=str(image)))
            assert (await anext(stalled)).task_id == ids[5]
        assert received == ids
        await stalled.aclose()
        await reader.aclose()
        for task_id in ids:
            await driver.destroy_task(task_id, force=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "virt: a task event subscriber is 2 events behind; dropping events for it until it reads" in warnings[0]
    assert f"(first dropped: task '{ids[3]}': 'VM " in warnings[0]
