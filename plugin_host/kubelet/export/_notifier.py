"""The manager's :class:`~plugin_host.kubelet.export.api.Notifier`: diff each new tree against the last, per type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from plugin_host.errors import InvalidPluginError
from plugin_host.kubelet.export.api import DeviceInfo, DeviceTree

__all__ = ["DiffNotifier", "TreeUpdate"]

Devices = dict[str, DeviceInfo]


@dataclass(frozen=True)
class TreeUpdate:
    """What changed between two trees: new types, types whose devices changed (their new devices), removed types."""

    added: dict[str, Devices] = field(default_factory=dict)
    updated: dict[str, Devices] = field(default_factory=dict)
    removed: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def diff_trees(old: dict[str, Devices], new: dict[str, Devices]) -> TreeUpdate:
    """The update that turns ``old`` into ``new`` (empty when they are equal)."""
    added = {dev_type: devices for dev_type, devices in new.items() if dev_type not in old}
    updated = {dev_type: devices for dev_type, devices in new.items() if dev_type in old and old[dev_type] != devices}
    removed = frozenset(old.keys() - new.keys())
    return TreeUpdate(added=added, updated=updated, removed=removed)


class DiffNotifier:
    """Calls ``sink`` with a :class:`TreeUpdate` for each notified tree that differs from the previous one.

    ``sink`` must not block (the manager's puts the update on an unbounded queue). A type disappears from a tree
    when the scanner adds none of its devices: that removes it.
    """

    def __init__(self, sink: Callable[[TreeUpdate], None]) -> None:
        self._sink = sink
        self._last: dict[str, Devices] = {}

    def notify(self, tree: DeviceTree) -> None:
        """Diff ``tree`` (copied) against the last tree and hand any change to the sink."""
        if not isinstance(tree, DeviceTree):
            raise InvalidPluginError(f"notify() takes a DeviceTree, got {type(tree).__name__}")
        new = tree.snapshot()
        update = diff_trees(self._last, new)
        self._last = new
        if update:
            self._sink(update)
