"""PluginHost: composes the state store, the registry, the device manager, the plugins and the admin socket.

``async with PluginHost(config) as host:`` opens ``<state_dir>/plugin-host.db``, serves each configured built-in
device plugin on ``<run_dir>/<name>.sock`` (registered as type ``device``, alloc ``"host"``), manages it with a
:class:`~plugin_host.device.DeviceManager`, and answers ``plugin-host status`` on the admin socket. With a
``plugin_dir``, a :class:`~plugin_host.goplugin.PluginLauncher` runs each executable in it as an external device
plugin (go-plugin) on the same DeviceManager, recording its processes in the state file. Leaving the block stops
everything in reverse order (the external plugin processes included) and removes every socket file the host
created.
"""

from __future__ import annotations

import logging
import os
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup, TaskStatus

from plugin_host._builtins import BUILTIN_PLUGINS
from plugin_host._version import __version__
from plugin_host.admin import (
    AdminServer,
    DeviceGroupStatus,
    DeviceStatus,
    HostStatus,
    PluginStatus,
    check_not_running,
)
from plugin_host.config.host import HostConfig
from plugin_host.device import DeviceManager, DevicePluginClient, DevicePluginServer, PluginSnapshot
from plugin_host.device.manager import REGISTRY_ALLOC_ID
from plugin_host.errors import ConfigError, PluginHostError, PluginNotFoundError
from plugin_host.goplugin.launcher import PluginLauncher, plugin_specs_from_config
from plugin_host.registry import PLUGIN_TYPE_DEVICE, PluginInfo, Registry
from plugin_host.state import SqliteStateStore

__all__ = ["PluginHost"]

logger = logging.getLogger(__name__)

"""Device plugins that run inside the host process, by the name a ``plugin "NAME"`` block uses."""


def _dispense_device(info: PluginInfo) -> DevicePluginClient:
    """A client for a registered device plugin; the caller enters it (``async with``)."""
    if info.connection_info is None:
        raise PluginNotFoundError(f"device plugin {info.name!r} has no connection info to dispense a client from")
    return DevicePluginClient(info.connection_info.socket_path)


class PluginHost:
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
        self._launcher: PluginLauncher | None = None
        self._tg: TaskGroup | None = None
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        self._status = "new"

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
    def launcher(self) -> PluginLauncher | None:
        """The launcher of the external plugins in ``plugin_dir`` (None when no ``plugin_dir`` is set)."""
        if self._registry is None:
            raise PluginHostError("the PluginHost is not running: use `async with PluginHost(config) as host`")
        return self._launcher

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._status != "new":
            raise PluginHostError(f"this PluginHost was already {self._status}; create a new one")
        self._status = "running"
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            # Every component is entered and left by one task, so their cancel scopes nest properly.
            await tg.start(self._run)
        except BaseException as exc:
            # start() already re-raised the failure here; the group only has to wind down (nothing else runs in it).
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            self._status = "closed"
            leaf = _only_error(exc)
            if leaf is exc:
                raise
            # A failure inside a component's task group arrives wrapped; callers want the error itself.
            raise leaf from leaf.__cause__
        self._tg = tg
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        tg, self._tg = self._tg, None
        assert tg is not None
        self._status = "closed"
        self._stop.set()
        with anyio.move_on_after(self._close_timeout, shield=True) as scope:
            await self._stopped.wait()
        if scope.cancelled_caught:
            logger.warning("plugin host did not stop within %ss; cancelling what is left", self._close_timeout)
            tg.cancel_scope.cancel()
        return await tg.__aexit__(exc_type, exc, tb)

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        config = self._config
        try:
            # Before touching the state file, so a second host says plainly that one already runs.
            await check_not_running(config.admin_socket_path)
            async with AsyncExitStack() as stack:
                store = await stack.enter_async_context(SqliteStateStore(config.state_file))
                registry = await stack.enter_async_context(
                    Registry(state=store, dispensers={PLUGIN_TYPE_DEVICE: _dispense_device})
                )
                devices = await stack.enter_async_context(DeviceManager(registry=registry))
                self._registry, self._devices = registry, devices
                specs = await anyio.to_thread.run_sync(lambda: plugin_specs_from_config(config))
                await self._reconcile(registry, external={spec.name for spec in specs})
                run_dir = config.run_path
                await anyio.to_thread.run_sync(lambda: run_dir.mkdir(mode=0o700, parents=True, exist_ok=True))
                for name, plugin_config in config.plugins.items():
                    builtin = BUILTIN_PLUGINS.get(name)
                    if builtin is None:
                        continue  # an external plugin: launched below when plugin_dir holds its executable
                    plugin = builtin.factory()
                    try:
                        await plugin.set_config(plugin_config.config)
                    except ConfigError as exc:
                        raise ConfigError(f'plugin "{name}": {exc}') from exc
                    socket_path = run_dir / f"{name}.sock"
                    await stack.enter_async_context(DevicePluginServer(plugin, socket_path))
                    await devices.add_plugin(name, plugin, socket_path=os.fspath(socket_path))
                if config.plugin_dir is not None:
                    # Left before the DeviceManager: each plugin is removed, then its process stopped (no orphans).
                    self._launcher = await stack.enter_async_context(
                        PluginLauncher(specs, devices=devices, state=store)
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
            self._launcher = None
            self._stopped.set()

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
        """Every registered plugin, and for the managed device plugins their state and devices."""
        registry, devices = self.registry, self.devices
        snapshot = devices.snapshot()
        plugins: list[PluginStatus] = []
        seen: set[str] = set()
        for ptype in registry.plugin_types():
            for info in await registry.list_plugins(ptype):
                managed = snapshot.plugin(info.name) if ptype == PLUGIN_TYPE_DEVICE else None
                if managed is not None:
                    seen.add(info.name)
                plugins.append(_plugin_status(info, managed))
        plugins.extend(_plugin_status(None, p) for p in snapshot.plugins if p.name not in seen)
        return HostStatus(
            pid=os.getpid(),
            version=__version__,
            state_file=os.fspath(self._config.state_file.absolute()),
            admin_socket=os.fspath(self._config.admin_socket_path),
            plugins=tuple(sorted(plugins, key=lambda p: (p.type, p.name))),
        )

    async def _status_json(self) -> Any:
        return (await self.status()).model_dump(mode="json")


def _only_error(exc: BaseException) -> BaseException:
    """The single exception inside (nested) exception groups, or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _plugin_status(info: PluginInfo | None, managed: PluginSnapshot | None) -> PluginStatus:
    groups: tuple[DeviceGroupStatus, ...] = ()
    if managed is not None:
        groups = tuple(
            DeviceGroupStatus(
                id=group.id,
                devices=tuple(
                    DeviceStatus(id=d.id, healthy=d.healthy, health_description=d.health_description)
                    for d in group.devices
                ),
            )
            for group in managed.groups
        )
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
