"""Fan-out of CSI plugin health changes: each subscriber has its own buffer and never slows the manager.

Backpressure policy: coalesce per plugin. A health record is the whole state of one plugin, so a subscriber that
has not read the previous record of a plugin gets only the newest one (moved to the back of its queue). A queue
therefore never holds more than one record per plugin, nothing blocks, and a slow reader still ends on the
manager's current state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin_host._hub import Subscriber

if TYPE_CHECKING:
    from plugin_host.csi._health import CsiPluginHealth

CsiHealthChanges = Subscriber["CsiPluginHealth"]
"""The async iterator of one subscription (``async with manager.subscribe() as changes``)."""


def health_changes(initial: list[CsiPluginHealth]) -> CsiHealthChanges:
    """A new subscription (coalescing by plugin) that first delivers ``initial`` (the current records)."""
    return Subscriber(initial=initial, key=lambda health: (health.type, health.name))
