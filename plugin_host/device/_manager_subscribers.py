"""Fan-out of DeviceManager changes to subscribers, each with its own bounded buffer that never blocks the manager.

Backpressure policy: coalesce, never block, never raise. A subscriber whose buffer is full has its backlog of
per-plugin changes dropped; the next thing it reads is a fresh full snapshot (``lagged=True``) taken at the moment
it reads, followed by the changes published after that. A UI that renders snapshots and applies per-plugin
changes therefore always converges on the manager's current state, however slow it is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Self

import anyio

from plugin_host._hub import SubscriptionHub
from plugin_host.device._manager_models import DeviceManagerChange, DeviceManagerSnapshot, PluginChange, SnapshotChange
from plugin_host.errors import InvalidPluginError


class DeviceChanges:
    """The async iterator of one subscription (``async with manager.subscribe() as changes``)."""

    def __init__(self, snapshot: Callable[[], DeviceManagerSnapshot], buffer: int) -> None:
        self._snapshot = snapshot
        self._buffer = buffer
        self._pending: deque[PluginChange] = deque()
        # The first event of every subscription is a snapshot, built lazily so it is current when read.
        self._resync = True
        self._lagged = False
        self._closed = False
        self._wakeup = anyio.Event()

    @property
    def closed(self) -> bool:
        """True once the subscription or the manager ended."""
        return self._closed

    def push(self, change: PluginChange) -> None:
        """Queue ``change``; on overflow drop the backlog and owe the subscriber a snapshot instead."""
        if self._closed:
            return
        if not self._resync:
            # While a snapshot is owed, the change is part of it already (it is built when read).
            if len(self._pending) >= self._buffer:
                self._pending.clear()
                self._resync = True
                self._lagged = True
            else:
                self._pending.append(change)
        self._wakeup.set()

    def close(self) -> None:
        """End the iteration once whatever is already queued has been read."""
        self._closed = True
        self._wakeup.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> DeviceManagerChange:
        while True:
            if self._resync:
                self._resync, lagged, self._lagged = False, self._lagged, False
                return SnapshotChange(snapshot=self._snapshot(), lagged=lagged)
            if self._pending:
                return self._pending.popleft()
            if self._closed:
                raise StopAsyncIteration
            self._wakeup = anyio.Event()
            await self._wakeup.wait()


class SubscriberHub(SubscriptionHub[PluginChange, DeviceChanges]):
    """The set of live subscriptions of one manager."""

    def __init__(self, snapshot: Callable[[], DeviceManagerSnapshot]) -> None:
        super().__init__()
        self._snapshot = snapshot

    def attach(self, buffer: int) -> DeviceChanges:
        """A new subscription; raises InvalidPluginError for a buffer below 1."""
        if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
            raise InvalidPluginError(f"subscribe buffer must be a positive number of changes, got {buffer!r}")
        return self.add(DeviceChanges(self._snapshot, buffer))
