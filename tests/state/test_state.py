"""The SQLite state file: creation, validation without modification, restart fidelity, bad input."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers.registry import make_info

from plugin_host import Registry, SqliteStateStore
from plugin_host.errors import StateError, StateVersionError
from plugin_host.state._schema import APPLICATION_ID, SCHEMA_VERSION

pytestmark = pytest.mark.anyio


async def test_creates_file_and_directory_with_private_mode_and_wal(tmp_path: Path) -> None:
    """A new state file is created with its parent directories, mode 0600, in WAL mode, marked as ours."""
    path = tmp_path / "a" / "b" / "plugin-host.db"
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        await registry.register_plugin(make_info())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


async def test_restart_restores_plugins_order_and_next_seq(tmp_path: Path) -> None:
    """Register, update, deregister, close, reopen: same plugins, same order, seq continues."""
    path = tmp_path / "state.db"
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        for alloc in ("a1", "a2", "a3"):
            await registry.register_plugin(make_info(alloc_id=alloc))
        await registry.register_plugin(make_info(name="other", ptype="csi-controller"))
        await registry.register_plugin(make_info(alloc_id="a1", version="2.0"))  # updated in place
        await registry.deregister_plugin("csi-node", "hostpath", "a3")
        before: dict[str, Any] = {
            "node": await registry.list_plugins("csi-node"),
            "controller": await registry.list_plugins("csi-controller"),
            "a1": await registry.plugin_for_alloc("csi-node", "hostpath", "a1"),
            "seq": registry.last_seq,
        }
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        after: dict[str, Any] = {
            "node": await registry.list_plugins("csi-node"),
            "controller": await registry.list_plugins("csi-controller"),
            "a1": await registry.plugin_for_alloc("csi-node", "hostpath", "a1"),
            "seq": registry.last_seq,
        }
        assert after == before
        assert after["node"][0].alloc_id == "a2"
        # a2 is newest; after removing it a1 (older, updated in place) must be current again
        await registry.deregister_plugin("csi-node", "hostpath", "a2")
        assert (await registry.list_plugins("csi-node"))[0].alloc_id == "a1"
        assert registry.last_seq == before["seq"] + 1


async def test_a_second_process_cannot_open_the_same_file(tmp_path: Path) -> None:
    """While one store holds the file, another process opening it gets StateError 'in use'."""
    path = tmp_path / "state.db"
    script = textwrap.dedent(
        f"""
        import anyio
        from plugin_host import SqliteStateStore
        from plugin_host.errors import StateError
        async def main():
            try:
                async with SqliteStateStore({str(path)!r}):
                    print("opened")
            except StateError as exc:
                print("error:", exc)
        anyio.run(main)
        """
    )
    async with SqliteStateStore(path):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert "is in use by another process" in out.stdout
    assert str(path) in out.stdout


# --- bad input: the file is never modified -------------------------------------------------------------------------


async def test_text_file_is_rejected_unchanged(tmp_path: Path) -> None:
    """A text file at the state path is a StateError naming the path; its bytes are unchanged."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are my notes, not a database\n" * 50)
    before = path.read_bytes()
    with pytest.raises(StateError, match=f"{path}.*not a plugin-host state database"):
        async with SqliteStateStore(path):
            pass
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


async def test_sqlite_file_of_another_application_is_rejected_unchanged(tmp_path: Path) -> None:
    """Another application's SQLite file is a StateError naming the path; its bytes are unchanged."""
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (id INTEGER PRIMARY KEY, title TEXT)")
    conn.execute("INSERT INTO recipes (title) VALUES ('soup')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StateError, match=f"{path}.*SQLite database of another application"):
        async with SqliteStateStore(path):
            pass
    assert path.read_bytes() == before


async def test_newer_schema_raises_version_error_unchanged(tmp_path: Path) -> None:
    """A file from a newer schema raises StateVersionError naming both versions; its bytes are unchanged."""
    path = tmp_path / "state.db"
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        await registry.register_plugin(make_info())
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 41}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StateVersionError, match=f"{SCHEMA_VERSION + 41}, newer than the version {SCHEMA_VERSION}") as e:
        async with SqliteStateStore(path):
            pass
    assert (e.value.found, e.value.supported) == (SCHEMA_VERSION + 41, SCHEMA_VERSION)
    assert isinstance(e.value, StateError)
    assert path.read_bytes() == before


async def test_state_path_that_is_a_directory_is_rejected(tmp_path: Path) -> None:
    """A directory at the state path is a StateError saying a file was expected."""
    with pytest.raises(StateError, match="is a directory; expected a file"):
        async with SqliteStateStore(tmp_path):
            pass


async def test_parent_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    """A state path under a regular file fails with StateError naming the directory."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match=f"cannot create the state directory '{blocker}'"):
        async with SqliteStateStore(blocker / "state.db"):
            pass


def test_unwritable_state_directory_is_rejected(tmp_path: Path) -> None:
    """A read-only state directory is a StateError naming the directory (checked as an unprivileged user)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    # root ignores permission bits, so the child drops to nobody once its event loop runs, before opening the store.
    script = textwrap.dedent(
        f"""
        import os, anyio
        from plugin_host import SqliteStateStore
        from plugin_host.errors import StateError
        async def main():
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            try:
                async with SqliteStateStore({str(directory / "state.db")!r}):
                    print("opened")
            except StateError as exc:
                print("error:", exc)
        anyio.run(main)
        """
    )
    directory.chmod(0o555)
    if os.geteuid() == 0:
        for parent in [tmp_path, *tmp_path.parents]:
            parent.chmod(parent.stat().st_mode | 0o005)
    try:
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    finally:
        directory.chmod(0o755)
    assert out.returncode == 0, out.stderr
    assert f"error: state directory '{directory}' is not writable" in out.stdout
    assert not (directory / "state.db").exists()


@pytest.mark.parametrize("retention", [0, -1, True, "10"])
def test_event_retention_must_be_a_positive_integer(retention: object) -> None:
    """event_retention of 0, negative, bool or non-int is rejected naming the value."""
    with pytest.raises(StateError, match=f"event_retention must be a positive integer, got {retention!r}"):
        SqliteStateStore("unused.db", event_retention=retention)  # type: ignore[arg-type]


async def test_read_only_store_reads_while_a_writer_holds_the_file(tmp_path: Path) -> None:
    """read_only=True reads the registrations while another store holds the writer lock, and refuses writes."""
    path = tmp_path / "state.db"
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        await registry.register_plugin(make_info())
        async with SqliteStateStore(path, read_only=True) as reader:
            snapshot = await reader.load_registry()
            assert [p.info for p in snapshot.plugins] == [make_info()]
            assert snapshot.last_seq == 1
            async with Registry(state=reader) as read_registry:
                with pytest.raises(StateError, match="opened read-only"):
                    await read_registry.register_plugin(make_info(alloc_id="other"))


async def test_read_only_store_rejects_a_missing_file_without_creating_it(tmp_path: Path) -> None:
    """read_only=True on a missing path is a StateError naming it, and nothing is created."""
    path = tmp_path / "missing" / "state.db"
    with pytest.raises(StateError, match=f"state file '{path}' does not exist"):
        async with SqliteStateStore(path, read_only=True):
            pass
    assert not path.parent.exists()
