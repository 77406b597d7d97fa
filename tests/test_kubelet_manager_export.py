"""DeviceManagerScanner: every device plugin a DeviceManager runs is served to kubelet (a strict fake kubelet here),
including go-plugin plugins a PluginHost launches from plugin_dir; Allocate reserves through the manager."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from kubelet_fake import FakeKubelet
from test_goplugin_launcher import write_fsdevice

from plugin_host.config import HostConfig
from plugin_host.device import DeviceManager
from plugin_host.errors import PluginRPCError
from plugin_host.fsdevice import FsDevice
from plugin_host.host import PluginHost
from plugin_host.kubelet import (
    AllocateRequest,
    ContainerAllocateRequest,
    DeviceManagerScanner,
    KubeletMount,
    Manager,
)

pytestmark = pytest.mark.anyio

WAIT = 10.0
RESOURCE = "example.com/nomad-file-mock"


def _devices(directory: Path, *names: str) -> Path:
    directory.mkdir()
    for name in names:
        (directory / name).write_text(name)
    return directory


def _manager(short_tmp: Path, scanner: DeviceManagerScanner) -> Manager:
    return Manager(
        "example.com",
        scanner,
        plugin_dir=short_tmp / "dp",
        cdi_dir=short_tmp / "cdi",
        watch_interval=0.02,
        register_backoff_initial=0.02,
        register_backoff_max=0.2,
    )


async def test_managed_plugins_come_and_go_as_device_types(short_tmp: Path) -> None:
    """A plugin added to the DeviceManager appears in kubelet's ListAndWatch, Allocate mounts its file through the
    manager, an unknown id is INVALID_ARGUMENT, and removing the plugin removes the device type."""
    devices_dir = _devices(short_tmp / "devs", "dev0")
    async with (
        FakeKubelet(short_tmp / "dp") as kubelet,
        DeviceManager() as devices,
        _manager(short_tmp, DeviceManagerScanner(devices)) as manager,
    ):
        await devices.add_plugin("fs", FsDevice({"dir": str(devices_dir), "list_period": "20ms"}))
        with anyio.fail_after(WAIT):
            seen = await kubelet.wait_for_devices(RESOURCE)
        assert {dev_id: d.health for dev_id, d in seen.items()} == {"dev0": "Healthy"}
        response = await kubelet.allocate(RESOURCE, ["dev0"])
        assert response.mounts == (
            KubeletMount(container_path="/tmp/task-mounts/dev0", host_path=str(devices_dir / "dev0"), read_only=False),
        )
        with pytest.raises(PluginRPCError, match="unknown device 'nope'") as caught:
            await kubelet.raw_allocate(RESOURCE, _request("nope"))
        assert caught.value.code == "INVALID_ARGUMENT"
        await devices.remove_plugin("fs")
        with anyio.fail_after(WAIT):
            await manager.wait_for_device_types(lambda types: types == ())


async def test_a_plugin_launched_from_plugin_dir_is_served_to_kubelet(short_tmp: Path) -> None:
    """A PluginHost with kubelet {} and a plugin_dir serves the launched (go-plugin) fs-device's files to kubelet."""
    plugins = short_tmp / "plugins"
    plugins.mkdir()
    write_fsdevice(plugins)
    devices_dir = _devices(short_tmp / "devs", "a", "b")
    config = HostConfig.from_mapping(
        {
            "state_dir": str(short_tmp / "st"),
            "plugin_dir": str(plugins),
            "plugins": {"fsdev": {"config": {"dir": str(devices_dir), "list_period": "1s"}}},
            "kubelet": {"plugin_dir": str(short_tmp / "dp"), "namespace": "example.com"},
        }
    )
    async with FakeKubelet(short_tmp / "dp") as kubelet, PluginHost(config) as host:
        with anyio.fail_after(30):
            seen = await kubelet.wait_for_devices(RESOURCE, lambda devs: len(devs) == 2)
        assert sorted(seen) == ["a", "b"]
        assert [p.name for p in host.devices.snapshot().plugins] == ["fsdev"]
        response = await kubelet.allocate(RESOURCE, ["b"])
        assert [m.host_path for m in response.mounts] == [str(devices_dir / "b")]


def _request(*ids: str) -> AllocateRequest:
    return AllocateRequest(container_requests=(ContainerAllocateRequest(devices_ids=ids),))
