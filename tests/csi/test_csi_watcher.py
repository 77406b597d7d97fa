"""PluginWatcher: kubelet-style registration of CSI drivers through real registration sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers.csi import bind_silent_socket, csi_info, serve_garbage, serve_registrar

from plugin_host import EventType, PluginConnectionInfo, PluginInfo, Registry, SqliteStateStore
from plugin_host._proto import pluginregistration as wire
from plugin_host.csi._dirwatch import scan_sockets
from plugin_host.csi._registration import highest_supported_version
from plugin_host.csi.watcher import PluginWatcher
from plugin_host.errors import ConfigError

pytestmark = pytest.mark.anyio

NAME = "hostpath.csi.example.com"
WAIT = 10.0


@asynccontextmanager
async def watching(directory: Path, registry: Registry, **kwargs: float) -> AsyncIterator[PluginWatcher]:
    """A watcher with quick retries and rescans, as tests want."""
    options: dict[str, Any] = {"scan_interval": 0.2, "retry_initial": 0.05, "retry_max": 0.2, "call_timeout": 2.0}
    async with PluginWatcher(directory, registry, **(options | kwargs)) as watcher:
        yield watcher


async def test_socket_in_the_directory_registers_a_csi_node_plugin(short_tmp: Path) -> None:
    """A registrar socket present at start is asked GetInfo, registered as csi-node, and told it is registered."""
    reg_dir = short_tmp / "reg"
    reg_dir.mkdir()
    endpoint = str(short_tmp / "csi.sock")
    async with (
        serve_registrar(reg_dir / "hp-reg.sock", csi_info(endpoint=endpoint, versions=("1.0.0", "1.5.0"))) as r,
        Registry() as registry,
        watching(reg_dir, registry),
    ):
        with anyio.fail_after(WAIT):
            status = await r.status()
        assert status.plugin_registered is True
        assert status.error == ""
        [info] = await registry.list_plugins("csi-node")
        assert info == PluginInfo(
            name=NAME,
            type="csi-node",
            version="1.5.0",
            connection_info=PluginConnectionInfo(socket_path=endpoint),
            alloc_id=f"plugins-registry:{reg_dir / 'hp-reg.sock'}",
        )


async def test_socket_appearing_later_is_registered_and_its_removal_deregisters(short_tmp: Path) -> None:
    """A socket bound after the watcher started is registered; deleting the socket file deregisters the plugin."""
    sock = short_tmp / "late-reg.sock"
    async with (
        Registry() as registry,
        watching(short_tmp, registry, scan_interval=30.0),
        registry.subscribe("csi-node") as events,
    ):
        async with serve_registrar(sock, csi_info()) as registrar:
            with anyio.fail_after(WAIT):
                info = await registry.wait_for_plugin("csi-node", NAME)
                assert (await registrar.status()).plugin_registered is True
            sock.unlink()
            with anyio.fail_after(WAIT):
                async for event in events:
                    if event.event_type is EventType.DEREGISTERED:
                        break
        assert event.info == info
        assert await registry.list_plugins("csi-node") == []


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (csi_info(ptype="DevicePlugin"), "plugin type 'DevicePlugin' is not supported; expected 'CSIPlugin'"),
        (csi_info(versions=("0.3.0", "2.0.0")), "supported_versions ['0.3.0', '2.0.0'] has no supported CSI version"),
        (csi_info(versions=()), "supported_versions is empty"),
        (csi_info(name=""), "plugin name is empty"),
        (csi_info(endpoint=""), f"endpoint of plugin {NAME!r} is empty"),
        (csi_info(endpoint="csi.sock"), f"endpoint 'csi.sock' of plugin {NAME!r} is not absolute"),
    ],
    ids=["type", "version", "no-version", "empty-name", "empty-endpoint", "relative-endpoint"],
)
async def test_refused_registration_is_told_why_and_registers_nothing(
    short_tmp: Path, answer: wire.PluginInfo, expected: str
) -> None:
    """Bad type, version, name or endpoint: NotifyRegistrationStatus(false, error naming it), nothing registered."""
    async with (
        serve_registrar(short_tmp / "bad-reg.sock", answer) as registrar,
        Registry() as registry,
        watching(short_tmp, registry) as watcher,
    ):
        with anyio.fail_after(WAIT):
            status = await registrar.status()
        assert status.plugin_registered is False
        assert expected in status.error
        assert await registry.list_plugins("csi-node") == []
        assert watcher.registrations() == {}


async def test_dot_files_and_non_sockets_are_ignored(short_tmp: Path) -> None:
    """Sockets named with a leading dot and regular files are never asked to register."""
    (short_tmp / "notes.sock").write_text("not a socket")
    async with (
        serve_registrar(short_tmp / ".hidden.sock", csi_info(name="hidden")) as hidden,
        serve_registrar(short_tmp / "shown.sock", csi_info()) as shown,
        Registry() as registry,
        watching(short_tmp, registry),
    ):
        assert sorted(scan_sockets(short_tmp)) == [str(short_tmp / "shown.sock")]
        with anyio.fail_after(WAIT):
            assert (await shown.status()).plugin_registered is True
        assert hidden.get_info_calls == 0
        assert [p.name for p in await registry.list_plugins("csi-node")] == [NAME]


async def test_unreachable_and_garbage_sockets_do_not_stop_the_watcher(short_tmp: Path) -> None:
    """A socket nobody listens on and one answering non-HTTP/2 bytes are retried; a good one still registers."""
    silent = bind_silent_socket(short_tmp / "silent.sock")
    try:
        async with (
            serve_garbage(short_tmp / "garbage.sock"),
            Registry() as registry,
            watching(short_tmp, registry),
            serve_registrar(short_tmp / "good.sock", csi_info()) as good,
        ):
            with anyio.fail_after(WAIT):
                assert (await good.status()).plugin_registered is True
            assert [p.name for p in await registry.list_plugins("csi-node")] == [NAME]
    finally:
        silent.close()


async def test_socket_replaced_by_a_registrar_is_registered(short_tmp: Path) -> None:
    """A path that first answered garbage and is then re-bound by a registrar gets registered (new socket, new try)."""
    sock = short_tmp / "swap.sock"
    async with Registry() as registry, watching(short_tmp, registry, scan_interval=30.0):
        async with serve_garbage(sock):
            pass
        async with serve_registrar(sock, csi_info()) as registrar:
            with anyio.fail_after(WAIT):
                assert (await registrar.status()).plugin_registered is True
            assert [p.name for p in await registry.list_plugins("csi-node")] == [NAME]


async def test_second_socket_with_the_same_name_needs_a_higher_version(short_tmp: Path) -> None:
    """Like the kubelet: a name registered through one socket is refused through another at the same version."""
    async with (
        Registry() as registry,
        watching(short_tmp, registry, scan_interval=30.0),
        serve_registrar(short_tmp / "a.sock", csi_info(endpoint="/run/a.sock")) as first,
    ):
        with anyio.fail_after(WAIT):
            assert (await first.status()).plugin_registered is True
        async with serve_registrar(short_tmp / "b.sock", csi_info(endpoint="/run/b.sock")) as second:
            with anyio.fail_after(WAIT):
                status = await second.status()
            assert status.plugin_registered is False
            assert f"plugin name {NAME!r} is already registered through" in status.error
            async with serve_registrar(
                short_tmp / "c.sock", csi_info(endpoint="/run/c.sock", versions=("1.1.0",))
            ) as third:
                with anyio.fail_after(WAIT):
                    assert (await third.status()).plugin_registered is True
                newest = await registry.wait_for_plugin("csi-node", NAME)
                assert newest.connection_info == PluginConnectionInfo(socket_path="/run/c.sock")


async def test_registrations_are_reconciled_when_the_host_restarts(short_tmp: Path) -> None:
    """After a restart, registrations whose socket vanished are deregistered; the others are asked again and kept."""
    db = short_tmp / "state.db"
    reg_dir = short_tmp / "reg"
    reg_dir.mkdir()
    kept_sock, gone_sock = reg_dir / "kept.sock", reg_dir / "gone.sock"
    async with serve_registrar(kept_sock, csi_info(name="kept", endpoint="/run/kept.sock")) as kept:
        async with SqliteStateStore(db) as store, Registry(state=store) as registry, watching(reg_dir, registry):
            async with serve_registrar(gone_sock, csi_info(name="gone", endpoint="/run/gone.sock")) as gone:
                with anyio.fail_after(WAIT):
                    assert (await kept.status()).plugin_registered is True
                    assert (await gone.status()).plugin_registered is True
                # The watcher stops while both are registered; "gone" disappears while no host runs.
            assert {p.name for p in await registry.list_plugins("csi-node")} == {"kept", "gone"}
        async with SqliteStateStore(db) as store, Registry(state=store) as registry:
            assert {p.name for p in await registry.list_plugins("csi-node")} == {"kept", "gone"}
            async with watching(reg_dir, registry) as watcher:
                assert [p.name for p in await registry.list_plugins("csi-node")] == ["kept"]
                with anyio.fail_after(WAIT):
                    assert (await kept.status(2)).plugin_registered is True
                assert list(watcher.registrations()) == [str(kept_sock)]


async def test_bad_arguments_are_config_errors(short_tmp: Path) -> None:
    """An empty directory or a non-positive period is refused, naming the setting and the value."""
    async with Registry() as registry:
        with pytest.raises(ConfigError, match="plugins_registry dir must be a non-empty path, got ''"):
            PluginWatcher("", registry)
        with pytest.raises(ConfigError, match="scan_interval must be a positive number of seconds, got 0"):
            PluginWatcher(short_tmp, registry, scan_interval=0)
        (short_tmp / "file").write_text("x")
        expected = r"plugins_registry dir '.*/file' cannot be created: \[Errno 17\] File exists"
        with pytest.raises(ConfigError, match=expected):
            async with PluginWatcher(short_tmp / "file", registry):
                pass


@pytest.mark.parametrize(
    ("versions", "chosen"),
    [
        (["1.0.0"], "1.0.0"),
        (["0.3.0", "1.0.0", "1.12.0", "1.2.0", "2.0.0"], "1.12.0"),
        (["v1.5.0", "junk", "1"], "v1.5.0"),
        (["1.2"], "1.2"),
    ],
)
def test_the_highest_csi_1x_version_is_chosen(versions: list[str], chosen: str) -> None:
    """Like the kubelet: the highest parseable 1.x version wins; 0.x, 2.x and unparseable ones are skipped."""
    assert highest_supported_version(versions)[0] == chosen
