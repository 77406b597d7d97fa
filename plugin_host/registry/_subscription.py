"""The registry's subscriptions, on the one hub (:mod:`plugin_host._hub`).

Publishing never waits: each subscriber has its own bounded buffer, and one that is full is marked lagged and
dropped from then on, so a slow reader costs the others nothing. Its iterator delivers what it buffered, then
raises :class:`~plugin_host.errors.SubscriberLaggedError` with the last seq it delivered, from which the reader
resubscribes with ``since``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType

from plugin_host._hub import Subscriber
from plugin_host.errors import SubscriberLaggedError
from plugin_host.registry.models import PluginUpdateEvent


def registry_subscriber(
    ptype: str, buffer: int, history: Iterable[PluginUpdateEvent], last_seq: int
) -> Subscriber[PluginUpdateEvent]:
    """The receiving end of one subscription (the "lag" policy): replayed history first, then live events.

    ``last_seq`` is the seq the reader has seen before this subscription (``since``, or the newest at subscribing).
    """

    def lagged(last: PluginUpdateEvent | None) -> SubscriberLaggedError:
        seq = last.seq if last is not None else last_seq
        return SubscriberLaggedError(
            f"subscriber to {ptype!r} events fell more than {buffer} events behind; last seq"
            f" received was {seq}: resubscribe with since={seq}",
            last_seq=seq,
        )

    return Subscriber(buffer=buffer, initial=history, lag_error=lagged)


class Subscription:
    """``async with registry.subscribe(...) as events``: attaches on enter, detaches on exit."""

    def __init__(
        self,
        attach: Callable[[], Awaitable[Subscriber[PluginUpdateEvent]]],
        detach: Callable[[Subscriber[PluginUpdateEvent]], None],
    ) -> None:
        self._attach = attach
        self._detach = detach
        self._subscriber: Subscriber[PluginUpdateEvent] | None = None

    async def __aenter__(self) -> Subscriber[PluginUpdateEvent]:
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
