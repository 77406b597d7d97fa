"""Fan-out of CSI plugin health changes: each subscriber has its own buffer and never slows the manager.

Backpressure policy: coalesce per plugin. A health record is the whole state of one plugin, so a subscriber that
has not read the previous record of a plugin gets only the newest one (moved to the back of its queue). A queue
therefore never holds more than one record per plugin, nothing blocks, and a slow reader still ends on the
manager's current state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

import anyio

from plugin_host._hub import SubscriptionHub

if TYPE_CHECKING:
    from plugin_host.csi._health import CsiPluginHealth

_Key = tuple[str, str]


class CsiHealthChanges:
    """The async iterator of one subscription (``async with manager.subscribe() as changes``)."""

    def __init__(self, initial: list[CsiPluginHealth]) -> None:
        self._pending: dict[_Key, CsiPluginHealth] = {(h.type, h.name): h for h in initial}
        self._closed = False
        self._wakeup = anyio.Event()

    def push(self, health: CsiPluginHealth) -> None:
        """Queue ``health``, replacing an unread record of the same plugin."""
        if self._closed:
            return
        key = (health.type, health.name)
        self._pending.pop(key, None)
        self._pending[key] = health
        self._wakeup.set()

    def close(self) -> None:
        """End the iteration once whatever is queued has been read."""
        self._closed = True
        self._wakeup.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> CsiPluginHealth:
        while True:
            if self._pending:
                key = next(iter(self._pending))
                return self._pending.pop(key)
            if self._closed:
                raise StopAsyncIteration
            self._wakeup = anyio.Event()
            await self._wakeup.wait()


class HealthHub(SubscriptionHub["CsiPluginHealth", CsiHealthChanges]):
    """The live subscriptions of one manager."""

    def attach(self, initial: list[CsiPluginHealth]) -> CsiHealthChanges:
        """A new subscription that first delivers ``initial`` (the current records)."""
        return self.add(CsiHealthChanges(initial))
