"""DeviceManagerScanner: every device plugin a DeviceManager runs is served to kubelet (a strict fake kubelet here),
including go-plugin plugins a PluginHost launches from plugin_dir; Allocate reserves through the manager."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from helpers.launcher import fs_spec, launched, running, wait_devices, write_fsdevice

from plugin_host.device import DeviceManager
from plugin_host.errors import PluginRPCError
from plugin_host.host import PluginHost
from plugin_host.host_config import HostConfig
from plugin_host.kubelet import (
    AllocateRequest,
    ContainerAllocateRequest,
    DeviceManagerScanner,
    KubeletDevice,
    KubeletMount,
    Manager,
)
from plugin_host.plugins.fsdevice import FsDevice
from plugin_host.testing.kubelet import FakeKubelet

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


async def test_one_group_from_two_plugins_is_one_device_type_and_allocate_reaches_the_owner(short_tmp: Path) -> None:
    """Two plugins providing the same group (here two fs-devices) share one device type, never two colliding
    ones; each Allocate reaches the plugin holding the ids; include() leaves a plugin out."""
    first, second = _devices(short_tmp / "one", "x"), _devices(short_tmp / "two", "y")
    async with (
        FakeKubelet(short_tmp / "dp") as kubelet,
        DeviceManager() as devices,
        _manager(short_tmp, DeviceManagerScanner(devices, include=lambda name: name != "hidden")) as manager,
    ):
        # "hidden" first: the scanner handles changes in order, so once kubelet sees x and y it has seen z too.
        await devices.add_plugin(
            "hidden", FsDevice({"dir": str(_devices(short_tmp / "h", "z")), "list_period": "20ms"})
        )
        with anyio.fail_after(WAIT):
            await wait_devices(devices, 1)
        await devices.add_plugin("fs1", FsDevice({"dir": str(first), "list_period": "20ms"}))
        await devices.add_plugin("fs2", FsDevice({"dir": str(second), "list_period": "20ms"}))
        with anyio.fail_after(WAIT):
            seen = await kubelet.wait_for_devices(RESOURCE, lambda devs: len(devs) == 2)
        assert sorted(seen) == ["x", "y"]
        assert manager.device_types() == ("nomad-file-mock",)
        assert [m.host_path for m in (await kubelet.allocate(RESOURCE, ["x"])).mounts] == [str(first / "x")]
        assert [m.host_path for m in (await kubelet.allocate(RESOURCE, ["y"])).mounts] == [str(second / "y")]


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


async def test_a_launched_plugin_killed_turns_unhealthy_and_is_served_again_after_its_relaunch(short_tmp: Path) -> None:
    """SIGKILL of a launched (go-plugin) fs-device: kubelet sees its devices Unhealthy while it is down, Healthy once
    the launcher relaunched it, and Allocate then reaches the new process."""
    (short_tmp / "plugins").mkdir()
    (short_tmp / "devs").mkdir()
    specs = fs_spec(short_tmp / "plugins", short_tmp / "devs")

    def health(expected: str) -> Callable[[dict[str, KubeletDevice]], bool]:
        return lambda devs: sorted(devs) == ["a", "b"] and all(d.health == expected for d in devs.values())

    async with (
        FakeKubelet(short_tmp / "dp") as kubelet,
        launched(specs, backoff_initial=0.1, backoff_max=0.2) as (launcher, devices, _),
        _manager(short_tmp, DeviceManagerScanner(devices)),
    ):
        with anyio.fail_after(30):
            first = await launcher.wait_for("fsdev", running)
            await kubelet.wait_for_devices(RESOURCE, health("Healthy"))
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        with anyio.fail_after(30):
            await kubelet.wait_for_devices(RESOURCE, health("Unhealthy"))
            second = await launcher.wait_for("fsdev", lambda s: running(s) and s.pid != first.pid)
            await kubelet.wait_for_devices(RESOURCE, health("Healthy"))
        response = await kubelet.allocate(RESOURCE, ["a"])
        assert [m.host_path for m in response.mounts] == [str(short_tmp / "devs" / "a")]
        assert second.restarts == 1


def _request(*ids: str) -> AllocateRequest:
    return AllocateRequest(container_requests=(ContainerAllocateRequest(devices_ids=ids),))
