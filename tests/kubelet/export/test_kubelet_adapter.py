"""DevicePluginScanner: Nomad-style device plugins (fs-device included) exported to kubelet through the framework's
Manager, checked against the fake kubelet."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from plugin_host.base import hclspec
from plugin_host.base.api import PluginInfoResponse
from plugin_host.device import (
    ContainerReservation,
    Device,
    DeviceGroup,
    DeviceSpec,
    FingerprintResponse,
    Mount,
    StatsResponse,
)
from plugin_host.errors import ConfigError, InvalidPluginError, InvalidRequestError, PluginRPCError
from plugin_host.kubelet import AllocateRequest, ContainerAllocateRequest, KubeletDeviceSpec, KubeletMount, Manager
from plugin_host.kubelet.export.adapter import DevicePluginScanner, container_response, device_type_for_group
from plugin_host.plugins.fsdevice import FsDevice
from plugin_host.testing.kubelet import FakeKubelet

pytestmark = pytest.mark.anyio

WAIT = 5.0
FS_RESOURCE = "example.com/nomad-file-mock"


def _group(vendor: str, type_: str, name: str) -> DeviceGroup:
    return DeviceGroup(vendor=vendor, type=type_, name=name)


# --- naming and conversion ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        (_group("nomad", "file", "mock"), "nomad-file-mock"),
        (_group("nvidia.com", "gpu", "A100 80GB"), "nvidia.com-gpu-A100_80GB"),
        (_group("acme", "fpga/x", "n:1"), "acme-fpga_x-n_1"),
        (_group("-", "gpu", "."), "gpu"),
    ],
)
def test_device_type_names_are_vendor_type_name_made_valid(group: DeviceGroup, expected: str) -> None:
    """A group's device type is <vendor>-<type>-<name> with characters kubelet refuses replaced."""
    assert device_type_for_group(group) == expected


def test_long_group_names_are_shortened_uniquely() -> None:
    """A name past 63 characters keeps a readable prefix and a hash, so two long groups stay apart."""
    first = device_type_for_group(_group("vendor", "type", "n" * 80 + "1"))
    second = device_type_for_group(_group("vendor", "type", "n" * 80 + "2"))
    assert len(first) == len(second) == 63
    assert first.startswith("vendor-type-nnn")
    assert first != second


def test_a_group_with_no_usable_character_is_refused() -> None:
    """A group whose id has no letter or digit cannot name a device type."""
    with pytest.raises(InvalidPluginError, match=r"device group '-/_/\.' has no letter or digit"):
        device_type_for_group(_group("-", "_", "."))


def test_reservation_becomes_a_container_response() -> None:
    """Mounts, device nodes (cgroup perms, 'rw' when Nomad leaves them empty) and envs map to kubelet's fields."""
    reservation = ContainerReservation(
        envs={"A": "1"},
        mounts=(Mount(task_path="/in", host_path="/out", read_only=True),),
        devices=(
            DeviceSpec(task_path="/dev/x", host_path="/dev/y", cgroup_perms="rwm"),
            DeviceSpec(task_path="/dev/z", host_path="/dev/z"),
        ),
    )
    response = container_response(reservation)
    assert response.envs == {"A": "1"}
    assert response.mounts == (KubeletMount(container_path="/in", host_path="/out", read_only=True),)
    assert response.devices == (
        KubeletDeviceSpec(container_path="/dev/x", host_path="/dev/y", permissions="rwm"),
        KubeletDeviceSpec(container_path="/dev/z", host_path="/dev/z", permissions="rw"),
    )


class ScriptedDevicePlugin:
    """An in-process Nomad device plugin whose fingerprint stream plays what the test pushes."""

    def __init__(self) -> None:
        self.send, self.receive = anyio.create_memory_object_stream[FingerprintResponse | Exception](10)
        self.reserved: list[list[str]] = []

    def close(self) -> None:
        self.send.close()
        self.receive.close()

    async def plugin_info(self) -> PluginInfoResponse:
        return PluginInfoResponse(type="device", plugin_api_versions=("v0.1.0",), plugin_version="1", name="scripted")

    async def config_schema(self) -> hclspec.Spec:
        return hclspec.obj({})

    async def set_config(self, config: Mapping[str, Any] | bytes | Any) -> None:
        return None

    async def fingerprint(self) -> AsyncGenerator[FingerprintResponse, None]:
        async for item in self.receive:
            if isinstance(item, Exception):
                raise item
            yield item

    async def reserve(self, device_ids: Sequence[str]) -> ContainerReservation:
        self.reserved.append(list(device_ids))
        return ContainerReservation(envs={"IDS": ",".join(device_ids)})

    async def stats(self, interval: float) -> AsyncGenerator[StatsResponse, None]:
        await anyio.sleep_forever()
        yield StatsResponse()


def test_constructor_checks_its_arguments() -> None:
    """A non-plugin and bad backoff numbers are refused, naming the argument."""
    plugin = ScriptedDevicePlugin()
    plugin.close()
    with pytest.raises(InvalidPluginError, match="plugin must implement the DevicePlugin protocol, got int"):
        DevicePluginScanner(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="backoff_initial must be a positive number of seconds, got 0"):
        DevicePluginScanner(plugin, backoff_initial=0)
    with pytest.raises(ConfigError, match=r"backoff_max must be a number of seconds >= backoff_initial, got 0\.5"):
        DevicePluginScanner(plugin, backoff_initial=1, backoff_max=0.5)


# --- end to end with the fake kubelet -----------------------------------------------------------------------------


def _manager(short_tmp: Path, scanner: DevicePluginScanner) -> Manager:
    return Manager(
        "example.com",
        scanner,
        plugin_dir=short_tmp / "dp",
        cdi_dir=short_tmp / "cdi",
        watch_interval=0.02,
        register_backoff_initial=0.02,
        register_backoff_max=0.2,
    )


async def test_fs_device_files_reach_kubelet_and_allocate_mounts_them(short_tmp: Path) -> None:
    """A file added to fs-device's directory appears in kubelet's ListAndWatch; Allocate returns the file's mount."""
    devices = short_tmp / "devices"
    devices.mkdir()
    (devices / "dev0").write_text("")
    plugin = FsDevice()
    await plugin.set_config({"dir": str(devices), "list_period": "20ms"})
    async with FakeKubelet(short_tmp / "dp") as kubelet, _manager(short_tmp, DevicePluginScanner(plugin)):
        with anyio.fail_after(WAIT):
            seen = await kubelet.wait_for_devices(FS_RESOURCE)
        assert {d: seen[d].health for d in seen} == {"dev0": "Healthy"}
        (devices / "dev1").write_text("")
        (devices / "dev1").chmod(0o644)
        with anyio.fail_after(WAIT):
            seen = await kubelet.wait_for_devices(FS_RESOURCE, lambda devs: "dev1" in devs)
        assert {d: seen[d].health for d in seen} == {"dev0": "Healthy", "dev1": "Healthy"}
        response = await kubelet.allocate(FS_RESOURCE, ["dev1"])
        assert response.mounts == (
            KubeletMount(container_path="/tmp/task-mounts/dev1", host_path=str(devices / "dev1"), read_only=False),
        )
        assert response.devices == ()
        assert response.envs == {}


async def test_health_and_fingerprint_errors_reach_kubelet(short_tmp: Path) -> None:
    """Unhealthy devices are Unhealthy; a fingerprint error or a failed stream turns every device Unhealthy."""
    plugin = ScriptedDevicePlugin()
    group = DeviceGroup(
        vendor="acme",
        type="gpu",
        name="big",
        devices=(Device(id="g0", healthy=True), Device(id="g1", healthy=False)),
    )
    resource = "example.com/acme-gpu-big"
    scanner = DevicePluginScanner(plugin, backoff_initial=0.01, backoff_max=0.02)
    async with FakeKubelet(short_tmp / "dp") as kubelet, _manager(short_tmp, scanner):
        plugin.send.send_nowait(FingerprintResponse(device_group=group))
        with anyio.fail_after(WAIT):
            seen = await kubelet.wait_for_devices(resource)
        assert {d: seen[d].health for d in seen} == {"g0": "Healthy", "g1": "Unhealthy"}
        assert (await kubelet.allocate(resource, ["g0"])).envs == {"IDS": "g0"}
        assert plugin.reserved == [["g0"]]

        plugin.send.send_nowait(FingerprintResponse(error="sensor failed"))
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(resource, lambda devs: devs["g0"].health == "Unhealthy")
        # The stream comes back after an error: a good message makes the devices healthy again.
        plugin.send.send_nowait(FingerprintResponse(device_group=group))
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(resource, lambda devs: devs["g0"].health == "Healthy")
        plugin.send.send_nowait(RuntimeError("plugin crashed"))
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(resource, lambda devs: devs["g0"].health == "Unhealthy")
        plugin.send.send_nowait(FingerprintResponse(device_group=group))
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices(resource, lambda devs: devs["g0"].health == "Healthy")
    plugin.close()


async def test_allocate_refuses_unknown_and_unhealthy_ids_before_reserving(short_tmp: Path) -> None:
    """The allocate hook names an unknown or unhealthy id (INVALID_ARGUMENT, as kubelet expects) and never calls
    reserve() for it."""
    plugin = ScriptedDevicePlugin()
    group = DeviceGroup(
        vendor="acme", type="gpu", name="big", devices=(Device(id="g0", healthy=True), Device(id="g1", healthy=False))
    )
    scanner = DevicePluginScanner(plugin)
    plugin.send.send_nowait(FingerprintResponse(device_group=group))
    async with FakeKubelet(short_tmp / "dp") as kubelet, _manager(short_tmp, scanner):
        with anyio.fail_after(WAIT):
            await kubelet.wait_for_devices("example.com/acme-gpu-big")
        for ids, message in ((("nope",), "unknown device 'nope'"), (("g1",), "device 'g1' is unhealthy")):
            request = AllocateRequest(container_requests=(ContainerAllocateRequest(devices_ids=ids),))
            with pytest.raises(PluginRPCError, match=message) as info:
                await kubelet.raw_allocate("example.com/acme-gpu-big", request)
            assert info.value.code == "INVALID_ARGUMENT"
        assert plugin.reserved == []
        with pytest.raises(InvalidRequestError, match="unknown device 'nope'"):
            await scanner.allocate(
                AllocateRequest(container_requests=(ContainerAllocateRequest(devices_ids=("nope",)),))
            )
    plugin.close()
