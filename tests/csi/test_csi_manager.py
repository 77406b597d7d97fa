"""CsiManager: fingerprinting and probing of the registry's CSI plugins over real Unix sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from helpers.csi import HOSTPATH_NAME, serve_hostpath

from plugin_host import PluginConnectionInfo, PluginInfo, Registry, SqliteStateStore
from plugin_host.csi._dispense import CsiClients
from plugin_host.csi._health import CsiPluginHealth
from plugin_host.csi.manager import CsiManager
from plugin_host.errors import ConfigError

pytestmark = pytest.mark.anyio

INTERVAL = 0.2
WAIT = 10.0


def csi_plugin(socket: Path, *, ptype: str = "csi-node", name: str = "hostpath", alloc_id: str = "a1") -> PluginInfo:
    """A registration of a CSI plugin at ``socket``."""
    return PluginInfo(
        name=name,
        type=ptype,
        version="1.0.0",
        alloc_id=alloc_id,
        connection_info=PluginConnectionInfo(socket_path=str(socket)),
    )


async def until(changes: AsyncIterator[CsiPluginHealth], wanted: Callable[[CsiPluginHealth], bool]) -> CsiPluginHealth:
    """The first health record that satisfies ``wanted`` (bound it with anyio.fail_after)."""
    async for health in changes:
        if wanted(health):
            return health
    raise AssertionError("the subscription ended before the expected health record")


async def test_registered_node_plugin_is_fingerprinted_healthy(short_tmp: Path) -> None:
    """A csi-node registration is fingerprinted: plugin info, capabilities and node info, and healthy."""
    sock = short_tmp / "node.sock"
    async with (
        serve_hostpath(sock),
        Registry() as registry,
        CsiManager(registry, probe_interval=INTERVAL) as manager,
        manager.subscribe() as changes,
    ):
        await registry.register_plugin(csi_plugin(sock))
        with anyio.fail_after(WAIT):
            health = await until(changes, lambda h: h.healthy)
        assert (health.name, health.type, health.description) == ("hostpath", "csi-node", "healthy")
        assert health.info is not None
        assert (health.info.name, health.info.vendor_version) == (HOSTPATH_NAME, "0.1.0")
        assert health.node_info is not None
        assert (health.node_info.node_id, health.node_info.max_volumes_per_node) == ("node-1", 8)
        assert health.capabilities is not None
        assert [c.rpc.type.value for c in health.capabilities.node if c.rpc] == ["GET_VOLUME_STATS"]
        assert [c.service.type.value for c in health.capabilities.plugin if c.service] == [
            "CONTROLLER_SERVICE",
            "VOLUME_ACCESSIBILITY_CONSTRAINTS",
        ]
        assert health.capabilities.controller == ()
        assert manager.snapshot() == (health,)
        assert manager.health("csi-node", "hostpath") == health


async def test_registered_controller_plugin_reports_controller_capabilities(short_tmp: Path) -> None:
    """A csi-controller registration is fingerprinted with ControllerGetCapabilities and no node info."""
    sock = short_tmp / "ctl.sock"
    async with (
        serve_hostpath(sock),
        Registry() as registry,
        CsiManager(registry, probe_interval=INTERVAL) as manager,
        manager.subscribe() as changes,
    ):
        await registry.register_plugin(csi_plugin(sock, ptype="csi-controller"))
        with anyio.fail_after(WAIT):
            health = await until(changes, lambda h: h.healthy)
        assert health.type == "csi-controller"
        assert health.node_info is None
        assert health.capabilities is not None
        assert [c.rpc.type.value for c in health.capabilities.controller if c.rpc] == [
            "CREATE_DELETE_VOLUME",
            "LIST_VOLUMES",
            "GET_CAPACITY",
        ]


async def test_probe_not_ready_is_unhealthy_until_ready_again(short_tmp: Path) -> None:
    """Probe ready=false makes the plugin unhealthy; once ready it is fingerprinted again and healthy."""
    sock = short_tmp / "p.sock"
    async with (
        serve_hostpath(sock) as plugin,
        Registry() as registry,
        CsiManager(registry, probe_interval=INTERVAL) as manager,
        manager.subscribe() as changes,
    ):
        await registry.register_plugin(csi_plugin(sock))
        with anyio.fail_after(WAIT):
            await until(changes, lambda h: h.healthy)
        plugin.ready = False
        with anyio.fail_after(WAIT):
            unhealthy = await until(changes, lambda h: not h.healthy)
        assert unhealthy.description == "Probe: the plugin is not ready"
        assert unhealthy.info is not None  # the last fingerprint is kept
        plugin.ready = True
        with anyio.fail_after(WAIT):
            healthy = await until(changes, lambda h: h.healthy)
        assert healthy.description == "healthy"


async def test_missing_socket_is_unhealthy_and_never_forgotten(short_tmp: Path) -> None:
    """A plugin whose socket does not exist stays supervised, unhealthy, naming the socket."""
    sock = short_tmp / "absent.sock"
    async with (
        Registry() as registry,
        CsiManager(registry, probe_interval=INTERVAL) as manager,
        manager.subscribe() as changes,
    ):
        await registry.register_plugin(csi_plugin(sock))
        with anyio.fail_after(WAIT):
            health = await until(changes, lambda h: h.description != "not fingerprinted yet")
        assert not health.healthy
        assert str(sock) in health.description
        assert manager.snapshot() == (health,)


async def test_deregistration_stops_supervision_and_closes_the_channel(short_tmp: Path) -> None:
    """Deregistering publishes a last record (supervised=False), forgets the plugin and closes its socket's channel."""
    sock = short_tmp / "d.sock"
    async with (
        serve_hostpath(sock),
        CsiClients() as clients,
        Registry() as registry,
        CsiManager(registry, probe_interval=INTERVAL, clients=clients) as manager,
        manager.subscribe() as changes,
    ):
        await registry.register_plugin(csi_plugin(sock))
        with anyio.fail_after(WAIT):
            await until(changes, lambda h: h.healthy)
        assert clients.sockets() == [str(sock)]
        await registry.deregister_plugin("csi-node", "hostpath", "a1")
        with anyio.fail_after(WAIT):
            last = await until(changes, lambda h: not h.supervised)
        assert (last.healthy, last.description) == (False, "deregistered; supervision stopped")
        assert manager.snapshot() == ()
        assert clients.sockets() == []


async def test_newer_registration_replaces_the_supervised_one(short_tmp: Path) -> None:
    """A second alloc of the same name is supervised instead of the first (the newest registration wins)."""
    old, new = short_tmp / "old.sock", short_tmp / "new.sock"
    async with (
        serve_hostpath(old),
        serve_hostpath(new),
        Registry() as registry,
        CsiManager(registry, probe_interval=INTERVAL) as manager,
        manager.subscribe() as changes,
    ):
        await registry.register_plugin(csi_plugin(old, alloc_id="a1"))
        with anyio.fail_after(WAIT):
            await until(changes, lambda h: h.healthy)
        await registry.register_plugin(csi_plugin(new, alloc_id="a2"))
        with anyio.fail_after(WAIT):
            health = await until(changes, lambda h: h.healthy and h.alloc_id == "a2")
        assert health.socket_path == str(new)
        assert [h.alloc_id for h in manager.snapshot()] == ["a2"]


async def test_plugins_restored_from_the_state_file_are_fingerprinted(short_tmp: Path) -> None:
    """A manager started on a registry reopened from its state file fingerprints the plugins it holds."""
    db, sock = short_tmp / "state.db", short_tmp / "r.sock"
    async with SqliteStateStore(db) as store, Registry(state=store) as registry:
        await registry.register_plugin(csi_plugin(sock, ptype="csi-controller", name="restored"))
    async with (
        serve_hostpath(sock),
        SqliteStateStore(db) as store,
        Registry(state=store) as registry,
        CsiManager(registry, probe_interval=INTERVAL) as manager,
        manager.subscribe() as changes,
    ):
        with anyio.fail_after(WAIT):
            health = await until(changes, lambda h: h.healthy)
        assert (health.name, health.type) == ("restored", "csi-controller")


async def test_bad_settings_are_config_errors() -> None:
    """Non-positive periods and a registry that is not one are refused, naming the setting and the value."""
    async with Registry() as registry:
        with pytest.raises(ConfigError, match="probe_interval must be a positive number of seconds, got 0"):
            CsiManager(registry, probe_interval=0)
        with pytest.raises(ConfigError, match="call_timeout must be a positive number of seconds, got -1"):
            CsiManager(registry, call_timeout=-1)
        with pytest.raises(ConfigError, match="registry must be a Registry, got str"):
            CsiManager("registry")  # type: ignore[arg-type]


async def test_newer_registration_on_the_same_socket_keeps_the_dispensed_client_open(short_tmp: Path) -> None:
    """A re-registration at the same socket (new alloc) is not a deregistration: a client callers hold keeps working."""
    sock = short_tmp / "same.sock"
    async with (
        serve_hostpath(sock),
        CsiClients() as clients,
        Registry() as registry,
        CsiManager(registry, probe_interval=INTERVAL, clients=clients) as manager,
        manager.subscribe() as changes,
    ):
        await registry.register_plugin(csi_plugin(sock, alloc_id="a1"))
        with anyio.fail_after(WAIT):
            await until(changes, lambda h: h.healthy)
        held = await clients.dispense(csi_plugin(sock, alloc_id="a1"))
        await registry.register_plugin(csi_plugin(sock, alloc_id="a2"))
        with anyio.fail_after(WAIT):
            await until(changes, lambda h: h.healthy and h.alloc_id == "a2")
        assert await held.probe() is True
        assert await clients.dispense(csi_plugin(sock, alloc_id="a2")) is held
        assert clients.sockets() == [str(sock)]
