"""A new device plugin in a few lines: two fixed "counter" devices, served on a socket and managed in-process.

Run: ``python examples/custom_device_plugin.py`` (prints the devices the manager sees, then exits).
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio

from plugin_host.base import hclspec
from plugin_host.base.api import PluginInfoResponse
from plugin_host.device import (
    ContainerReservation,
    Device,
    DeviceGroup,
    DeviceManager,
    DevicePluginServer,
    FingerprintResponse,
    StatsResponse,
)
from plugin_host.errors import DeviceError

DEVICES = ("c0", "c1")


class CounterDevices:
    """Implements the DevicePlugin Protocol: identity, config, fingerprint, reserve, stats."""

    async def plugin_info(self) -> PluginInfoResponse:
        return PluginInfoResponse(
            type="device", name="counter", plugin_version="0.1.0", plugin_api_versions=("v0.1.0",)
        )

    async def config_schema(self) -> hclspec.Spec:
        return hclspec.obj({})

    async def set_config(self, config: Mapping[str, Any] | bytes | Any) -> None:
        pass  # nothing to configure

    async def fingerprint(self) -> AsyncIterator[FingerprintResponse]:
        devices = tuple(Device(id=d, healthy=True) for d in DEVICES)
        yield FingerprintResponse(
            device_group=DeviceGroup(vendor="example", type="counter", name="basic", devices=devices)
        )
        await anyio.sleep_forever()  # the devices never change; the stream stays open until closed

    async def reserve(self, device_ids: Sequence[str]) -> ContainerReservation:
        """Hand the chosen counters to the task through an environment variable."""
        unknown = sorted(set(device_ids) - set(DEVICES))
        if unknown:
            raise DeviceError(f"counter: unknown devices {unknown}; expected some of {list(DEVICES)}")
        return ContainerReservation(envs={"COUNTERS": ",".join(device_ids)})

    async def stats(self, interval: float) -> AsyncIterator[StatsResponse]:
        """No statistics to report: an empty message every interval."""
        while True:
            yield StatsResponse()
            await anyio.sleep(interval)


async def main() -> None:
    """Serve the plugin on a socket, manage it, print its devices and reserve one."""
    plugin = CounterDevices()
    socket_path = Path(tempfile.mkdtemp(prefix="counter-")) / "counter.sock"
    # The socket is for other processes (Nomad, DevicePluginClient); the manager uses the object directly.
    async with DevicePluginServer(plugin, socket_path), DeviceManager() as manager:
        await manager.add_plugin("counter", plugin, socket_path=str(socket_path))
        async with manager.subscribe() as changes:
            async for _ in changes:
                if manager.snapshot().groups:
                    break
        for group in manager.snapshot().groups:
            print(group.id, [device.id for device in group.devices])
        print(await manager.reserve("example/counter/basic", ["c1"]))
    socket_path.parent.rmdir()


if __name__ == "__main__":
    anyio.run(main)
