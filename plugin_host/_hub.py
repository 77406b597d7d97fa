"""The one subscription hub: live subscriptions of a registry or a manager, each with its own never-blocking buffer.

Publishing never waits: every :class:`Subscriber` has its own buffer, so a slow reader costs the others nothing. What
happens when a buffer is full is the owner's choice, given when the subscriber is made:

- **lag** (the registry): keep what fits, take nothing more, and once the buffered items are read raise the error
  ``lag_error`` builds (the reader resubscribes from the last item it got);
- **resync** (the device manager): drop the backlog and owe the reader a fresh snapshot, built by ``resync`` when it
  is read (the first item of every subscription is such a snapshot too);
- **coalesce by key** (the CSI manager): an unread item is replaced by a newer one with the same ``key`` (moved to the
  back), so the buffer never holds more than one item per key and needs no bound;
- **drop** (the drivers' task event streams, as Nomad's eventer): keep what fits and drop what does not, handing each
  dropped item to ``drop``; the subscription stays live and gets what is pushed once it has read some of its backlog.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, Self, TypeVar

import anyio

__all__ = ["Subscriber", "SubscriptionHub"]

_T = TypeVar("_T")


class Subscriber(Generic[_T]):
    """One subscription's buffer and its async iterator: ``initial`` items first, then what is pushed.

    ``buffer`` bounds the pushed items waiting to be read (``initial`` ones do not count). Exactly one overflow
    policy applies: ``lag_error`` (called with the last item read, or None), ``resync`` (called with whether items
    were dropped since the last snapshot), ``drop`` (called with each item that did not fit and how many were dropped
    in a row, 1 for the first of an overflow; it must not wait) or ``key`` (no ``buffer``).
    """

    def __init__(
        self,
        *,
        buffer: int | None = None,
        initial: Iterable[_T] = (),
        key: Callable[[_T], Hashable] | None = None,
        resync: Callable[[bool], _T] | None = None,
        lag_error: Callable[[_T | None], BaseException] | None = None,
        drop: Callable[[_T, int], None] | None = None,
    ) -> None:
        if (key is not None) + (resync is not None) + (lag_error is not None) + (drop is not None) != 1:
            raise ValueError("a Subscriber needs exactly one overflow policy: key, resync, lag_error or drop")
        if (buffer is None) != (key is not None):
            raise ValueError("a Subscriber coalescing by key takes no buffer; the others need one")
        self._buffer = buffer if buffer is not None else 0
        self._key = key
        self._resync = resync
        self._lag_error = lag_error
        self._drop = drop
        self._dropping = 0  # items dropped since the last one taken (the drop policy)
        self.dropped = 0
        """How many items the drop policy dropped in all."""
        self._initial: deque[_T] = deque()
        self._queue: deque[_T] = deque()
        self._keyed: dict[Hashable, _T] = {}
        if key is not None:
            self._keyed = {key(item): item for item in initial}
        else:
            self._initial.extend(initial)
        # A resyncing subscription starts with a snapshot, built lazily so it is current when read.
        self._owe_resync = resync is not None
        self._lagged = False
        self._closed = False
        self._waiter: anyio.Event | None = None
        self.last_read: _T | None = None
        self.last_taken: _T | None = None

    @property
    def closed(self) -> bool:
        """True once the subscription or its publisher ended."""
        return self._closed

    @property
    def lagged(self) -> bool:
        """True while items were dropped for overflow and the reader has not yet been told."""
        return self._lagged

    def push(self, item: _T) -> bool:
        """Queue ``item`` without ever waiting; False once the subscriber takes no more (closed, or lagged)."""
        return self.push_many((item,))

    def push_many(self, items: Iterable[_T]) -> bool:
        """Queue ``items`` (in order) without ever waiting and wake the reader once; False as :meth:`push`."""
        if self._closed or (self._lagged and self._lag_error is not None):
            return False
        if self._key is not None:
            for item in items:
                key = self._key(item)
                self._keyed.pop(key, None)
                self._keyed[key] = item
                self.last_taken = item
        elif self._resync is not None:
            for item in items:
                if self._owe_resync:
                    continue  # the snapshot owed is built when read: it holds this change already
                if len(self._queue) >= self._buffer:
                    self._queue.clear()
                    self._owe_resync = self._lagged = True
                else:
                    self._queue.append(item)
                    self.last_taken = item
        elif self._drop is not None:
            for item in items:
                if len(self._queue) >= self._buffer:
                    self._dropping += 1
                    self.dropped += 1
                    self._drop(item, self._dropping)
                else:
                    self._queue.append(item)
                    self.last_taken = item
                    self._dropping = 0
        else:
            batch = items if isinstance(items, list | tuple) else list(items)
            room = self._buffer - len(self._queue)
            if len(batch) > room:
                batch = batch[:room]
                self._lagged = True
            if batch:
                self._queue.extend(batch)
                self.last_taken = batch[-1]
        self._wake()
        return not (self._lagged and self._lag_error is not None)

    @property
    def buffer(self) -> int | None:
        """How many pushed items may wait unread (None: coalesced by key, no bound)."""
        return self._buffer or None

    @property
    def half_full(self) -> bool:
        """At least half of the buffer is taken by unread items."""
        return self._buffer > 0 and len(self._queue) * 2 >= self._buffer

    @property
    def backlog(self) -> int:
        """Items queued for this subscriber and not yet read (replayed ones included)."""
        return len(self._initial) + len(self._queue) + len(self._keyed)

    def close(self) -> None:
        """End the iteration once whatever is already queued has been read."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            self._waiter.set()
            self._waiter = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> _T:
        while True:
            if self._owe_resync:
                assert self._resync is not None
                self._owe_resync, lagged, self._lagged = False, self._lagged, False
                return self._resync(lagged)
            if self._initial:
                item = self._initial.popleft()
            elif self._keyed:
                item = self._keyed.pop(next(iter(self._keyed)))
            elif self._queue:
                item = self._queue.popleft()
            elif self._lagged and self._lag_error is not None:
                raise self._lag_error(self.last_read)
            elif self._closed:
                raise StopAsyncIteration
            else:
                self._waiter = waiter = anyio.Event()
                await waiter.wait()
                continue
            self.last_read = item
            return item


class SubscriptionHub(Generic[_T]):
    """The set of live subscriptions; once closed, subscriptions added later start closed."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber[_T]] = set()
        self._closed = False
        self.pressure = False
        """Whether the last publish took a subscriber's buffer past half full."""

    def __len__(self) -> int:
        return len(self._subscribers)

    def smallest_buffer(self) -> int | None:
        """The smallest bounded buffer among the live subscribers (None when none is bounded)."""
        return min((s.buffer for s in self._subscribers if s.buffer is not None), default=None)

    def backlogs(self) -> list[int]:
        """Each live subscriber's backlog (for metrics)."""
        return [subscriber.backlog for subscriber in self._subscribers]

    def publish(self, item: _T) -> list[Subscriber[_T]]:
        """Hand ``item`` to every subscriber; never waits. Returns those dropped (see :meth:`publish_many`)."""
        return self.publish_many((item,))

    def publish_many(self, items: list[_T] | tuple[_T, ...]) -> list[Subscriber[_T]]:
        """Hand ``items`` to every subscriber, in order; never waits.

        A subscriber that takes no more (lagged) leaves the hub; those are returned, for the caller to log.
        """
        # Pressure is the crossing of the half-full mark, not being above it: a reader that stalled for good is
        # signalled once (and later dropped when lagging), instead of making every later publish yield for it.
        before = {subscriber for subscriber in self._subscribers if subscriber.half_full}
        dropped = [subscriber for subscriber in self._subscribers if not subscriber.push_many(items)]
        for subscriber in dropped:
            self._subscribers.discard(subscriber)
        self.pressure = any(subscriber.half_full and subscriber not in before for subscriber in self._subscribers)
        return dropped

    def add(self, subscriber: Subscriber[_T]) -> Subscriber[_T]:
        """Make ``subscriber`` live (closed at once when the hub is closed); returns it."""
        if self._closed:
            subscriber.close()
        else:
            self._subscribers.add(subscriber)
        return subscriber

    def detach(self, subscriber: Subscriber[_T]) -> None:
        """End one subscription."""
        subscriber.close()
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every subscription (and any made later)."""
        self._closed = True
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()
