"""CsiManager against the example CSI plugin running as its own process: SIGKILL, restart, deregistration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from helpers.csi import HOSTPATH_NAME, run_hostpath_process

from plugin_host import PluginConnectionInfo, PluginInfo, Registry
from plugin_host.csi import CsiClients, CsiManager, CsiPluginHealth

pytestmark = pytest.mark.anyio

INTERVAL = 0.2
WAIT = 10.0


async def until(changes: AsyncIterator[CsiPluginHealth], wanted: Callable[[CsiPluginHealth], bool]) -> CsiPluginHealth:
    """The first health record that satisfies ``wanted`` (bound it with anyio.fail_after)."""
    async for health in changes:
        if wanted(health):
            return health
    raise AssertionError("the subscription ended before the expected health record")


async def test_killed_plugin_is_unhealthy_within_a_probe_interval_and_healthy_after_restart(short_tmp: Path) -> None:
    """SIGKILL → unhealthy within one probe interval (plus the failing probe); restarted → fingerprinted, healthy."""
    sock = short_tmp / "hp.sock"
    info = PluginInfo(
        name="hostpath",
        type="csi-node",
        version="1.12.0",
        alloc_id="alloc-1",
        connection_info=PluginConnectionInfo(socket_path=str(sock)),
    )
    async with (
        CsiClients() as clients,
        Registry() as registry,
        CsiManager(registry, probe_interval=INTERVAL, call_timeout=2.0, clients=clients) as manager,
        manager.subscribe() as changes,
    ):
        async with run_hostpath_process(sock) as process:
            await registry.register_plugin(info)
            with anyio.fail_after(WAIT):
                healthy = await until(changes, lambda h: h.healthy)
            assert healthy.info is not None
            assert healthy.info.name == HOSTPATH_NAME
            process.kill()  # SIGKILL: no goodbye, the socket file stays behind
            await process.wait()
            # The next probe, at most one interval away, is refused; a second interval covers the probe itself.
            with anyio.fail_after(2 * INTERVAL):
                unhealthy = await until(changes, lambda h: not h.healthy)
        assert str(sock) in unhealthy.description
        assert unhealthy.info == healthy.info  # the last fingerprint is kept while unhealthy
        assert manager.health("csi-node", "hostpath") == unhealthy  # never forgotten

        async with run_hostpath_process(sock, name="restarted.csi.plugin-host.dev"):
            with anyio.fail_after(WAIT):
                again = await until(changes, lambda h: h.healthy)
            assert again.info is not None
            assert again.info.name == "restarted.csi.plugin-host.dev"  # fingerprinted afresh, not just probed

            await registry.deregister_plugin("csi-node", "hostpath", "alloc-1")
            with anyio.fail_after(WAIT):
                last = await until(changes, lambda h: not h.supervised)
            assert last.description == "deregistered; supervision stopped"
            assert manager.snapshot() == ()
            assert clients.sockets() == []
