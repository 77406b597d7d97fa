"""A state store that keeps everything in memory: every owner's store Protocol, nothing survives the process."""

from __future__ import annotations

from plugin_host.driver.store import TaskHandleRecord
from plugin_host.loader.store import PluginProcessRecord
from plugin_host.registry.store import MemoryRegistryStore


class MemoryStateStore(MemoryRegistryStore):
    """Registrations, a bounded event history, plugin processes and task handles in memory."""

    def __init__(self, *, event_retention: int = 10_000) -> None:
        super().__init__(event_retention=event_retention)
        self._processes: dict[str, PluginProcessRecord] = {}
        self._handles: dict[str, TaskHandleRecord] = {}

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
