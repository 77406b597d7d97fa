"""The virt driver's bad-input table: every bad task is refused before anything is created (libvirt test driver)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import libvirt
import pytest
from helpers.virt import Layout, make_image, make_layout, qemu_img_calls, recording_qemu_img, task_config

from plugin_host.driver.api import HealthState
from plugin_host.errors import DriverError, TaskConfigError, TaskExistsError
from plugin_host.plugins.virt import VirtDriver

pytestmark = pytest.mark.anyio


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return make_layout(tmp_path)


@pytest.fixture
def qemu_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every qemu-img the driver runs is recorded here (a wrapper shadows the real one on PATH)."""
    log = tmp_path / "qemu-img.log"
    recording_qemu_img(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.fixture
async def driver(layout: Layout) -> AsyncIterator[VirtDriver]:
    async with VirtDriver(layout.plugin_config()) as d:
        yield d


def _task_id() -> str:
    return f"alloc-1/web/{uuid.uuid4().hex[:8]}"


def _domain_names() -> set[str]:
    conn = libvirt.open("test:///default")
    try:
        return {d.name() for d in conn.listAllDomains()}
    finally:
        conn.close()


def _outside_image(layout: Layout, how: str) -> tuple[str, str]:
    """An image outside the allow-list, given directly, via '..' or via a symlink; (given path, resolved path)."""
    target = make_image(layout.outside / "disk.img")
    if how == "direct":
        return str(target), str(target)
    if how == "dotdot":
        return str(layout.images / ".." / "outside" / "disk.img"), str(target)
    link = layout.images / "innocent.img"
    link.symlink_to(target)
    return str(link), str(target)


@pytest.mark.parametrize("thin", [False, True], ids=["full", "thin"])
@pytest.mark.parametrize("how", ["direct", "dotdot", "symlink"])
async def test_image_outside_allow_list_is_refused_before_anything_is_created(
    driver: VirtDriver, layout: Layout, qemu_log: Path, how: str, thin: bool
) -> None:
    """An image outside image_paths (directly, via '..', via a symlink) names the resolved path and the allow-list;
    no file appears, qemu-img never runs and no domain is defined."""
    given, resolved = _outside_image(layout, how)
    before = _domain_names()
    config = task_config(layout, _task_id(), image=given, use_thin_copy=thin)
    with pytest.raises(TaskConfigError) as caught:
        await driver.start_task(config)
    message = str(caught.value)
    assert f"image: {resolved!r}" in message
    assert "outside the allowed image paths" in message
    assert str(layout.images) in message
    assert str(layout.data_dir) in message
    assert str(layout.alloc_dir) in message
    assert layout.data_files() == []
    assert qemu_img_calls(qemu_log) == []
    assert _domain_names() == before


def _image_backed_by(layout: Layout, backing: str, fmt: str = "raw") -> Path:
    """A qcow2 image inside the allow-list whose backing file is ``backing`` (not opened: ``-u``)."""
    path = layout.images / "evil.qcow2"
    env = {**os.environ, "QEMU_IMG_UNRECORDED": "1"}
    command = ["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", fmt, str(path), "16M"]
    subprocess.run(command, check=True, env=env)
    return path


@pytest.mark.parametrize("thin", [False, True], ids=["full", "thin"])
@pytest.mark.parametrize("backing", ["outside", "json"])
async def test_image_backed_by_a_file_outside_the_allow_list_is_refused(
    driver: VirtDriver, layout: Layout, qemu_log: Path, backing: str, thin: bool
) -> None:
    """An allowed image whose backing file lies outside the allow-list (or is no local file at all) is refused
    naming it: the VM would otherwise read any host file. No file, no overlay, no domain."""
    secret = make_image(layout.outside / "host-disk.img")
    reference = str(secret) if backing == "outside" else f'json:{{"driver":"file","filename":"{secret}"}}'
    image = _image_backed_by(layout, reference)
    before = _domain_names()
    with pytest.raises(TaskConfigError) as caught:
        await driver.start_task(task_config(layout, _task_id(), image=str(image), use_thin_copy=thin))
    message = str(caught.value)
    assert "backing file" in message
    assert str(secret) in message
    assert "outside the allowed image paths" in message
    assert layout.data_files() == []
    assert not [call for call in qemu_img_calls(qemu_log) if call.startswith("create")]
    assert _domain_names() == before


async def test_backing_chain_inside_the_allow_list_is_accepted(driver: VirtDriver, layout: Layout) -> None:
    """An image backed by another allowed image boots (thin copy of the chain)."""
    base = make_image(layout.images / "base.img")
    image = _image_backed_by(layout, str(base))
    task_id = _task_id()
    await driver.start_task(task_config(layout, task_id, image=str(image), use_thin_copy=True))
    assert (await driver.inspect_task(task_id)).state == "running"
    await driver.destroy_task(task_id, force=True)


async def test_missing_image_is_named_and_nothing_is_left(driver: VirtDriver, layout: Layout, qemu_log: Path) -> None:
    """A missing image inside the allow-list is named; data_dir stays empty and qemu-img never runs."""
    missing = layout.images / "nope.qcow2"
    with pytest.raises(TaskConfigError, match=r"image: '.*nope\.qcow2' does not exist"):
        await driver.start_task(task_config(layout, _task_id(), image=str(missing), use_thin_copy=True))
    assert layout.data_files() == []
    assert qemu_img_calls(qemu_log) == []


async def test_several_problems_are_reported_in_one_error(driver: VirtDriver, layout: Layout, qemu_log: Path) -> None:
    """A bad hostname, two interfaces and too little memory in one task come back as one error listing all three."""
    image = make_image(layout.images / "ok.img")
    bridge = {"bridge": {"name": "br0"}}
    config = task_config(
        layout, _task_id(), memory_mb=64, image=str(image), hostname="-bad_host-", network_interface=[bridge, bridge]
    )
    with pytest.raises(TaskConfigError) as caught:
        await driver.start_task(config)
    message = str(caught.value)
    assert "3 problems" in message
    assert "hostname: '-bad_host-' is not an RFC 1123 label" in message
    assert "network_interface: 2 interfaces configured; at most 1" in message
    assert "memory: 64 MB assigned; at least 500 MB" in message
    assert layout.data_files() == []
    assert qemu_img_calls(qemu_log) == []


async def test_no_cores_and_small_disk_are_problems(driver: VirtDriver, layout: Layout) -> None:
    """A task without reserved cores and with a primary disk below the minimum is refused naming both."""
    image = make_image(layout.images / "ok.img")
    config = task_config(layout, _task_id(), cpuset="", image=str(image), primary_disk_size=10)
    with pytest.raises(TaskConfigError) as caught:
        await driver.start_task(config)
    assert "cpus: no cores reserved" in str(caught.value)
    assert "primary_disk_size: 10 MB; at least 2000 MB" in str(caught.value)


async def test_same_task_id_twice_is_refused_naming_the_id(driver: VirtDriver, layout: Layout) -> None:
    """Starting a task id the driver already runs fails naming the id; the first VM is untouched."""
    image = make_image(layout.images / "ok.img")
    task_id = _task_id()
    await driver.start_task(task_config(layout, task_id, image=str(image)))
    with pytest.raises(TaskExistsError, match=f"task '{task_id}' already exists"):
        await driver.start_task(task_config(layout, task_id, image=str(image)))
    assert (await driver.inspect_task(task_id)).state == "running"
    await driver.destroy_task(task_id, force=True)


@pytest.mark.parametrize("kind", ["missing", "directory"])
async def test_unreadable_user_data_path_is_named(
    driver: VirtDriver, layout: Layout, qemu_log: Path, kind: str
) -> None:
    """A user_data path that cannot be read is named in the error; nothing is created."""
    image = make_image(layout.images / "ok.img")
    path = layout.outside / ("absent.yaml" if kind == "missing" else "")
    config = task_config(layout, _task_id(), image=str(image), user_data=str(path))
    with pytest.raises(TaskConfigError, match=f"user_data: file '{path}' cannot be read"):
        await driver.start_task(config)
    assert layout.data_files() == []
    assert qemu_img_calls(qemu_log) == []


async def test_unknown_task_config_key_is_a_task_config_error(driver: VirtDriver, layout: Layout) -> None:
    """An unknown key in the task's config block is refused naming it and the allowed keys."""
    image = make_image(layout.images / "ok.img")
    with pytest.raises(TaskConfigError, match="unknown key 'imagee'"):
        await driver.start_task(task_config(layout, _task_id(), image=str(image), imagee="x"))


async def test_unreachable_libvirt_is_undetected_and_start_fails_clearly(
    layout: Layout, short_tmp: Path, qemu_log: Path
) -> None:
    """With nothing listening at the URI, the fingerprint is undetected with the reason and start_task fails
    naming the URI, leaving nothing behind."""
    uri = f"qemu+unix:///system?socket={short_tmp / 'none.sock'}"
    image = make_image(layout.images / "ok.img")
    async with VirtDriver(layout.plugin_config(uri)) as driver:
        stream = driver.fingerprint()
        first = await anext(stream)
        await stream.aclose()
        assert first.health is HealthState.UNDETECTED
        assert uri in first.health_description
        assert "none.sock" in first.health_description
        with pytest.raises(DriverError, match="cannot connect to libvirt at qemu\\+unix:///system") as caught:
            await driver.start_task(task_config(layout, _task_id(), image=str(image), use_thin_copy=True))
        assert caught.value.recoverable
    assert layout.data_files() == []
    assert qemu_img_calls(qemu_log) == []
