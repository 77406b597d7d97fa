"""A go-plugin client for testing a plugin program: launch it as Nomad would, read its handshake, dial it.

The host's own launcher supervises plugins for production (relaunch, reattach, process groups, a state file); a test
of one plugin program wants less: start it, get a client, stop it. That is this module::

    async with launched_device_plugin([sys.executable, "-m", "my_plugin"]) as client:
        await client.set_config({"dir": "/dev/mine"})
        async for response in client.fingerprint():
            ...

The program gets go-plugin's environment (Nomad's magic cookie, the accepted protocol versions and, when given, the
socket directory), must print a handshake line for a Unix socket speaking gRPC, and is stopped with SIGTERM (then
SIGKILL) when the block ends. Its stderr is the test's; what it writes to stdout after the handshake is collected
in :attr:`LaunchedPlugin.stdout`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from plugin_host.device.client import DevicePluginClient
from plugin_host.driver.client import DriverPluginClient
from plugin_host.errors import PluginLaunchError
from plugin_host.goplugin.handshake import Handshake, handshake_env, parse_handshake

__all__ = ["LaunchedPlugin", "launch_plugin", "launched_device_plugin", "launched_driver_plugin"]

_MAX_HANDSHAKE = 4096


@dataclass
class LaunchedPlugin:
    """A running plugin program and the handshake it printed."""

    process: Process
    handshake: Handshake
    stdout: bytearray = field(default_factory=bytearray)
    """What the program wrote to stdout after its handshake line, so far."""

    @property
    def socket_path(self) -> str:
        """The Unix socket the plugin serves gRPC on."""
        return self.handshake.address


@asynccontextmanager
async def launch_plugin(
    command: Sequence[str | os.PathLike[str]],
    *,
    socket_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> AsyncIterator[LaunchedPlugin]:
    """Run ``command`` as a go-plugin plugin for the block; yields once its handshake line was read.

    ``env`` is added to this process's environment and go-plugin's variables. Raises :class:`PluginLaunchError`
    when the program exits or stays silent for ``start_timeout`` seconds before a handshake, or prints one that is
    not a gRPC handshake on a Unix socket. Leaving sends SIGTERM and, after ``stop_timeout`` seconds, SIGKILL.
    """
    name = os.fspath(command[0])
    full_env = {**os.environ, **(env or {})}
    full_env.update(handshake_env(unix_socket_dir=os.fspath(socket_dir) if socket_dir is not None else None))
    process = await anyio.open_process([os.fspath(part) for part in command], env=full_env, stderr=None)
    try:
        assert process.stdout is not None  # opened as a pipe by open_process
        stdout = BufferedByteReceiveStream(process.stdout)
        line = b""
        with anyio.move_on_after(start_timeout):
            try:
                line = await stdout.receive_until(b"\n", _MAX_HANDSHAKE)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound) as exc:
                raise PluginLaunchError(
                    f"plugin {name!r} ended its output before a handshake line ({type(exc).__name__})", plugin=name
                ) from None
        if not line:
            raise PluginLaunchError(f"plugin {name!r} printed no handshake within {start_timeout:g}s", plugin=name)
        try:
            handshake = parse_handshake(line.decode(errors="replace"))
        except ValueError as exc:
            raise PluginLaunchError(f"plugin {name!r} printed a bad handshake: {exc}", plugin=name) from exc
        if handshake.network != "unix" or handshake.protocol != "grpc":
            raise PluginLaunchError(
                f"plugin {name!r} serves {handshake.protocol} on {handshake.network}; expected grpc on a Unix socket",
                plugin=name,
            )
        launched = LaunchedPlugin(process, handshake, bytearray(stdout.buffer))
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect, stdout, launched.stdout)
            try:
                yield launched
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(process, stop_timeout)


async def _collect(stdout: BufferedByteReceiveStream, into: bytearray) -> None:
    """Keep reading stdout (a full pipe would block the plugin)."""
    try:
        while True:
            into += await stdout.receive()
    except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass


async def _stop(process: Process, stop_timeout: float) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(stop_timeout):
            await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
    await process.aclose()


@asynccontextmanager
async def launched_device_plugin(
    command: Sequence[str | os.PathLike[str]],
    *,
    call_timeout: float | None = 30.0,
    socket_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> AsyncIterator[DevicePluginClient]:
    """A device plugin program, launched with :func:`launch_plugin` (same keywords), as an open
    :class:`~plugin_host.device.DevicePluginClient` (``call_timeout``: its deadline per call)."""
    launching = launch_plugin(
        command, socket_dir=socket_dir, env=env, start_timeout=start_timeout, stop_timeout=stop_timeout
    )
    async with launching as plugin, DevicePluginClient(plugin.socket_path, timeout=call_timeout) as client:
        yield client


@asynccontextmanager
async def launched_driver_plugin(
    command: Sequence[str | os.PathLike[str]],
    *,
    call_timeout: float | None = 30.0,
    socket_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> AsyncIterator[DriverPluginClient]:
    """A task driver program, launched with :func:`launch_plugin` (same keywords), as an open
    :class:`~plugin_host.driver.DriverPluginClient` (``call_timeout``: its deadline per call)."""
    launching = launch_plugin(
        command, socket_dir=socket_dir, env=env, start_timeout=start_timeout, stop_timeout=stop_timeout
    )
    async with launching as plugin, DriverPluginClient(plugin.socket_path, timeout=call_timeout) as client:
        yield client
