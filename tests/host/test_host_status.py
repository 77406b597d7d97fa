"""``plugin-host status`` of a real host: each task driver with its health and tasks (running, stopped, unrecovered
with the reason), Kubernetes device plugins labelled kubelet-hosted, the resources served to kubelet and whether
kubelet holds their registration; the text rendering, the CLI as a process on the host's admin socket, and answers
of hosts of other versions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers.driver import gated, make_fifo, release, task

from plugin_host import PLUGIN_TYPE_DEVICE, PluginHost
from plugin_host.admin import (
    AdminServer,
    DeviceStatus,
    DriverStatus,
    HostStatus,
    KubeletResourceStatus,
    query_status,
)
from plugin_host.cli import render_status
from plugin_host.driver.store import TaskHandleRecord
from plugin_host.host_config import HostConfig
from plugin_host.state import SqliteStateStore
from plugin_host.testing.kubelet import FakeKubelet

pytestmark = pytest.mark.anyio

WAIT = 10.0
RESOURCE = "example.com/nomad-file-mock"
RAW_EXEC_HCL = """
state_dir = "{root}/st"
plugin "raw-exec" {{
  config {{
    state_dir = "{root}/exec"
  }}
}}
"""


async def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(20):
        return await anyio.run_process([sys.executable, "-m", "plugin_host", *args], cwd=cwd, check=False)


def _rows(text: str, header: str) -> list[list[str]]:
    """The rows (split on whitespace runs of two or more) of the table whose header starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in lines[start:end]]


# --- task drivers -----------------------------------------------------------------------------------------------


async def test_status_shows_driver_health_and_running_stopped_and_unrecovered_tasks(short_tmp: Path) -> None:
    """raw-exec is healthy; a running task, a stopped one (SIGTERM) and a stored handle raw-exec cannot recover are
    listed with their driver, in host.status(), the text table, and `plugin-host status [--json]` as a process."""
    (short_tmp / "host.hcl").write_text(RAW_EXEC_HCL.format(root=short_tmp))
    config = HostConfig.from_hcl_file(short_tmp / "host.hcl")
    async with SqliteStateStore(config.state_file) as store:
        # A corrupt handle: recovery fails, the handle is kept and the task reported as unrecovered.
        await store.save_task_handle(
            TaskHandleRecord(task_id="t-lost", driver="raw-exec", alloc_id="a1", name="t-lost", handle=b"\xff\xff")
        )
    fifo = make_fifo(short_tmp)
    async with PluginHost(config) as host:
        await host.drivers.start_task("raw-exec", gated("t-running", fifo, 0))
        await host.drivers.start_task("raw-exec", task("t-stopped", "exec sleep 30"))
        with anyio.fail_after(WAIT):
            await host.drivers.stop_task("t-stopped", 5)
            await host.drivers.wait_task("t-stopped")
            while host.drivers.fingerprint("raw-exec") is None:
                await anyio.wait_all_tasks_blocked()

        status = await host.status()
        assert status.drivers == ("raw-exec",)
        assert status.driver_health == (DriverStatus(name="raw-exec", health="healthy", health_description="Healthy"),)
        assert [(t.id, t.driver, t.state, t.exit_code, t.signal) for t in status.tasks] == [
            ("t-running", "raw-exec", "running", None, 0),
            ("t-stopped", "raw-exec", "exited", 143, 15),
            ("t-lost", "raw-exec", "unrecovered", None, 0),
        ]
        reason = "stored TaskHandle: no task config, expected the TaskConfig the task was started with"
        assert status.tasks[-1].detail == reason
        assert status.kubelet_export is None

        text = render_status(status)
        assert _rows(text, "DRIVER") == [["DRIVER", "HEALTH", "DESCRIPTION"], ["raw-exec", "healthy", "Healthy"]]
        assert _rows(text, "TASK") == [
            ["TASK", "DRIVER", "STATE", "EXIT", "DETAIL"],
            ["t-running", "raw-exec", "running", "-"],
            ["t-stopped", "raw-exec", "exited", "143 (SIGTERM)"],
            ["t-lost", "raw-exec", "unrecovered", "-", reason],
        ]

        shown = await _cli(short_tmp, "status", "--config", "host.hcl")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.decode().rstrip("\n").endswith(text.split("\n", 1)[1])
        as_json = await _cli(short_tmp, "status", "--json", "--config", "host.hcl")
        assert as_json.returncode == 0, as_json.stderr
        document: dict[str, Any] = json.loads(as_json.stdout)
        assert document["drivers"] == ["raw-exec"]
        assert document["driver_health"] == [{"name": "raw-exec", "health": "healthy", "health_description": "Healthy"}]
        assert [(t["id"], t["driver"], t["state"]) for t in document["tasks"]] == [
            ("t-running", "raw-exec", "running"),
            ("t-stopped", "raw-exec", "exited"),
            ("t-lost", "raw-exec", "unrecovered"),
        ]
        assert document["kubelet_export"] is None
        with anyio.fail_after(WAIT):
            await release(fifo)
            await host.drivers.wait_task("t-running")


# --- kubelet ----------------------------------------------------------------------------------------------------


@pytest.fixture
def devices_dir(short_tmp: Path) -> Path:
    """fs-device's directory with one device, dev0."""
    path = short_tmp / "devices"
    path.mkdir()
    (path / "dev0").write_text("")
    (path / "dev0").chmod(0o644)
    return path


def _kubelet_config(short_tmp: Path, devices_dir: Path, blocks: str) -> HostConfig:
    path = short_tmp / "host.hcl"
    path.write_text(
        f'state_dir = "{short_tmp / "st"}"\n'
        f'plugin "fs-device" {{\n  config {{\n    dir = "{devices_dir}"\n    list_period = "20ms"\n  }}\n}}\n' + blocks
    )
    return HostConfig.from_hcl_file(path)


def _fs_device(status: HostStatus) -> tuple[DeviceStatus, ...]:
    (plugin,) = [p for p in status.plugins if p.name == "fs-device"]
    return plugin.groups[0].devices


async def test_status_follows_a_device_change_and_reuses_what_did_not_change(
    short_tmp: Path, devices_dir: Path
) -> None:
    """After one file turns unhealthy, status shows it (with the description) while the other devices' entries are
    the very objects of the previous answer (built again only for what changed); the admin socket answers the same."""
    for name in ("dev1", "dev2"):
        (devices_dir / name).write_text("")
        (devices_dir / name).chmod(0o644)
    async with PluginHost(_kubelet_config(short_tmp, devices_dir, "")) as host, host.devices.subscribe() as changes:
        with anyio.fail_after(WAIT):
            async for _ in changes:
                if len(before := _fs_device(await host.status())) == 3:
                    break
            assert _fs_device(await host.status()) == before
            (devices_dir / "dev1").chmod(0o777)
            async for _ in changes:
                if not (after := _fs_device(await host.status()))[1].healthy:
                    break
            remote = await query_status(host.config.admin_socket_path)
    assert [d.id for d in after] == ["dev0", "dev1", "dev2"]
    assert after[1].health_description == 'Device has bad permissions "-rwxrwxrwx"'
    assert after[0] is before[0]
    assert after[2] is before[2]
    assert _fs_device(remote) == after


async def test_status_labels_kubelet_hosted_plugins_and_shows_exported_resources(
    short_tmp: Path, devices_dir: Path
) -> None:
    """kubelet {} and kubelet_server {} on one directory: fs-device is served as example.com/nomad-file-mock and
    registered (with the host's own registration server), and what comes back is labelled kubelet-hosted."""
    plugin_dir = short_tmp / "dp"
    config = _kubelet_config(
        short_tmp,
        devices_dir,
        f'kubelet {{\n  plugin_dir = "{plugin_dir}"\n  namespace = "example.com"\n}}\n'
        f'kubelet_server {{\n  plugin_dir = "{plugin_dir}"\n}}\n',
    )
    async with PluginHost(config) as host:
        export = host.kubelet_export
        assert export is not None
        with anyio.fail_after(WAIT):
            await export.wait_for_device_types(lambda types: "nomad-file-mock" in types)
            await export.server("nomad-file-mock").wait_registered()
            await host.registry.wait_for_plugin(PLUGIN_TYPE_DEVICE, RESOURCE)
        status = await host.status()
        assert {(p.name, p.kubelet_hosted) for p in status.plugins} == {(RESOURCE, True), ("fs-device", False)}
        assert status.kubelet_export is not None
        assert (status.kubelet_export.namespace, status.kubelet_export.plugin_dir) == ("example.com", str(plugin_dir))
        assert status.kubelet_export.resources == (
            KubeletResourceStatus(
                name=RESOURCE,
                group="nomad/file/mock",
                plugins=("fs-device",),
                devices=1,
                healthy=1,
                registered=True,
                socket_path=str(plugin_dir / "example.com-nomad-file-mock.sock"),
            ),
        )
        text = render_status(status)
        assert _rows(text, "PLUGIN")[1][:2] == [RESOURCE, "device (kubelet-hosted)"]
        assert _rows(text, "PLUGIN")[2][:2] == ["fs-device", "device"]
        assert f"served to kubelet (namespace example.com, plugin_dir {plugin_dir}):" in text.splitlines()
        assert _rows(text, "RESOURCE") == [
            ["RESOURCE", "PLUGINS", "HEALTHY", "REGISTERED"],
            [RESOURCE, "fs-device", "1/1", "yes"],
        ]


async def test_an_exported_resource_is_not_registered_once_kubelet_stops(short_tmp: Path, devices_dir: Path) -> None:
    """kubelet {} with a (fake) kubelet: registered while it runs; after it stops, status says not registered."""
    plugin_dir = short_tmp / "dp"
    config = _kubelet_config(
        short_tmp, devices_dir, f'kubelet {{\n  plugin_dir = "{plugin_dir}"\n  namespace = "example.com"\n}}\n'
    )
    async with FakeKubelet(plugin_dir) as kubelet, PluginHost(config) as host:
        export = host.kubelet_export
        assert export is not None
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(RESOURCE)
            await export.server("nomad-file-mock").wait_registered()
        status = await host.status()
        assert status.kubelet_export is not None
        assert [(r.name, r.registered) for r in status.kubelet_export.resources] == [(RESOURCE, True)]
        await kubelet.stop()
        status = await host.status()
        assert status.kubelet_export is not None
        assert [(r.name, r.registered, r.healthy) for r in status.kubelet_export.resources] == [(RESOURCE, False, 1)]
        assert _rows(render_status(status), "RESOURCE")[1] == [RESOURCE, "fs-device", "1/1", "no"]


# --- compatibility ----------------------------------------------------------------------------------------------


async def test_status_answers_of_older_and_newer_hosts_are_read(short_tmp: Path) -> None:
    """An answer without the new fields takes their defaults; one with fields this version does not know is read,
    through a real admin socket, with those fields ignored."""
    older: dict[str, Any] = {
        "pid": 1,
        "version": "0.1.0",
        "state_file": "/s.db",
        "admin_socket": "/a.sock",
        "plugins": [{"name": "p", "type": "device", "state": "running"}],
        "drivers": ["raw-exec"],
        "tasks": [{"id": "t", "driver": "", "state": "unrecovered", "detail": "why"}],
    }
    status = HostStatus.model_validate(older)
    assert (status.driver_health, status.kubelet_export, status.plugins[0].kubelet_hosted) == ((), None, False)
    assert render_status(status).splitlines()[-4:] == [
        "drivers: raw-exec",
        "",
        "TASK  DRIVER  STATE        EXIT  DETAIL",
        "t     -       unrecovered  -     why",
    ]

    newer = {**older, "future": {"x": 1}, "plugins": [{**older["plugins"][0], "future": True}]}

    async def answer() -> Any:
        return newer

    socket = short_tmp / "admin.sock"
    async with AdminServer(socket, {"status": answer}):
        with anyio.fail_after(WAIT):
            read = await query_status(socket)
            # The server sees the client's close before it stops: anyio 4.16 raises InvalidStateError in a loop
            # callback when a UNIX stream's pending read is cancelled in the loop iteration its socket turned readable.
            await anyio.wait_all_tasks_blocked()
    assert read == status
