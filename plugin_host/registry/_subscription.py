"""Per-subscriber event buffers.

Publishing never waits: each subscriber has its own bounded buffer, and one that is full is marked lagged and
skipped from then on, so a slow reader costs the others nothing. Its iterator delivers what it buffered, then
raises :class:`~plugin_host.errors.SubscriberLaggedError` with the last seq it delivered, from which the reader
resubscribes with ``since``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType

import anyio

from plugin_host.errors import SubscriberLaggedError
from plugin_host.registry.models import PluginUpdateEvent


class Subscriber:
    """The receiving end of one subscription: replayed history first, then live events."""

    def __init__(self, ptype: str, buffer: int, history: Iterable[PluginUpdateEvent], last_seq: int) -> None:
        self.ptype = ptype
        self._buffer = buffer
        self._history: deque[PluginUpdateEvent] = deque(history)
        self._live: deque[PluginUpdateEvent] = deque()
        self._lagged = False
        self._closed = False
        self._waiter: anyio.Event | None = None
        self.last_seq = last_seq

    @property
    def lagged(self) -> bool:
        """True once the buffer overflowed; no more events are queued for this subscriber."""
        return self._lagged

    def push_many(self, events: list[PluginUpdateEvent]) -> bool:
        """Queue live events (one committed batch, in seq order) without ever waiting, and wake the reader once.

        Returns False once the subscriber is lagged (its buffer overflowed) or closed: it takes no more events.
        """
        if self._closed or self._lagged:
            return False
        room = self._buffer - len(self._live)
        if len(events) > room:
            self._live.extend(events[:room])
            self._lagged = True
        else:
            self._live.extend(events)
        self._wake()
        return not self._lagged

    @property
    def backlog(self) -> int:
        """Events queued for this subscriber and not yet read (replayed history included)."""
        return len(self._history) + len(self._live)

    @property
    def last_pushed(self) -> int:
        """The seq of the newest event queued for (or delivered to) this subscriber."""
        return self._live[-1].seq if self._live else self.last_seq

    def close(self) -> None:
        """End iteration once the buffered events are delivered."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            self._waiter.set()
            self._waiter = None

    def __aiter__(self) -> AsyncIterator[PluginUpdateEvent]:
        return self

    async def __anext__(self) -> PluginUpdateEvent:
        while True:
            if self._history:
                event = self._history.popleft()
            elif self._live:
                event = self._live.popleft()
            elif self._lagged:
                raise SubscriberLaggedError(
                    f"subscriber to {self.ptype!r} events fell more than {self._buffer} events behind; last seq"
                    f" received was {self.last_seq}: resubscribe with since={self.last_seq}",
                    last_seq=self.last_seq,
                )
            elif self._closed:
                raise StopAsyncIteration
            else:
                self._waiter = waiter = anyio.Event()
                await waiter.wait()
                continue
            self.last_seq = event.seq
            return event


class Subscription:
    """``async with registry.subscribe(...) as events``: attaches on enter, detaches on exit."""

    def __init__(self, attach: Callable[[], Awaitable[Subscriber]], detach: Callable[[Subscriber], None]) -> None:
        self._attach = attach
        self._detach = detach
        self._subscriber: Subscriber | None = None

    async def __aenter__(self) -> Subscriber:
        if self._subscriber is not None:
            raise RuntimeError("a Subscription can be entered only once")
        self._subscriber = await self._attach()
        return self._subscriber

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._subscriber is not None:
            self._detach(self._subscriber)
            self._subscriber.close()
