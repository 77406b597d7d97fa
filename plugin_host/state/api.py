"""What the registry needs from a state store: load everything once, commit one change per mutation, replay events.

Each mutation is one transaction holding the registration change *and* its event, so the registrations and the
event log can never disagree, whatever instant the process dies at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
class RegistrySnapshot:
    """Everything the registry restores on start."""

    plugins: Sequence[StoredPlugin]
    last_seq: int


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

    async def commit(self, change: Change, event: PluginUpdateEvent) -> None:
        """Apply ``change`` and append ``event`` atomically; durable when this returns."""
        ...

    async def events_since(self, ptype: str, since: int) -> EventHistory:
        """Retained events of ``ptype`` with ``seq > since``, oldest first."""
        ...
