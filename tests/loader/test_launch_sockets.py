"""A launched plugin may only announce a socket it made in the directory the host gave it; any other is refused
before it is dialled and is never sent Shutdown or removed (hostile handshakes, with real scripted processes)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import pytest

from plugin_host._process import process_start_time
from plugin_host.admin import AdminServer, query_status
from plugin_host.device import DeviceManager
from plugin_host.loader import _launch_socket
from plugin_host.loader._launch_socket import NotItsSocket, SocketDir, check_announced_socket
from plugin_host.loader.launcher import LaunchState, LaunchStatus, PluginLauncher, PluginSpec, plugin_specs_from_dir
from plugin_host.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0


def write_plugin(plugin_dir: Path, name: str, body: str) -> Path:
    """An executable Python script in plugin_dir, with ``sock_dir`` bound to its PLUGIN_UNIX_SOCKET_DIR."""
    path = plugin_dir / name
    path.write_text(
        f"#!{sys.executable}\nimport os, sys, time\n"
        f"sock_dir = os.environ.get('PLUGIN_UNIX_SOCKET_DIR', '/tmp')\n{body}\n"
    )
    path.chmod(0o755)
    return path


def announce(address_expr: str, setup: str = "") -> str:
    """A plugin body that runs ``setup``, prints a handshake naming ``address_expr`` and waits."""
    return f"{setup}\nprint('1|2|unix|' + {address_expr} + '|grpc', flush=True)\ntime.sleep(60)"


@contextmanager
def bystander(path: Path) -> Iterator[socket.socket]:
    """A listening socket nobody accepts on: a connection attempt would be left pending in its backlog."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(os.fspath(path))
    # Made well before any plugin starts, as the admin socket or another plugin's socket would be.
    earlier = path.stat().st_mtime_ns - 3600 * 10**9
    os.utime(path, ns=(earlier, earlier))
    sock.listen(8)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def never_dialled(sock: socket.socket) -> bool:
    """Nobody connected to ``sock``."""
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


def failed(status: LaunchStatus) -> bool:
    """A launch attempt failed."""
    return status.last_error is not None


@asynccontextmanager
async def launching(specs: list[PluginSpec], socket_dir: Path) -> AsyncIterator[PluginLauncher]:
    """A launcher (no retries within a test) whose per-plugin socket directories go under ``socket_dir``."""
    async with (
        Registry() as registry,
        DeviceManager(registry=registry, stats_interval=None) as devices,
        PluginLauncher(
            specs,
            devices=devices,
            socket_dir=os.fspath(socket_dir),
            start_timeout=10.0,
            health_timeout=5.0,
            backoff_initial=30.0,
            backoff_max=30.0,
        ) as launcher,
    ):
        yield launcher


HOSTILE = {
    "outside": (announce("victim"), "which is outside the socket directory the host gave it"),
    "dotdot": (announce("sock_dir + '/../victim.sock'"), "which is outside the socket directory"),
    "regular-file": (
        announce("sock_dir + '/plugin'", "open(sock_dir + '/plugin', 'w').close()"),
        "which is not a socket",
    ),
    "symlink": (
        announce("sock_dir + '/plugin'", "os.symlink(victim, sock_dir + '/plugin')"),
        "which is a symbolic link, not a socket",
    ),
    "hardlink": (
        announce("sock_dir + '/plugin'", "os.link(victim, sock_dir + '/plugin')"),
        "which was made before the plugin was started",
    ),
    "relative": (announce("'victim.sock'"), "which is not an absolute path"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_handshake_naming_a_socket_the_plugin_did_not_make_is_refused_untouched(
    short_tmp: Path, case: str
) -> None:
    """The launch fails with a PluginLaunchError naming the plugin, the path and why; the socket it named is still
    there and was never connected to (so never sent Shutdown), and the plugin's socket directory is cleaned up."""
    victim = short_tmp / "victim.sock"
    plugins, sockets = short_tmp / "plugins", short_tmp / "socks"
    plugins.mkdir()
    sockets.mkdir()
    body, reason = HOSTILE[case]
    write_plugin(plugins, "hostile", f"victim = {str(victim)!r}\n{body}")
    with bystander(victim) as listening:
        async with launching(plugin_specs_from_dir(plugins, {}), sockets) as launcher:
            with anyio.fail_after(WAIT):
                status = await launcher.wait_for("hostile", failed)
        assert status.last_error is not None
        assert "plugin 'hostile'" in status.last_error
        assert reason in status.last_error
        assert "refused, left untouched" in status.last_error
        assert victim.is_socket()
        assert never_dialled(listening)
    assert list(sockets.iterdir()) == []


@pytest.mark.anyio
async def test_handshake_naming_the_admin_socket_leaves_the_host_answering(short_tmp: Path) -> None:
    """A plugin announcing the host's admin socket is refused; the admin socket stays and status still answers."""
    admin = short_tmp / "admin.sock"
    plugins = short_tmp / "plugins"
    plugins.mkdir()
    write_plugin(plugins, "hostile", announce(repr(str(admin))))

    async def status() -> object:
        return {"pid": 42, "version": "0", "state_file": "/s.db", "admin_socket": str(admin)}

    async with AdminServer(admin, {"status": status}):
        async with launching(plugin_specs_from_dir(plugins, {}), short_tmp) as launcher:
            with anyio.fail_after(WAIT):
                failure = await launcher.wait_for("hostile", failed)
        assert failure.last_error is not None
        assert str(admin) in failure.last_error
        assert admin.is_socket()
        with anyio.fail_after(WAIT):
            assert (await query_status(admin)).pid == 42
            await anyio.wait_all_tasks_blocked()


@pytest.mark.anyio
async def test_handshake_naming_another_plugins_socket_leaves_that_plugin_running(short_tmp: Path) -> None:
    """A plugin announcing fs-device's socket is refused; fs-device keeps running on its socket, same process."""
    plugins, devs = short_tmp / "plugins", short_tmp / "devs"
    plugins.mkdir()
    devs.mkdir()
    (devs / "a").write_text("a")
    wrapper = (
        f"sys.path.insert(0, {str(ROOT)!r})\nos.environ['PYTHONPATH'] = {str(ROOT)!r}\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'plugin_host.plugins.fsdevice'])"
    )
    write_plugin(plugins, "fsdev", wrapper)
    told = short_tmp / "fsdev-socket"
    # The hostile plugin learns fs-device's socket path from the test once fs-device runs.
    wait_told = f"while not os.path.exists({str(told)!r}): time.sleep(0.01)\ntarget = open({str(told)!r}).read()"
    write_plugin(plugins, "hostile", announce("target", wait_told))
    specs = plugin_specs_from_dir(plugins, {"fsdev": ((), {"dir": str(devs), "list_period": "1s"})})
    async with launching(specs, short_tmp) as launcher:
        with anyio.fail_after(WAIT):
            fsdev = await launcher.wait_for("fsdev", lambda s: s.state is LaunchState.RUNNING)
            assert fsdev.socket_path is not None
            told.write_text(fsdev.socket_path)
            failure = await launcher.wait_for("hostile", failed)
        assert failure.last_error is not None
        assert f"announced socket {fsdev.socket_path!r}, which is outside" in failure.last_error
        assert launcher.status("fsdev")["fsdev"] == fsdev
        assert Path(fsdev.socket_path).is_socket()
        assert fsdev.pid is not None
        assert process_start_time(fsdev.pid) is not None


@pytest.mark.anyio
async def test_plugin_listens_in_a_per_launch_directory_that_is_removed_on_stop(short_tmp: Path) -> None:
    """fs-device is told a fresh PLUGIN_UNIX_SOCKET_DIR under socket_dir, listens inside it, and the directory is
    gone once the launcher stopped it."""
    plugins, devs, sockets = short_tmp / "plugins", short_tmp / "devs", short_tmp / "socks"
    for d in (plugins, devs, sockets):
        d.mkdir()
    write_plugin(
        plugins,
        "fsdev",
        f"sys.path.insert(0, {str(ROOT)!r})\nos.environ['PYTHONPATH'] = {str(ROOT)!r}\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'plugin_host.plugins.fsdevice'])",
    )
    specs = plugin_specs_from_dir(plugins, {"fsdev": ((), {"dir": str(devs), "list_period": "1s"})})
    async with launching(specs, sockets) as launcher:
        with anyio.fail_after(WAIT):
            status = await launcher.wait_for("fsdev", lambda s: s.state is LaunchState.RUNNING)
        assert status.socket_path is not None
        [own] = list(sockets.iterdir())
        assert own.name.startswith("plugin-host-")
        assert own.stat().st_mode & 0o777 == 0o700
        assert Path(status.socket_path).is_relative_to(own)
    assert list(sockets.iterdir()) == []


def test_a_socket_made_in_the_directory_is_accepted_directly_or_nested(short_tmp: Path) -> None:
    """A socket bound in the directory (go-plugin's layout) or one level below (ours) is the plugin's own."""
    directory = SocketDir.make(os.fspath(short_tmp))
    (directory.path / "sub").mkdir()
    for where in (directory.path / "plugin123", directory.path / "sub" / "plugin.sock"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(os.fspath(where))
            st = where.stat()
            assert check_announced_socket(os.fspath(where), directory, os.getpid()) == (st.st_dev, st.st_ino)


def test_a_go_plugin_1_4_socket_in_the_plugins_temp_dir_is_accepted(short_tmp: Path) -> None:
    """go-plugin < 1.5 ignores PLUGIN_UNIX_SOCKET_DIR and binds $TMPDIR/plugin<digits> (server.go, TempFile("",
    "plugin")): such a socket, made after the launch, is the plugin's own."""
    temp = short_tmp / "tmp"
    temp.mkdir()
    directory = SocketDir.make(os.fspath(short_tmp))
    where = temp / "plugin4113862731"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(os.fspath(where))
        st = where.stat()
        assert check_announced_socket(os.fspath(where), directory, os.getpid(), os.fspath(temp)) == (
            st.st_dev,
            st.st_ino,
        )


def test_only_a_fresh_plugin_named_socket_of_the_temp_dir_is_accepted(short_tmp: Path) -> None:
    """In the temporary directory, a socket not named plugin* or made before the launch is refused."""
    temp = short_tmp / "tmp"
    temp.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as older:
        older.bind(os.fspath(temp / "plugin-admin"))
        os.utime(temp / "plugin-admin", ns=(0, 0))  # made long before the plugin was started
        directory = SocketDir.make(os.fspath(short_tmp))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
            other.bind(os.fspath(temp / "agent.sock"))
            with pytest.raises(NotItsSocket, match="outside the socket directory"):
                check_announced_socket(os.fspath(temp / "agent.sock"), directory, os.getpid(), os.fspath(temp))
        with pytest.raises(NotItsSocket, match="made before the plugin was started"):
            check_announced_socket(os.fspath(temp / "plugin-admin"), directory, os.getpid(), os.fspath(temp))


def test_a_socket_of_another_user_is_refused(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A socket not owned by the plugin's user is refused, naming both uids."""
    directory = SocketDir.make(os.fspath(short_tmp))
    where = directory.path / "plugin.sock"
    other = os.geteuid() + 1
    # Making a socket owned by another user needs root; pretend instead that the plugin runs as another user.
    monkeypatch.setattr(_launch_socket, "_plugin_uids", lambda pid: {other})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(os.fspath(where))
        with pytest.raises(NotItsSocket, match=f"owned by uid {os.geteuid()}, not by the plugin's user .uid {other}"):
            check_announced_socket(os.fspath(where), directory, os.getpid())


@pytest.mark.anyio
async def test_host_keeps_its_admin_socket_against_a_plugin_naming_it_and_a_deeply_nested_request(
    short_tmp: Path,
) -> None:
    """The issue's two attacks on a real PluginHost: a launched plugin announcing the host's admin socket is refused,
    a request of 1,500 '[' is answered with an error; the admin socket stays and status answers after each."""
    from plugin_host.host import PluginHost
    from plugin_host.host_config import HostConfig

    plugins = short_tmp / "plugins"
    plugins.mkdir()
    config = HostConfig.from_mapping({"state_dir": str(short_tmp / "st"), "plugin_dir": str(plugins)})
    admin = config.admin_socket_path
    write_plugin(plugins, "hostile", announce(repr(str(admin))))
    async with PluginHost(config) as host:
        assert host.launcher is not None
        with anyio.fail_after(WAIT):
            failure = await host.launcher.wait_for("hostile", failed)
            assert failure.last_error is not None
            assert f"announced socket {str(admin)!r}, which is outside" in failure.last_error
            assert (await query_status(admin)).admin_socket == str(admin)
            stream = await anyio.connect_unix(admin)
            async with stream:
                await stream.send(b"[" * 1500 + b"\n")
                answer = await stream.receive()
            assert b"request nests deeper than 64 levels" in answer
            assert (await query_status(admin)).pid == os.getpid()
            await anyio.wait_all_tasks_blocked()
    assert not admin.exists()
