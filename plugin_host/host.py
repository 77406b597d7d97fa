"""PluginHost: composes the state store, the registry, the device manager, the plugins and the admin socket.

``async with PluginHost(config) as host:`` opens ``<state_dir>/plugin-host.db``, serves each configured built-in
device plugin on ``<run_dir>/<name>.sock`` (registered as type ``device``, alloc ``"host"``), manages it with a
:class:`~plugin_host.device.DeviceManager`, and answers ``plugin-host status`` on the admin socket. With a
``plugin_dir``, a :class:`~plugin_host.loader.PluginLauncher` runs each executable in it as an external device
plugin (go-plugin) on the same DeviceManager, recording its processes in the state file. The registry dispenses
CSI plugins (``csi-controller``, ``csi-node``) as shared open :class:`~plugin_host.csi.CsiClient` objects that the
host owns, and a :class:`~plugin_host.csi.CsiManager` (``host.csi``) supervises them; with ``plugins_registry {}``,
a :class:`~plugin_host.csi.PluginWatcher` registers CSI drivers kubelet-style. Built-in task drivers (``plugin
"raw-exec" {}``) and launched driver plugins run under a :class:`~plugin_host.driver.DriverManager`
(``host.drivers``), which recovers the tasks stored in the state file before the host is ready; tasks outlive the
host. Leaving the block stops
everything in reverse order (the external plugin processes included) and removes every socket file the host
created.
"""

from __future__ import annotations

import contextlib
import logging
import os
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Self, cast

import anyio
from anyio.abc import TaskGroup, TaskStatus

from plugin_host._metrics import NO_METRICS, Metrics
from plugin_host._service import TaskGroupService
from plugin_host._version import __version__
from plugin_host.admin import (
    AdminServer,
    DeviceGroupStatus,
    DeviceStatus,
    DriverStatus,
    EncodedJSON,
    HostStatus,
    KubeletExportStatus,
    KubeletResourceStatus,
    PluginStatus,
    TaskEntry,
    check_not_running,
)
from plugin_host.base.api import PLUGIN_TYPE_DRIVER
from plugin_host.csi import CsiClients, CsiManager, CsiPluginHealth, PluginWatcher
from plugin_host.csi.manager import CSI_PLUGIN_TYPES
from plugin_host.device import DeviceManager, DevicePluginClient, DevicePluginServer, PluginSnapshot
from plugin_host.device.api import Device, DeviceGroup
from plugin_host.device.manager import REGISTRY_ALLOC_ID
from plugin_host.driver.manager import DriverManager
from plugin_host.errors import ConfigError, PluginHostError, PluginNotFoundError
from plugin_host.host_config import HostConfig
from plugin_host.kubelet.api import HEALTHY as KUBELET_HEALTHY
from plugin_host.kubelet.export.manager import Manager as KubeletManager
from plugin_host.kubelet.export.manager_export import DeviceManagerScanner
from plugin_host.kubelet.host.registration_server import KubeletRegistrationServer, is_kubelet_plugin
from plugin_host.loader.catalog import BUILTIN_PLUGINS, BuiltinPlugin
from plugin_host.loader.launcher import PluginLauncher, plugin_specs_from_config
from plugin_host.registry import (
    PLUGIN_TYPE_CSI_CONTROLLER,
    PLUGIN_TYPE_CSI_NODE,
    PLUGIN_TYPE_DEVICE,
    PluginInfo,
    Registry,
)
from plugin_host.state import SqliteStateStore

if TYPE_CHECKING:
    from plugin_host.device.api import DevicePlugin
    from plugin_host.driver.api import DriverFingerprint, DriverPlugin
    from plugin_host.telemetry import Telemetry

__all__ = ["PluginHost"]

logger = logging.getLogger(__name__)

# How long `status` waits for a driver to describe one task (a hung remote driver must not hang `status`).
_STATUS_INSPECT_TIMEOUT = 2.0

"""Device plugins that run inside the host process, by the name a ``plugin "NAME"`` block uses."""


def _dispense_device(info: PluginInfo) -> DevicePluginClient:
    """A client for a registered device plugin; the caller enters it (``async with``)."""
    if info.connection_info is None:
        raise PluginNotFoundError(f"device plugin {info.name!r} has no connection info to dispense a client from")
    return DevicePluginClient(info.connection_info.socket_path)


class PluginHost(TaskGroupService):
    """The running host; nothing starts until ``async with PluginHost(config) as host:``.

    ``close_timeout`` bounds the whole shutdown (seconds); components bound their own parts as well.
    """

    def __init__(self, config: HostConfig, *, close_timeout: float = 15.0) -> None:
        if not close_timeout > 0:
            raise ConfigError(f"close_timeout must be a positive number of seconds, got {close_timeout!r}")
        self._config = config
        self._close_timeout = close_timeout
        self._registry: Registry | None = None
        self._devices: DeviceManager | None = None
        self._drivers: DriverManager | None = None
        self._launcher: PluginLauncher | None = None
        self._csi: CsiManager | None = None
        self._plugin_watcher: PluginWatcher | None = None
        self._kubelet_server: KubeletRegistrationServer | None = None
        self._kubelet_export: KubeletManager | None = None
        self._kubelet_scanner: DeviceManagerScanner | None = None
        self._telemetry: Telemetry | None = None
        self._group_statuses: dict[tuple[str, str], _GroupStatusEntry] = {}
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        super().__init__()

    @property
    def config(self) -> HostConfig:
        """The configuration the host runs with."""
        return self._config

    @property
    def registry(self) -> Registry:
        """The dynamic plugin registry (backed by the state file)."""
        if self._registry is None:
            raise PluginHostError("the PluginHost is not running: use `async with PluginHost(config) as host`")
        return self._registry

    @property
    def devices(self) -> DeviceManager:
        """The device manager running the host's device plugins."""
        if self._devices is None:
            raise PluginHostError("the PluginHost is not running: use `async with PluginHost(config) as host`")
        return self._devices

    @property
    def drivers(self) -> DriverManager:
        """The driver manager running the host's task drivers (built-in and launched); tasks recovered on start."""
        if self._drivers is None:
            raise PluginHostError("the PluginHost is not running: use `async with PluginHost(config) as host`")
        return self._drivers

    @property
    def csi(self) -> CsiManager:
        """The CSI manager supervising the registry's ``csi-controller`` and ``csi-node`` plugins."""
        if self._csi is None:
            raise PluginHostError("the PluginHost is not running: use `async with PluginHost(config) as host`")
        return self._csi

    @property
    def plugin_watcher(self) -> PluginWatcher | None:
        """The kubelet-style CSI registration watcher (``plugins_registry {}``), or None when not configured."""
        if self._registry is None:
            raise PluginHostError("the PluginHost is not running: use `async with PluginHost(config) as host`")
        return self._plugin_watcher

    @property
    def launcher(self) -> PluginLauncher | None:
        """The launcher of the external plugins in ``plugin_dir`` (None when no ``plugin_dir`` is set)."""
        if self._registry is None:
            raise PluginHostError("the PluginHost is not running: use `async with PluginHost(config) as host`")
        return self._launcher

    @property
    def kubelet_server(self) -> KubeletRegistrationServer | None:
        """The kubelet registration server (``kubelet_server {}``), or None when not configured."""
        if self._registry is None:
            raise PluginHostError("the PluginHost is not running: use `async with PluginHost(config) as host`")
        return self._kubelet_server

    @property
    def kubelet_export(self) -> KubeletManager | None:
        """The kubelet Manager serving the host's device plugins to kubelet (``kubelet {}``), or None."""
        if self._registry is None:
            raise PluginHostError("the PluginHost is not running: use `async with PluginHost(config) as host`")
        return self._kubelet_export

    @property
    def telemetry(self) -> Telemetry | None:
        """The metrics endpoint (``telemetry {}``), or None when not configured."""
        if self._registry is None:
            raise PluginHostError("the PluginHost is not running: use `async with PluginHost(config) as host`")
        return self._telemetry

    def _exportable(self, name: str) -> bool:
        """Whether a managed device plugin is served to kubelet: all but those hosted for kubelet plugins."""
        server = self._kubelet_server
        return server is None or not server.manages(name)

    def _dispense_device(self, info: PluginInfo) -> Any:
        """The registry's ``device`` dispenser: Kubernetes plugins through the kubelet server, others over gRPC."""
        if not is_kubelet_plugin(info):
            return _dispense_device(info)
        if self._kubelet_server is None:
            raise PluginNotFoundError(
                f"device plugin {info.name!r} registered through a kubelet registration socket, and no"
                " kubelet_server {} is running to reach it"
            )
        return self._kubelet_server.dispense(info)

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            return await super().__aenter__()
        except BaseException as exc:
            # A failed start already wound the group down (nothing else runs in it).
            leaf = _only_error(exc)
            if leaf is exc:
                raise
            # A failure inside a component's task group arrives wrapped; callers want the error itself.
            raise leaf from leaf.__cause__

    def _service_refused(self, lifecycle: str) -> Exception:
        return PluginHostError(f"this PluginHost was already {lifecycle}; create a new one")

    async def _service_start(self, tg: TaskGroup) -> None:
        # Every component is entered and left by one task, so their cancel scopes nest properly.
        await tg.start(self._run)

    def _service_stop_timeout(self) -> float:
        return self._close_timeout

    async def _service_stop(self) -> None:
        self._stop.set()
        await self._stopped.wait()

    def _service_stop_timed_out(self) -> None:
        logger.warning("plugin host did not stop within %ss; cancelling what is left", self._close_timeout)

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        config = self._config
        try:
            # A directory key pointing at a file fails here, naming the key, not later as a bare errno.
            await anyio.to_thread.run_sync(config.check_paths)
            # Before touching the state file, so a second host says plainly that one already runs.
            await check_not_running(config.admin_socket_path)
            async with AsyncExitStack() as stack:
                metrics = await self._enter_telemetry(stack)
                store = await stack.enter_async_context(SqliteStateStore(config.state_file))
                # One shared, host-owned CSI channel per socket, for dispensed clients and the CsiManager alike.
                csi_clients = await stack.enter_async_context(CsiClients(metrics=metrics))
                dispensers = {
                    PLUGIN_TYPE_DEVICE: self._dispense_device,
                    PLUGIN_TYPE_CSI_CONTROLLER: csi_clients.dispense,
                    PLUGIN_TYPE_CSI_NODE: csi_clients.dispense,
                }
                registry = await stack.enter_async_context(
                    Registry(state=store, dispensers=dispensers, metrics=metrics)
                )
                devices = await stack.enter_async_context(DeviceManager(registry=registry))
                self._registry, self._devices = registry, devices
                specs = await anyio.to_thread.run_sync(lambda: plugin_specs_from_config(config))
                # Tasks outlive the host: leaving the DriverManager stops no task; the next host recovers them. Tasks
                # of a driver that is no longer configured are reported (and kept) rather than silently ignored.
                configured = [*config.plugins, *(spec.name for spec in specs)]
                drivers = self._drivers = await stack.enter_async_context(
                    DriverManager(state=store, configured_drivers=configured)
                )
                if config.plugins_registry is not None:
                    # Before the CsiManager: registrations whose socket vanished are dropped, never supervised.
                    self._plugin_watcher = await stack.enter_async_context(
                        PluginWatcher(config.plugins_registry.dir, registry)
                    )
                self._csi = await stack.enter_async_context(CsiManager(registry, clients=csi_clients))
                if self._telemetry is not None:
                    self._telemetry.watch(registry=registry, devices=devices, csi=self._csi)
                    stack.callback(self._telemetry.unwatch)  # scrapes stop reading the managers before they stop
                await self._reconcile(registry, external={spec.name for spec in specs})
                run_dir = config.run_path
                await anyio.to_thread.run_sync(lambda: run_dir.mkdir(mode=0o700, parents=True, exist_ok=True))
                for name, plugin_config in config.plugins.items():
                    builtin = BUILTIN_PLUGINS.get(name)
                    if builtin is None:
                        continue  # an external plugin: launched below when plugin_dir holds its executable
                    if builtin.type == PLUGIN_TYPE_DRIVER:
                        await _add_builtin_driver(stack, drivers, name, builtin, plugin_config.config)
                        continue
                    plugin = cast("DevicePlugin", builtin.factory())
                    try:
                        await plugin.set_config(plugin_config.config)
                    except ConfigError as exc:
                        raise ConfigError(f'plugin "{name}": {exc}') from exc
                    socket_path = run_dir / f"{name}.sock"
                    await stack.enter_async_context(DevicePluginServer(plugin, socket_path))
                    await devices.add_plugin(name, plugin, socket_path=os.fspath(socket_path))
                if config.kubelet_server is not None:
                    self._kubelet_server = await stack.enter_async_context(
                        KubeletRegistrationServer(config.kubelet_server.plugin_dir, registry, devices=devices)
                    )
                if config.plugin_dir is not None:
                    # Left before the DeviceManager: each plugin is removed, then its process stopped (no orphans).
                    self._launcher = await stack.enter_async_context(
                        PluginLauncher(specs, devices=devices, drivers=drivers, state=store)
                    )
                if config.kubelet is not None:
                    # Every managed device plugin (built-in, launched, added by the agent) is served to kubelet as
                    # well, each device group as <namespace>/<vendor>-<type>-<name>; not the ones kubelet gave us.
                    scanner = self._kubelet_scanner = DeviceManagerScanner(devices, include=self._exportable)
                    self._kubelet_export = await stack.enter_async_context(
                        KubeletManager(
                            config.kubelet.namespace, scanner, plugin_dir=config.kubelet.plugin_dir, metrics=metrics
                        )
                    )
                await stack.enter_async_context(AdminServer(config.admin_socket_path, {"status": self._status_json}))
                logger.info(
                    "plugin host running: state %s, admin socket %s", config.state_file, config.admin_socket_path
                )
                task_status.started()
                await self._stop.wait()
                logger.info("plugin host stopping")
        finally:
            self._registry = self._devices = None
            self._drivers = None
            self._launcher = None
            self._csi = self._plugin_watcher = None
            self._kubelet_server = None
            self._kubelet_export = self._kubelet_scanner = None
            self._telemetry = None
            self._stopped.set()

    async def _enter_telemetry(self, stack: AsyncExitStack) -> Metrics:
        """Serve ``/metrics`` when ``telemetry {}`` is configured; the sink the components report to."""
        if self._config.telemetry is None:
            return NO_METRICS
        # Imported only when configured: without the block, prometheus_client is never loaded.
        from plugin_host.telemetry import Telemetry

        telemetry = Telemetry(self._config.telemetry.prometheus_listen)
        self._telemetry = await stack.enter_async_context(telemetry)
        return telemetry.metrics

    async def _reconcile(self, registry: Registry, *, external: set[str]) -> None:
        """Deregister the host's device plugins of an earlier run that are no longer configured (nor launched)."""
        for info in await registry.list_plugins(PLUGIN_TYPE_DEVICE):
            if info.name in self._config.plugins or info.name in external:
                continue
            try:
                await registry.plugin_for_alloc(PLUGIN_TYPE_DEVICE, info.name, REGISTRY_ALLOC_ID)
            except PluginNotFoundError:
                continue
            logger.info("deregistering device plugin %r of an earlier run: it is no longer configured", info.name)
            await registry.deregister_plugin(PLUGIN_TYPE_DEVICE, info.name, REGISTRY_ALLOC_ID)

    # --- status ---------------------------------------------------------------------------------------------------

    async def status(self) -> HostStatus:
        """Every registered plugin (for managed device plugins their state and devices, for CSI plugins their
        health), the task drivers with their health and tasks, and what ``kubelet {}`` serves to kubelet."""
        registry, devices = self.registry, self.devices
        snapshot = devices.snapshot()
        managed_by_name = {p.name: p for p in snapshot.plugins}
        # Each device group's status is built again only when the group changed (O(changes), not O(devices), per
        # ask); the entries of groups no longer listed are dropped when this answer is done.
        cache = self._group_statuses
        fresh: dict[tuple[str, str], _GroupStatusEntry] = {}
        plugins: list[PluginStatus] = []
        seen: set[str] = set()
        for ptype in registry.plugin_types():
            for info in await registry.list_plugins(ptype):
                managed = managed_by_name.get(info.name) if ptype == PLUGIN_TYPE_DEVICE else None
                if managed is not None:
                    seen.add(info.name)
                status = _plugin_status(info, managed, cache, fresh)
                if ptype in CSI_PLUGIN_TYPES and self._csi is not None:
                    status = _csi_status(status, self._csi.health(ptype, info.name))
                plugins.append(status)
        server = self._kubelet_server
        plugins.extend(
            _plugin_status(None, p, cache, fresh).model_copy(
                update={"kubelet_hosted": server is not None and server.manages(p.name)}
            )
            for p in snapshot.plugins
            if p.name not in seen
        )
        if server is not None:
            plugins = [_kubelet_connection_status(p, server) if p.kubelet_hosted else p for p in plugins]
        self._group_statuses = fresh
        drivers = self.drivers
        return HostStatus(
            pid=os.getpid(),
            version=__version__,
            state_file=os.fspath(self._config.state_file.absolute()),
            admin_socket=os.fspath(self._config.admin_socket_path),
            plugins=tuple(sorted(plugins, key=lambda p: (p.type, p.name))),
            drivers=tuple(drivers.driver_names()),
            tasks=await _task_entries(drivers),
            driver_health=tuple(_driver_status(name, drivers.fingerprint(name)) for name in drivers.driver_names()),
            kubelet_export=self._kubelet_export_status(),
            metrics_urls=self._telemetry.urls if self._telemetry is not None else (),
        )

    def _kubelet_export_status(self) -> KubeletExportStatus | None:
        """Each device type the kubelet Manager serves, the plugins whose group it is (as the scanner last sent
        them), and its registration."""
        manager, scanner, config = self._kubelet_export, self._kubelet_scanner, self._config.kubelet
        if manager is None or scanner is None or config is None:
            return None
        groups, providers = scanner.device_types, scanner.providers
        resources = []
        for dev_type in manager.device_types():
            served = manager.server(dev_type)
            healthy = [info.state == KUBELET_HEALTHY for info in served.devices.values()]
            resources.append(
                KubeletResourceStatus(
                    name=served.resource_name,
                    group=groups.get(dev_type, ""),
                    plugins=providers.get(dev_type, ()),
                    devices=len(healthy),
                    healthy=sum(healthy),
                    registered=served.registered,
                    socket_path=os.fspath(served.socket_path),
                )
            )
        return KubeletExportStatus(
            namespace=manager.namespace, plugin_dir=config.plugin_dir, resources=tuple(resources)
        )

    async def _status_json(self) -> Any:
        # Encoded in one call of pydantic's serializer (a few ms for 10,000 devices), not dumped then encoded again.
        return EncodedJSON((await self.status()).model_dump_json().encode())


async def _task_entries(drivers: DriverManager) -> tuple[TaskEntry, ...]:
    """Each tracked task as its driver reports it now (a bounded ask), then the stored tasks not recovered."""
    entries: list[TaskEntry] = []
    for task_id, driver in sorted(drivers.tasks().items()):
        try:
            with anyio.fail_after(_STATUS_INSPECT_TIMEOUT):
                status = await drivers.inspect_task(task_id)
        except (PluginHostError, TimeoutError) as exc:
            entries.append(TaskEntry(id=task_id, driver=driver, state="unknown", detail=f"inspect failed: {exc}"))
            continue
        result = status.exit_result
        entries.append(
            TaskEntry(
                id=task_id,
                driver=driver,
                state=status.state.value,
                exit_code=result.exit_code if result is not None else None,
                signal=result.signal if result is not None else 0,
                detail=(result.err or "") if result is not None else "",
            )
        )
    entries.extend(
        TaskEntry(id=task_id, driver=driver, state="unrecovered", detail=why)
        for task_id, (driver, why) in sorted(drivers.unrecovered_tasks().items())
    )
    return tuple(entries)


def _driver_status(name: str, fingerprint: DriverFingerprint | None) -> DriverStatus:
    """A driver's health from its latest fingerprint: unknown before the first one and after the stream failed."""
    if fingerprint is None:
        return DriverStatus(name=name, health="unknown", health_description="no fingerprint yet")
    if fingerprint.error is not None:
        return DriverStatus(name=name, health="unknown", health_description=f"fingerprint failed: {fingerprint.error}")
    return DriverStatus(name=name, health=fingerprint.health.value, health_description=fingerprint.health_description)


async def _add_builtin_driver(
    stack: AsyncExitStack, drivers: DriverManager, name: str, builtin: BuiltinPlugin, config: Any
) -> None:
    """Configure a built-in task driver and hand it to the DriverManager, which recovers its stored tasks.

    Nomad's optional ``init``/``shutdown`` hooks are honoured: ``init`` after ``set_config``, and at host stop the
    driver is taken from the manager first, then shut down (a VirtDriver closes its libvirt connection there).
    Tasks keep running either way.
    """
    driver = cast("DriverPlugin", builtin.factory())
    try:
        await driver.set_config(config)
    except ConfigError as exc:
        raise ConfigError(f'plugin "{name}": {exc}') from exc
    init = getattr(driver, "init", None)
    if init is not None:
        await init()
    shutdown = getattr(driver, "shutdown", None)

    async def release() -> None:
        with contextlib.suppress(PluginNotFoundError):  # add_driver failed: it never was managed
            await drivers.remove_driver(name)
        if shutdown is not None:
            await shutdown()

    stack.push_async_callback(release)
    result = await drivers.add_driver(name, driver)
    if result.failed:
        logger.warning("driver %r: %d task(s) could not be recovered: %s", name, len(result.failed), result.failed)


def _only_error(exc: BaseException) -> BaseException:
    """The single exception inside (nested) exception groups, or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _csi_status(status: PluginStatus, health: CsiPluginHealth | None) -> PluginStatus:
    """A CSI plugin's state is its health as the CsiManager last saw it (the description when unhealthy)."""
    if health is None or health.alloc_id != status.alloc_id:
        return status
    state = "healthy" if health.healthy else "unhealthy"
    return status.model_copy(update={"state": state, "last_error": None if health.healthy else health.description})


def _kubelet_connection_status(status: PluginStatus, server: KubeletRegistrationServer) -> PluginStatus:
    """A kubelet-hosted plugin whose ListAndWatch stream ended is ``disconnected``, ``last_error`` saying why: the
    device manager alone would show ``starting`` (no list ever came) or ``running`` with unhealthy devices."""
    reason = server.disconnected(status.name)
    if reason is None:
        return status
    return status.model_copy(update={"state": "disconnected", "last_error": reason})


_GroupStatusEntry = tuple[DeviceGroup, DeviceGroupStatus, dict[str, tuple[Device, DeviceStatus]]]
"""A device group as last seen, its status, and each device's status by id (with the device it was built from)."""


def _group_status(
    plugin: str,
    group: DeviceGroup,
    cache: dict[tuple[str, str], _GroupStatusEntry],
    fresh: dict[tuple[str, str], _GroupStatusEntry],
) -> DeviceGroupStatus:
    """The status of ``group``: the cached one while the group is the same object; else built again, reusing the
    status of each device that is the same object as before (plugins reuse unchanged devices)."""
    key = (plugin, group.id)
    entry = fresh.get(key) or cache.get(key)
    if entry is None or entry[0] is not group:
        known = entry[2] if entry is not None else {}
        by_id: dict[str, tuple[Device, DeviceStatus]] = {}
        for device in group.devices:
            pair = known.get(device.id)
            if pair is None or pair[0] is not device:
                pair = (
                    device,
                    DeviceStatus(id=device.id, healthy=device.healthy, health_description=device.health_description),
                )
            by_id[device.id] = pair
        entry = (group, DeviceGroupStatus(id=group.id, devices=tuple(pair[1] for pair in by_id.values())), by_id)
    fresh[key] = entry
    return entry[1]


def _plugin_status(
    info: PluginInfo | None,
    managed: PluginSnapshot | None,
    cache: dict[tuple[str, str], _GroupStatusEntry],
    fresh: dict[tuple[str, str], _GroupStatusEntry],
) -> PluginStatus:
    groups: tuple[DeviceGroupStatus, ...] = ()
    if managed is not None:
        groups = tuple(_group_status(managed.name, group, cache, fresh) for group in managed.groups)
    if info is not None:
        return PluginStatus(
            name=info.name,
            type=info.type,
            state=managed.state.value if managed is not None else "registered",
            version=info.version,
            socket_path=info.connection_info.socket_path if info.connection_info is not None else None,
            alloc_id=info.alloc_id,
            last_error=managed.last_error if managed is not None else None,
            groups=groups,
            kubelet_hosted=info.type == PLUGIN_TYPE_DEVICE and is_kubelet_plugin(info),
        )
    assert managed is not None
    return PluginStatus(
        name=managed.name,
        type=PLUGIN_TYPE_DEVICE,
        state=managed.state.value,
        version=managed.version,
        socket_path=managed.socket_path,
        last_error=managed.last_error,
        groups=groups,
    )
