"""Group commit: the mutations queued while a commit is in flight, planned as one batch against the committed state."""

from __future__ import annotations

import anyio

from plugin_host.errors import RegistryClosedError, StateError
from plugin_host.registry.models import EventType, PluginInfo, PluginUpdateEvent
from plugin_host.registry.store import Change, Delete, StoredPlugin, Upsert

Commit = tuple[Change, PluginUpdateEvent]


class Intent:
    """One caller's mutation, waiting for its batch: a registration (``info``) or a deregistration (``key``)."""

    __slots__ = ("_event", "_failure", "_woken", "info", "key", "leads")

    def __init__(self, info: PluginInfo | None = None, key: tuple[str, str, str] | None = None) -> None:
        self.info = info
        self.key = key
        # Set when the caller is woken to lead the next batch rather than because its own batch is done.
        self.leads = False
        self._failure: BaseException | None = None
        self._woken = False
        # Made only by a caller that waits: the leader of an uncontended mutation never needs one.
        self._event: anyio.Event | None = None

    async def wait(self) -> None:
        """Until this intent's batch is done or its caller is handed the lead."""
        if not self._woken:
            self._event = anyio.Event()
            await self._event.wait()

    def wake(self) -> None:
        """Wake the caller (its batch is done, or it is to lead)."""
        self._woken = True
        if self._event is not None:
            self._event.set()

    def finish(self, failure: BaseException | None) -> None:
        """Its batch is done (committed, or failed with ``failure``); wake the caller."""
        self._failure = failure
        self.leads = False
        self.wake()

    def raise_failure(self) -> None:
        """Raise the failure of this intent's batch, if any, as an exception of this caller's own."""
        failure = self._failure
        if failure is None:
            return
        self._failure = None
        # One exception object must not be raised in several tasks at once (each raise rewrites its traceback).
        if isinstance(failure, RegistryClosedError):
            raise RegistryClosedError(str(failure)) from None
        if isinstance(failure, StateError):
            raise StateError(str(failure)) from failure
        if isinstance(failure, Exception):
            raise StateError(f"committing the batch this change was in failed: {failure!r}") from failure
        raise failure


class Plan:
    """Turns intents into changes and events against the committed registrations plus the batch's earlier changes."""

    def __init__(self, committed: dict[str, dict[str, list[StoredPlugin]]], last_seq: int) -> None:
        self._committed = committed
        self._view: dict[tuple[str, str], list[StoredPlugin]] = {}
        self.seq = last_seq
        self.commits: list[Commit] = []

    def _entries(self, ptype: str, name: str) -> list[StoredPlugin]:
        entries = self._view.get((ptype, name))
        if entries is None:
            entries = self._view[(ptype, name)] = list(self._committed.get(ptype, {}).get(name, ()))
        return entries

    def add(self, intent: Intent) -> None:
        """Plan ``intent``: nothing for a no-op, else one change and its event with the next seq."""
        if intent.info is not None:
            self._register(intent.info)
        elif intent.key is not None:
            self._deregister(*intent.key)

    def _register(self, info: PluginInfo) -> None:
        entries = self._entries(info.type, info.name)
        for i, entry in enumerate(entries):
            if entry.info.alloc_id == info.alloc_id:
                if entry.info == info:
                    return
                self.seq += 1
                entries[i] = StoredPlugin(entry.position, info)
                event = PluginUpdateEvent(seq=self.seq, event_type=EventType.UPDATED, info=info)
                self.commits.append((Upsert(position=entry.position, info=info), event))
                return
        self.seq += 1
        entries.insert(0, StoredPlugin(self.seq, info))
        event = PluginUpdateEvent(seq=self.seq, event_type=EventType.REGISTERED, info=info)
        self.commits.append((Upsert(position=self.seq, info=info), event))

    def _deregister(self, ptype: str, name: str, alloc_id: str) -> None:
        entries = self._entries(ptype, name)
        for i, entry in enumerate(entries):
            if entry.info.alloc_id == alloc_id:
                del entries[i]
                self.seq += 1
                event = PluginUpdateEvent(seq=self.seq, event_type=EventType.DEREGISTERED, info=entry.info)
                self.commits.append((Delete(ptype=ptype, name=name, alloc_id=alloc_id), event))
                return
