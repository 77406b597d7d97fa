"""A state store that keeps everything in memory: what ``Registry(state=None)`` uses."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from plugin_host.loader.store import PluginProcessRecord
from plugin_host.registry.models import PluginUpdateEvent
from plugin_host.state.api import (
    Change,
    EventHistory,
    RegistrySnapshot,
    StoredPlugin,
    TaskHandleRecord,
    Upsert,
)


class MemoryStateStore:
    """Registrations and a bounded event history in memory; nothing survives the process."""

    def __init__(self, *, event_retention: int = 10_000) -> None:
        if event_retention < 1:
            raise ValueError(f"event_retention must be at least 1, got {event_retention}")
        self._plugins: dict[tuple[str, str, str], StoredPlugin] = {}
        self._events: deque[PluginUpdateEvent] = deque(maxlen=event_retention)
        self._last_seq = 0
        self._processes: dict[str, PluginProcessRecord] = {}
        self._handles: dict[str, TaskHandleRecord] = {}

    async def load_registry(self) -> RegistrySnapshot:
        """Every registration held and the last seq."""
        return RegistrySnapshot(plugins=list(self._plugins.values()), last_seq=self._last_seq)

    async def commit(self, commits: Sequence[tuple[Change, PluginUpdateEvent]]) -> None:
        """Apply the changes and record the events, in order."""
        for change, event in commits:
            if isinstance(change, Upsert):
                info = change.info
                self._plugins[(info.type, info.name, info.alloc_id)] = StoredPlugin(change.position, info)
            else:
                self._plugins.pop((change.ptype, change.name, change.alloc_id), None)
            self._events.append(event)
            self._last_seq = event.seq

    async def events_since(self, ptype: str, since: int) -> EventHistory:
        """Retained events of ``ptype`` after ``since``."""
        events = [e for e in self._events if e.seq > since and e.info.type == ptype]
        oldest = self._events[0].seq if self._events else None
        return EventHistory(events=events, oldest_seq=oldest, last_seq=self._last_seq)

    async def save_plugin_process(self, record: PluginProcessRecord) -> None:
        """Keep the record of ``record.name``."""
        self._processes[record.name] = record

    async def list_plugin_processes(self) -> list[PluginProcessRecord]:
        """Every record, sorted by name."""
        return [self._processes[name] for name in sorted(self._processes)]

    async def delete_plugin_process(self, name: str) -> None:
        """Forget the record of ``name``."""
        self._processes.pop(name, None)

    async def save_task_handle(self, record: TaskHandleRecord) -> None:
        """Keep the record of ``record.task_id``."""
        self._handles[record.task_id] = record

    async def list_task_handles(self, driver: str | None = None) -> list[TaskHandleRecord]:
        """Every record (of ``driver`` only, when given), sorted by task id."""
        return [r for _, r in sorted(self._handles.items()) if driver is None or r.driver == driver]

    async def delete_task_handle(self, task_id: str) -> None:
        """Forget the record of ``task_id``."""
        self._handles.pop(task_id, None)
