"""One managed device plugin: its fingerprint and stats loops, restarts with backoff, and its latest state.

Nomad's ``devicemanager.instanceManager``, with one difference: Nomad gives up on a plugin whose fingerprint
stream fails; here the plugin is started again after an exponential backoff, and its devices stay listed but
unhealthy meanwhile (so schedulers see why they went away).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from plugin_host._backoff import Backoff
from plugin_host._offload import cpu_bound
from plugin_host._text import truncated
from plugin_host.device._manager_models import PluginSnapshot, PluginState
from plugin_host.device.api import DeviceGroup, DeviceGroupStats, DevicePlugin


@dataclass(frozen=True)
class RunnerSettings:
    """How every plugin of one manager is run (see ``DeviceManager`` for the meaning of each)."""

    stats_interval: float | None
    backoff_initial: float
    backoff_max: float
    backoff_reset_after: float
    close_timeout: float
    sleep: Callable[[float], Awaitable[None]]
    clock: Callable[[], float]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_groups(groups: Iterable[DeviceGroup]) -> str | None:
    """Why a fingerprint cannot be used (duplicate group or device ids), or None."""
    seen: set[str] = set()
    for group in groups:
        if group.id in seen:
            return f"device group {truncated(group.id)} appears twice"
        seen.add(group.id)
        # One pass with a set: a fingerprint may list 100,000 devices, and a count() per id is quadratic.
        ids: set[str] = set()
        repeated: set[str] = set()
        for device in group.devices:
            if device.id in ids:
                repeated.add(device.id)
            ids.add(device.id)
        if repeated:
            duplicates = sorted(repeated)
            return f"device group {truncated(group.id)} lists device ids {duplicates} more than once"
    return None


def _all_unhealthy(groups: tuple[DeviceGroup, ...], description: str) -> tuple[DeviceGroup, ...]:
    """``groups`` with every device unhealthy for ``description`` (pure: large ones run in a worker thread)."""
    return tuple(
        group.model_copy(
            update={
                "devices": tuple(
                    device.model_copy(update={"healthy": False, "health_description": description})
                    for device in group.devices
                )
            }
        )
        for group in groups
    )


class PluginRunner:
    """Runs one device plugin inside the manager's task group; the manager reads its state."""

    def __init__(
        self,
        name: str,
        plugin: DevicePlugin,
        *,
        version: str,
        socket_path: str | None,
        settings: RunnerSettings,
        on_change: Callable[[PluginRunner], None],
        logger: logging.Logger,
    ) -> None:
        self.name = name
        self.plugin = plugin
        self.version = version
        self.socket_path = socket_path
        self.state = PluginState.STARTING
        self.groups: tuple[DeviceGroup, ...] = ()
        # (the groups they were taken from, group id -> device ids): reserve() checks ids in O(1), not O(devices)
        self._device_ids: tuple[tuple[DeviceGroup, ...], dict[str, frozenset[str]]] = ((), {})
        self.last_error: str | None = None
        self.restarts = 0
        self.retry_delay: float | None = None
        self._stats: dict[str, DeviceGroupStats] = {}
        self._settings = settings
        self._on_change = on_change
        self._logger = logger
        self._scope: anyio.CancelScope | None = None
        self._done = anyio.Event()
        self._stopped = False
        self._healthy_since: float | None = None

    # --- what the manager reads -----------------------------------------------------------------------------------

    def snapshot(self) -> PluginSnapshot:
        """This plugin now."""
        return PluginSnapshot(
            name=self.name,
            state=self.state,
            version=self.version,
            socket_path=self.socket_path,
            groups=self.groups,
            last_error=self.last_error,
            restarts=self.restarts,
            retry_delay=self.retry_delay,
        )

    def group(self, group_id: str) -> DeviceGroup | None:
        """The device group ``vendor/type/name`` of the latest fingerprint, or None."""
        return next((group for group in self.groups if group.id == group_id), None)

    def device_ids(self, group_id: str) -> frozenset[str] | None:
        """The device ids of group ``group_id`` in the latest fingerprint (computed once per fingerprint), or None."""
        groups, cache = self._device_ids
        if groups is not self.groups:
            groups, cache = self._device_ids = (self.groups, {})
        ids = cache.get(group_id)
        if ids is None:
            group = self.group(group_id)
            if group is None:
                return None
            ids = cache[group_id] = frozenset(device.id for device in group.devices)
        return ids

    def latest_stats(self) -> dict[str, DeviceGroupStats]:
        """The newest statistics of each device, by group id."""
        return dict(self._stats)

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Fingerprint (and collect stats) until :meth:`stop`, restarting the plugin's streams when they fail."""
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                task_status.started()
                if not self._stopped:
                    await self._supervise()
        finally:
            self._done.set()

    async def stop(self) -> None:
        """Cancel the loops and wait until every stream of the plugin is closed."""
        self._stopped = True
        if self._scope is None:
            return  # never ran, so there is nothing to wait for
        self._scope.cancel()
        await self._done.wait()

    async def _supervise(self) -> None:
        backoff = Backoff(self._settings.backoff_initial, self._settings.backoff_max)
        while True:
            self._healthy_since = None
            reason = await self._run_once()
            healthy_since = self._healthy_since
            if (
                healthy_since is not None
                and self._settings.clock() - healthy_since >= self._settings.backoff_reset_after
            ):
                backoff.reset()
            delay = backoff.next()
            self._logger.warning("device plugin %r failed (%s); restarting in %.3g s", self.name, reason, delay)
            description = f"device plugin {truncated(self.name)} is restarting: {reason}"
            count = sum(len(group.devices) for group in self.groups)
            unhealthy = await cpu_bound(count, _all_unhealthy, self.groups, description)
            self._mark_restarting(reason, delay, unhealthy)
            await self._settings.sleep(delay)
            self.restarts += 1
            self.retry_delay = None
            self._on_change(self)

    async def _run_once(self) -> str:
        """Run one incarnation of the plugin's streams; return why its fingerprint stream stopped."""
        async with anyio.create_task_group() as tg:
            reason = await self._fingerprint(tg)
            tg.cancel_scope.cancel()
        return reason

    # --- fingerprint ----------------------------------------------------------------------------------------------

    async def _fingerprint(self, tg: TaskGroup) -> str:
        try:
            stream = self.plugin.fingerprint()
        except Exception as exc:
            return f"fingerprint failed: {_describe(exc)}"
        stats_started = False
        try:
            async for response in stream:
                if response.error is not None:
                    return f"fingerprint returned an error: {response.error}"
                problem = _check_groups(response.device_groups)
                if problem is not None:
                    return f"fingerprint returned invalid devices: {problem}"
                self._apply_fingerprint(response.device_groups)
                # As in Nomad, statistics are collected only once the plugin has fingerprinted.
                if not stats_started and self._settings.stats_interval is not None:
                    tg.start_soon(self._collect_stats, self._settings.stats_interval)
                    stats_started = True
            return "fingerprint stream ended"
        except Exception as exc:
            return f"fingerprint failed: {_describe(exc)}"
        finally:
            await self._close(stream, "fingerprint")

    def _apply_fingerprint(self, groups: tuple[DeviceGroup, ...]) -> None:
        if self._healthy_since is None:
            self._healthy_since = self._settings.clock()
        if self.state is PluginState.RUNNING and groups == self.groups:
            return
        self.state = PluginState.RUNNING
        self.retry_delay = None
        self.groups = groups
        known = {group.id: {device.id for device in group.devices} for group in groups}
        self._stats = {
            key: DeviceGroupStats(
                vendor=stats.vendor,
                type=stats.type,
                name=stats.name,
                instance_stats={i: s for i, s in stats.instance_stats.items() if i in known[key]},
            )
            for key, stats in self._stats.items()
            if key in known
        }
        self._on_change(self)

    def _mark_restarting(self, reason: str, delay: float, groups: tuple[DeviceGroup, ...]) -> None:
        self.state = PluginState.RESTARTING
        self.last_error = reason
        self.retry_delay = delay
        self.groups = groups
        self._on_change(self)

    # --- stats ----------------------------------------------------------------------------------------------------

    async def _collect_stats(self, interval: float) -> None:
        """Keep the newest statistics; a failing stats stream is retried with its own backoff (as in Nomad)."""
        backoff = Backoff(self._settings.backoff_initial, self._settings.backoff_max)
        while True:
            reason = await self._stats_once(interval, backoff)
            delay = backoff.next()
            self._logger.warning("stats of device plugin %r: %s; retrying in %.3g s", self.name, reason, delay)
            await self._settings.sleep(delay)

    async def _stats_once(self, interval: float, backoff: Backoff) -> str:
        try:
            stream = self.plugin.stats(interval)
        except Exception as exc:
            return f"stats failed: {_describe(exc)}"
        try:
            async for response in stream:
                if response.error is not None:
                    return f"stats returned an error: {response.error}"
                backoff.reset()
                self._apply_stats(response.groups)
            return "stats stream ended"
        except Exception as exc:
            return f"stats failed: {_describe(exc)}"
        finally:
            await self._close(stream, "stats")

    def _apply_stats(self, groups: Iterable[DeviceGroupStats]) -> None:
        for stats in groups:
            key = f"{stats.vendor}/{stats.type}/{stats.name}"
            previous = self._stats.get(key)
            merged = {**previous.instance_stats, **stats.instance_stats} if previous else dict(stats.instance_stats)
            self._stats[key] = DeviceGroupStats(
                vendor=stats.vendor, type=stats.type, name=stats.name, instance_stats=merged
            )

    # --- helpers --------------------------------------------------------------------------------------------------

    async def _close(self, stream: AsyncIterator[Any], what: str) -> None:
        """Close a plugin stream, shielded from cancellation and bounded by ``close_timeout``."""
        aclose = getattr(stream, "aclose", None)
        if aclose is None:
            return
        with anyio.move_on_after(self._settings.close_timeout, shield=True) as scope:
            try:
                await aclose()
            except Exception as exc:
                self._logger.warning("closing the %s stream of device plugin %r failed: %s", what, self.name, exc)
        if scope.cancelled_caught:
            self._logger.warning(
                "the %s stream of device plugin %r did not close within %.3g s",
                what,
                self.name,
                self._settings.close_timeout,
            )
