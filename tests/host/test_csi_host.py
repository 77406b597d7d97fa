"""PluginHost with CSI: kubelet-style registration, supervision, dispensed clients, status, and restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from helpers.csi import HOSTPATH_NAME, csi_info, serve_hostpath, serve_registrar

from plugin_host import PluginConnectionInfo, PluginHost, PluginInfo
from plugin_host.admin import query_status
from plugin_host.csi import CsiClient, CsiPluginHealth
from plugin_host.host_config import HostConfig

pytestmark = pytest.mark.anyio

WAIT = 10.0


def host_config(root: Path, *, registry_dir: Path | None = None) -> HostConfig:
    """A host with state under ``root``, no device plugins, and optionally a plugins_registry directory."""
    mapping: dict[str, object] = {"state_dir": str(root / "st")}
    if registry_dir is not None:
        mapping["plugins_registry"] = {"dir": str(registry_dir)}
    return HostConfig.from_mapping(mapping)


async def until(changes: AsyncIterator[CsiPluginHealth], wanted: Callable[[CsiPluginHealth], bool]) -> CsiPluginHealth:
    """The first health record that satisfies ``wanted`` (bound it with anyio.fail_after)."""
    async for health in changes:
        if wanted(health):
            return health
    raise AssertionError("the subscription ended before the expected health record")


async def test_driver_registered_through_plugins_registry_is_supervised_and_dispensed(short_tmp: Path) -> None:
    """A registrar in plugins_registry makes a csi-node plugin: healthy in host.csi and status, dispensed shared."""
    registry_dir, endpoint = short_tmp / "reg", short_tmp / "csi.sock"
    config = host_config(short_tmp, registry_dir=registry_dir)
    async with serve_hostpath(endpoint), PluginHost(config) as host, host.csi.subscribe() as changes:
        assert host.plugin_watcher is not None
        assert registry_dir.is_dir()
        async with serve_registrar(registry_dir / "hostpath-reg.sock", csi_info(endpoint=str(endpoint))) as registrar:
            with anyio.fail_after(WAIT):
                assert (await registrar.status()).plugin_registered is True
                health = await until(changes, lambda h: h.healthy)
            assert (health.name, health.type, health.socket_path) == (csi_info().name, "csi-node", str(endpoint))

            client = await host.registry.dispense_plugin("csi-node", csi_info().name)
            assert isinstance(client, CsiClient)
            assert client is await host.registry.dispense_plugin("csi-node", csi_info().name)  # one shared channel
            assert (await client.get_plugin_info()).name == HOSTPATH_NAME  # already open: no `async with`

            status = await query_status(config.admin_socket_path)
            [plugin] = status.plugins
            assert (plugin.type, plugin.state, plugin.last_error) == ("csi-node", "healthy", None)


async def test_unhealthy_csi_plugin_shows_its_reason_in_status(short_tmp: Path) -> None:
    """A CSI plugin whose socket is missing is listed by status as unhealthy, with the reason naming the socket."""
    sock = short_tmp / "absent.sock"
    async with PluginHost(host_config(short_tmp)) as host, host.csi.subscribe() as changes:
        await host.registry.register_plugin(
            PluginInfo(
                name="gone",
                type="csi-controller",
                alloc_id="a1",
                connection_info=PluginConnectionInfo(socket_path=str(sock)),
            )
        )
        with anyio.fail_after(WAIT):
            await until(changes, lambda h: h.description != "not fingerprinted yet")
        [plugin] = (await host.status()).plugins
        assert (plugin.name, plugin.state) == ("gone", "unhealthy")
        assert plugin.last_error is not None
        assert str(sock) in plugin.last_error


async def test_csi_plugins_restored_from_the_state_file_are_fingerprinted_on_start(short_tmp: Path) -> None:
    """A CSI plugin registered before a host restart is fingerprinted by the next host from the state file."""
    sock = short_tmp / "ctl.sock"
    config = host_config(short_tmp)
    info = PluginInfo(
        name="hostpath",
        type="csi-controller",
        version="1.12.0",
        alloc_id="alloc-1",
        connection_info=PluginConnectionInfo(socket_path=str(sock)),
    )
    async with PluginHost(config) as host:
        await host.registry.register_plugin(info)
    async with serve_hostpath(sock), PluginHost(config) as host, host.csi.subscribe() as changes:
        assert await host.registry.list_plugins("csi-controller") == [info]
        with anyio.fail_after(WAIT):
            health = await until(changes, lambda h: h.healthy)
        assert (health.name, health.type, health.alloc_id) == ("hostpath", "csi-controller", "alloc-1")
        assert health.capabilities is not None
        assert health.capabilities.controller


async def test_watcher_registrations_are_reconciled_across_host_restarts(short_tmp: Path) -> None:
    """A driver whose registration socket vanished while the host was down is deregistered when the host restarts."""
    registry_dir = short_tmp / "reg"
    registry_dir.mkdir()
    config = host_config(short_tmp, registry_dir=registry_dir)
    async with (
        serve_registrar(registry_dir / "x-reg.sock", csi_info(endpoint="/run/x.sock")) as registrar,
        PluginHost(config) as host,
    ):
        with anyio.fail_after(WAIT):
            assert (await registrar.status()).plugin_registered is True
        assert [p.name for p in await host.registry.list_plugins("csi-node")] == [csi_info().name]
    # The host stopped with the driver registered; then the registration socket went away.
    async with PluginHost(config) as host:
        assert await host.registry.list_plugins("csi-node") == []
        assert host.csi.snapshot() == ()
