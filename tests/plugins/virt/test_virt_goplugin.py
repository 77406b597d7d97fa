"""The virt driver as a Nomad agent runs it: the ``plugin-host-virt`` program (``python -m plugin_host.plugins.virt``)
launched as a go-plugin driver plugin, configured with the README's agent stanza and given nomad-driver-virt's README
task config, both encoded as the agent encodes them (hcldec against the schema read over the connection, then
msgpack), booting the tiny guest of helpers/virt_guest.py on a real libvirtd.

Needs what test_virt_real.py needs (root, qemu, libvirtd at qemu:///system; ``tools/setup-test-env``), plus
``ip`` to make a throwaway Linux bridge standing in for the README's ``virbr0``. Never skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import libvirt
import msgpack
import pytest
from helpers.hcldec import hcldec
from helpers.virt_guest import build_guest

from plugin_host.base.api import PLUGIN_TYPE_DRIVER
from plugin_host.driver.api import (
    AllocatedMemoryResources,
    AllocatedTaskResources,
    ExitResult,
    HealthState,
    LinuxResources,
    PortMapping,
    Resources,
    TaskConfig,
    TaskState,
)
from plugin_host.testing.goplugin import launched_driver_plugin

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[3]
URI = "qemu:///system"
BOOT_TIMEOUT = 90.0
VIRT_PLUGIN = (sys.executable, "-m", "plugin_host.plugins.virt")


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
def bridge() -> Iterator[str]:
    """A host bridge for the task's network_interface (this machine has no libvirt default network)."""
    name = f"phvt{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "link", "add", "name", name, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


@pytest.fixture
def suffix() -> Iterator[str]:
    """The task id's last part; the domain virt-task-<suffix> is destroyed and undefined after the test if left."""
    value = uuid.uuid4().hex[:8]
    yield value
    conn = libvirt.open(URI)
    try:
        for dom in conn.listAllDomains():
            if dom.name() == f"virt-task-{value}":
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
    finally:
        conn.close()


def _domain_xml(name: str) -> ET.Element:
    conn = libvirt.open(URI)
    try:
        return ET.fromstring(conn.lookupByName(name).XMLDesc(0))
    finally:
        conn.close()


def _domain_exists(name: str) -> bool:
    conn = libvirt.open(URI)
    try:
        return name in [dom.name() for dom in conn.listAllDomains()]
    finally:
        conn.close()


async def _console_shows(path: Path, text: str) -> str:
    """Wait until the serial console log at ``path`` contains ``text`` (virtlogd may write after the exit)."""
    with anyio.fail_after(30):
        while True:
            log = path.read_text(errors="replace") if path.exists() else ""
            if text in log:
                return log
            await anyio.sleep(0.1)


# nomad-driver-virt's README task config (its "python-server" job), with the user data the upstream reads from a
# file (here one a `template` stanza would have written into local/). The README asks for cores = 2 and 4000 MB;
# the guest needs one core and 512 MB.
USER_DATA = """#!/bin/sh
echo "virt-goplugin: user-data ran, {token} $((6 * 7))"
cat /mnt/seed/vendor-data
poweroff -f
"""


async def test_nomad_shaped_virt_job_boots_runs_its_user_data_and_is_destroyed(
    guest: Path, short_tmp: Path, bridge: str, suffix: str
) -> None:
    """Through go-plugin, the virt plugin program takes Nomad's msgpack configs: the README's virt task boots with its
    image, disk size, thin copy and bridge, runs its user data (the seed also carries cmds and the password), powers
    off as exit code 0, and DestroyTask removes the domain and every file it made."""
    images, data_dir, alloc_dir = short_tmp / "images", short_tmp / "data", short_tmp / "alloc"
    task_dir = alloc_dir / "virt-task"
    for directory in (images, alloc_dir / "alloc", task_dir / "local", task_dir / "secrets"):
        directory.mkdir(parents=True)
    # What the job's artifact stanza downloads, and its template writes.
    shutil.copyfile(guest, task_dir / "local" / "guest.img")
    token = uuid.uuid4().hex
    (task_dir / "local" / "user-data").write_text(USER_DATA.format(token=token))

    alloc_id = str(uuid.uuid4())
    task_id = f"{alloc_id}/virt-task/{suffix}"
    domain = f"virt-task-{suffix}"
    agent_block = {"emulator": {"uri": URI}, "data_dir": str(data_dir), "image_paths": [str(images)]}
    job_block = {
        "image": "local/guest.img",
        "primary_disk_size": 10000,
        "use_thin_copy": True,
        "default_user_password": "password",
        "cmds": ["python3 -m http.server 8000"],
        "user_data": "local/user-data",
        "network_interface": {"bridge": {"name": bridge, "ports": ["http"]}},
    }
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    async with launched_driver_plugin(
        VIRT_PLUGIN, socket_dir=short_tmp, env=env, call_timeout=BOOT_TIMEOUT + 30
    ) as client:
        info = await client.plugin_info()
        assert (info.type, info.name) == (PLUGIN_TYPE_DRIVER, "virt")
        await client.set_config(msgpack.packb(hcldec(await client.config_schema(), agent_block), use_bin_type=True))
        fingerprints = client.fingerprint()
        assert (await anext(fingerprints)).health is HealthState.HEALTHY
        await fingerprints.aclose()

        driver_config = hcldec(await client.task_config_schema(), job_block)
        # The client msgpack-encodes this mapping as cty does: every key, nil where unset.
        assert driver_config["hostname"] is None
        assert driver_config["os"] is None
        config = TaskConfig(
            id=task_id,
            name="virt-task",
            job_name="python-server",
            task_group_name="virt-group",
            alloc_id=alloc_id,
            alloc_dir=str(alloc_dir),
            env={"NOMAD_ALLOC_DIR": "/alloc", "NOMAD_TASK_DIR": "/local", "NOMAD_SECRETS_DIR": "/secrets"},
            resources=Resources(
                nomad_resources=AllocatedTaskResources(memory=AllocatedMemoryResources(memory_mb=512)),
                linux_resources=LinuxResources(cpuset_cpus="0"),
                ports=(PortMapping(label="http", value=24567, to=8000),),
            ),
            driver_config=driver_config,
            stdout_path=str(alloc_dir / "alloc" / "virt-task.stdout.0"),
            stderr_path=str(alloc_dir / "alloc" / "virt-task.stderr.0"),
        )
        handle, _ = await client.start_task(config)
        assert handle.state is TaskState.RUNNING
        state = json.loads(handle.driver_state)
        assert state["domain"] == domain

        xml = await anyio.to_thread.run_sync(_domain_xml, domain)
        assert xml.findtext("memory") == str(512 * 1024)
        assert xml.findtext("vcpu") == "1"
        (interface,) = xml.findall("devices/interface")
        assert interface.get("type") == "bridge"
        assert interface.find("source").get("bridge") == bridge  # type: ignore[union-attr]
        overlay = Path(state["overlay"])
        assert overlay.parent == data_dir
        info_out = subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", str(overlay)], check=True, capture_output=True, text=True
        ).stdout
        assert json.loads(info_out)["virtual-size"] == 10000 * 1024 * 1024

        with anyio.fail_after(BOOT_TIMEOUT):
            result = await client.wait_task(task_id)
        assert result == ExitResult(exit_code=0)
        status = await client.inspect_task(task_id)
        assert status.state is TaskState.EXITED

        console = await _console_shows(Path(state["console"]), f"virt-goplugin: user-data ran, {token} 42")
        assert "virt-guest: booted" in console
        assert f'instance-id: "{domain}"' in console
        assert 'runcmd: ["python3 -m http.server 8000"]' in console
        assert 'password: "password"' in console

        await client.destroy_task(task_id)
        assert not await anyio.to_thread.run_sync(_domain_exists, domain)
        assert sorted(os.listdir(data_dir)) == []
