"""PluginHost end to end: real state file, real plugin and admin sockets, real device directory."""

from __future__ import annotations

import socket
import stat
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from plugin_host import PLUGIN_TYPE_DEVICE, PluginConnectionInfo, PluginHost, PluginInfo, Registry, SqliteStateStore
from plugin_host.admin import query_status
from plugin_host.device import DeviceManagerSnapshot, DevicePluginClient, SnapshotChange
from plugin_host.errors import ConfigError, PluginUnavailableError, SocketInUseError
from plugin_host.host_config import HostConfig, PluginConfig

pytestmark = pytest.mark.anyio


@pytest.fixture
def devices_dir(short_tmp: Path) -> Path:
    path = short_tmp / "devices"
    path.mkdir()
    for name in ("dev0", "dev1"):
        (path / name).write_text("")
        (path / name).chmod(0o644)
    return path


@pytest.fixture
def config(short_tmp: Path, devices_dir: Path) -> HostConfig:
    return HostConfig.from_mapping(
        {
            "state_dir": str(short_tmp / "st"),
            "plugins": {"fs-device": {"config": {"dir": str(devices_dir), "list_period": "50ms"}}},
        }
    )


def _sockets(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if stat.S_ISSOCK(p.lstat().st_mode)]


def _device_ids(snapshot: DeviceManagerSnapshot) -> set[str]:
    return {device.id for group in snapshot.groups for device in group.devices}


async def _wait_for(host: PluginHost, condition: Callable[[DeviceManagerSnapshot], bool]) -> None:
    with anyio.fail_after(5):
        async with host.devices.subscribe() as changes:
            async for _ in changes:
                if condition(host.devices.snapshot()):
                    return


async def test_fs_device_is_served_and_registered(config: HostConfig) -> None:
    """The configured fs-device is registered as type device, alloc host, with its socket in run_dir (0600)."""
    async with PluginHost(config) as host:
        [info] = await host.registry.list_plugins(PLUGIN_TYPE_DEVICE)
        socket_path = config.run_path / "fs-device.sock"
        assert info.name == "fs-device"
        assert info.alloc_id == "host"
        assert info.connection_info == PluginConnectionInfo(socket_path=str(socket_path))
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(config.run_path.stat().st_mode) == 0o700
        assert stat.S_IMODE(config.admin_socket_path.stat().st_mode) == 0o600
        assert host.config is config


async def test_added_file_shows_up_in_manager_and_over_the_socket(config: HostConfig, devices_dir: Path) -> None:
    """A file added to the device dir appears through host.devices and through a client on the plugin socket."""
    async with PluginHost(config) as host:
        await _wait_for(host, lambda s: _device_ids(s) == {"dev0", "dev1"})
        (devices_dir / "dev2").write_text("")
        await _wait_for(host, lambda s: "dev2" in _device_ids(s))
        client = await host.registry.dispense_plugin(PLUGIN_TYPE_DEVICE, "fs-device")
        assert isinstance(client, DevicePluginClient)
        async with client:
            with anyio.fail_after(5):
                async for response in client.fingerprint():
                    assert response.device_group is not None
                    assert {d.id for d in response.device_group.devices} == {"dev0", "dev1", "dev2"}
                    break


async def test_admin_socket_answers_status(config: HostConfig) -> None:
    """The admin socket answers status with the plugin, its socket and each device's health."""
    async with PluginHost(config) as host:
        await _wait_for(host, lambda s: _device_ids(s) == {"dev0", "dev1"})
        status = await query_status(config.admin_socket_path)
        assert status == await host.status()
        [plugin] = status.plugins
        assert (plugin.name, plugin.type, plugin.state) == ("fs-device", "device", "running")
        assert plugin.socket_path == str(config.run_path / "fs-device.sock")
        [group] = plugin.groups
        assert group.id == "nomad/file/mock"
        assert [(d.id, d.healthy) for d in group.devices] == [("dev0", True), ("dev1", True)]


async def test_second_host_on_the_same_state_dir_fails_clearly(config: HostConfig) -> None:
    """A second host with the same config refuses to start, saying one is already running."""
    async with PluginHost(config):
        with pytest.raises(SocketInUseError, match="already running"):
            async with PluginHost(config):
                pass
        # The failed start left the running host untouched.
        assert (await query_status(config.admin_socket_path)).plugins


async def test_exit_removes_every_socket(config: HostConfig, short_tmp: Path) -> None:
    """Leaving the block removes the plugin and admin sockets, and nothing answers any more."""
    async with PluginHost(config):
        assert len(_sockets(short_tmp)) == 2
    assert _sockets(short_tmp) == []
    with pytest.raises(PluginUnavailableError, match="no plugin-host is running"):
        await query_status(config.admin_socket_path)


async def test_stale_admin_socket_is_replaced(config: HostConfig) -> None:
    """A socket file left by a killed host (nobody listening) is replaced on start."""
    config.admin_socket_path.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(config.admin_socket_path))
    stale.close()
    async with PluginHost(config):
        assert (await query_status(config.admin_socket_path)).plugins


async def test_restart_reconciles_the_registry(config: HostConfig) -> None:
    """On start, host device registrations no longer configured are removed; others' registrations stay."""
    async with SqliteStateStore(config.state_file) as store, Registry(state=store) as registry:
        for name, alloc in (("gone", "host"), ("fs-device", "host"), ("by-alloc", "alloc-1")):
            await registry.register_plugin(
                PluginInfo(
                    name=name,
                    type=PLUGIN_TYPE_DEVICE,
                    connection_info=PluginConnectionInfo(socket_path=f"/nowhere/{name}.sock"),
                    alloc_id=alloc,
                )
            )
    for _ in range(2):
        async with PluginHost(config) as host:
            infos = {i.name: i for i in await host.registry.list_plugins(PLUGIN_TYPE_DEVICE)}
            assert sorted(infos) == ["by-alloc", "fs-device"]
            assert infos["fs-device"].connection_info == PluginConnectionInfo(
                socket_path=str(config.run_path / "fs-device.sock")
            )
    async with SqliteStateStore(config.state_file, read_only=True) as store:
        left = await store.load_registry()
    assert [p.info.name for p in left.plugins] == ["by-alloc"]


async def test_bad_plugin_config_fails_at_start_naming_plugin_and_field(config: HostConfig, short_tmp: Path) -> None:
    """A plugin config that slipped past validation fails at start with a ConfigError naming plugin and field."""
    bad = config.model_copy(update={"plugins": {"fs-device": PluginConfig(config={"list_period": "0s"})}})
    with pytest.raises(ConfigError, match=r'plugin "fs-device": .*list_period'):
        async with PluginHost(bad):
            pass
    assert _sockets(short_tmp) == []


async def test_subscription_starts_with_a_snapshot(config: HostConfig) -> None:
    """host.devices is the running DeviceManager: a subscription opens with the current snapshot."""
    async with PluginHost(config) as host, host.devices.subscribe() as changes:
        first = await changes.__anext__()
        assert isinstance(first, SnapshotChange)
        assert first.snapshot.plugin("fs-device") is not None
