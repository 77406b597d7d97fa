"""One consumer of a driver's ``task_events()`` stream, on the one hub (:mod:`plugin_host._hub`): the "drop" policy.

What Nomad's drivers do (``drivers/shared/eventer``, used by raw_exec and the others): emitting an event never waits
for a consumer for long. The eventer gives each consumer two seconds to take an event; a consumer that does not is
skipped for that event (one "timeout sending event" warning) and stays subscribed, getting the events emitted once
it reads again. Nothing tells the consumer; the task's state is what ``inspect_task`` and ``wait_task`` report.

Here a driver never waits at all: each consumer has a bounded buffer, and an event that does not fit is dropped for
that consumer alone (the others get it). The consumer stays subscribed and gets the events emitted after it has read
some of its backlog. One warning is logged when a consumer starts dropping, naming the first event it lost; the rest
of that overflow is logged at debug level, so a consumer that never reads does not flood the log.
"""

from __future__ import annotations

import logging

from plugin_host._hub import Subscriber
from plugin_host._text import truncated
from plugin_host.driver.api import TaskEvent

__all__ = ["task_event_subscriber"]

logger = logging.getLogger(__name__)


def task_event_subscriber(driver: str, buffer: int) -> Subscriber[TaskEvent]:
    """A new consumer of ``driver``'s task events holding at most ``buffer`` unread ones (the "drop" policy)."""

    def dropped(event: TaskEvent, in_a_row: int) -> None:
        if in_a_row == 1:
            logger.warning(
                "%s: a task event subscriber is %d events behind; dropping events for it until it reads"
                " (first dropped: task %s: %s)",
                driver,
                buffer,
                truncated(event.task_id),
                truncated(event.message),
            )
        else:
            logger.debug("%s: task event subscriber still behind; dropped %d events in a row", driver, in_a_row)

    return Subscriber(buffer=buffer, drop=dropped)
