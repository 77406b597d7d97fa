"""PluginHost with ``kubelet {}`` and ``kubelet_server {}``: fs-device served to a kubelet, and the host acting as a
kubelet for Kubernetes device plugins, with real sockets, a real state file and a real device directory."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from plugin_host import PLUGIN_TYPE_DEVICE, PluginHost
from plugin_host.device import DevicePluginClient, Mount
from plugin_host.errors import DispenseError, PluginNotFoundError
from plugin_host.host_config import HostConfig
from plugin_host.kubelet import KubeletMount
from plugin_host.kubelet.host._hosted import KubeletDevicePluginClient
from plugin_host.kubelet.host.registration_server import KUBELET_ALLOC_ID, KUBELET_PROTOCOL
from plugin_host.registry import PluginConnectionInfo, PluginInfo
from plugin_host.testing.kubelet import FakeKubelet

pytestmark = pytest.mark.anyio

WAIT = 10.0
RESOURCE = "example.com/nomad-file-mock"
GROUP = f"{RESOURCE}/nomad-file-mock"


@pytest.fixture
def devices_dir(short_tmp: Path) -> Path:
    path = short_tmp / "devices"
    path.mkdir()
    (path / "dev0").write_text("")
    (path / "dev0").chmod(0o644)
    return path


def _hcl(short_tmp: Path, devices_dir: Path, blocks: str) -> Path:
    path = short_tmp / "host.hcl"
    path.write_text(
        f'state_dir = "{short_tmp / "st"}"\n'
        f'plugin "fs-device" {{\n  config {{\n    dir = "{devices_dir}"\n    list_period = "20ms"\n  }}\n}}\n' + blocks
    )
    return path


async def test_the_host_serves_fs_device_to_its_own_kubelet_server(short_tmp: Path, devices_dir: Path) -> None:
    """With both blocks on one directory, fs-device goes out through kubelet {} and comes back through
    kubelet_server {}: registered, managed, shown in status, and reservable through Allocate."""
    plugin_dir = short_tmp / "dp"
    config = HostConfig.from_hcl_file(
        _hcl(
            short_tmp,
            devices_dir,
            f'kubelet {{\n  plugin_dir = "{plugin_dir}"\n  namespace = "example.com"\n}}\n'
            f'kubelet_server {{\n  plugin_dir = "{plugin_dir}"\n}}\n',
        )
    )
    async with PluginHost(config) as host:
        assert host.kubelet_server is not None
        export = host.kubelet_export
        assert export is not None
        with anyio.fail_after(WAIT):
            info = await host.registry.wait_for_plugin(PLUGIN_TYPE_DEVICE, RESOURCE)
        assert info.alloc_id == KUBELET_ALLOC_ID
        assert info.options["protocol"] == KUBELET_PROTOCOL
        assert isinstance(await host.registry.dispense_plugin(PLUGIN_TYPE_DEVICE, RESOURCE), KubeletDevicePluginClient)
        assert isinstance(await host.registry.dispense_plugin(PLUGIN_TYPE_DEVICE, "fs-device"), DevicePluginClient)
        async with host.devices.subscribe() as changes:
            with anyio.fail_after(WAIT):
                while (plugin := host.devices.snapshot().plugin(RESOURCE)) is None or not plugin.groups:
                    await anext(changes)
        assert [(g.id, [d.id for d in g.devices]) for g in plugin.groups] == [(GROUP, ["dev0"])]
        reservation = await host.devices.reserve(GROUP, ["dev0"])
        assert reservation.mounts == (
            Mount(task_path="/tmp/task-mounts/dev0", host_path=str(devices_dir / "dev0"), read_only=False),
        )
        status = await host.status()
        assert {(p.name, p.type) for p in status.plugins} >= {(RESOURCE, "device"), ("fs-device", "device")}
        # What came back from kubelet is never exported again (that would add example.com-nomad-file-mock-...).
        assert export.device_types() == ("nomad-file-mock",)
    # Leaving deregistered the kubelet plugin and removed every socket of the directory.
    assert sorted(p.name for p in plugin_dir.iterdir()) == []


async def test_kubelet_block_exports_fs_device_to_a_kubelet(short_tmp: Path, devices_dir: Path) -> None:
    """kubelet {} alone: a file added to fs-device's directory reaches the kubelet, and Allocate mounts it."""
    plugin_dir = short_tmp / "dp"
    config = HostConfig.from_hcl_file(
        _hcl(short_tmp, devices_dir, f'kubelet {{\n  plugin_dir = "{plugin_dir}"\n  namespace = "example.com"\n}}\n')
    )
    async with FakeKubelet(plugin_dir) as kubelet, PluginHost(config) as host:
        assert host.kubelet_server is None
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(RESOURCE)
        (devices_dir / "dev1").write_text("")
        (devices_dir / "dev1").chmod(0o644)
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(RESOURCE, lambda devices: "dev1" in devices)
        response = await kubelet.allocate(RESOURCE, ["dev1"])
        assert response.mounts == (
            KubeletMount(container_path="/tmp/task-mounts/dev1", host_path=str(devices_dir / "dev1")),
        )


async def test_a_kubelet_registration_without_a_kubelet_server_cannot_be_dispensed(
    short_tmp: Path, devices_dir: Path
) -> None:
    """A kubelet-protocol registration left in the state file, with no kubelet_server {}, is not dispensed."""
    config = HostConfig.from_hcl_file(_hcl(short_tmp, devices_dir, ""))
    async with PluginHost(config) as host:
        await host.registry.register_plugin(
            PluginInfo(
                name=RESOURCE,
                type=PLUGIN_TYPE_DEVICE,
                alloc_id=KUBELET_ALLOC_ID,
                connection_info=PluginConnectionInfo(socket_path=str(short_tmp / "x.sock")),
                options={"protocol": KUBELET_PROTOCOL},
            )
        )
        with pytest.raises(DispenseError, match=r"no kubelet_server \{\} is running to reach it") as caught:
            await host.registry.dispense_plugin(PLUGIN_TYPE_DEVICE, RESOURCE)
        assert isinstance(caught.value.__cause__, PluginNotFoundError)
