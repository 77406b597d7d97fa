"""Serve a plugin to a Nomad agent (or plugin-host's launcher) over HashiCorp go-plugin: the transport only.

The caller gives the grpclib handlers of its plugin type (as go-plugin's ``GRPCPlugin.GRPCServer`` registers them):
:mod:`plugin_host.device.plugin` and :mod:`plugin_host.driver.plugin` wrap this for device plugins and task drivers.

The process speaks go-plugin's serve side: it checks the magic cookie, listens on a fresh Unix socket in a private
directory, prints the handshake line ``1|2|unix|<socket>|grpc`` on stdout (and nothing else, ever), serves the
given handlers with ``grpc.health.v1.Health`` ("plugin" is SERVING) and go-plugin's GRPCController, GRPCStdio and
GRPCBroker, then exits 0 on ``Shutdown`` or SIGTERM, removing the socket; SIGINT is ignored, as go-plugin does.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

import anyio
from anyio.abc import TaskStatus
from grpclib.health.service import Health

from plugin_host._grpc_server import ClosingServer, Servable, stop_server
from plugin_host._sockets import bind_unix_socket, check_socket_path_length
from plugin_host.errors import ConfigError
from plugin_host.goplugin._broker import BrokerService
from plugin_host.goplugin._controller import ControllerService, Lifecycle
from plugin_host.goplugin._stdio import HclogJsonFormatter, StdioService
from plugin_host.goplugin.handshake import (
    APP_PROTOCOL_VERSION,
    ENV_PROTOCOL_VERSIONS,
    ENV_UNIX_SOCKET_DIR,
    ENV_UNIX_SOCKET_GROUP,
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    format_handshake,
)

__all__ = [
    "HEALTH_SERVICE_NAME",
    "aserve_plugin",
    "launched_by_plugin_client",
    "not_launched_message",
    "serve_plugin",
]

logger = logging.getLogger(__name__)

# go-plugin's client pings the plugin with a health check of this service name.
HEALTH_SERVICE_NAME = "plugin"

_NOT_LAUNCHED = (
    "This program is a Nomad {kind} plugin (HashiCorp go-plugin). It is not meant to be run directly:\n"
    "Nomad or plugin-host launches it and talks to it over a Unix socket. Put it in the agent's plugin_dir\n"
    "and configure it in a plugin block instead.\n"
)

_SOCKET_NAME = "plugin.sock"
_DRAIN_TIMEOUT = 1.0


class _ServiceName:
    """Stands for a service in grpclib's ``Health`` config, which reads the name off a servable's method paths."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __mapping__(self) -> dict[str, object]:
        return {f"/{self._name}/-": None}


def not_launched_message(kind: str) -> str:
    """What a plugin program of ``kind`` (``device``, ``driver``) prints when started by hand, not by a client."""
    return _NOT_LAUNCHED.format(kind=kind)


def launched_by_plugin_client(environ: Mapping[str, str]) -> bool:
    """Whether the environment carries Nomad's magic cookie, i.e. a go-plugin client started us."""
    return environ.get(MAGIC_COOKIE_KEY) == MAGIC_COOKIE_VALUE


def _check_protocol_versions(environ: Mapping[str, str]) -> None:
    # Like go-plugin we offer our version regardless; the client reports a mismatch with its own message.
    value = environ.get(ENV_PROTOCOL_VERSIONS)
    if not value:
        return
    versions = {part.strip() for part in value.split(",")}
    if str(APP_PROTOCOL_VERSION) not in versions:
        logger.warning("plugin client accepts protocol versions %s, this plugin speaks %d", value, APP_PROTOCOL_VERSION)


def _make_socket_dir(environ: Mapping[str, str]) -> Path:
    """A fresh private directory (0700) for the socket, under PLUGIN_UNIX_SOCKET_DIR when the client set one."""
    parent = environ.get(ENV_UNIX_SOCKET_DIR) or None
    return Path(tempfile.mkdtemp(prefix="plugin-", dir=parent))


def _share_with_group(directory: Path, sock_path: Path, group: str) -> None:
    """Give ``group`` access to the socket, as go-plugin does for PLUGIN_UNIX_SOCKET_GROUP."""
    import grp

    try:
        gid = int(group)
    except ValueError:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"{ENV_UNIX_SOCKET_GROUP} names group {group!r}, which does not exist") from None
    for path, mode in ((directory, 0o750), (sock_path, 0o660)):
        os.chown(path, -1, gid)
        os.chmod(path, mode)


def _bind(directory: Path, environ: Mapping[str, str]) -> tuple[Path, socket.socket]:
    path = directory / _SOCKET_NAME
    check_socket_path_length(
        path, what="plugin socket", hint=f"; set {ENV_UNIX_SOCKET_DIR} or TMPDIR to a shorter directory"
    )
    sock = bind_unix_socket(path)
    group = environ.get(ENV_UNIX_SOCKET_GROUP)
    if group:
        try:
            _share_with_group(directory, path, group)
        except BaseException:
            sock.close()
            raise
    return path, sock


async def _close(server: ClosingServer, lifecycle: Lifecycle) -> None:
    with anyio.CancelScope(shield=True):
        lifecycle.stop()
        await lifecycle.drained(_DRAIN_TIMEOUT)
        await stop_server(server, "plugin server")


async def _stop_when(event: anyio.Event, lifecycle: Lifecycle) -> None:
    await event.wait()
    lifecycle.stop()


async def aserve_plugin(
    handlers: Sequence[Servable],
    *,
    not_launched: str,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stop: anyio.Event | None = None,
) -> int:
    """Serve ``handlers`` over go-plugin until the client calls ``Shutdown`` or ``stop`` is set; the exit code.

    ``environ`` defaults to ``os.environ`` and ``stdout`` (where the handshake line goes) to ``sys.stdout``.
    Returns 1 without serving when the magic cookie is missing (``not_launched`` goes to stderr) or the socket
    cannot be created (logged); 0 after a clean stop. The socket and its directory are removed on every way out.
    """
    return await _aserve(handlers, not_launched, environ, stdout, stop)


async def _aserve(
    handlers: Sequence[Servable],
    not_launched: str,
    environ: Mapping[str, str] | None,
    stdout: TextIO | None,
    stop: anyio.Event | None,
) -> int:
    env = os.environ if environ is None else environ
    if not launched_by_plugin_client(env):
        sys.stderr.write(not_launched)
        sys.stderr.flush()
        return 1
    _check_protocol_versions(env)
    out = sys.stdout if stdout is None else stdout
    lifecycle = Lifecycle()
    try:
        directory = _make_socket_dir(env)
    except OSError as exc:
        logger.error("cannot create the plugin socket directory: %s", exc)
        return 1
    try:
        try:
            path, sock = _bind(directory, env)
        except (OSError, ConfigError) as exc:
            logger.error("cannot listen for the plugin client: %s", exc)
            return 1
        services: list[Servable] = [
            *handlers,
            Health({_ServiceName(HEALTH_SERVICE_NAME): []}),
            ControllerService(lifecycle),
            StdioService(lifecycle),
            BrokerService(lifecycle),
        ]
        server = ClosingServer(services)
        try:
            await server.start(sock=sock)
        except BaseException:
            sock.close()
            raise
        try:
            out.write(format_handshake("unix", str(path)) + "\n")
            out.flush()
            logger.info("plugin serving on %s", path)
            async with anyio.create_task_group() as tg:
                if stop is not None:
                    tg.start_soon(_stop_when, stop, lifecycle)
                await lifecycle.stopping.wait()
                tg.cancel_scope.cancel()
        finally:
            await _close(server, lifecycle)
        logger.info("plugin stopped")
        return 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- the program entry point ------------------------------------------------------------------------------------


def _claim_stdout() -> TextIO:
    """Keep the real stdout for the handshake alone; anything else written to fd 1 or sys.stdout goes to stderr."""
    handshake = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", closefd=True)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return handshake


def _configure_logging(level: int | str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(HclogJsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)


async def _watch_signals(stop: anyio.Event, *, task_status: TaskStatus[None]) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        task_status.started()
        async for signum in signals:
            if signum == signal.SIGINT:
                # As go-plugin's server does (server.go): the plugin shares its client's process group, and a Ctrl-C
                # on a foreground Nomad agent must not stop it before the agent's own graceful Kill.
                logger.debug("plugin received interrupt signal, ignoring")
                continue
            logger.info("received %s, stopping", signal.Signals(signum).name)
            stop.set()


async def _main(handlers: Sequence[Servable], not_launched: str, handshake: TextIO) -> int:
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        await tg.start(_watch_signals, stop)
        code = await _aserve(handlers, not_launched, None, handshake, stop)
        tg.cancel_scope.cancel()
    return code


def serve_plugin(handlers: Sequence[Servable], *, not_launched: str, log_level: int | str = "INFO") -> int:
    """Run a go-plugin plugin process serving ``handlers`` until told to stop; the process exit code.

    For a program's main: it takes over stdout (the handshake only), logs to stderr as hclog JSON at
    ``log_level``, stops on SIGTERM and ignores SIGINT (as go-plugin's server). Started without the magic
    cookie it prints ``not_launched``
    to stderr and returns 1.
    """
    return _serve_main(handlers, not_launched, log_level)


def _serve_main(handlers: Sequence[Servable], not_launched: str, log_level: int | str) -> int:
    if not launched_by_plugin_client(os.environ):
        sys.stderr.write(not_launched)
        sys.stderr.flush()
        return 1
    handshake = _claim_stdout()
    try:
        _configure_logging(log_level)
        return anyio.run(_main, handlers, not_launched, handshake, backend="asyncio")
    except KeyboardInterrupt:
        return 130
    finally:
        handshake.close()
