"""What the registry needs from a state store: load everything once, commit batches of changes, replay events.

Each batch is one transaction holding the registration changes *and* their events, so the registrations and the
event log can never disagree, whatever instant the process dies at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from plugin_host.registry.models import PluginInfo, PluginUpdateEvent


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


@dataclass(frozen=True, slots=True)
class TaskHandleRecord:
    """A started task's handle, kept until the task is destroyed so a restarted host can recover it.

    ``handle`` is opaque here: the bytes of the driver's wire ``TaskHandle`` message.
    """

    task_id: str
    driver: str
    alloc_id: str
    name: str
    handle: bytes = field(repr=False)


class TaskHandleStore(Protocol):
    """Persistence of the DriverManager's task handles (one record per task id)."""

    async def save_task_handle(self, record: TaskHandleRecord) -> None:
        """Insert or replace the record of ``record.task_id``; durable when this returns."""
        ...

    async def list_task_handles(self, driver: str | None = None) -> list[TaskHandleRecord]:
        """Every record (of ``driver`` only, when given), sorted by task id."""
        ...

    async def delete_task_handle(self, task_id: str) -> None:
        """Forget the record of ``task_id`` (no-op when there is none)."""
        ...
