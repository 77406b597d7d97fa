"""What the DriverManager needs from a state store: the handles of the tasks it started, kept to recover them.

``plugin_host.state`` implements :class:`TaskHandleStore`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["MemoryTaskHandleStore", "TaskHandleRecord", "TaskHandleStore"]


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


class MemoryTaskHandleStore:
    """Task handles in memory (a DriverManager without a state file): nothing survives the process."""

    def __init__(self) -> None:
        self._handles: dict[str, TaskHandleRecord] = {}

    async def save_task_handle(self, record: TaskHandleRecord) -> None:
        """Keep the record of ``record.task_id``."""
        self._handles[record.task_id] = record

    async def list_task_handles(self, driver: str | None = None) -> list[TaskHandleRecord]:
        """Every record (of ``driver`` only, when given), sorted by task id."""
        return [r for _, r in sorted(self._handles.items()) if driver is None or r.driver == driver]

    async def delete_task_handle(self, task_id: str) -> None:
        """Forget the record of ``task_id``."""
        self._handles.pop(task_id, None)
