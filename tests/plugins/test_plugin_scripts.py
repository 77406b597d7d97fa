"""The go-plugin console scripts launched the way a Nomad agent launches plugin_dir binaries, through plugin-host's own
launcher: each identifies itself (name, type, a version go-version parses) and fingerprints."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import ROOT, InstalledVenv
from helpers.goversion import go_accepts
from helpers.install import console_scripts

from plugin_host.base.api import PLUGIN_TYPE_DEVICE, PLUGIN_TYPE_DRIVER
from plugin_host.config.hcl import loads_hcl
from plugin_host.device import DeviceManager, DevicePluginClient
from plugin_host.driver import DriverManager, DriverPluginClient, HealthState
from plugin_host.driver.api import DriverFingerprint
from plugin_host.loader.launcher import LaunchState, LaunchStatus, PluginLauncher, PluginSpec
from plugin_host.plugins.fsdevice.config import FsDeviceConfig
from plugin_host.plugins.rawexec import RawExecConfig
from plugin_host.plugins.virt import VirtConfig, VirtTaskConfig
from plugin_host.registry import Registry

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]


def running(status: LaunchStatus) -> bool:
    """The plugin runs."""
    return status.state is LaunchState.RUNNING


@asynccontextmanager
async def launched(spec: PluginSpec) -> AsyncIterator[tuple[DriverManager, LaunchStatus]]:
    """The plugin launched and running, handed to a driver manager or a device manager by its PluginInfo type."""
    async with (
        Registry() as registry,
        DeviceManager(registry=registry, stats_interval=None) as devices,
        DriverManager() as drivers,
        PluginLauncher([spec], devices=devices, drivers=drivers, start_timeout=30.0) as launcher,
    ):
        with anyio.fail_after(40):
            status = await launcher.wait_for(spec.name, running)
        yield drivers, status


async def first_fingerprint(client: DriverPluginClient) -> DriverFingerprint:
    """The first message of the driver's fingerprint stream, over the wire."""
    with anyio.fail_after(30):
        async with aclosing(client.fingerprint()) as stream:
            async for fingerprint in stream:
                return fingerprint
    raise AssertionError("the fingerprint stream ended before its first message")


async def test_raw_exec_script_identifies_itself_and_fingerprints(
    installed_venv: InstalledVenv, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plugin-host-raw-exec from a plain install: a driver named raw-exec, a go-version version, healthy."""
    # The launcher passes its environment on: without PYTHONPATH the script imports the installed package.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    name = "plugin-host-raw-exec"
    spec = PluginSpec(name=name, executable=installed_venv.bin(name), config={"state_dir": str(short_tmp / "exec")})
    async with launched(spec) as (drivers, _):
        client = drivers.driver(name)
        assert isinstance(client, DriverPluginClient)
        info = await client.plugin_info()
        assert (info.type, info.name) == (PLUGIN_TYPE_DRIVER, "raw-exec")
        assert go_accepts(info.plugin_version), info.plugin_version
        fingerprint = await first_fingerprint(client)
        assert fingerprint.health is HealthState.HEALTHY
        assert fingerprint.attributes["driver.raw-exec.version"].string_val == info.plugin_version


async def test_fs_device_script_identifies_itself(
    installed_venv: InstalledVenv, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plugin-host-fs-device from a plain install: a device plugin named fs-device, a go-version version, dev0."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    (short_tmp / "devices").mkdir()
    (short_tmp / "devices" / "dev0").write_text("")
    name = "plugin-host-fs-device"
    spec = PluginSpec(name=name, executable=installed_venv.bin(name), config={"dir": str(short_tmp / "devices")})
    async with launched(spec) as (_, status):
        assert status.socket_path is not None
        async with DevicePluginClient(status.socket_path) as client:
            info = await client.plugin_info()
            assert (info.type, info.name) == (PLUGIN_TYPE_DEVICE, "fs-device")
            assert go_accepts(info.plugin_version), info.plugin_version
            with anyio.fail_after(30):
                async with aclosing(client.fingerprint()) as stream:
                    first = await stream.__anext__()
            assert [d.id for g in first.device_groups for d in g.devices] == ["dev0"]


def write_virt(plugin_dir: Path) -> Path:
    """``plugin-host-virt`` for this tree and this interpreter (which has the virt extra the plain install lacks)."""
    path = plugin_dir / "plugin-host-virt"
    path.write_text(
        f"#!{sys.executable}\nimport os, sys\n"
        f"os.environ['PYTHONPATH'] = {str(ROOT)!r}\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'plugin_host.plugins.virt'])\n"
    )
    path.chmod(0o755)
    return path


async def test_virt_module_identifies_itself_and_fingerprints(short_tmp: Path) -> None:
    """python -m plugin_host.plugins.virt: a driver named virt with a go-version version; libvirt's test driver
    makes it healthy, an unreachable libvirt undetected."""
    plugin_dir = short_tmp / "plugins"
    plugin_dir.mkdir()
    for uri, health in [
        ("test:///default", HealthState.HEALTHY),
        (f"qemu+unix:///system?socket={short_tmp}/none.sock", HealthState.UNDETECTED),
    ]:
        config = {"emulator": [{"uri": uri}], "data_dir": str(short_tmp / "data")}
        spec = PluginSpec(name="plugin-host-virt", executable=write_virt(plugin_dir), config=config)
        async with launched(spec) as (drivers, _):
            client = drivers.driver("plugin-host-virt")
            assert isinstance(client, DriverPluginClient)
            info = await client.plugin_info()
            assert (info.type, info.name) == (PLUGIN_TYPE_DRIVER, "virt")
            assert go_accepts(info.plugin_version), info.plugin_version
            fingerprint = await first_fingerprint(client)
            assert fingerprint.health is health, fingerprint.health_description


def readme_agent_blocks() -> tuple[dict[str, Any], dict[str, Any]]:
    """The agent config and the virt job snippet of the README's "Our plugins inside a Nomad agent" section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Our plugins inside a Nomad agent") :]
    agent, job = re.findall(r"```hcl\n(.*?)```", section, re.DOTALL)[:2]
    return loads_hcl(agent, source="README agent"), loads_hcl(job, source="README job")


def test_readme_agent_stanzas_name_the_scripts_and_their_configs_validate() -> None:
    """The README configures each go-plugin console script under its executable name, with a config it accepts."""
    agent, _ = readme_agent_blocks()
    configs = {name: body["config"][0] for block in agent["plugin"] for name, body in block.items()}
    plugin_scripts = {name for name in console_scripts() if name != "plugin-host"}
    assert set(configs) == plugin_scripts
    FsDeviceConfig.coerce(configs["plugin-host-fs-device"])
    RawExecConfig.coerce(configs["plugin-host-raw-exec"])
    VirtConfig.coerce(configs["plugin-host-virt"])


def test_readme_virt_job_uses_the_reported_driver_name_and_a_valid_task_config() -> None:
    """The README's virt task names driver "virt" (what the plugin reports); its nomad-driver-virt config parses."""
    _, job = readme_agent_blocks()
    [task] = job["task"][0].values()
    assert task["driver"] == "virt"
    parsed = VirtTaskConfig.parse(task["config"][0], task_id="virt-task")
    assert (parsed.image, parsed.use_thin_copy, parsed.cmds) == (
        "local/focal-server-cloudimg-amd64.img",
        True,
        ("python3 -m http.server 8000",),
    )
