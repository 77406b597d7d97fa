"""The live subscriptions of a manager (device, CSI): hand each change to all of them, and end them.

Each subscription type owns its buffer and backpressure policy; this is only the set they live in.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Subscription", "SubscriptionHub"]

_T_contra = TypeVar("_T_contra", contravariant=True)
_T = TypeVar("_T")
_S = TypeVar("_S", bound="Subscription[Any]")


class Subscription(Protocol[_T_contra]):
    """One subscriber's end: ``push`` never waits, ``close`` ends its iteration after what is queued."""

    def push(self, item: _T_contra) -> None: ...

    def close(self) -> None: ...


class SubscriptionHub(Generic[_T, _S]):
    """The set of live subscriptions; once closed, subscriptions added later start closed."""

    def __init__(self) -> None:
        self._subscribers: set[_S] = set()
        self._closed = False

    def publish(self, item: _T) -> None:
        """Hand ``item`` to every subscriber; never waits."""
        for subscriber in self._subscribers:
            subscriber.push(item)

    def add(self, subscriber: _S) -> _S:
        """Make ``subscriber`` live (closed at once when the hub is closed); returns it."""
        if self._closed:
            subscriber.close()
        else:
            self._subscribers.add(subscriber)
        return subscriber

    def detach(self, subscriber: _S) -> None:
        """End one subscription."""
        subscriber.close()
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every subscription (and any made later)."""
        self._closed = True
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()
