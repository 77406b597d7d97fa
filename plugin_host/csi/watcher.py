"""PluginWatcher: kubelet-style registration of CSI drivers through a ``plugins_registry`` directory.

A CSI driver's registrar sidecar (Kubernetes' node-driver-registrar) binds a Unix socket in the directory and serves
the ``pluginregistration.Registration`` service on it. For each such socket the watcher asks ``GetInfo``, judges
the answer as the kubelet does (type ``CSIPlugin``, a name, a CSI 1.x version; see :mod:`._registration`), registers
a ``csi-node`` plugin in the registry and answers ``NotifyRegistrationStatus(true)``; a refused answer gets
``NotifyRegistrationStatus(false, why)`` and registers nothing. Removing the socket deregisters the plugin.

Registrations made here use the alloc id ``plugins-registry:<absolute path of the registration socket>``. They are
durable like every registration: the host does not deregister them when it stops. When a watcher starts, it
reconciles the registry with the directory: registrations whose registration socket is gone are deregistered, the
others are checked again with ``GetInfo``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus
from grpclib.client import Channel

from plugin_host._backoff import Backoff
from plugin_host._grpc_client import unary_call
from plugin_host._proto import pluginregistration as wire
from plugin_host._service import TaskGroupService
from plugin_host._text import truncated
from plugin_host.csi._dirwatch import DirectoryChanges, SocketId, scan_sockets
from plugin_host.csi._registration import (
    Accepted,
    RegistrationRejected,
    alloc_id_for,
    judge,
    registration_socket_of,
)
from plugin_host.errors import ConfigError, PluginHostError
from plugin_host.registry.models import PLUGIN_TYPE_CSI_NODE, PluginConnectionInfo, PluginInfo
from plugin_host.registry.registry import Registry

__all__ = ["PluginWatcher"]

_T = TypeVar("_T")

_log = logging.getLogger(__name__)

_GET_INFO = "/pluginregistration.Registration/GetInfo"
_NOTIFY = "/pluginregistration.Registration/NotifyRegistrationStatus"


@dataclass
class _Socket:
    """One registration socket the watcher has seen, and what came of it."""

    socket_id: SocketId | None
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    done: anyio.Event = field(default_factory=anyio.Event)
    registered: PluginInfo | None = None
    version_key: tuple[int, ...] = ()


class PluginWatcher(TaskGroupService):
    """Watch ``directory`` for registration sockets and keep the registry's ``csi-node`` plugins in line with it.

    ``async with PluginWatcher(directory, registry) as watcher:`` creates the directory (0755, as the kubelet does),
    reconciles earlier registrations, and returns once the sockets already there are being registered. New sockets
    are seen at once where inotify is available and within ``scan_interval`` seconds otherwise. Every call to a
    registration socket has a deadline of ``call_timeout`` seconds; a socket that cannot be reached (not listening
    yet, not speaking gRPC) is asked again after ``retry_initial`` seconds, doubling up to ``retry_max``, for as
    long as it exists. A refused registration is not retried: replacing the socket starts over.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        registry: Registry,
        *,
        scan_interval: float = 1.0,
        call_timeout: float = 5.0,
        retry_initial: float = 0.1,
        retry_max: float = 30.0,
        logger: logging.Logger | None = None,
    ) -> None:
        if not isinstance(directory, str | os.PathLike) or not os.fspath(directory):
            raise ConfigError(f"plugins_registry dir must be a non-empty path, got {truncated(directory)}")
        if not isinstance(registry, Registry):
            raise ConfigError(f"registry must be a Registry, got {type(registry).__name__}")
        for key, value in (
            ("scan_interval", scan_interval),
            ("call_timeout", call_timeout),
            ("retry_initial", retry_initial),
            ("retry_max", retry_max),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigError(f"{key} must be a positive number of seconds, got {truncated(value)}")
        if retry_max < retry_initial:
            raise ConfigError(
                f"retry_max ({truncated(retry_max)}) must be at least retry_initial ({truncated(retry_initial)})"
            )
        self._dir = Path(directory).absolute()
        self._registry = registry
        self._scan_interval = float(scan_interval)
        self._call_timeout = float(call_timeout)
        self._retry_initial = float(retry_initial)
        self._retry_max = float(retry_max)
        self._logger = logger if logger is not None else _log
        self._sockets: dict[str, _Socket] = {}
        # Registrations of an earlier run, by registration socket, until the first scan takes them over.
        self._restored: dict[str, PluginInfo] = {}
        super().__init__()

    @property
    def directory(self) -> Path:
        """The watched directory (absolute)."""
        return self._dir

    def registrations(self) -> dict[str, PluginInfo]:
        """The plugins registered through the watcher now, by registration socket path."""
        return {path: s.registered for path, s in sorted(self._sockets.items()) if s.registered is not None}

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def _service_refused(self, lifecycle: str) -> Exception:
        return PluginHostError(f"this PluginWatcher was already {lifecycle}; create a new one")

    async def _service_prepare(self) -> None:
        directory = self._dir
        try:
            await anyio.to_thread.run_sync(lambda: directory.mkdir(mode=0o755, parents=True, exist_ok=True))
        except OSError as exc:
            raise ConfigError(f"plugins_registry dir {str(directory)!r} cannot be created: {exc}") from exc
        if not directory.is_dir():
            raise ConfigError(f"plugins_registry dir {str(directory)!r} is not a directory")

    async def _service_start(self, tg: TaskGroup) -> None:
        await self._reconcile()
        await tg.start(self._watch)
        self._logger.info("watching %s for kubelet-style plugin registrations", self._dir)

    # Leaving only cancels the group: registrations stay in the registry (it is durable); the next watcher
    # reconciles them. The group stays reachable until it is done: a scan that finished just as the cancel came
    # still reaches _apply, which needs it.

    # --- reconciling with an earlier run --------------------------------------------------------------------------

    async def _reconcile(self) -> None:
        """Deregister earlier watcher registrations whose socket is gone; remember the rest to check them again."""
        present = await anyio.to_thread.run_sync(scan_sockets, self._dir)
        while True:
            stale = []
            for info in await self._registry.list_plugins(PLUGIN_TYPE_CSI_NODE):
                socket = registration_socket_of(info.alloc_id)
                if socket is None:
                    continue
                if socket in present:
                    self._restored[socket] = info
                else:
                    stale.append(info)
            if not stale:
                return
            for info in stale:
                self._logger.info(
                    "deregistering CSI plugin %r: its registration socket %s is gone", info.name, info.alloc_id
                )
                await self._registry.deregister_plugin(PLUGIN_TYPE_CSI_NODE, info.name, info.alloc_id)
            # An older registration of the same name may have come to the front: look again.

    # --- watching -------------------------------------------------------------------------------------------------

    async def _watch(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with DirectoryChanges(self._dir) as changes:
            started = False
            while True:
                current = await anyio.to_thread.run_sync(scan_sockets, self._dir)
                await self._apply(current)
                if not started:
                    started = True
                    task_status.started()
                await changes.wait(self._scan_interval)

    async def _apply(self, current: dict[str, SocketId]) -> None:
        for path in sorted(self._sockets):
            if current.get(path) != self._sockets[path].socket_id:
                await self._forget(path)
        for path, info in list(self._restored.items()):
            if path not in current:
                del self._restored[path]
                await self._deregister(info, "its registration socket is gone")
        tg = self._tg
        assert tg is not None
        for path in sorted(current):
            if path in self._sockets:
                continue
            entry = self._sockets[path] = _Socket(current[path], registered=self._restored.pop(path, None))
            tg.start_soon(self._attend, path, entry, name=f"plugin registration {path}")

    async def _forget(self, path: str) -> None:
        entry = self._sockets.pop(path)
        entry.scope.cancel()
        await entry.done.wait()
        if entry.registered is not None:
            await self._deregister(entry.registered, "its registration socket was removed")

    async def _deregister(self, info: PluginInfo, why: str) -> None:
        self._logger.info("deregistering CSI plugin %r (%s): %s", info.name, info.alloc_id, why)
        try:
            await self._registry.deregister_plugin(PLUGIN_TYPE_CSI_NODE, info.name, info.alloc_id)
        except PluginHostError as exc:
            self._logger.warning("deregistering CSI plugin %r failed: %s", info.name, exc)

    # --- one registration socket ----------------------------------------------------------------------------------

    async def _attend(self, path: str, entry: _Socket) -> None:
        try:
            with entry.scope:
                answer = await self._ask(path)
                await self._decide(path, entry, answer)
        except Exception:
            # One misbehaving plugin must never stop the watcher.
            self._logger.exception("registering the plugin behind %s failed unexpectedly", path)
        finally:
            entry.done.set()

    async def _ask(self, path: str) -> wire.PluginInfo:
        """GetInfo, asked again with backoff for as long as the socket cannot answer it."""
        backoff = Backoff(self._retry_initial, self._retry_max)
        while True:
            try:
                return await self._call(path, "GetInfo", _GET_INFO, wire.InfoRequest(), wire.PluginInfo)
            except (PluginHostError, TimeoutError) as exc:
                delay = backoff.next()
                log = self._logger.warning if backoff.attempt == 1 else self._logger.debug
                log("registration socket %s did not answer GetInfo (retrying in %.1fs): %s", path, delay, exc)
            await anyio.sleep(delay)

    async def _decide(self, path: str, entry: _Socket, answer: wire.PluginInfo) -> None:
        previous = entry.registered
        try:
            accepted = judge(answer.type, answer.name, answer.endpoint, list(answer.supported_versions))
            self._check_name(path, accepted)
        except RegistrationRejected as exc:
            self._logger.warning("refused the plugin registration at %s: %s", path, exc)
            if previous is not None:
                entry.registered = None
                await self._deregister(previous, f"its registration is no longer valid: {exc}")
            await self._notify(path, False, str(exc))
            return
        info = PluginInfo(
            name=accepted.name,
            type=PLUGIN_TYPE_CSI_NODE,
            version=accepted.version,
            connection_info=PluginConnectionInfo(socket_path=accepted.endpoint),
            alloc_id=alloc_id_for(path),
        )
        if previous is not None and previous.name != info.name:
            entry.registered = None
            await self._deregister(previous, f"the registration socket now announces {truncated(info.name)}")
        # Recorded before registering, so a removal racing with the registration still deregisters it.
        entry.registered, entry.version_key = info, accepted.version_key
        try:
            await self._registry.register_plugin(info)
        except PluginHostError as exc:
            entry.registered = None
            self._logger.warning("registering CSI plugin %r from %s failed: %s", info.name, path, exc)
            await self._notify(path, False, f"registering plugin {truncated(info.name)} failed: {exc}")
            return
        self._logger.info(
            "registered CSI plugin %r version %s (endpoint %s) through %s",
            info.name,
            info.version,
            accepted.endpoint,
            path,
        )
        await self._notify(path, True, "")

    def _check_name(self, path: str, accepted: Accepted) -> None:
        """Like the kubelet, a second socket may register a name only with a higher CSI version."""
        for other_path, other in self._sockets.items():
            if other_path == path or other.registered is None or other.registered.name != accepted.name:
                continue
            if other.version_key >= accepted.version_key:
                raise RegistrationRejected(
                    f"plugin name {truncated(accepted.name)} is already registered through {other_path!r} with version"
                    f" {truncated(other.registered.version)}; a second registration needs a higher CSI version, got"
                    f" {truncated(accepted.version)}"
                )

    async def _notify(self, path: str, registered: bool, error: str) -> None:
        status = wire.RegistrationStatus(plugin_registered=registered, error=error)
        try:
            await self._call(path, "NotifyRegistrationStatus", _NOTIFY, status, wire.RegistrationStatusResponse)
        except (PluginHostError, TimeoutError) as exc:
            self._logger.warning("could not tell the plugin at %s its registration status: %s", path, exc)

    async def _call(self, path: str, rpc: str, method: str, request: object, reply_type: type[_T]) -> _T:
        channel = Channel(path=path)
        try:
            # grpclib's deadline starts once connected; this also bounds a socket that accepts and says nothing.
            with anyio.fail_after(self._call_timeout + 1):
                reply: _T = await unary_call(
                    channel,
                    rpc,
                    method,
                    request,
                    reply_type,
                    where=f"plugin registration socket {path!r}",
                    timeout=self._call_timeout,
                )
                return reply
        finally:
            channel.close()
