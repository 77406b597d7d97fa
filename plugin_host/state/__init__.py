"""Persistence of the host's state: the SQLite state file and an in-memory store."""

from __future__ import annotations

from plugin_host.state.memory import MemoryStateStore as MemoryStateStore
from plugin_host.state.sqlite import SqliteStateStore as SqliteStateStore

__all__ = ["MemoryStateStore", "SqliteStateStore"]
