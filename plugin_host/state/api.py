"""What the launcher needs from a state store: the records of the plugin processes it started.

The registry's and the DriverManager's store Protocols live with their owners (``plugin_host.registry.store``,
``plugin_host.driver.store``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class PluginProcessRecord:
    """A launched external plugin process, kept to reattach to it after a restart (go-plugin's ReattachConfig).

    ``start_time`` is field 22 of ``/proc/<pid>/stat``: with the pid it tells the process from a later one that
    reuses the pid.
    """

    name: str
    pid: int
    start_time: int
    socket_path: str
    executable: str


class PluginProcessStore(Protocol):
    """Persistence of the launcher's plugin processes (one record per plugin name)."""

    async def save_plugin_process(self, record: PluginProcessRecord) -> None:
        """Insert or replace the record of ``record.name``; durable when this returns."""
        ...

    async def list_plugin_processes(self) -> list[PluginProcessRecord]:
        """Every record, sorted by name."""
        ...

    async def delete_plugin_process(self, name: str) -> None:
        """Forget the record of ``name`` (no-op when there is none)."""
        ...
