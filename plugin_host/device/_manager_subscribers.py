"""Fan-out of DeviceManager changes to subscribers, each with its own bounded buffer that never blocks the manager.

Backpressure policy: coalesce, never block, never raise. A subscriber whose buffer is full has its backlog of
per-plugin changes dropped; the next thing it reads is a fresh full snapshot (``lagged=True``) taken at the moment
it reads, followed by the changes published after that. A UI that renders snapshots and applies per-plugin
changes therefore always converges on the manager's current state, however slow it is.
"""

from __future__ import annotations

from collections.abc import Callable

from plugin_host._hub import Subscriber
from plugin_host.device._manager_models import DeviceManagerChange, DeviceManagerSnapshot, SnapshotChange
from plugin_host.errors import InvalidPluginError

DeviceChanges = Subscriber[DeviceManagerChange]
"""The async iterator of one subscription (``async with manager.subscribe() as changes``)."""


def device_changes(snapshot: Callable[[], DeviceManagerSnapshot], buffer: int) -> DeviceChanges:
    """A new subscription (the "resync" policy); raises InvalidPluginError for a buffer below 1."""
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
        raise InvalidPluginError(f"subscribe buffer must be a positive number of changes, got {buffer!r}")
    return Subscriber(buffer=buffer, resync=lambda lagged: SnapshotChange(snapshot=snapshot(), lagged=lagged))
