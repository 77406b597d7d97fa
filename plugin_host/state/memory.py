"""A state store that keeps everything in memory: every owner's store Protocol, nothing survives the process."""

from __future__ import annotations

from plugin_host.driver.store import MemoryTaskHandleStore
from plugin_host.loader.store import PluginProcessRecord
from plugin_host.registry.store import MemoryRegistryStore


class MemoryStateStore(MemoryRegistryStore, MemoryTaskHandleStore):
    """Registrations, a bounded event history, plugin processes and task handles in memory."""

    def __init__(self, *, event_retention: int = 10_000) -> None:
        MemoryRegistryStore.__init__(self, event_retention=event_retention)
        MemoryTaskHandleStore.__init__(self)
        self._processes: dict[str, PluginProcessRecord] = {}

    async def save_plugin_process(self, record: PluginProcessRecord) -> None:
        """Keep the record of ``record.name``."""
        self._processes[record.name] = record

    async def list_plugin_processes(self) -> list[PluginProcessRecord]:
        """Every record, sorted by name."""
        return [self._processes[name] for name in sorted(self._processes)]

    async def delete_plugin_process(self, name: str) -> None:
        """Forget the record of ``name``."""
        self._processes.pop(name, None)
