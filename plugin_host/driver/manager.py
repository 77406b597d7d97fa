"""DriverManager: runs the host's task drivers and keeps every started task recoverable across host restarts.

``async with DriverManager(state=store) as drivers:`` then ``await drivers.add_driver("raw-exec", driver)`` for
each driver (an in-process object or a :class:`~plugin_host.driver.DriverPluginClient`), and the embedding agent
calls ``start_task`` / ``wait_task`` / ``stop_task`` / ``destroy_task`` / ``inspect_task`` by task id.

Persistence. ``start_task`` stores the task's handle in the state file before it returns; ``destroy_task``
deletes it once the driver destroyed the task. Tasks outlive the manager: leaving it stops nothing.

Recovery (on ``add_driver``, so before the host reports ready). Every stored handle of that driver is passed to
``recover_task``:

- success → the task is tracked again (``wait_task`` gets its later exit);
- :class:`~plugin_host.errors.TaskNotFoundError` → the task is gone: its handle is dropped;
- any other failure → logged, the handle is **kept** (the next start retries) and the task is listed in
  :meth:`DriverManager.unrecovered`; calls for it raise :class:`~plugin_host.errors.DriverError` naming the
  failure, except ``destroy_task``, which asks the driver to destroy it and forgets it whatever the driver says.

Handles of drivers that are not configured. Given ``configured_drivers`` (every driver name the host is configured
with, built-in and external), entering the manager looks for stored handles of any other driver: it logs one warning
per such driver listing its task ids, keeps the handles (configuring the driver again recovers them) and lists the
tasks in :meth:`DriverManager.unrecovered` with the reason :data:`DRIVER_NOT_CONFIGURED`, so they show up wherever
unrecovered tasks do. Calls for them raise :class:`~plugin_host.errors.DriverError`; ``destroy_task`` forgets the
handle (there is no driver to ask). Adding a driver of that name later recovers its tasks as usual.

Events of every driver are fanned out to subscribers (:meth:`DriverManager.subscribe_events`), numbered by the
manager; a subscriber that falls behind gets :class:`~plugin_host.errors.SubscriberLaggedError`. Stats are the
driver's own stream (:meth:`DriverManager.task_stats`). The manager follows each driver's fingerprint stream and keeps
the latest message (:meth:`DriverManager.fingerprint`), so the driver's health can be shown at any time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import TaskGroup
from pydantic import BaseModel, ConfigDict

from plugin_host._hub import Subscriber, SubscriptionHub
from plugin_host._service import TaskGroupService
from plugin_host._text import truncated
from plugin_host.driver import _convert as convert
from plugin_host.driver.api import (
    DriverFingerprint,
    DriverNetwork,
    DriverPlugin,
    ExecTaskResult,
    ExitResult,
    TaskConfig,
    TaskEvent,
    TaskHandle,
    TaskResourceUsage,
    TaskStatus,
)
from plugin_host.driver.store import MemoryTaskHandleStore, TaskHandleRecord, TaskHandleStore
from plugin_host.errors import (
    ConfigError,
    DriverError,
    PluginHostError,
    PluginNotFoundError,
    SubscriberLaggedError,
    TaskConfigError,
    TaskExistsError,
    TaskNotFoundError,
)

__all__ = ["DRIVER_NOT_CONFIGURED", "DriverManager", "ManagedTaskEvent", "RecoveryResult"]

logger = logging.getLogger(__name__)

# Why a stored task is listed by DriverManager.unrecovered() when its driver is not among the configured ones.
DRIVER_NOT_CONFIGURED = "driver not configured"


class ManagedTaskEvent(BaseModel):
    """A task event, the driver that reported it and the manager's number for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    """1 for the first event the manager passed on, one more for each after (across all drivers)."""
    driver: str
    event: TaskEvent


@dataclass(frozen=True)
class RecoveryResult:
    """What ``add_driver`` did with the driver's stored handles (task ids; ``failed`` maps id → error)."""

    recovered: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class _Driver:
    plugin: DriverPlugin
    scope: anyio.CancelScope
    fingerprint: DriverFingerprint | None = None
    fingerprint_scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class DriverManager(TaskGroupService):
    """The host's task drivers and their tasks. ``state=None`` keeps handles in memory only (nothing recovers).

    ``configured_drivers``: the names of every driver the host is configured with; stored handles of other drivers
    are reported on entering (see the module docstring). ``None`` (the default) skips that check.
    """

    def __init__(
        self,
        *,
        state: TaskHandleStore | None = None,
        event_buffer: int = 1024,
        configured_drivers: Iterable[str] | None = None,
    ) -> None:
        if isinstance(event_buffer, bool) or not isinstance(event_buffer, int) or event_buffer < 1:
            raise ConfigError(f"event_buffer must be a positive integer, got {truncated(event_buffer)}")
        self._configured = _driver_names(configured_drivers)
        self._state: TaskHandleStore = state if state is not None else MemoryTaskHandleStore()
        self._event_buffer = event_buffer
        self._drivers: dict[str, _Driver] = {}
        self._tasks: dict[str, str] = {}  # task id → driver name, for tasks the driver tracks
        self._unrecovered: dict[str, tuple[str, str]] = {}  # task id → (driver name, why)
        self._events = SubscriptionHub[ManagedTaskEvent]()
        self._seq = 0  # the seq of the last event passed on
        super().__init__()

    # --- lifecycle ------------------------------------------------------------------------------------------------

    def _service_refused(self, lifecycle: str) -> Exception:
        return PluginHostError(f"this DriverManager was already {lifecycle}; create a new one")

    async def _service_prepare(self) -> None:
        if self._configured is not None:
            await self._note_orphaned_handles(self._configured)

    async def _note_orphaned_handles(self, configured: frozenset[str]) -> None:
        """List the stored tasks of drivers not in ``configured`` as unrecovered; one warning per driver."""
        orphans: dict[str, list[str]] = {}
        for record in await self._state.list_task_handles():
            if record.driver not in configured:
                orphans.setdefault(record.driver, []).append(record.task_id)
        for driver, task_ids in sorted(orphans.items()):
            logger.warning(
                "driver %r is not configured; keeping the stored handles of its %d task(s) without recovering them: "
                "%s (configure the driver again to recover them, or destroy the tasks to forget them)",
                driver,
                len(task_ids),
                ", ".join(task_ids),
            )
            for task_id in task_ids:
                self._unrecovered[task_id] = (driver, DRIVER_NOT_CONFIGURED)

    async def _service_stop(self) -> None:
        self._drivers.clear()
        self._events.close()

    def _require_running(self) -> TaskGroup:
        if self._tg is None or self._lifecycle != "running":
            raise PluginHostError("the DriverManager is not running: use `async with DriverManager(...)`")
        return self._tg

    # --- drivers --------------------------------------------------------------------------------------------------

    async def add_driver(self, name: str, driver: DriverPlugin) -> RecoveryResult:
        """Manage ``driver`` under ``name`` and recover its stored tasks (see the module docstring)."""
        tg = self._require_running()
        if not isinstance(name, str) or not name:
            raise ConfigError(f"driver name must be a non-empty string, got {truncated(name)}")
        if name in self._drivers:
            raise ConfigError(f"a driver named {truncated(name)} is already managed; remove it first")
        scope = anyio.CancelScope()
        entry = self._drivers[name] = _Driver(driver, scope)
        tg.start_soon(self._pump_events, name, driver, scope, name=f"driver {name} events")
        tg.start_soon(self._follow_fingerprint, name, entry, name=f"driver {name} fingerprint")
        return await self._recover(name, driver)

    async def remove_driver(self, name: str) -> None:
        """Stop managing ``name``; its tasks keep running and their handles stay stored (a re-add recovers them)."""
        entry = self._drivers.pop(name, None)
        if entry is None:
            raise PluginNotFoundError(f"no driver named {truncated(name)}; managed: {sorted(self._drivers)}")
        entry.scope.cancel()
        entry.fingerprint_scope.cancel()
        for task_id in [t for t, d in self._tasks.items() if d == name]:
            del self._tasks[task_id]
        for task_id in [t for t, (d, _) in self._unrecovered.items() if d == name]:
            del self._unrecovered[task_id]

    def driver_names(self) -> list[str]:
        """The managed drivers, sorted."""
        return sorted(self._drivers)

    def driver(self, name: str) -> DriverPlugin:
        """The driver managed under ``name``."""
        try:
            return self._drivers[name].plugin
        except KeyError:
            raise PluginNotFoundError(f"no driver named {truncated(name)}; managed: {sorted(self._drivers)}") from None

    def fingerprint(self, name: str) -> DriverFingerprint | None:
        """The latest message of the driver's fingerprint stream (None before the first); after the stream failed, a
        message with ``error`` set."""
        try:
            return self._drivers[name].fingerprint
        except KeyError:
            raise PluginNotFoundError(f"no driver named {truncated(name)}; managed: {sorted(self._drivers)}") from None

    def tasks(self) -> dict[str, str]:
        """Task id → driver name of every task a managed driver tracks (started or recovered)."""
        return dict(self._tasks)

    def unrecovered(self) -> dict[str, str]:
        """Task id → why recovery failed, for stored tasks whose driver could not recover them, and those whose
        driver is not configured (why: :data:`DRIVER_NOT_CONFIGURED`)."""
        return {task_id: why for task_id, (_, why) in self._unrecovered.items()}

    def unrecovered_tasks(self) -> dict[str, tuple[str, str]]:
        """Task id → (driver name, why), for the same tasks as :meth:`unrecovered`."""
        return dict(self._unrecovered)

    async def _recover(self, name: str, driver: DriverPlugin) -> RecoveryResult:
        recovered: list[str] = []
        dropped: list[str] = []
        failed: dict[str, str] = {}
        for task_id in [t for t, (d, _) in self._unrecovered.items() if d == name]:
            del self._unrecovered[task_id]  # listed because the driver was missing: recovery decides now
        for record in await self._state.list_task_handles(name):
            try:
                await driver.recover_task(convert.task_handle_from_bytes(record.handle))
            except TaskNotFoundError as exc:
                logger.info("task %r of driver %r is gone; forgetting its handle (%s)", record.task_id, name, exc)
                await self._state.delete_task_handle(record.task_id)
                dropped.append(record.task_id)
                continue
            except Exception as exc:
                why = str(exc) or type(exc).__name__
                logger.warning("driver %r could not recover task %r; keeping its handle: %s", name, record.task_id, why)
                self._unrecovered[record.task_id] = (name, why)
                failed[record.task_id] = why
                continue
            self._tasks[record.task_id] = name
            recovered.append(record.task_id)
        if recovered or dropped or failed:
            logger.info(
                "driver %r: %d task(s) recovered, %d gone, %d failed", name, len(recovered), len(dropped), len(failed)
            )
        return RecoveryResult(tuple(recovered), tuple(dropped), failed)

    # --- tasks ----------------------------------------------------------------------------------------------------

    def _driver_of(self, task_id: str) -> DriverPlugin:
        if not isinstance(task_id, str) or not task_id:
            raise TaskNotFoundError(f"task id must be a non-empty string, got {truncated(task_id)}")
        name = self._tasks.get(task_id)
        if name is None:
            if task_id in self._unrecovered:
                driver, why = self._unrecovered[task_id]
                raise DriverError(f"task {truncated(task_id)} of driver {truncated(driver)} was not recovered: {why}")
            raise TaskNotFoundError(f"task not found for given id {truncated(task_id)}: no managed driver tracks it")
        return self._drivers[name].plugin

    async def start_task(self, driver: str, config: TaskConfig) -> tuple[TaskHandle, DriverNetwork | None]:
        """Start ``config`` on ``driver`` and store its handle (durably) before returning it."""
        self._require_running()
        plugin = self.driver(driver)
        if not isinstance(config, TaskConfig):
            raise TaskConfigError(f"start_task needs a TaskConfig, got {type(config).__name__}")
        if not config.id:
            raise TaskConfigError(f"task config of task {truncated(config.name)}: id must not be empty")
        if config.id in self._tasks or config.id in self._unrecovered:
            owner = self._tasks.get(config.id) or self._unrecovered[config.id][0]
            raise TaskExistsError(f"a task with id {truncated(config.id)} already exists (driver {truncated(owner)})")
        handle, network = await plugin.start_task(config)
        record = TaskHandleRecord(
            task_id=config.id,
            driver=driver,
            alloc_id=config.alloc_id,
            name=config.name,
            handle=convert.task_handle_to_bytes(handle),
        )
        try:
            await self._state.save_task_handle(record)
        except BaseException:
            # A task nobody could recover must not keep running.
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                try:
                    await plugin.destroy_task(config.id, force=True)
                except Exception:
                    logger.warning("could not destroy task %r after failing to store its handle", config.id)
            raise
        self._tasks[config.id] = driver
        return handle, network

    async def wait_task(self, task_id: str) -> ExitResult:
        """Wait for the task to exit (at once when it already did)."""
        return await self._driver_of(task_id).wait_task(task_id)

    async def stop_task(self, task_id: str, timeout: float = 5.0, signal: str = "") -> None:  # noqa: ASYNC109 - the task's grace period (Nomad API), not a deadline on this call
        """Signal the task, then kill it after ``timeout`` seconds."""
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise DriverError(f"stop_task timeout must be a non-negative number of seconds, got {truncated(timeout)}")
        await self._driver_of(task_id).stop_task(task_id, float(timeout), signal)

    async def destroy_task(self, task_id: str, force: bool = False) -> None:
        """Destroy the task and delete its stored handle (an unrecovered task is forgotten whatever happens)."""
        if task_id in self._unrecovered:
            name, why = self._unrecovered.pop(task_id)
            entry = self._drivers.get(name)
            if entry is None:
                logger.warning("forgetting task %r of driver %r without destroying it: %s", task_id, name, why)
            else:
                try:
                    await entry.plugin.destroy_task(task_id, force=True)
                except Exception as exc:
                    logger.info("destroying unrecovered task %r on driver %r: %s", task_id, name, exc)
            await self._state.delete_task_handle(task_id)
            return
        plugin = self._driver_of(task_id)
        try:
            await plugin.destroy_task(task_id, force)
        except TaskNotFoundError:
            logger.info("driver no longer knows task %r; forgetting its handle", task_id)
        self._tasks.pop(task_id, None)
        await self._state.delete_task_handle(task_id)

    async def inspect_task(self, task_id: str) -> TaskStatus:
        """The task's status."""
        return await self._driver_of(task_id).inspect_task(task_id)

    async def signal_task(self, task_id: str, signal: str) -> None:
        """Send ``signal`` to the task."""
        await self._driver_of(task_id).signal_task(task_id, signal)

    async def exec_task(self, task_id: str, command: Sequence[str], timeout: float) -> ExecTaskResult:  # noqa: ASYNC109 - the task's grace period (Nomad API), not a deadline on this call
        """Run ``command`` inside the task."""
        return await self._driver_of(task_id).exec_task(task_id, command, timeout)

    def task_stats(self, task_id: str, interval: float) -> AsyncIterator[TaskResourceUsage]:
        """The driver's stats stream for the task (an async iterator; leave the loop to stop it)."""
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise DriverError(f"task_stats interval must be a positive number of seconds, got {truncated(interval)}")
        return self._driver_of(task_id).task_stats(task_id, float(interval))

    # --- events ---------------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe_events(self, buffer: int | None = None) -> AsyncIterator[AsyncIterator[ManagedTaskEvent]]:
        """``async with drivers.subscribe_events() as events: async for e in events:`` — events of every driver
        from now on (``buffer``: ``event_buffer`` when None).

        The manager never waits for a subscriber (the "lag" policy of :mod:`plugin_host._hub`): one that falls more
        than ``buffer`` events behind takes no more. It reads the events it had buffered, then gets
        :class:`SubscriberLaggedError` whose ``last_seq`` is the seq of the last event it received (the manager's
        seq at subscribing if none); every event after that one was lost to it. Subscribe again and catch up with
        ``inspect_task``: the new subscription's first event's seq tells how many were missed.
        """
        self._require_running()
        size = self._event_buffer if buffer is None else buffer
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"subscribe_events buffer must be a positive integer, got {truncated(size)}")
        subscribed_at = self._seq

        def lagged(last: ManagedTaskEvent | None) -> SubscriberLaggedError:
            seq = last.seq if last is not None else subscribed_at
            return SubscriberLaggedError(
                f"task event subscriber fell more than {size} events behind; the last event it received had seq"
                f" {seq} and the events after it were lost: subscribe again",
                last_seq=seq,
            )

        events = self._events.add(Subscriber(buffer=size, lag_error=lagged))
        try:
            yield events
        finally:
            self._events.detach(events)

    async def _pump_events(self, name: str, driver: DriverPlugin, scope: anyio.CancelScope) -> None:
        with scope:
            events = driver.task_events()
            try:
                async for event in events:
                    if event.err is not None:
                        logger.warning("task event stream of driver %r ended: %s", name, event.err)
                        return
                    self._publish(name, event)
            except PluginHostError as exc:
                logger.warning("task event stream of driver %r failed: %s", name, exc)
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                        await aclose()

    async def _follow_fingerprint(self, name: str, entry: _Driver) -> None:
        """Keep the driver's latest fingerprint until it is removed; a failed stream leaves an ``error`` message."""
        with entry.fingerprint_scope:
            stream = entry.plugin.fingerprint()
            try:
                async for fingerprint in stream:
                    entry.fingerprint = fingerprint
                    if fingerprint.error is not None:
                        logger.warning("fingerprint stream of driver %r ended: %s", name, fingerprint.error)
                        return
            except Exception as exc:  # a health display must never take the manager down
                logger.warning("fingerprint stream of driver %r failed: %s", name, exc)
                entry.fingerprint = DriverFingerprint(error=str(exc) or type(exc).__name__)
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                        await aclose()

    def _publish(self, driver: str, event: TaskEvent) -> None:
        """Number ``event`` and hand it to every subscriber; never waits."""
        self._seq += 1
        for subscriber in self._events.publish(ManagedTaskEvent(seq=self._seq, driver=driver, event=event)):
            last = subscriber.last_taken
            logger.warning(
                "a task event subscriber fell more than %d events behind and was dropped at seq %d",
                subscriber.buffer,
                last.seq if last is not None else self._seq - 1,
            )


def _driver_names(names: Iterable[str] | None) -> frozenset[str] | None:
    """``configured_drivers`` checked: an iterable (not a string) of non-empty strings, or None."""
    if names is None:
        return None
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise ConfigError(f"configured_drivers must be an iterable of driver names, got {truncated(names)}")
    listed = list(names)
    bad = [repr(n) for n in listed if not isinstance(n, str) or not n]
    if bad:
        raise ConfigError(f"configured_drivers must hold non-empty strings, got {', '.join(bad)}")
    return frozenset(listed)
