"""PluginLauncher: run external device plugins and task drivers as HashiCorp go-plugin processes, as a Nomad agent does.

For each :class:`PluginSpec` the launcher starts the executable with go-plugin's environment (magic cookie,
``PLUGIN_PROTOCOL_VERSIONS``, a fresh ``PLUGIN_UNIX_SOCKET_DIR`` of its own, ...), reads and checks its handshake
line (the socket it names must be one the plugin made in that directory, else it is refused untouched), waits until
``grpc.health.v1.Health`` says service ``plugin`` is SERVING, checks ``PluginInfo`` (type ``device``), sends
``SetConfig`` and hands a :class:`~plugin_host.device.DevicePluginClient` to the
:class:`~plugin_host.device.DeviceManager`, which registers the plugin (type ``device``) in the registry. A plugin
of type ``driver`` goes to the :class:`~plugin_host.driver.DriverManager` the same way, when one is given. Each type's
client and its configuration steps are that type's go-plugin glue (:mod:`plugin_host.device.plugin`,
:mod:`plugin_host.driver.plugin`); the managers are only seen through the small :class:`DeviceSink` and
:class:`DriverSink` protocols, which the host wires.
Each plugin's stderr goes to the logger ``plugin_host.plugins.<name>``.

Crashes. When a plugin process exits, the launcher removes it from the DeviceManager (its devices and its
registration go away, as Nomad's instance manager clears a plugin's devices when its fingerprint fails) and starts
a new process after an exponential backoff (``backoff_initial`` doubling up to ``backoff_max``, reset after the
plugin ran ``backoff_reset_after`` seconds), then adds it again. A failed launch is retried the same way; its error
is logged and kept in :meth:`PluginLauncher.status`. Nomad relaunches an exited plugin in place (``goto START`` in
``devicemanager/instance.go``); a new process means a new socket, so here the client is replaced as a whole.

Reattach. Each running process is recorded in the state store (name, pid, start time from ``/proc/<pid>/stat``,
socket path, executable) — go-plugin's ``ReattachConfig``, which Nomad stores to find its plugins after an agent
restart. On start, a recorded process that is still the same process (same pid *and* start time), was started
from the same executable and answers Health is reattached instead of started a second time; otherwise it is killed
(if still alive) and a fresh one started.

Stopping. Leaving the launcher stops each plugin (``GRPCController/Shutdown``, then SIGTERM, then SIGKILL to its
process group, each wait bounded), removes its socket directory and deletes its record: a normal host stop stops
its plugins. Only when the host dies without stopping them (a crash, SIGKILL — or
:meth:`PluginLauncher.leave_running` in tests and hand-overs) do processes and records remain, and the next
launcher reattaches to them.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

from plugin_host._backoff import Backoff, check_backoff
from plugin_host._process import process_start_time, signal_group, wait_exit
from plugin_host._service import TaskGroupService
from plugin_host.base.api import PLUGIN_TYPE_DEVICE, PLUGIN_TYPE_DRIVER
from plugin_host.device.client import DevicePluginClient
from plugin_host.device.plugin import configure_device_plugin, device_plugin_client
from plugin_host.driver.client import DriverPluginClient
from plugin_host.driver.plugin import configure_driver_plugin, driver_plugin_client
from plugin_host.errors import ConfigError, PluginHostError, PluginLaunchError, PluginNotFoundError
from plugin_host.loader._launch_process import PluginProcess
from plugin_host.loader._launch_rpc import health_status, plugin_type
from plugin_host.loader._launch_socket import socket_dir_of
from plugin_host.loader._launch_spec import PluginSpec, plugin_specs_from_dir
from plugin_host.loader.store import PluginProcessRecord, PluginProcessStore

__all__ = [
    "DeviceSink",
    "DriverSink",
    "ExternalPluginsConfig",
    "LaunchState",
    "LaunchStatus",
    "PluginBlock",
    "PluginLauncher",
    "PluginSpec",
    "plugin_specs_from_config",
    "plugin_specs_from_dir",
]

logger = logging.getLogger(__name__)


class DeviceSink(Protocol):
    """Where launched device plugins go: the host's :class:`~plugin_host.device.DeviceManager`."""

    async def add_plugin(self, name: str, plugin: DevicePluginClient, *, socket_path: str | None = None) -> None:
        """Start managing (and registering) ``plugin`` under ``name``."""
        ...

    async def remove_plugin(self, name: str) -> None:
        """Stop managing ``name``; :class:`PluginNotFoundError` when it is not managed."""
        ...


class DriverSink(Protocol):
    """Where launched task drivers go: the host's :class:`~plugin_host.driver.DriverManager`."""

    async def add_driver(self, name: str, driver: DriverPluginClient) -> object:
        """Start managing ``driver`` under ``name`` (recovering its stored tasks)."""
        ...

    async def remove_driver(self, name: str) -> None:
        """Stop managing ``name``; :class:`PluginNotFoundError` when it is not managed."""
        ...


_Client = DevicePluginClient | DriverPluginClient


@dataclass(frozen=True)
class _Kind:
    """One plugin type's go-plugin glue, as the launcher uses it: its client, and how that client is configured."""

    client: Callable[[str], _Client]
    configure: Callable[[Any, Mapping[str, Any]], Awaitable[None]]


# Nomad's loader keeps the same table (plugin type -> go-plugin ``Plugin``), see helper/pluginutils/loader.
_KINDS: Mapping[str, _Kind] = {
    PLUGIN_TYPE_DEVICE: _Kind(device_plugin_client, configure_device_plugin),
    PLUGIN_TYPE_DRIVER: _Kind(driver_plugin_client, configure_driver_plugin),
}


class LaunchState(enum.StrEnum):
    """Where one external plugin is in its life."""

    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPED = "stopped"


@dataclass(frozen=True)
class LaunchStatus:
    """One external plugin now: its state, process, restarts and the last error (a launch failure or an exit)."""

    name: str
    state: LaunchState = LaunchState.STARTING
    pid: int | None = None
    socket_path: str | None = None
    reattached: bool = False
    restarts: int = 0
    last_error: str | None = None


class PluginLauncher(TaskGroupService):
    """Runs external go-plugin device plugins; ``async with PluginLauncher(specs, devices=manager) as launcher:``.

    Entering returns at once; each plugin starts in the background (see :meth:`status` and :meth:`wait_for`).
    ``state`` (a state store) enables reattach; without one, processes are started fresh every time.
    """

    def __init__(
        self,
        specs: Sequence[PluginSpec],
        *,
        devices: DeviceSink,
        drivers: DriverSink | None = None,
        state: PluginProcessStore | None = None,
        start_timeout: float = 60.0,
        health_timeout: float = 30.0,
        shutdown_timeout: float = 2.0,
        kill_timeout: float = 5.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        backoff_reset_after: float = 60.0,
        socket_dir: str | None = None,
    ) -> None:
        names = [spec.name for spec in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"external plugin names must be unique, got {duplicates} more than once")
        for label, value in (
            ("start_timeout", start_timeout),
            ("health_timeout", health_timeout),
            ("shutdown_timeout", shutdown_timeout),
            ("kill_timeout", kill_timeout),
        ):
            if not value > 0:
                raise ConfigError(f"{label} must be a positive number of seconds, got {value!r}")
        check_backoff(backoff_initial, backoff_max)
        self._specs = list(specs)
        self._devices = devices
        self._drivers = drivers
        self._state = state
        self._start_timeout = start_timeout
        self._health_timeout = health_timeout
        self._shutdown_timeout = shutdown_timeout
        self._kill_timeout = kill_timeout
        self._backoff = (backoff_initial, backoff_max, backoff_reset_after)
        self._socket_dir = socket_dir
        self._status = {spec.name: LaunchStatus(name=spec.name) for spec in specs}
        self._changed = anyio.Event()
        self._leave_running = False
        # Plugins handed to a manager, with their clients; those whose process died are also in _crashed.
        self._live: dict[str, _Client] = {}
        self._crashed: set[str] = set()
        super().__init__()

    # --- what callers read ----------------------------------------------------------------------------------------

    def status(self, name: str | None = None) -> dict[str, LaunchStatus]:
        """The status of every plugin (or of ``name`` only), by name."""
        if name is not None:
            return {name: self._status[name]}
        return dict(self._status)

    async def wait_for(self, name: str, predicate: Callable[[LaunchStatus], bool]) -> LaunchStatus:
        """Wait until ``predicate(status)`` holds for plugin ``name``; bound it with ``anyio.fail_after``."""
        if name not in self._status:
            raise PluginHostError(f"no external plugin named {name!r}; known: {sorted(self._status)}")
        while not predicate(self._status[name]):
            await self._changed.wait()
        return self._status[name]

    def leave_running(self) -> None:
        """On leaving, keep the plugin processes and their records, as a killed host would; the next launcher
        reattaches to them."""
        self._leave_running = True

    def _update(self, name: str, **changes: object) -> None:
        self._status[name] = replace(self._status[name], **changes)  # type: ignore[arg-type]
        self._changed.set()
        self._changed = anyio.Event()

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def _service_refused(self, lifecycle: str) -> Exception:
        return PluginHostError(f"this PluginLauncher was already {lifecycle}; create a new one")

    async def _service_start(self, tg: TaskGroup) -> None:
        records = {r.name: r for r in await self._state.list_plugin_processes()} if self._state else {}
        wanted = {spec.name for spec in self._specs}
        for name in sorted(set(records) - wanted):
            await self._discard(records.pop(name), "its plugin is no longer configured")
        for spec in self._specs:
            tg.start_soon(self._supervise, spec, records.get(spec.name), name=f"plugin {spec.name}")

    # Leaving cancels the group: each supervisor stops its process under a shielded, bounded scope when cancelled.

    # --- one plugin -----------------------------------------------------------------------------------------------

    async def _supervise(self, spec: PluginSpec, record: PluginProcessRecord | None) -> None:
        try:
            await self._relaunch_forever(spec, record)
        finally:
            await self._retire(spec.name)  # a crashed plugin waiting out its backoff leaves the DeviceManager too

    async def _relaunch_forever(self, spec: PluginSpec, record: PluginProcessRecord | None) -> None:
        initial, maximum, reset_after = self._backoff
        backoff = Backoff(initial, maximum)
        first = True
        while True:
            if not first:
                self._update(spec.name, restarts=self._status[spec.name].restarts + 1)
            first = False
            self._update(spec.name, state=LaunchState.STARTING, pid=None, socket_path=None, reattached=False)
            reattach, record = (await self._reattachable(spec, record) if record is not None else None), None
            started = anyio.current_time()
            try:
                reason = await self._run_once(spec, reattach)
            except PluginLaunchError as exc:
                reason = str(exc)
                logger.error("%s", exc)
            if anyio.current_time() - started >= reset_after:
                backoff.reset()
            delay = backoff.next()
            self._update(spec.name, state=LaunchState.BACKOFF, pid=None, socket_path=None, last_error=reason)
            logger.warning("external plugin %r: restarting in %.3g s", spec.name, delay)
            await anyio.sleep(delay)

    async def _run_once(self, spec: PluginSpec, reattach: PluginProcessRecord | None) -> str:
        """Start (or reattach), connect and hand the plugin to the DeviceManager; return why it ended."""
        process = PluginProcess(
            spec,
            start_timeout=self._start_timeout,
            shutdown_timeout=self._shutdown_timeout,
            kill_timeout=self._kill_timeout,
            socket_dir=self._socket_dir,
            reattach=reattach,
        )
        try:
            async with AsyncExitStack() as stack:
                proc = await stack.enter_async_context(process)
                # Runs before the process is stopped (LIFO): a launcher told to leave it running detaches instead.
                stack.callback(lambda: proc.detach() if self._leave_running else None)
                if self._state is not None and not proc.reattached:
                    await self._state.save_plugin_process(proc.record())
                # Not on the stack: once handed over, the client lives as long as the manager's entry.
                ptype, client = await self._client_for(spec, proc)
                await client.__aenter__()
                try:
                    await self._connect(spec, proc, ptype, client)
                    # A crashed incarnation stayed in the DeviceManager (devices unhealthy, as Nomad shows them while
                    # it relaunches) until now: swap it out, so the registry sees it deregistered and registered again.
                    await self._retire(spec.name)
                    if isinstance(client, DriverPluginClient):
                        assert self._drivers is not None
                        # Adding a driver recovers its stored tasks (a relaunched driver re-attaches to them).
                        await self._drivers.add_driver(spec.name, client)
                    else:
                        await self._devices.add_plugin(spec.name, client, socket_path=proc.socket_path)
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await client.__aexit__(None, None, None)
                    raise
                self._live[spec.name] = client
                stack.push_async_callback(self._retire_unless_crashed, spec.name)
                how = "reattached to" if proc.reattached else "started"
                logger.info("external plugin %r %s (pid %d, socket %s)", spec.name, how, proc.pid, proc.socket_path)
                self._update(
                    spec.name,
                    state=LaunchState.RUNNING,
                    pid=proc.pid,
                    socket_path=proc.socket_path,
                    reattached=proc.reattached,
                )
                code = await proc.wait()
                self._crashed.add(spec.name)
                reason = f"plugin {spec.name!r} (pid {proc.pid}) exited" + (
                    f" with code {code}" if code is not None else ""
                )
                logger.warning("%s", reason)
                return reason
        finally:
            with anyio.CancelScope(shield=True):
                if self._state is not None and not self._leave_running and process.pid and process.exited:
                    await self._state.delete_plugin_process(spec.name)
                if not self._leave_running:
                    self._update(spec.name, state=LaunchState.STOPPED, pid=None, socket_path=None)

    async def _retire(self, name: str) -> None:
        """Remove ``name``'s DeviceManager entry (deregistering it) and close its client, if it has one."""
        with anyio.CancelScope(shield=True):
            client = self._live.pop(name, None)
            self._crashed.discard(name)
            if client is None:
                return
            try:
                if isinstance(client, DriverPluginClient):
                    if self._drivers is not None:
                        await self._drivers.remove_driver(name)
                else:
                    await self._devices.remove_plugin(name)
            except PluginNotFoundError:
                pass  # the manager already shut down
            finally:
                await client.__aexit__(None, None, None)

    async def _retire_unless_crashed(self, name: str) -> None:
        # A crashed plugin keeps its (unhealthy) devices until its next incarnation replaces it, or the launcher ends.
        if name not in self._crashed:
            await self._retire(name)

    async def _client_for(self, spec: PluginSpec, proc: PluginProcess) -> tuple[str, _Client]:
        """Health SERVING, then a client for the plugin's type (device, or driver when a DriverManager is given)."""
        where = f"plugin {spec.name!r} ({spec.executable}, pid {proc.pid})"
        status = "unknown"
        with anyio.move_on_after(self._health_timeout):
            while (status := await health_status(proc.socket_path, limit=self._health_timeout)) != "SERVING":
                if proc.exited:
                    break
                await anyio.sleep(0.05)
        if status != "SERVING":
            raise PluginLaunchError(
                f"{where} did not report health SERVING for service 'plugin' within {self._health_timeout:g}s"
                f" (last: {status})",
                plugin=spec.name,
            )
        try:
            ptype = await plugin_type(proc.socket_path, limit=self._health_timeout)
        except PluginHostError as exc:
            raise PluginLaunchError(f"{where} did not answer PluginInfo: {exc}", plugin=spec.name) from exc
        expected = [PLUGIN_TYPE_DEVICE] + ([PLUGIN_TYPE_DRIVER] if self._drivers is not None else [])
        if ptype not in expected:
            raise PluginLaunchError(f"{where} is a {ptype!r} plugin; expected one of {expected}", plugin=spec.name)
        return ptype, _KINDS[ptype].client(proc.socket_path)

    async def _connect(self, spec: PluginSpec, proc: PluginProcess, ptype: str, client: _Client) -> None:
        """Configure the plugin as its type's glue says (SetConfig; a driver's Init too); each failure a
        PluginLaunchError naming the plugin."""
        where = f"plugin {spec.name!r} ({spec.executable}, pid {proc.pid})"
        try:
            # The config may hold secrets: errors say which plugin refused it, never its values.
            await _KINDS[ptype].configure(client, spec.config)
        except PluginLaunchError:
            raise
        except PluginHostError as exc:
            raise PluginLaunchError(f"{where} could not be configured: {exc}", plugin=spec.name) from exc

    async def _reattachable(self, spec: PluginSpec, record: PluginProcessRecord) -> PluginProcessRecord | None:
        """``record`` when its process still runs, is the same executable and answers Health; else None."""
        if record.executable != os.fspath(spec.executable):
            await self._discard(record, f"it was started from {record.executable}, not {spec.executable}")
            return None
        if process_start_time(record.pid) != record.start_time:
            await self._discard(record, f"process {record.pid} is gone")
            return None
        status = await health_status(record.socket_path, limit=min(self._health_timeout, 5.0))
        if status != "SERVING":
            await self._discard(record, f"process {record.pid} reports health {status}")
            return None
        return record

    async def _discard(self, record: PluginProcessRecord, why: str) -> None:
        """Kill a recorded process that will not be reattached (if it is still that process) and forget it."""
        logger.info("not reattaching plugin %r (pid %d): %s", record.name, record.pid, why)
        with anyio.CancelScope(shield=True):
            if process_start_time(record.pid) == record.start_time:
                for signum in (signal.SIGTERM, signal.SIGKILL):
                    signal_group(record.pid, signum)
                    with anyio.move_on_after(self._kill_timeout):
                        await wait_exit(record.pid)  # reaps it too when it was our child
                        break
            # Only a directory of ours is removed: the record's socket is never unlinked where it may be another's.
            if record.socket_path and (directory := socket_dir_of(record.socket_path, self._socket_dir)) is not None:
                directory.remove()
            if self._state is not None:
                await self._state.delete_plugin_process(record.name)


class PluginBlock(Protocol):
    """One ``plugin "NAME" { args = [...]  config { ... } }`` block of a host config."""

    @property
    def args(self) -> Sequence[str]: ...

    @property
    def config(self) -> Mapping[str, Any]: ...


class ExternalPluginsConfig(Protocol):
    """What the loader reads of the host config (:class:`~plugin_host.host_config.HostConfig`, above the loader)."""

    @property
    def plugin_dir(self) -> str | None: ...

    @property
    def plugins(self) -> Mapping[str, PluginBlock]: ...


def plugin_specs_from_config(config: ExternalPluginsConfig) -> list[PluginSpec]:
    """The external plugins of a host config: every executable in ``plugin_dir`` with its ``plugin "NAME"`` block.

    Built-in plugin names are left out. No ``plugin_dir`` means none; a missing one is a :class:`ConfigError`.
    """
    if config.plugin_dir is None:
        return []
    # Imported here: the catalog imports every built-in plugin, which only a host with a plugin_dir needs to know.
    from plugin_host.loader.catalog import BUILTIN_PLUGINS

    configured = {name: (tuple(plugin.args), plugin.config) for name, plugin in config.plugins.items()}
    return plugin_specs_from_dir(config.plugin_dir, configured, skip=frozenset(BUILTIN_PLUGINS))
