"""The framework's own Manager and device type servers registering with the host's KubeletRegistrationServer: no
fake on either side, real sockets, a real Registry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio
import pytest

from plugin_host.device import DeviceGroup, DevicePlugin, DeviceSpec, FingerprintResponse, Mount
from plugin_host.errors import DeviceError
from plugin_host.kubelet import (
    DeviceInfo,
    DeviceTree,
    KubeletDevicePluginClient,
    KubeletDeviceSpec,
    KubeletMount,
    Manager,
    Notifier,
)
from plugin_host.kubelet.host.registration_server import KUBELET_ALLOC_ID, KubeletRegistrationServer
from plugin_host.registry import PLUGIN_TYPE_DEVICE, EventType, PluginInfo, Registry

pytestmark = pytest.mark.anyio

WAIT = 5.0
NAMESPACE = "example.com"


class TreeScanner:
    """Reports the trees a test pushes, the first one at once."""

    def __init__(self, first: Mapping[str, Mapping[str, DeviceInfo]]) -> None:
        self._trees = [first]
        self._changed = anyio.Event()

    def push(self, devices: Mapping[str, Mapping[str, DeviceInfo]]) -> None:
        self._trees.append(devices)
        self._changed.set()

    async def scan(self, notifier: Notifier) -> None:
        sent = 0
        while True:
            for devices in self._trees[sent:]:
                tree = DeviceTree()
                for dev_type, infos in devices.items():
                    for dev_id, info in infos.items():
                        tree.add_device(dev_type, dev_id, info)
                notifier.notify(tree)
            sent = len(self._trees)
            self._changed = anyio.Event()
            await self._changed.wait()


GPU = DeviceInfo(
    nodes=(KubeletDeviceSpec(container_path="/dev/gpu0", host_path="/dev/dri/card0", permissions="rw"),),
    mounts=(KubeletMount(container_path="/etc/gpu", host_path="/usr/share/gpu", read_only=True),),
    envs={"GPU": "0"},
)


def _manager(plugin_dir: Path, scanner: TreeScanner, cdi_dir: Path) -> Manager:
    return Manager(
        NAMESPACE,
        scanner,
        plugin_dir=plugin_dir,
        cdi_dir=cdi_dir,
        watch_interval=0.02,
        register_backoff_initial=0.02,
        register_backoff_max=0.2,
    )


async def _wait_group(stream: AsyncIterator[FingerprintResponse], healthy: dict[str, bool]) -> DeviceGroup:
    """The first group of the stream whose devices have exactly the given health."""
    with anyio.fail_after(WAIT):
        async for response in stream:
            group = response.device_group
            if group is not None and {d.id: d.healthy for d in group.devices} == healthy:
                return group
    raise AssertionError(f"the fingerprint stream ended before the devices were {healthy}")


async def _dispensed(registry: Registry, name: str) -> KubeletDevicePluginClient:
    with anyio.fail_after(WAIT):
        await registry.wait_for_plugin(PLUGIN_TYPE_DEVICE, name)
    client = await registry.dispense_plugin(PLUGIN_TYPE_DEVICE, name)
    assert isinstance(client, KubeletDevicePluginClient)
    assert isinstance(client, DevicePlugin)
    return client


async def test_manager_registers_each_type_and_the_host_reserves_through_allocate(short_tmp: Path) -> None:
    """Every device type the framework serves becomes a device plugin in the registry; reserve() is its Allocate."""
    plugin_dir = short_tmp / "dp"
    scanner = TreeScanner({"gpu": {"g0": GPU, "g1": DeviceInfo(state="Unhealthy")}, "fpga": {"f0": DeviceInfo()}})

    def dispense(info: PluginInfo) -> object:
        return server.dispense(info)

    async with (
        Registry(dispensers={PLUGIN_TYPE_DEVICE: dispense}) as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
        _manager(plugin_dir, scanner, short_tmp / "cdi"),
    ):
        client = await _dispensed(registry, "example.com/gpu")
        await _dispensed(registry, "example.com/fpga")
        info = await registry.plugin_for_alloc(PLUGIN_TYPE_DEVICE, "example.com/gpu", KUBELET_ALLOC_ID)
        assert info.connection_info is not None
        assert info.connection_info.socket_path == str(plugin_dir.absolute() / "example.com-gpu.sock")
        stream = client.fingerprint()
        group = await _wait_group(stream, {"g0": True, "g1": False})
        assert group.id == "example.com/gpu/gpu"
        reservation = await client.reserve(["g0"])
        assert reservation.envs == {"GPU": "0"}
        assert reservation.mounts == (Mount(task_path="/etc/gpu", host_path="/usr/share/gpu", read_only=True),)
        assert reservation.devices == (
            DeviceSpec(task_path="/dev/gpu0", host_path="/dev/dri/card0", cgroup_perms="rw"),
        )
        with pytest.raises(DeviceError, match=r"'g1' .* is unhealthy"):
            await client.reserve(["g1"])
        # A change in the scanner reaches the host's view through ListAndWatch.
        scanner.push({"gpu": {"g0": GPU, "g1": DeviceInfo(), "g2": DeviceInfo()}, "fpga": {"f0": DeviceInfo()}})
        await _wait_group(stream, {"g0": True, "g1": True, "g2": True})
        await stream.aclose()


async def test_framework_stopping_marks_unhealthy_and_its_return_restores(short_tmp: Path) -> None:
    """When the framework's servers stop, the host shows their devices unhealthy; a new Manager restores them."""
    plugin_dir = short_tmp / "dp"
    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry) as server,
    ):
        async with _manager(plugin_dir, TreeScanner({"gpu": {"g0": GPU}}), short_tmp / "cdi"):
            with anyio.fail_after(WAIT):
                info = await registry.wait_for_plugin(PLUGIN_TYPE_DEVICE, "example.com/gpu")
            stream = server.dispense(info).fingerprint()
            await _wait_group(stream, {"g0": True})
        await _wait_group(stream, {"g0": False})
        async with _manager(plugin_dir, TreeScanner({"gpu": {"g0": GPU, "g1": DeviceInfo()}}), short_tmp / "cdi"):
            await _wait_group(stream, {"g0": True, "g1": True})
            reservation = await server.dispense(info).reserve(["g1"])
            assert reservation.envs == {}
        await stream.aclose()


@pytest.mark.parametrize("remove_plugin_sockets", [False, True], ids=["keep-sockets", "remove-sockets"])
async def test_framework_registers_again_when_the_registration_server_restarts(
    short_tmp: Path, remove_plugin_sockets: bool
) -> None:
    """A new KubeletRegistrationServer (kubelet.sock re-created, plugin sockets kept or removed as kubelet does) gets
    the framework's plugins back on its own."""
    plugin_dir = short_tmp / "dp"
    async with (
        Registry() as registry,
        _manager(plugin_dir, TreeScanner({"gpu": {"g0": GPU}}), short_tmp / "cdi") as manager,
    ):
        for _ in range(3):
            async with (
                registry.subscribe(PLUGIN_TYPE_DEVICE) as events,
                KubeletRegistrationServer(plugin_dir, registry, remove_plugin_sockets=remove_plugin_sockets) as server,
            ):
                with anyio.fail_after(WAIT):
                    event = await anext(events)
                assert (event.event_type, event.info.name) == (EventType.REGISTERED, "example.com/gpu")
                stream = server.dispense(event.info).fingerprint()
                await _wait_group(stream, {"g0": True})
                await stream.aclose()
            assert await registry.list_plugins(PLUGIN_TYPE_DEVICE) == []
        assert manager.server("gpu").registrations == 3
