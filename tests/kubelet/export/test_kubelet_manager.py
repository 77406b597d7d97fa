"""Manager end to end against the fake kubelet: types appear, change and disappear; kubelet restarts; bad settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from plugin_host.errors import ConfigError, InvalidPluginError, PluginNotFoundError, SocketInUseError
from plugin_host.kubelet import (
    AllocateRequest,
    AllocateResponse,
    ContainerAllocateResponse,
    DeviceInfo,
    DeviceTree,
    Manager,
    Notifier,
)
from plugin_host.testing.kubelet import FakeKubelet

pytestmark = pytest.mark.anyio

WAIT = 5.0
GPU = "example.com/gpu"
FPGA = "example.com/fpga"


class ScriptedScanner:
    """Notifies each tree the test sends, in order; ends when the test closes its side."""

    def __init__(self) -> None:
        self.send: MemoryObjectSendStream[DeviceTree]
        self._receive: MemoryObjectReceiveStream[DeviceTree]
        self.send, self._receive = anyio.create_memory_object_stream[DeviceTree](16)

    async def scan(self, notifier: Notifier) -> None:
        async with self._receive:
            async for tree in self._receive:
                notifier.notify(tree)

    async def push(self, devices: dict[str, dict[str, DeviceInfo]]) -> None:
        tree = DeviceTree()
        for dev_type, infos in devices.items():
            for dev_id, info in infos.items():
                tree.add_device(dev_type, dev_id, info)
        await self.send.send(tree)


class HookedScanner(ScriptedScanner):
    def allocate(self, request: AllocateRequest) -> AllocateResponse:
        ids = ",".join(request.container_requests[0].devices_ids)
        return AllocateResponse(container_responses=(ContainerAllocateResponse(envs={"FROM_HOOK": ids}),))


@asynccontextmanager
async def running(plugin_dir: Path, scanner: Any, **options: Any) -> AsyncIterator[tuple[FakeKubelet, Manager]]:
    async with (
        FakeKubelet(plugin_dir) as kubelet,
        Manager("example.com", scanner, plugin_dir=plugin_dir, cdi_dir=plugin_dir / "cdi", **options) as manager,
    ):
        yield kubelet, manager
    scanner.send.close()


async def test_types_appear_change_and_disappear(short_tmp: Path) -> None:
    """A new type gets a registered server; a change reaches kubelet; a removed type's server stops and its socket
    goes away, while the other type keeps being served."""
    scanner = ScriptedScanner()
    async with running(short_tmp, scanner) as (kubelet, manager):
        await scanner.push({"gpu": {"g0": DeviceInfo()}, "fpga": {"f0": DeviceInfo()}})
        with anyio.fail_after(WAIT):
            assert await manager.wait_for_device_types(lambda t: len(t) == 2) == ("fpga", "gpu")
            await kubelet.wait_for_devices(GPU)
            await kubelet.wait_for_devices(FPGA)
        assert manager.server("gpu").socket_path == short_tmp / "example.com-gpu.sock"

        await scanner.push(
            {"gpu": {"g0": DeviceInfo(state="Unhealthy"), "g1": DeviceInfo()}, "fpga": {"f0": DeviceInfo()}}
        )
        with anyio.fail_after(WAIT):
            devices = await kubelet.wait_for_devices(GPU, lambda d: set(d) == {"g0", "g1"})
        assert devices["g0"].health == "Unhealthy"

        await scanner.push({"fpga": {"f0": DeviceInfo()}})
        with anyio.fail_after(WAIT):
            await manager.wait_for_device_types(lambda t: t == ("fpga",))
            await kubelet.wait_until(lambda: not kubelet.connected(GPU))
        assert not (short_tmp / "example.com-gpu.sock").exists()
        assert kubelet.connected(FPGA)
        assert kubelet.registration_count(FPGA) == 1
        with pytest.raises(PluginNotFoundError, match="'gpu' is not served"):
            manager.server("gpu")
    assert not (short_tmp / "example.com-fpga.sock").exists()


async def test_an_identical_tree_sends_nothing_to_kubelet(short_tmp: Path) -> None:
    """Notifying the same picture again sends no ListAndWatch message; the next real change sends exactly one."""
    scanner = ScriptedScanner()
    async with running(short_tmp, scanner) as (kubelet, _):
        await scanner.push({"gpu": {"g0": DeviceInfo()}})
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(GPU)
        endpoint = kubelet._endpoints[GPU]
        before = endpoint.messages
        await scanner.push({"gpu": {"g0": DeviceInfo()}})
        await scanner.push({"gpu": {"g0": DeviceInfo(), "g1": DeviceInfo()}})
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(GPU, lambda d: "g1" in d)
        assert endpoint.messages == before + 1


async def test_kubelet_restarts_twenty_times_in_a_row(short_tmp: Path) -> None:
    """After each of 20 kubelet restarts, every type re-registers and re-lists its devices within 1 s."""
    scanner = ScriptedScanner()
    async with running(short_tmp, scanner) as (kubelet, _):
        await scanner.push({"gpu": {"g0": DeviceInfo()}, "fpga": {"f0": DeviceInfo()}})
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(GPU)
            await kubelet.wait_for_devices(FPGA)
        for cycle in range(2, 22):
            await kubelet.restart()
            with anyio.fail_after(1.0):
                for resource in (GPU, FPGA):
                    await kubelet.wait_for_registration(resource, cycle)
                    await kubelet.wait_for_devices(
                        resource, lambda d: d != {} and all(v.health == "Healthy" for v in d.values())
                    )
        assert kubelet.starts == 21


async def test_hooks_on_the_scanner_answer_allocate(short_tmp: Path) -> None:
    """The scanner's allocate hook is used by every type's server."""
    scanner = HookedScanner()
    async with running(short_tmp, scanner) as (kubelet, _):
        await scanner.push({"gpu": {"g0": DeviceInfo()}})
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(GPU)
        response = await kubelet.allocate(GPU, ["g0"])
    assert response.envs == {"FROM_HOOK": "g0"}


async def test_a_finished_scan_keeps_the_last_devices_served(short_tmp: Path) -> None:
    """When scan() returns, the manager keeps serving what it reported last."""
    scanner = ScriptedScanner()
    async with running(short_tmp, scanner) as (kubelet, manager):
        await scanner.push({"gpu": {"g0": DeviceInfo()}})
        scanner.send.close()
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(GPU)
        assert manager.device_types() == ("gpu",)
        assert (await kubelet.allocate(GPU, ["g0"])).envs == {}


class FailingScanner:
    async def scan(self, notifier: Notifier) -> None:
        raise RuntimeError("no /dev access")


async def test_a_failing_scan_stops_the_manager_with_its_error(short_tmp: Path) -> None:
    """A scanner that raises ends the manager's block with that error."""

    async def run() -> None:
        async with Manager("example.com", FailingScanner(), plugin_dir=short_tmp):
            await anyio.sleep_forever()

    with pytest.raises(ExceptionGroup) as caught:
        await run()
    assert caught.group_contains(RuntimeError, match="no /dev access")


async def test_a_type_whose_socket_is_served_elsewhere_stops_the_manager(short_tmp: Path) -> None:
    """Bad input: a live process already serving <namespace>-<type>.sock → SocketInUseError out of the manager."""
    scanner = ScriptedScanner()

    async def run() -> None:
        async with Manager("example.com", scanner, plugin_dir=short_tmp, cdi_dir=short_tmp / "cdi"):
            await scanner.push({"gpu": {"g0": DeviceInfo()}})
            await anyio.sleep_forever()

    async with await anyio.create_unix_listener(short_tmp / "example.com-gpu.sock"):
        with pytest.raises(ExceptionGroup) as caught:
            await run()
    assert caught.group_contains(SocketInUseError, match="is already in use")
    scanner.send.close()


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        ("", "kubelet namespace '' is invalid"),
        ("example.com/x", "kubelet namespace 'example.com/x' is invalid"),
        ("Example.com", "DNS subdomain"),
        ("kubernetes.io", "reserved for Kubernetes"),
        ("requests.example.com", "reserved for quota"),
    ],
)
def test_an_invalid_namespace_is_a_config_error(namespace: str, message: str) -> None:
    """Bad input: a namespace that cannot make <namespace>/<type> resource names is refused, naming it."""
    with pytest.raises(ConfigError, match=message):
        Manager(namespace, FailingScanner())


def test_something_without_scan_is_not_a_scanner() -> None:
    """Bad input: the scanner must have a scan() method."""
    with pytest.raises(InvalidPluginError, match="got object"):
        Manager("example.com", object())  # type: ignore[arg-type]


def test_bad_server_settings_are_config_errors() -> None:
    """The manager checks its servers' settings up front."""
    with pytest.raises(ConfigError, match="watch_interval"):
        Manager("example.com", FailingScanner(), watch_interval=0)
