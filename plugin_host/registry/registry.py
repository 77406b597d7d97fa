"""The dynamic plugin registry: Nomad's ``client/dynamicplugins.Registry``, async, durable, with its gaps closed."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.lowlevel

from plugin_host._hub import Subscriber, SubscriptionHub
from plugin_host._metrics import NO_METRICS, Metrics
from plugin_host.errors import (
    DispenseError,
    EventsExpiredError,
    InvalidPluginError,
    NoDispenserError,
    PluginNotFoundError,
    RegistryClosedError,
)
from plugin_host.registry import _validate
from plugin_host.registry._batch import Intent, Plan
from plugin_host.registry._subscription import Subscription, registry_subscriber
from plugin_host.registry.models import PluginInfo, PluginUpdateEvent
from plugin_host.registry.store import Change, MemoryRegistryStore, RegistryStore, StoredPlugin, Upsert

logger = logging.getLogger(__name__)

MAX_BATCH = 256
"""The most mutations committed in one transaction: a batch is published at once, and must fit in the subscribers'
buffers (1,024 events by default) with room to spare."""

Dispenser = Callable[[PluginInfo], Any]
"""Builds a live client for a registration; may be a plain function or a coroutine function."""


class _Done:
    """An already-finished awaitable, so ``shutdown()`` works with or without ``await``."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


class Registry:
    """Plugins by type and name, each name holding its registrations newest first.

    Use as ``async with Registry(state=store, dispensers={...}) as registry``. With ``state=None`` everything is
    kept in memory. Every mutating call returns once the change is committed to the state store; events are
    published after the commit, in ``seq`` order, to per-subscriber buffers. ``metrics`` (a
    :class:`~plugin_host.telemetry.Telemetry`'s sink) is told of each group commit and each dropped subscriber.
    """

    def __init__(
        self,
        state: RegistryStore | None = None,
        dispensers: Mapping[str, Dispenser] | None = None,
        *,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self._store: RegistryStore = state if state is not None else MemoryRegistryStore()
        self._metrics = metrics
        self._dispensers: dict[str, Dispenser] = dict(dispensers or {})
        self._stubs: dict[str, Dispenser] = {}
        # type -> name -> registrations, newest (largest position) first
        self._plugins: dict[str, dict[str, list[StoredPlugin]]] = {}
        self._hubs: dict[str, SubscriptionHub[PluginUpdateEvent]] = {}
        self._waiters: dict[tuple[str, str], anyio.Event] = {}
        # Held while a batch is committed and published, and while a subscriber attaches, so that a subscriber's
        # replayed history and its live events meet exactly.
        self._lock = anyio.Lock(fast_acquire=True)
        self._queue: list[Intent] = []
        self._leading = False
        # Set when a publish left a subscriber's buffer half full (see _submit).
        self._pressure = False
        self._seq = 0
        self._status = "new"

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._status != "new":
            raise RegistryClosedError(f"this Registry was already {self._status}; create a new one")
        snapshot = await self._store.load_registry()
        for stored in sorted(snapshot.plugins, key=lambda p: p.position, reverse=True):
            self._plugins.setdefault(stored.info.type, {}).setdefault(stored.info.name, []).append(stored)
        self._seq = snapshot.last_seq
        self._status = "open"
        logger.debug("registry opened with %d registrations, last seq %d", len(snapshot.plugins), self._seq)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()

    def shutdown(self) -> Awaitable[None]:
        """Stop the registry: every subscription ends, waiters fail, later calls raise RegistryClosedError.

        Takes effect immediately; the returned awaitable is already done (``await registry.shutdown()`` works too).
        """
        if self._status != "closed":
            self._status = "closed"
            for hub in self._hubs.values():
                hub.close()
            self._hubs.clear()
            for waiter in self._waiters.values():
                waiter.set()
            self._waiters.clear()
        return _Done()

    @property
    def last_seq(self) -> int:
        """The seq of the newest event (0 before the first)."""
        return self._seq

    def _check_open(self) -> None:
        if self._status == "new":
            raise RegistryClosedError("the Registry is not open: use `async with Registry(...) as registry`")
        if self._status == "closed":
            raise RegistryClosedError("the Registry was shut down and takes no more calls")

    # --- mutations ------------------------------------------------------------------------------------------------

    async def register_plugin(self, info: PluginInfo) -> None:
        """Register ``info``: a new alloc goes first; the same alloc again replaces it in place (if changed)."""
        self._check_open()
        _validate.plugin_info(info)
        await self._submit(Intent(info=info))

    async def deregister_plugin(self, ptype: str, name: str, alloc_id: str) -> None:
        """Remove the registration of ``alloc_id``; unknown names or allocs are a no-op with no event."""
        self._check_open()
        _validate.require("ptype", ptype)
        _validate.require("name", name)
        _validate.require("alloc_id", alloc_id)
        await self._submit(Intent(key=(ptype, name, alloc_id)))

    async def _submit(self, intent: Intent) -> None:
        """Group commit: queue ``intent``; the first caller of a round commits what is queued in one transaction.

        The caller that finds no commit in flight leads: it takes the queued intents (its own first, at most
        :data:`MAX_BATCH`), turns them into changes against the committed state, commits them as one batch (one
        fsync), applies and publishes them in seq order, wakes their callers, and hands the lead to the oldest intent
        queued meanwhile. A follower cancelled while its intent is still queued withdraws it; once its batch is being
        committed, the change lands and only the waiting stops. The lead itself is shielded (one commit).
        """
        self._queue.append(intent)
        if self._leading:
            try:
                await intent.wait()
            except BaseException:
                with anyio.CancelScope(shield=True):
                    if intent.leads:
                        # The lead was handed over just as this caller was cancelled: it must still be taken.
                        await self._lead()
                    elif intent in self._queue:
                        self._queue.remove(intent)
                raise
            if not intent.leads:
                intent.raise_failure()
                return
        with anyio.CancelScope(shield=True):
            await self._lead()
        intent.raise_failure()
        if self._pressure:
            # A subscriber's buffer is half full: let readers drain before this caller mutates again, so that a
            # producer that never waits cannot overrun a reader that keeps up.
            self._pressure = False
            await anyio.lowlevel.checkpoint()

    async def _lead(self) -> None:
        self._leading = True
        try:
            cap = self._batch_cap()
            batch, self._queue = self._queue[:cap], self._queue[cap:]
            await self._commit_batch(batch)
        finally:
            if self._queue:
                successor = self._queue[0]
                successor.leads = True
                successor.wake()
            else:
                self._leading = False

    def _batch_cap(self) -> int:
        # A batch is published at once: half the smallest subscriber buffer, so a reader that keeps up is never
        # overrun by one batch (the pressure checkpoint in _submit lets it drain between batches).
        buffers = [size for hub in self._hubs.values() if (size := hub.smallest_buffer()) is not None]
        return max(1, min([MAX_BATCH, *(size // 2 for size in buffers)]))

    async def _commit_batch(self, batch: list[Intent]) -> None:
        async with self._lock:
            if self._status == "closed":
                for intent in batch:
                    intent.finish(RegistryClosedError("the Registry was shut down and takes no more calls"))
                return
            plan = Plan(self._plugins, self._seq)
            for intent in batch:
                plan.add(intent)
            if not plan.commits:
                for intent in batch:
                    intent.finish(None)
                return
            started = time.perf_counter()
            try:
                await self._store.commit(plan.commits)
            except BaseException as exc:
                for intent in batch:
                    intent.finish(exc)
                self._observe(self._metrics.registry_commit_failed, batch=len(batch))
                return
            # Durable: from here on, memory, seq, subscribers and callers must all learn of it, whatever fails.
            elapsed = time.perf_counter() - started
            events = [event for _, event in plan.commits]
            try:
                for change, _ in plan.commits:
                    self._apply(change)
                self._seq = plan.seq
                self._publish(events)
            finally:
                for intent in batch:
                    intent.finish(None)
            self._observe(self._metrics.registry_commit, events, seconds=elapsed, batch=len(batch))

    @staticmethod
    def _observe(record: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        # A metrics sink is an observer: its failure is logged, never a registry failure.
        try:
            record(*args, **kwargs)
        except Exception:
            logger.exception("the metrics sink failed")

    def _apply(self, change: Change) -> None:
        if isinstance(change, Upsert):
            info = change.info
            entries = self._plugins.setdefault(info.type, {}).setdefault(info.name, [])
            for i, entry in enumerate(entries):
                if entry.info.alloc_id == info.alloc_id:
                    entries[i] = StoredPlugin(entry.position, info)
                    return
            entries.insert(0, StoredPlugin(change.position, info))
            waiter = self._waiters.pop((info.type, info.name), None)
            if waiter is not None:
                waiter.set()
        else:
            by_name = self._plugins.get(change.ptype, {})
            entries = [e for e in by_name.get(change.name, []) if e.info.alloc_id != change.alloc_id]
            if entries:
                by_name[change.name] = entries
            else:
                by_name.pop(change.name, None)

    def _publish(self, events: list[PluginUpdateEvent]) -> None:
        """Hand a committed batch to the subscribers of each event's type, in seq order; never waits."""
        by_type: dict[str, list[PluginUpdateEvent]] = {}
        for event in events:
            by_type.setdefault(event.info.type, []).append(event)
        for ptype, typed in by_type.items():
            hub = self._hubs.get(ptype)
            if hub is None:
                continue
            dropped = hub.publish_many(typed)
            if hub.pressure:
                self._pressure = True
            for subscriber in dropped:
                self._observe(self._metrics.subscriber_dropped, ptype)
                last = subscriber.last_taken
                logger.warning(
                    "a subscriber to %r events lagged behind and was dropped at seq %d",
                    ptype,
                    last.seq if last is not None else self._seq,
                )

    def subscriber_backlogs(self) -> dict[str, list[int]]:
        """For each plugin type, how many events each live subscriber has buffered and not yet read (for metrics)."""
        return {ptype: hub.backlogs() for ptype, hub in self._hubs.items()}

    # --- queries --------------------------------------------------------------------------------------------------

    async def list_plugins(self, ptype: str) -> list[PluginInfo]:
        """The newest registration of every plugin of ``ptype``, sorted by name."""
        self._check_open()
        _validate.require("ptype", ptype)
        by_name = self._plugins.get(ptype, {})
        return [by_name[name][0].info for name in sorted(by_name) if by_name[name]]

    def plugin_types(self) -> list[str]:
        """Every plugin type with at least one registration, sorted."""
        self._check_open()
        return sorted(t for t, by_name in self._plugins.items() if by_name)

    async def plugin_for_alloc(self, ptype: str, name: str, alloc_id: str) -> PluginInfo:
        """The registration of ``name`` made by ``alloc_id``, even when it is not the newest."""
        self._check_open()
        _validate.require("ptype", ptype)
        _validate.require("name", name)
        _validate.require("alloc_id", alloc_id)
        for entry in self._plugins.get(ptype, {}).get(name, []):
            if entry.info.alloc_id == alloc_id:
                return entry.info
        raise PluginNotFoundError(f"no {ptype!r} plugin {name!r} is registered for alloc {alloc_id!r}")

    def _newest(self, ptype: str, name: str) -> PluginInfo:
        entries = self._plugins.get(ptype, {}).get(name)
        if not entries:
            known = sorted(self._plugins.get(ptype, {}))
            raise PluginNotFoundError(
                f"no {ptype!r} plugin named {name!r} is registered (registered {ptype!r} plugins: {known})"
            )
        return entries[0].info

    async def wait_for_plugin(self, ptype: str, name: str) -> PluginInfo:
        """The newest registration of ``name``, waiting for one if there is none. Bound it with anyio.fail_after."""
        self._check_open()
        _validate.require("ptype", ptype)
        _validate.require("name", name)
        while True:
            entries = self._plugins.get(ptype, {}).get(name)
            if entries:
                return entries[0].info
            waiter = self._waiters.get((ptype, name))
            if waiter is None:
                waiter = self._waiters[(ptype, name)] = anyio.Event()
            await waiter.wait()
            self._check_open()

    # --- dispensing -----------------------------------------------------------------------------------------------

    async def dispense_plugin(self, ptype: str, name: str) -> Any:
        """A live client for the newest registration of ``name``, built by the type's dispenser (or its stub)."""
        self._check_open()
        _validate.require("ptype", ptype)
        _validate.require("name", name)
        dispenser = self._stubs.get(ptype) or self._dispensers.get(ptype)
        if dispenser is None:
            have = sorted(set(self._dispensers) | set(self._stubs))
            raise NoDispenserError(f"no dispenser for plugin type {ptype!r}; types with a dispenser: {have}")
        info = self._newest(ptype, name)
        try:
            client = dispenser(info)
            if inspect.isawaitable(client):
                client = await client
        except Exception as exc:
            raise DispenseError(f"dispenser for {ptype!r} failed for plugin {name!r}: {exc!r}") from exc
        return client

    def stub_dispenser_for_type(self, ptype: str, dispenser: Dispenser | None) -> None:
        """Override the dispenser of ``ptype`` (tests); ``None`` removes the stub."""
        _validate.require("ptype", ptype)
        if dispenser is None:
            self._stubs.pop(ptype, None)
        else:
            self._stubs[ptype] = dispenser

    # --- events ---------------------------------------------------------------------------------------------------

    def subscribe(self, ptype: str, since: int | None = None, buffer: int = 1024) -> Subscription:
        """Events of ``ptype``: retained ones with ``seq > since`` first (when given), then live ones.

        ``async with registry.subscribe("csi-node") as events: async for event in events: ...``
        """
        _validate.require("ptype", ptype)
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise InvalidPluginError(f"since must be None or a seq >= 0, got {since!r}")
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise InvalidPluginError(f"buffer must be a positive number of events, got {buffer!r}")

        async def attach() -> Subscriber[PluginUpdateEvent]:
            self._check_open()
            async with self._lock:
                self._check_open()
                history: list[PluginUpdateEvent] = []
                if since is not None:
                    history = await self._history(ptype, since)
                last_seq = since if since is not None else self._seq
                subscriber = registry_subscriber(ptype, buffer, history, last_seq)
                return self._hubs.setdefault(ptype, SubscriptionHub()).add(subscriber)

        def detach(subscriber: Subscriber[PluginUpdateEvent]) -> None:
            hub = self._hubs.get(ptype)
            if hub is not None:
                hub.detach(subscriber)

        return Subscription(attach, detach)

    async def _history(self, ptype: str, since: int) -> list[PluginUpdateEvent]:
        if since > self._seq:
            raise InvalidPluginError(f"since={since} is ahead of the registry's newest event seq {self._seq}")
        if since == self._seq:
            return []
        history = await self._store.events_since(ptype, since)
        if history.oldest_seq is None or history.oldest_seq > since + 1:
            raise EventsExpiredError(
                f"events after seq {since} are no longer retained; the oldest retained seq is"
                f" {history.oldest_seq}: resubscribe with since=None and re-list the plugins",
                oldest_seq=history.oldest_seq,
            )
        return list(history.events)
