"""DeviceManager: runs device plugins, keeps their devices and statistics, routes reservations.

Nomad's ``client/devicemanager``, async. Each plugin (an in-process object or a ``DevicePluginClient``, anything
that satisfies :class:`~plugin_host.device.api.DevicePlugin`) is fingerprinted continuously; its statistics are
collected once it has fingerprinted; a failing fingerprint stream is restarted with exponential backoff while the
plugin's devices are shown unhealthy. ``snapshot()`` is the whole picture, ``subscribe()`` streams its changes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from plugin_host._backoff import check_backoff
from plugin_host._hub import SubscriptionHub
from plugin_host._service import TaskGroupService
from plugin_host._text import truncated
from plugin_host.base.api import PLUGIN_TYPE_DEVICE
from plugin_host.device._manager_instance import PluginRunner, RunnerSettings
from plugin_host.device._manager_models import DeviceManagerChange, DeviceManagerSnapshot, PluginChange, PluginState
from plugin_host.device._manager_subscribers import DeviceChanges, device_changes
from plugin_host.device.api import ContainerReservation, DeviceGroupStats, DevicePlugin
from plugin_host.errors import ConfigError, DeviceError, InvalidPluginError, PluginNotFoundError

if TYPE_CHECKING:
    from plugin_host.registry import Registry

__all__ = ["REGISTRY_ALLOC_ID", "DeviceManager"]

_log = logging.getLogger(__name__)

REGISTRY_ALLOC_ID = "host"
"""The alloc id under which the manager registers its plugins: they belong to the host, not to an allocation."""


class DeviceManager(TaskGroupService):
    """Runs device plugins and answers for their devices.

    Use as ``async with DeviceManager(...) as manager``; leaving the block stops every plugin's streams and waits
    (at most ``close_timeout`` per stream) until they are closed.

    ``stats_interval`` is the period asked of each plugin's stats stream (None collects no statistics).
    A failed fingerprint stream is started again after ``backoff_initial`` seconds, doubling on each consecutive
    failure up to ``backoff_max``; a plugin that fingerprinted for ``backoff_reset_after`` seconds before failing
    starts over from ``backoff_initial``. ``sleep`` and ``clock`` are how the manager waits and tells time (tests
    inject their own to observe the backoff without waiting).

    With a ``registry``, a plugin added with a ``socket_path`` is registered there as type ``device`` (alloc id
    ``"host"``) while it is managed. A plugin without a socket (an in-process object) is not registered: a
    registration must say how to reach the plugin, and nothing outside this process can reach that one.
    """

    def __init__(
        self,
        *,
        registry: Registry | None = None,
        stats_interval: float | None = 1.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        backoff_reset_after: float = 60.0,
        close_timeout: float = 5.0,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = anyio.current_time,
        logger: logging.Logger | None = None,
    ) -> None:
        if stats_interval is not None and not stats_interval > 0:
            raise ConfigError(
                f"stats_interval must be a positive number of seconds or None, got {truncated(stats_interval)}"
            )
        check_backoff(backoff_initial, backoff_max)
        if not backoff_reset_after > 0:
            raise ConfigError(
                f"backoff_reset_after must be a positive number of seconds, got {truncated(backoff_reset_after)}"
            )
        if not close_timeout > 0:
            raise ConfigError(f"close_timeout must be a positive number of seconds, got {truncated(close_timeout)}")
        self._registry = registry
        self._settings = RunnerSettings(
            stats_interval=stats_interval,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            backoff_reset_after=backoff_reset_after,
            close_timeout=close_timeout,
            sleep=sleep,
            clock=clock,
        )
        self._logger = logger if logger is not None else _log
        self._runners: dict[str, PluginRunner] = {}
        # Names being added or removed right now: taken before the first await so concurrent calls cannot race.
        self._busy: set[str] = set()
        self._hub = SubscriptionHub[DeviceManagerChange]()
        self._seq = 0
        super().__init__()

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def _service_refused(self, lifecycle: str) -> Exception:
        return DeviceError(f"this DeviceManager was already {lifecycle}; create a new one")

    def _service_stop_timeout(self) -> float:
        # Each runner bounds the closing of its streams; this bounds the whole shutdown as well.
        return self._settings.close_timeout * 2 + 1

    async def _service_stop(self) -> None:
        try:
            for name in list(self._runners):
                await self._stop(name)
        finally:
            self._hub.close()

    def _check_running(self) -> TaskGroup:
        if self._lifecycle != "running" or self._tg is None:
            state = "not started" if self._lifecycle == "new" else "shut down"
            raise DeviceError(f"the DeviceManager is {state}: use `async with DeviceManager(...) as manager`")
        return self._tg

    # --- plugins --------------------------------------------------------------------------------------------------

    async def add_plugin(self, name: str, plugin: DevicePlugin, *, socket_path: str | None = None) -> None:
        """Start managing ``plugin`` under ``name``; returns once its loops run (and it is registered).

        Raises :class:`InvalidPluginError` for an empty or taken name, an object that is not a device plugin, or
        one whose ``plugin_info()`` says another type; :class:`DeviceError` when ``plugin_info()`` fails.
        """
        self._check_running()
        if not isinstance(name, str) or not name:
            raise InvalidPluginError(f"device plugin name must be a non-empty string, got {truncated(name)}")
        if name in self._runners or name in self._busy:
            raise InvalidPluginError(f"a device plugin named {truncated(name)} is already managed; remove it first")
        if not isinstance(plugin, DevicePlugin):
            raise InvalidPluginError(
                f"device plugin {truncated(name)} must implement the DevicePlugin protocol, got {type(plugin).__name__}"
            )
        self._busy.add(name)
        try:
            try:
                info = await plugin.plugin_info()
            except Exception as exc:
                raise DeviceError(f"plugin_info() of device plugin {truncated(name)} failed: {exc}") from exc
            if info.type != PLUGIN_TYPE_DEVICE:
                raise InvalidPluginError(
                    f"plugin {truncated(name)} reports type {truncated(info.type)}; expected {PLUGIN_TYPE_DEVICE!r}"
                )
            tg = self._check_running()
            runner = PluginRunner(
                name,
                plugin,
                version=info.plugin_version,
                socket_path=socket_path,
                settings=self._settings,
                on_change=self._publish,
                logger=self._logger,
            )
            self._runners[name] = runner
            try:
                self._publish(runner)
                await tg.start(runner.run)
                if self._registry is not None and socket_path is not None:
                    await self._register(runner, socket_path)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._stop(name)
                raise
        finally:
            self._busy.discard(name)
        self._logger.info("device plugin %r (version %r) added", name, info.plugin_version)

    async def remove_plugin(self, name: str) -> None:
        """Stop ``name``'s streams, forget its devices and statistics, and deregister it.

        Raises :class:`PluginNotFoundError` naming the known plugins when none is called ``name``.
        """
        if name in self._busy:
            raise DeviceError(
                f"device plugin {truncated(name)} is being added or removed right now; try again afterwards"
            )
        if name not in self._runners:
            known = sorted(self._runners)
            raise PluginNotFoundError(f"no device plugin named {truncated(name)} is managed; known plugins: {known}")
        self._busy.add(name)
        try:
            # Bounded: each of the plugin's streams gets at most close_timeout to close.
            with anyio.CancelScope(shield=True):
                await self._stop(name)
        finally:
            self._busy.discard(name)
        self._logger.info("device plugin %r removed", name)

    async def _stop(self, name: str) -> None:
        runner = self._runners.get(name)
        if runner is None:
            return
        try:
            await runner.stop()
        finally:
            # A concurrent remove_plugin and shutdown both wait for the runner; only the first one forgets it.
            if self._runners.get(name) is runner:
                await self._forget(name, runner)

    async def _forget(self, name: str, runner: PluginRunner) -> None:
        del self._runners[name]
        self._seq += 1
        self._hub.publish(PluginChange(seq=self._seq, name=name, plugin=None))
        if self._registry is not None and runner.socket_path is not None:
            await self._deregister(name)

    async def _register(self, runner: PluginRunner, socket_path: str) -> None:
        from plugin_host.registry import PluginConnectionInfo, PluginInfo

        assert self._registry is not None
        info = PluginInfo(
            name=runner.name,
            type=PLUGIN_TYPE_DEVICE,
            version=runner.version,
            connection_info=PluginConnectionInfo(socket_path=socket_path),
            alloc_id=REGISTRY_ALLOC_ID,
        )
        await self._registry.register_plugin(info)

    async def _deregister(self, name: str) -> None:
        assert self._registry is not None
        try:
            await self._registry.deregister_plugin(PLUGIN_TYPE_DEVICE, name, REGISTRY_ALLOC_ID)
        except Exception as exc:
            # The plugin is stopped either way; a registry that is already shut down must not fail the shutdown.
            self._logger.warning("deregistering device plugin %r failed: %s", name, exc)

    # --- what the manager knows -----------------------------------------------------------------------------------

    def snapshot(self) -> DeviceManagerSnapshot:
        """Every managed plugin now: its state, last error and device groups, sorted by name."""
        plugins = tuple(self._runners[name].snapshot() for name in sorted(self._runners))
        return DeviceManagerSnapshot(seq=self._seq, plugins=plugins)

    def latest_stats(self) -> dict[str, DeviceGroupStats]:
        """The newest statistics of every device, by device group id (``vendor/type/name``)."""
        merged: dict[str, DeviceGroupStats] = {}
        for name in sorted(self._runners):
            for key, stats in self._runners[name].latest_stats().items():
                previous = merged.get(key)
                if previous is not None:
                    stats = stats.model_copy(
                        update={"instance_stats": {**previous.instance_stats, **stats.instance_stats}}
                    )
                merged[key] = stats
        return merged

    @asynccontextmanager
    async def subscribe(self, *, buffer: int = 256) -> AsyncIterator[DeviceChanges]:
        """Stream changes: a full :class:`SnapshotChange` first, then one :class:`PluginChange` per change.

        The manager never waits for a subscriber. One that falls ``buffer`` changes behind loses its backlog and
        reads a fresh snapshot instead (``lagged=True``), then the changes after it. Iteration ends when the block
        is left or the manager shuts down.
        """
        changes = self._hub.add(device_changes(self.snapshot, buffer))
        try:
            yield changes
        finally:
            self._hub.detach(changes)

    def _publish(self, runner: PluginRunner) -> None:
        if self._runners.get(runner.name) is not runner:
            return
        self._seq += 1
        self._hub.publish(PluginChange(seq=self._seq, name=runner.name, plugin=runner.snapshot()))

    # --- reservations ---------------------------------------------------------------------------------------------

    async def reserve(self, group_id: str, device_ids: Sequence[str]) -> ContainerReservation:
        """Reserve devices of the group ``vendor/type/name`` through the plugin that provides it.

        Raises :class:`PluginNotFoundError` when no plugin provides the group, and :class:`DeviceError` when some
        ids are not in it, when its plugin is restarting, or when the plugin refuses or fails the reservation.
        """
        if isinstance(device_ids, str):
            raise InvalidPluginError(
                f"device_ids must be a sequence of device ids, got the string {truncated(device_ids)}"
            )
        wanted = list(device_ids)
        owners = [runner for name in sorted(self._runners) if (runner := self._runners[name]).group(group_id)]
        if not owners:
            known = sorted({group.id for runner in self._runners.values() for group in runner.groups})
            raise PluginNotFoundError(
                f"no device plugin provides device group {truncated(group_id)}; known groups: {known}"
            )
        missing: list[str] = wanted
        for runner in owners:
            ids = runner.device_ids(group_id)
            assert ids is not None
            missing = [i for i in wanted if i not in ids]
            if not missing:
                break
        else:
            known_ids = sorted({d.id for r in owners if (g := r.group(group_id)) for d in g.devices})
            raise DeviceError(
                f"device group {truncated(group_id)} has no device {missing}; its devices are {known_ids}"
            )
        if runner.state is not PluginState.RUNNING:
            raise DeviceError(
                f"device plugin {truncated(runner.name)} providing group {truncated(group_id)} is "
                f"{runner.state}: {runner.last_error}"
            )
        try:
            return await runner.plugin.reserve(wanted)
        except Exception as exc:
            raise DeviceError(
                f"device plugin {truncated(runner.name)} could not reserve {wanted} of group "
                f"{truncated(group_id)}: {exc}"
            ) from exc
