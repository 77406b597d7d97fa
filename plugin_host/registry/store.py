"""What the registry needs from a state store, and the in-memory store ``Registry(state=None)`` uses.

The store loads everything once, commits batches of changes and replays events. Each batch is one transaction holding
the registration changes *and* their events, so the registrations and the event log can never disagree, whatever
instant the process dies at. ``plugin_host.state`` implements this Protocol (with the other owners' stores).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from plugin_host.registry.models import PluginInfo, PluginUpdateEvent

__all__ = [
    "Change",
    "Delete",
    "EventHistory",
    "MemoryRegistryStore",
    "RegistrySnapshot",
    "RegistryStore",
    "StoredPlugin",
    "UnreadableRow",
    "Upsert",
]


@dataclass(frozen=True, slots=True)
class StoredPlugin:
    """A registration with its position: larger positions are newer (positions only ever grow)."""

    position: int
    info: PluginInfo


@dataclass(frozen=True, slots=True)
class Upsert:
    """Insert a registration, or replace it in place (same type, name and alloc) keeping its position."""

    position: int
    info: PluginInfo


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove one registration."""

    ptype: str
    name: str
    alloc_id: str


Change = Upsert | Delete


@dataclass(frozen=True, slots=True)
class UnreadableRow:
    """A row of the state file that does not decode: its table, its key (as text) and what is wrong with it."""

    table: str
    key: str
    problem: str


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """Everything the registry restores on start.

    ``unreadable`` is only ever filled by ``SqliteStateStore.load_registry(skip_unreadable=True)`` (``plugin-host
    state show``); a normal load refuses a file with an unreadable row instead.
    """

    plugins: Sequence[StoredPlugin]
    last_seq: int
    unreadable: Sequence[UnreadableRow] = ()


@dataclass(frozen=True, slots=True)
class EventHistory:
    """Retained events of one type after a given seq, and the oldest seq still retained (any type)."""

    events: Sequence[PluginUpdateEvent]
    oldest_seq: int | None
    last_seq: int


class RegistryStore(Protocol):
    """Persistence of the dynamic plugin registry."""

    async def load_registry(self) -> RegistrySnapshot:
        """Every stored registration (any order) and the last event seq."""
        ...

    async def commit(self, commits: Sequence[tuple[Change, PluginUpdateEvent]]) -> None:
        """Apply every change and append every event, in order, in one transaction; durable when this returns.

        The registry hands over a batch (group commit): every mutation queued while the previous batch was being
        committed. Either all of it is durable or none of it, and the events' seqs follow each other.
        """
        ...

    async def events_since(self, ptype: str, since: int) -> EventHistory:
        """Retained events of ``ptype`` with ``seq > since``, oldest first."""
        ...


class MemoryRegistryStore:
    """Registrations and a bounded event history in memory; nothing survives the process."""

    def __init__(self, *, event_retention: int = 10_000) -> None:
        if event_retention < 1:
            raise ValueError(f"event_retention must be at least 1, got {event_retention}")
        self._plugins: dict[tuple[str, str, str], StoredPlugin] = {}
        self._events: deque[PluginUpdateEvent] = deque(maxlen=event_retention)
        self._last_seq = 0

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
