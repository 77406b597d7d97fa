"""State file migrations: a schema 1 file (before plugin processes were recorded) opens, migrates atomically, keeps
its registrations and seq; plugin process records round-trip."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils
from helpers.registry import make_info

from plugin_host import Registry, SqliteStateStore
from plugin_host.loader.store import PluginProcessRecord, PluginProcessStore
from plugin_host.state import MemoryStateStore
from plugin_host.state import _schema as schema

pytestmark = pytest.mark.anyio

V1_REGISTRATIONS = [make_info(alloc_id="a1"), make_info(alloc_id="a2"), make_info(name="other", ptype="csi-controller")]


def write_v1_file(path: Path) -> None:
    """A state file as a schema 1 plugin-host left it: three registrations, events up to seq 5."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        schema._v0_to_v1(sqlite_utils.Database(conn))
        for position, info in enumerate(V1_REGISTRATIONS):
            conn.execute(
                "INSERT INTO plugins (ptype, name, alloc_id, position, info) VALUES (?, ?, ?, ?, ?)",
                (info.type, info.name, info.alloc_id, position, info.model_dump_json()),
            )
        for seq in range(1, 6):
            info = V1_REGISTRATIONS[seq % len(V1_REGISTRATIONS)]
            conn.execute(
                "INSERT INTO events (seq, ptype, event_type, info) VALUES (?, ?, ?, ?)",
                (seq, info.type, "registered", info.model_dump_json()),
            )
        conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
    finally:
        conn.close()


def file_state(path: Path) -> tuple[int, list[str], int]:
    """(user_version, table names, number of registrations) read straight from the file."""
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        count = conn.execute("SELECT count(*) FROM plugins").fetchone()[0]
    finally:
        conn.close()
    return version, tables, count


async def test_v1_file_migrates_to_current_schema_keeping_registrations_and_seq(tmp_path: Path) -> None:
    """A schema 1 file opens, is migrated to the current schema, and still holds its registrations and last seq."""
    path = tmp_path / "state.db"
    write_v1_file(path)
    assert file_state(path) == (1, ["events", "plugins"], 3)
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        assert registry.last_seq == 5
        assert await registry.list_plugins("csi-node") == [V1_REGISTRATIONS[1]]  # the newest of the name
        assert await registry.plugin_for_alloc("csi-node", "hostpath", "a1") == V1_REGISTRATIONS[0]
        assert await registry.list_plugins("csi-controller") == V1_REGISTRATIONS[2:]
        assert await store.list_plugin_processes() == []
        await registry.register_plugin(make_info(alloc_id="a3"))
        assert registry.last_seq == 6
    assert file_state(path) == (schema.SCHEMA_VERSION, ["events", "plugin_processes", "plugins", "task_handles"], 4)


async def test_failed_migration_leaves_the_v1_file_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration that fails after creating its table rolls back as a whole: the file stays at schema 1."""
    path = tmp_path / "state.db"
    write_v1_file(path)

    def half_done(db: sqlite_utils.Database) -> None:
        schema._v1_to_v2(db)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(schema, "MIGRATIONS", (schema._v0_to_v1, half_done))
    with pytest.raises(RuntimeError, match="disk on fire"):
        async with SqliteStateStore(path):
            pass
    assert file_state(path) == (1, ["events", "plugins"], 3)
    monkeypatch.undo()
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        assert registry.last_seq == 5
        assert await registry.plugin_for_alloc("csi-node", "hostpath", "a1") == V1_REGISTRATIONS[0]
    assert file_state(path)[0] == schema.SCHEMA_VERSION


async def _round_trip(store: PluginProcessStore) -> None:
    first = PluginProcessRecord("b", 1234, 99, "/run/b.sock", "/plugins/b")
    other = PluginProcessRecord("a", 42, 7, "/run/a.sock", "/plugins/a")
    await store.save_plugin_process(first)
    await store.save_plugin_process(other)
    assert await store.list_plugin_processes() == [other, first]
    replaced = PluginProcessRecord("b", 5678, 100, "/run/b2.sock", "/plugins/b")
    await store.save_plugin_process(replaced)
    await store.delete_plugin_process("a")
    await store.delete_plugin_process("missing")
    assert await store.list_plugin_processes() == [replaced]


async def test_plugin_process_records_round_trip_and_survive_reopening(tmp_path: Path) -> None:
    """Records are saved, replaced by name, listed sorted by name, deleted, and kept across reopening the file."""
    path = tmp_path / "state.db"
    write_v1_file(path)
    async with SqliteStateStore(path) as store:
        await _round_trip(store)
    async with SqliteStateStore(path) as store:
        assert [(r.name, r.pid, r.start_time) for r in await store.list_plugin_processes()] == [("b", 5678, 100)]
    async with SqliteStateStore(path, read_only=True) as store:
        assert [r.socket_path for r in await store.list_plugin_processes()] == ["/run/b2.sock"]


async def test_memory_store_keeps_plugin_process_records_the_same_way() -> None:
    """The in-memory store behaves as the file does for plugin process records."""
    await _round_trip(MemoryStateStore())
