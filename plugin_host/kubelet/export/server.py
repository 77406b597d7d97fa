"""One device type served to kubelet: the socket, registration with retries, and recovery from kubelet restarts.

The order is kubelet's: serve ``<plugin_dir>/<namespace>-<type>.sock`` first, then call ``Register`` on
``<plugin_dir>/kubelet.sock`` (kubelet dials back inside Register). Unlike Intel's framework, a failed Register is
retried with exponential backoff instead of ending the process, and a kubelet restart is detected three ways:

- our socket vanished or was replaced (kubelet deletes every socket in the directory when it starts): serve again,
  then register again;
- ``kubelet.sock`` is another file (inode and change time; the inode number alone can come back): register again;
- kubelet's ListAndWatch stream of the current registration ended without our asking (kubelet went away): register
  again, as soon as a kubelet answers.

The file checks are two ``stat`` calls every ``watch_interval`` seconds, so a restarted kubelet sees us again well
within a second of its socket appearing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from grpclib.client import Channel

from plugin_host._backoff import Backoff, check_backoff
from plugin_host._grpc_client import unary_call
from plugin_host._grpc_cork import CorkedServer
from plugin_host._grpc_server import ClosingServer
from plugin_host._metrics import NO_METRICS, Metrics
from plugin_host._proto import v1beta1 as wire
from plugin_host._service import TaskGroupService
from plugin_host._sockets import bind_unix_socket, claim_socket_path, remove_socket_if_ours
from plugin_host.errors import ConfigError, PluginHostError
from plugin_host.kubelet import _convert as convert
from plugin_host.kubelet import _names
from plugin_host.kubelet.api import API_VERSION, DEFAULT_PLUGIN_DIR, KUBELET_SOCKET_NAME, RegisterRequest
from plugin_host.kubelet.export._service import DeviceState, DeviceTypeService, Hooks
from plugin_host.kubelet.export.api import DEFAULT_CDI_DIR, DeviceInfo, checked_device

__all__ = ["DeviceTypeServer"]

logger = logging.getLogger(__name__)

# Bounds on shutdown work done under a shielded scope.
_CLOSE_TIMEOUT = 5.0
_STREAMS_END_TIMEOUT = 1.0


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` (inode and change time: a re-created file may get the old inode number back)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_ctime_ns


def check_settings(register_timeout: float, backoff_initial: float, backoff_max: float, watch_interval: float) -> None:
    """Raise :class:`ConfigError` for a non-positive timeout or interval, or a backoff that is not ``0 < i <= m``."""
    if not register_timeout > 0:
        raise ConfigError(f"register_timeout must be a positive number of seconds, got {register_timeout!r}")
    if not watch_interval > 0:
        raise ConfigError(f"watch_interval must be a positive number of seconds, got {watch_interval!r}")
    check_backoff(backoff_initial, backoff_max)


class DeviceTypeServer(TaskGroupService):
    """Serve one device type to kubelet as ``<namespace>/<dev_type>`` for the lifetime of an ``async with`` block.

    Entering claims the socket (a stale socket is replaced; one served by a live process raises
    :class:`~plugin_host.errors.SocketInUseError`) and starts serving; registration with kubelet then runs in the
    background, retried with backoff (``register_backoff_initial`` doubling up to ``register_backoff_max``) and redone
    after every kubelet restart. :meth:`update` replaces the device list sent on every ListAndWatch stream.
    Leaving (or :meth:`stop`) ends the streams cleanly, stops the server and removes the socket file.

    ``hooks`` is the object the optional hooks (``allocate``, ``post_allocate``, ``get_preferred_allocation``,
    ``pre_start_container``) are looked up on: the scanner.
    ``metrics`` (a :class:`~plugin_host.telemetry.Telemetry`'s sink) is told of every RPC kubelet makes.
    """

    def __init__(
        self,
        namespace: str,
        dev_type: str,
        *,
        hooks: object | None = None,
        plugin_dir: str | os.PathLike[str] = DEFAULT_PLUGIN_DIR,
        cdi_dir: str | os.PathLike[str] = DEFAULT_CDI_DIR,
        register_timeout: float = 10.0,
        register_backoff_initial: float = 0.1,
        register_backoff_max: float = 5.0,
        watch_interval: float = 0.1,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._metrics = metrics
        problem = _names.namespace_problem(namespace)
        if problem is not None:
            raise ConfigError(f"kubelet namespace {namespace!r} is invalid: {problem}")
        problem = _names.device_type_problem(dev_type)
        if problem is not None:
            raise ConfigError(f"device type {dev_type!r} is invalid: {problem}")
        check_settings(register_timeout, register_backoff_initial, register_backoff_max, watch_interval)
        self._type = dev_type
        self._resource = f"{namespace}/{dev_type}"
        self._endpoint = f"{namespace}-{dev_type}.sock"
        self._plugin_dir = Path(plugin_dir)
        self._path = self._plugin_dir / self._endpoint
        self._kubelet_path = self._plugin_dir / KUBELET_SOCKET_NAME
        self._cdi_dir = Path(cdi_dir)
        self._hooks = Hooks.of(hooks)
        self._register_timeout = register_timeout
        self._backoff_initial = register_backoff_initial
        self._backoff_max = register_backoff_max
        self._backoff = Backoff(register_backoff_initial, register_backoff_max)
        self._watch_interval = watch_interval
        self._pending: dict[str, DeviceInfo] = {}
        self._state: DeviceState | None = None
        self._service: DeviceTypeService | None = None
        self._server: ClosingServer | None = None
        self._identity: tuple[int, int] | None = None
        self._kubelet_identity: tuple[int, int] | None = None
        self._registered: anyio.Event | None = None
        self._done: anyio.Event | None = None
        # The serving state (new, running, stopping, stopped): finer than the service's lifecycle, as stop() may
        # come before, during or after the block.
        self._status = "new"
        super().__init__()
        self.registrations = 0
        """How many Register calls kubelet accepted (1 after the first, +1 after each kubelet restart)."""

    # --- properties -----------------------------------------------------------------------------------------------

    @property
    def resource_name(self) -> str:
        """``<namespace>/<type>``, the extended resource kubelet advertises."""
        return self._resource

    @property
    def endpoint(self) -> str:
        """The socket's file name, as sent in Register."""
        return self._endpoint

    @property
    def socket_path(self) -> Path:
        """Where the server listens."""
        return self._path

    @property
    def devices(self) -> Mapping[str, DeviceInfo]:
        """The devices served now."""
        return self._state.devices if self._state is not None else dict(self._pending)

    @property
    def registered(self) -> bool:
        """Whether kubelet holds our registration now: it accepted one, its socket is still the one that did, our
        socket is still ours, and kubelet has not dropped the ListAndWatch stream of that registration."""
        return (
            self._status == "running"
            and self._kubelet_identity is not None
            and _identity(self._kubelet_path) == self._kubelet_identity
            and self._socket_is_ours()
            and not self._kubelet_left()
        )

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def _service_refused(self, lifecycle: str) -> Exception:
        return RuntimeError(f"DeviceTypeServer for {self._resource} was already {self._status}; create a new one")

    async def _service_prepare(self) -> None:
        self._status = "running"
        self._state = DeviceState()
        self._state.update(self._pending)
        self._service = DeviceTypeService(
            self._resource, self._state, self._hooks, self._cdi_dir, metrics=self._metrics
        )
        self._registered = anyio.Event()
        self._done = anyio.Event()
        try:
            await self._serve()
        except BaseException:
            self._status = "stopped"
            self._done.set()
            raise

    async def _service_start(self, tg: TaskGroup) -> None:
        tg.start_soon(self._supervise)

    async def _service_stop(self) -> None:
        await self.stop()

    def update(self, devices: Mapping[str, DeviceInfo]) -> None:
        """Serve ``devices`` (id -> info) from now on: every ListAndWatch stream gets the new full list.

        Before entering, it sets the first list; after :meth:`stop` it does nothing. Each device is checked as
        :meth:`DeviceTree.add_device <plugin_host.kubelet.export.api.DeviceTree.add_device>` checks it
        (:class:`~plugin_host.errors.InvalidPluginError`, nothing changed).
        """
        checked = {dev_id: checked_device(self._type, dev_id, info) for dev_id, info in devices.items()}
        if self._state is None:
            self._pending = checked
        else:
            self._state.update(checked)

    async def stop(self) -> None:
        """End the ListAndWatch streams, stop serving and remove the socket. Safe to call more than once."""
        if self._status == "new":
            self._status = "stopped"
            self._lifecycle = "closed"  # never to be entered now
            return
        if self._status == "stopping" or self._status == "stopped":
            if self._done is not None:
                with anyio.move_on_after(_CLOSE_TIMEOUT * 2, shield=True):
                    await self._done.wait()
            return
        self._status = "stopping"
        assert self._state is not None
        assert self._done is not None
        try:
            with anyio.CancelScope(shield=True):
                self._state.close()
                await self._close_server(graceful=True)
        finally:
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
            self._status = "stopped"
            self._done.set()
        logger.info("stopped serving %s", self._resource)

    async def wait_stopped(self) -> None:
        """Return once the server has stopped (after :meth:`stop`, or leaving the block)."""
        assert self._done is not None, "the server was never started"
        await self._done.wait()

    async def wait_registered(self, count: int = 1) -> None:
        """Return once kubelet accepted ``count`` registrations in all (bound it with ``anyio.fail_after``)."""
        while self.registrations < count:
            assert self._registered is not None
            await self._registered.wait()

    # --- serving --------------------------------------------------------------------------------------------------

    async def _serve(self) -> None:
        assert self._service is not None
        # kubelet creates the directory when it starts; a plugin started first serves there all the same.
        await anyio.Path(self._plugin_dir).mkdir(mode=0o750, parents=True, exist_ok=True)
        await claim_socket_path(
            self._path,
            what=f"device plugin socket of {self._resource}",
            in_use=(
                f"cannot serve {self._resource}: the socket {str(self._path)!r} is already in use (another process is"
                " serving it, expected a free or stale socket); stop that process or choose another namespace"
            ),
        )
        sock = bind_unix_socket(self._path)
        identity = _identity(self._path)
        assert identity is not None
        inode = identity[0]
        server = CorkedServer([self._service])
        try:
            await server.start(sock=sock)
        except BaseException:
            sock.close()
            remove_socket_if_ours(self._path, inode)
            raise
        self._server = server
        self._identity = identity
        logger.info("serving %s on %s", self._resource, self._path)

    async def _close_server(self, *, graceful: bool) -> None:
        """Stop the grpclib server (letting streams end on their own first when ``graceful``), remove our socket."""
        server, self._server = self._server, None
        identity, self._identity = self._identity, None
        try:
            if server is not None:
                if graceful and self._service is not None:
                    with anyio.move_on_after(_STREAMS_END_TIMEOUT):
                        await self._service.wait_streams_done()
                server.close()
                with anyio.move_on_after(_CLOSE_TIMEOUT) as scope:
                    await server.wait_closed()
                if scope.cancelled_caught:
                    logger.warning("the server of %s did not stop within %ss", self._resource, _CLOSE_TIMEOUT)
                server.close_connections()
        finally:
            if identity is not None and _identity(self._path) == identity:
                remove_socket_if_ours(self._path, identity[0])

    def _socket_is_ours(self) -> bool:
        return self._identity is not None and _identity(self._path) == self._identity

    # --- registration and the kubelet watch -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        try:
            while True:
                if self._server is None:
                    await self._serve_again()
                if not await self._register():
                    continue  # our socket vanished while registering: kubelet restarted again
                await self._watch()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_server(graceful=False)

    async def _serve_again(self) -> None:
        backoff = Backoff(self._backoff_initial, self._backoff_max)
        while True:
            try:
                await self._serve()
                return
            except (PluginHostError, OSError) as exc:
                delay = backoff.next()
                logger.error(
                    "cannot serve %s again on %s (retrying in %.1fs): %s", self._resource, self._path, delay, exc
                )
                await anyio.sleep(delay)

    async def _register(self) -> bool:
        """Register until kubelet accepts; False when our socket vanished meanwhile (serve again first)."""
        self._backoff.reset()
        while True:
            if not self._socket_is_ours():
                await self._close_server(graceful=False)
                return False
            kubelet_identity = _identity(self._kubelet_path)
            if kubelet_identity is None:
                logger.debug("waiting for kubelet at %s to register %s", self._kubelet_path, self._resource)
                await self._poll(lambda: _identity(self._kubelet_path) is not None or not self._socket_is_ours())
                continue
            assert self._service is not None
            self._service.generation += 1
            try:
                await self._register_once()
            except PluginHostError as exc:
                delay = self._backoff.next()
                logger.warning(
                    "registering %s with kubelet at %s failed (attempt %d, retrying within %.1fs): %s",
                    self._resource,
                    self._kubelet_path,
                    self._backoff.attempt,
                    delay,
                    exc,
                )
                # A new kubelet socket is worth trying at once, whatever the backoff says.
                with anyio.move_on_after(delay):
                    await self._poll(self._kubelet_changed_from(kubelet_identity))
                continue
            self._kubelet_identity = kubelet_identity
            self.registrations += 1
            assert self._registered is not None
            registered, self._registered = self._registered, anyio.Event()
            registered.set()
            logger.info("registered %s with kubelet at %s", self._resource, self._kubelet_path)
            return True

    async def _register_once(self) -> None:
        request = RegisterRequest(
            version=API_VERSION, endpoint=self._endpoint, resource_name=self._resource, options=self._hooks.options
        )
        channel = Channel(path=str(self._kubelet_path))
        try:
            await unary_call(
                channel,
                "Register",
                f"{convert.REGISTRATION_SERVICE}/Register",
                convert.register_request_to_wire(request),
                wire.Empty,
                where=f"kubelet at {str(self._kubelet_path)!r}",
                timeout=self._register_timeout,
            )
        finally:
            channel.close()

    async def _watch(self) -> None:
        """Return when kubelet restarted: our socket is gone or replaced (after closing the server), kubelet.sock is
        a new file, or kubelet's ListAndWatch stream of this registration ended."""
        await self._poll(lambda: not self._socket_is_ours() or self._kubelet_moved() or self._kubelet_left())
        if not self._socket_is_ours():
            logger.info("the socket of %s was removed (kubelet restarted?): serving it again", self._resource)
            await self._close_server(graceful=False)
        elif self._kubelet_moved():
            logger.info("kubelet at %s restarted: registering %s again", self._kubelet_path, self._resource)
        else:
            logger.info("kubelet closed the ListAndWatch stream of %s: registering again", self._resource)

    def _kubelet_moved(self) -> bool:
        current = _identity(self._kubelet_path)
        return current is not None and current != self._kubelet_identity

    def _kubelet_left(self) -> bool:
        service = self._service
        return service is not None and service.lost_generation == service.generation

    def _kubelet_changed_from(self, identity: tuple[int, int] | None) -> Callable[[], bool]:
        return lambda: _identity(self._kubelet_path) != identity or not self._socket_is_ours()

    async def _poll(self, condition: Callable[[], bool]) -> None:
        # The file system gives no event to wait on without inotify bindings: poll two stat() calls.
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(self._watch_interval)
