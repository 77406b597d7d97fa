"""State schema 3: task handles. A schema 2 file upgrades in place (atomically), a newer file is refused untouched,
and handle records round-trip in both stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from plugin_host.driver.store import TaskHandleRecord, TaskHandleStore
from plugin_host.errors import StateVersionError
from plugin_host.loader.store import PluginProcessRecord
from plugin_host.state import MemoryStateStore, SqliteStateStore
from plugin_host.state import _schema as schema

pytestmark = pytest.mark.anyio


def write_v2_file(path: Path) -> None:
    """A state file as a schema 2 plugin-host left it, with one launched plugin process recorded."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        db = sqlite_utils.Database(conn)
        schema._v0_to_v1(db)
        schema._v1_to_v2(db)
        conn.execute(
            "INSERT INTO plugin_processes (name, pid, start_time, socket_path, executable) VALUES (?, ?, ?, ?, ?)",
            ("fsdev", 42, 7, "/run/fsdev.sock", "/plugins/fsdev"),
        )
        conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 2")
    finally:
        conn.close()


def tables_and_version(path: Path) -> tuple[int, list[str]]:
    """(user_version, table names) read straight from the file."""
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    finally:
        conn.close()
    return version, tables


async def test_v2_file_upgrades_in_place_keeping_its_plugin_processes(tmp_path: Path) -> None:
    """A schema 2 file gains the task_handles table, keeps its records, and stores handles afterwards."""
    path = tmp_path / "state.db"
    write_v2_file(path)
    assert tables_and_version(path) == (2, ["events", "plugin_processes", "plugins"])
    async with SqliteStateStore(path) as store:
        assert await store.list_plugin_processes() == [
            PluginProcessRecord("fsdev", 42, 7, "/run/fsdev.sock", "/plugins/fsdev")
        ]
        assert await store.list_task_handles() == []
        await store.save_task_handle(TaskHandleRecord("t1", "raw-exec", "a1", "web", b"\x01"))
    assert tables_and_version(path) == (3, ["events", "plugin_processes", "plugins", "task_handles"])


async def test_failed_v3_migration_leaves_the_v2_file_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration to schema 3 that fails after creating its table rolls back: the file stays at schema 2."""
    path = tmp_path / "state.db"
    write_v2_file(path)

    def half_done(db: sqlite_utils.Database) -> None:
        schema._v2_to_v3(db)
        raise RuntimeError("power cut")

    monkeypatch.setattr(schema, "MIGRATIONS", (schema._v0_to_v1, schema._v1_to_v2, half_done))
    with pytest.raises(RuntimeError, match="power cut"):
        async with SqliteStateStore(path):
            pass
    assert tables_and_version(path) == (2, ["events", "plugin_processes", "plugins"])


async def test_newer_schema_is_refused_without_touching_the_file(tmp_path: Path) -> None:
    """A file of schema 4 raises StateVersionError naming both versions; its bytes stay the same."""
    path = tmp_path / "state.db"
    write_v2_file(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA user_version = 4")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StateVersionError, match=r"schema version 4, newer than the version 3") as info:
        async with SqliteStateStore(path):
            pass
    assert (info.value.found, info.value.supported) == (4, 3)
    assert path.read_bytes() == before


async def _round_trip(store: TaskHandleStore) -> None:
    b = TaskHandleRecord("b", "virt", "alloc-2", "vm", b"\x00\xffhandle")
    a = TaskHandleRecord("a", "raw-exec", "alloc-1", "web", b"h1")
    await store.save_task_handle(b)
    await store.save_task_handle(a)
    assert await store.list_task_handles() == [a, b]
    assert await store.list_task_handles("virt") == [b]
    replaced = TaskHandleRecord("a", "raw-exec", "alloc-1", "web", b"h2")
    await store.save_task_handle(replaced)
    await store.delete_task_handle("b")
    await store.delete_task_handle("missing")
    assert await store.list_task_handles() == [replaced]


async def test_task_handles_round_trip_and_survive_reopening(tmp_path: Path) -> None:
    """Records are saved, replaced by task id, filtered by driver, deleted, and kept across reopening the file."""
    path = tmp_path / "state.db"
    async with SqliteStateStore(path) as store:
        await _round_trip(store)
    async with SqliteStateStore(path, read_only=True) as store:
        assert [(r.task_id, r.handle) for r in await store.list_task_handles()] == [("a", b"h2")]


async def test_memory_store_keeps_task_handles_the_same_way() -> None:
    """The in-memory store behaves as the file does for task handles."""
    await _round_trip(MemoryStateStore())


def test_handle_bytes_stay_out_of_the_record_repr() -> None:
    """A record's repr names the task and driver but not the (possibly secret-bearing) handle bytes."""
    text = repr(TaskHandleRecord("t", "virt", "a", "n", b"password=hunter2"))
    assert "hunter2" not in text
    assert "'t'" in text
