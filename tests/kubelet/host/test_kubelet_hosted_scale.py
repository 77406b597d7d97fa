"""Kubernetes device plugins listing very many devices: one ListAndWatch message with 100,000 devices is handled
in linear time, off the event loop, and a later list reuses the devices that did not change."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from grpclib.const import Cardinality, Handler
from grpclib.server import Stream

from plugin_host.device import DeviceManager
from plugin_host.device._manager_instance import _check_groups
from plugin_host.device.api import Device, DeviceGroup
from plugin_host.kubelet.export._list_encode import encode_device
from plugin_host.kubelet.host import _hosted_convert as convert
from plugin_host.kubelet.host._list_decode import ListedDevice
from plugin_host.kubelet.host.registration_server import KubeletRegistrationServer
from plugin_host.registry import Registry
from plugin_host.testing.device_plugin import ScriptedPlugin, register, serve_plugin

pytestmark = pytest.mark.anyio

COUNT = 100_000
RESOURCE = "example.com/many"
SERVICE = "/v1beta1.DevicePlugin"
# Generous: well above what the host needs (a few seconds on a loaded machine), far below the hours the quadratic
# duplicate check took for 100,000 devices.
WAIT = 45.0


def _list_bytes(count: int) -> bytes:
    parts = []
    for i in range(count):
        device = encode_device(f"dev-{i:06d}", "Healthy", None)
        parts.append(b"\x0a" + bytes([len(device)]) + device)
    return b"".join(parts)


class _Raw:
    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data

    @classmethod
    def FromString(cls, data: bytes) -> _Raw:
        return cls(data)


class _ManyDevicesPlugin(ScriptedPlugin):
    """Answers ListAndWatch with one message of pre-encoded devices (the plugin itself costs next to nothing)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = data

    async def _list(self, stream: Stream[Any, Any]) -> None:
        await stream.recv_message()
        await stream.send_message(_Raw(self.data))
        await anyio.sleep_forever()

    def __mapping__(self) -> dict[str, Handler]:
        mapping: dict[str, Handler] = super().__mapping__()
        mapping[f"{SERVICE}/ListAndWatch"] = Handler(self._list, Cardinality.UNARY_STREAM, _Raw, _Raw)
        return mapping


@pytest.fixture
async def manager() -> AsyncIterator[DeviceManager]:
    async with DeviceManager(stats_interval=None) as devices:
        yield devices


def test_the_duplicate_check_of_100k_devices_is_one_pass() -> None:
    """_check_groups names the one repeated id among 100,000 devices (a count() per id took hours)."""
    devices = (*tuple(Device(id=f"d{i}", healthy=True) for i in range(COUNT)), Device(id="d7", healthy=False))
    group = DeviceGroup(vendor="v", type="t", name="n", devices=devices)
    assert _check_groups((group,)) == "device group 'v/t/n' lists device ids ['d7'] more than once"


def test_a_later_list_reuses_the_unchanged_devices() -> None:
    """Converting the next list creates only the devices that changed; the others are the last list's objects."""
    listed = [ListedDevice(f"d{i}", "Healthy", None) for i in range(1000)]
    first = convert.devices_from_wire(listed)
    listed[500] = ListedDevice("d500", "Unhealthy", None)
    second = convert.devices_from_wire(listed, first)
    changed = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a is not b]
    assert changed == [500]
    assert not second[500].healthy


async def test_100k_devices_in_one_message_reach_the_manager_without_stalling_the_loop(
    short_tmp: Path, manager: DeviceManager
) -> None:
    """A real plugin sending 100,000 devices in one ListAndWatch message over a Unix socket: the device manager
    lists them all, and a ticker task is never kept waiting for a second (the loop is not blocked by the work)."""
    plugin_dir = short_tmp / "dp"
    plugin = _ManyDevicesPlugin(_list_bytes(COUNT))
    gaps = [0.0]

    async def ticker() -> None:
        while True:
            before = time.perf_counter()
            await anyio.sleep(0.001)
            gaps[0] = max(gaps[0], time.perf_counter() - before)

    async with (
        Registry() as registry,
        KubeletRegistrationServer(plugin_dir, registry, devices=manager) as server,
        serve_plugin(plugin, plugin_dir / "many.sock"),
        manager.subscribe() as changes,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(ticker)
        await register(server.socket_path, endpoint="many.sock", resource_name=RESOURCE)
        with anyio.fail_after(WAIT):
            async for _ in changes:
                snapshot = manager.snapshot().plugin(RESOURCE)
                if snapshot is not None and snapshot.groups:
                    break
        tg.cancel_scope.cancel()
    assert snapshot is not None
    (group,) = snapshot.groups
    assert len(group.devices) == COUNT
    assert group.devices[-1].id == f"dev-{COUNT - 1:06d}"
    assert gaps[0] < 1.0, f"the event loop was blocked for {gaps[0]:.3f} s"
