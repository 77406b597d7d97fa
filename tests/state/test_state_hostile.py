"""Hostile state files: undecodable rows, loose permissions, symlinks planted at the state path."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.registry import make_info

from plugin_host import Registry, SqliteStateStore
from plugin_host.driver.store import TaskHandleRecord
from plugin_host.errors import StateError
from plugin_host.loader.store import PluginProcessRecord

pytestmark = pytest.mark.anyio


async def _state_with(path: Path, *names: str) -> None:
    """A real state file holding one device registration per name (all from the host itself)."""
    async with SqliteStateStore(path) as store, Registry(state=store) as registry:
        for name in names:
            await registry.register_plugin(make_info(name=name, ptype="device", alloc_id=""))


def _sql(path: Path, statement: str, *params: object) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(statement, params)
        conn.commit()
    finally:
        conn.close()


# What a damaged row can hold, and the part of the message that says what is wrong with it.
_CORRUPTIONS = [
    ("info = 'not json'", "column info does not decode: Invalid JSON"),
    ("info = '{\"type\": 5}'", "column info does not decode: name: Field required; type: Input should be a valid"),
    ("info = NULL", "column info does not decode"),
    ("position = 'first'", "column position holds 'first'; expected an integer"),
    ('info = replace(info, \'"name":"b"\', \'"name":"zz"\')', "column info describes type='device', name='zz'"),
]


@pytest.mark.parametrize(("assignment", "problem"), _CORRUPTIONS)
async def test_an_undecodable_plugin_row_is_a_state_error_naming_file_table_and_key(
    tmp_path: Path, assignment: str, problem: str
) -> None:
    """A plugins row that does not decode refuses the load with a StateError naming path, table, key and problem."""
    path = tmp_path / "plugin-host.db"
    await _state_with(path, "a", "b", "c")
    _sql(path, f"UPDATE plugins SET {assignment} WHERE name = 'b'")
    async with SqliteStateStore(path) as store:
        with pytest.raises(StateError) as caught:
            await store.load_registry()
    message = str(caught.value)
    assert message.startswith(
        f"state file {str(path)!r}: unreadable row in table plugins (ptype='device', name='b', alloc_id=''): "
    )
    assert problem in message
    assert "\n" not in message
    assert len(message) < 600


async def test_skip_unreadable_returns_the_other_rows_and_lists_the_bad_ones(tmp_path: Path) -> None:
    """With skip_unreadable the readable registrations load and each bad row is listed with its key and problem."""
    path = tmp_path / "plugin-host.db"
    await _state_with(path, "a", "b", "c")
    _sql(path, "UPDATE plugins SET info = ? WHERE name IN ('a', 'c')", "x" * 5000)
    async with SqliteStateStore(path, read_only=True) as store:
        snapshot = await store.load_registry(skip_unreadable=True)
        with pytest.raises(StateError, match=r"name='a'.*\(and 1 more unreadable rows\)$"):
            await store.load_registry()
    assert [p.info.name for p in snapshot.plugins] == ["b"]
    assert snapshot.last_seq == 3
    assert [(r.table, r.key) for r in snapshot.unreadable] == [
        ("plugins", "ptype='device', name='a', alloc_id=''"),
        ("plugins", "ptype='device', name='c', alloc_id=''"),
    ]
    assert all(r.problem.startswith("column info does not decode: Invalid JSON") for r in snapshot.unreadable)
    assert all(len(r.problem) <= 240 for r in snapshot.unreadable)


async def test_a_registry_over_a_file_with_a_bad_row_does_not_start(tmp_path: Path) -> None:
    """Registry start surfaces the StateError (no pydantic ValidationError escapes)."""
    path = tmp_path / "plugin-host.db"
    await _state_with(path, "a")
    _sql(path, "UPDATE plugins SET info = '[]'")
    async with SqliteStateStore(path) as store:
        with pytest.raises(StateError, match=r"table plugins \(ptype='device', name='a', alloc_id=''\)"):
            async with Registry(state=store):
                pass


async def test_an_undecodable_event_is_a_state_error_naming_its_seq(tmp_path: Path) -> None:
    """An events row with a bad event type is a StateError naming the table and the seq."""
    path = tmp_path / "plugin-host.db"
    await _state_with(path, "a", "b")
    _sql(path, "UPDATE events SET event_type = 'exploded' WHERE seq = 2")
    async with SqliteStateStore(path) as store:
        with pytest.raises(StateError) as caught:
            await store.events_since("device", 0)
    assert str(caught.value).startswith(f"state file {str(path)!r}: unreadable row in table events (seq=2): ")
    assert "event_type: Input should be 'registered', 'updated' or 'deregistered'" in str(caught.value)


async def test_a_plugin_process_row_of_the_wrong_type_is_a_state_error(tmp_path: Path) -> None:
    """A plugin_processes row whose pid is text is a StateError naming the row, not a record holding a str."""
    path = tmp_path / "plugin-host.db"
    async with SqliteStateStore(path) as store:
        await store.save_plugin_process(PluginProcessRecord("fsdev", 123, 456, "/run/x.sock", "/bin/x"))
    _sql(path, "UPDATE plugin_processes SET pid = 'abc'")
    async with SqliteStateStore(path) as store:
        with pytest.raises(StateError) as caught:
            await store.list_plugin_processes()
    assert str(caught.value) == (
        f"state file {str(path)!r}: unreadable row in table plugin_processes (name='fsdev'):"
        " column pid holds text 'abc'; expected an integer"
    )


async def test_a_task_handle_stored_as_text_is_a_state_error(tmp_path: Path) -> None:
    """A task_handles row whose handle is text, not a blob, is a StateError naming the task id."""
    path = tmp_path / "plugin-host.db"
    async with SqliteStateStore(path) as store:
        await store.save_task_handle(TaskHandleRecord("t1", "raw-exec", "a1", "web", b"\x01\x02"))
    _sql(path, "UPDATE task_handles SET handle = 'text'")
    async with SqliteStateStore(path) as store:
        with pytest.raises(StateError, match=r"table task_handles \(task_id='t1'\): column handle holds text 'text'"):
            await store.list_task_handles()


async def test_a_group_readable_state_file_and_its_wal_and_shm_are_made_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An existing 0644 state file, -wal and -shm are forced to 0600 on open, each with a warning."""
    path = tmp_path / "plugin-host.db"
    await _state_with(path, "a")
    path.chmod(0o644)
    # A second connection held open keeps the -wal and -shm files in place, as after a crash.
    holder = sqlite3.connect(path)
    try:
        holder.execute("INSERT INTO events (seq, ptype, event_type, info) VALUES (99, 'x', 'registered', '{}')")
        holder.commit()
        companions = [Path(f"{path}-wal"), Path(f"{path}-shm")]
        for companion in companions:
            companion.chmod(0o644)
        with caplog.at_level(logging.WARNING, logger="plugin_host.state.sqlite"):
            async with SqliteStateStore(path) as store:
                await store.load_registry()
                modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [path, *companions]}
    finally:
        holder.close()
    assert modes == {"plugin-host.db": 0o600, "plugin-host.db-wal": 0o600, "plugin-host.db-shm": 0o600}
    warned = [r.getMessage() for r in caplog.records if r.name == "plugin_host.state.sqlite"]
    assert warned == [f"state file {p} had mode 0644; changing it to 0600" for p in [path, *companions]]


async def test_a_symlinked_state_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    """A symlink at the state path is a StateError naming the link; the empty target stays empty, not a database."""
    target = tmp_path / "elsewhere" / "victim"
    target.parent.mkdir()
    target.write_bytes(b"")
    link = tmp_path / "state" / "plugin-host.db"
    link.parent.mkdir()
    link.symlink_to(target)
    for read_only in (False, True):
        with pytest.raises(StateError) as caught:
            async with SqliteStateStore(link, read_only=read_only):
                pass
        assert str(caught.value) == (
            f"state file {str(link)!r} is a symbolic link (to {str(target)!r}); refusing to follow it: point"
            " state_dir at the directory that should hold the state file instead"
        )
    assert target.read_bytes() == b""
    assert sorted(os.listdir(target.parent)) == ["victim"]


async def test_a_dangling_symlink_is_refused_without_creating_its_target(tmp_path: Path) -> None:
    """A symlink to a missing file is refused too, and nothing is created where it points."""
    target = tmp_path / "elsewhere" / "created"
    target.parent.mkdir()
    link = tmp_path / "plugin-host.db"
    link.symlink_to(target)
    with pytest.raises(StateError, match="is a symbolic link"):
        async with SqliteStateStore(link):
            pass
    assert not target.exists()


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
async def test_a_symlinked_wal_or_shm_is_refused(tmp_path: Path, suffix: str) -> None:
    """A symlink planted as the -wal or -shm file is refused by name, its target left empty."""
    path = tmp_path / "plugin-host.db"
    await _state_with(path, "a")
    target = tmp_path / "victim"
    target.write_bytes(b"")
    Path(f"{path}{suffix}").symlink_to(target)
    with pytest.raises(StateError, match=f"state file '{path}{suffix}' is a symbolic link"):
        async with SqliteStateStore(path):
            pass
    assert target.read_bytes() == b""


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plugin_host", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


async def test_cli_state_show_lists_the_readable_rows_and_flags_the_bad_one(tmp_path: Path) -> None:
    """`state show` prints the good rows, one stderr line for the bad row, and exits 1; `--json` lists it too."""
    path = tmp_path / "st" / "plugin-host.db"
    await _state_with(path, "a", "b", "c")
    (tmp_path / "host.hcl").write_text('state_dir = "st"\n')
    _sql(path, "UPDATE plugins SET info = '{\"type\": 5}' WHERE name = 'b'")
    shown = _cli(tmp_path, "state", "show", "--config", "host.hcl")
    assert shown.returncode == 1
    assert shown.stderr.splitlines() == [
        "plugin-host: state file 'st/plugin-host.db': unreadable row in table plugins (ptype='device', name='b',"
        " alloc_id=''): column info does not decode: name: Field required; type: Input should be a valid string"
    ]
    names = [line.split()[1] for line in shown.stdout.splitlines()[3:]]
    assert names == ["a", "c"]
    as_json = _cli(tmp_path, "state", "show", "--json", "--config", "host.hcl")
    assert as_json.returncode == 1
    assert "\"key\": \"ptype='device', name='b', alloc_id=''\"" in as_json.stdout


async def test_cli_run_over_a_bad_row_prints_one_line_and_exits_1(tmp_path: Path) -> None:
    """`run` over a file with an undecodable row says which row in one line (no traceback) and exits 1."""
    path = tmp_path / "st" / "plugin-host.db"
    await _state_with(path, "a")
    (tmp_path / "host.hcl").write_text('state_dir = "st"\n')
    _sql(path, "UPDATE plugins SET info = 'garbage'")
    ran = _cli(tmp_path, "run", "--config", "host.hcl")
    assert ran.returncode == 1
    errors = [line for line in ran.stderr.splitlines() if line.startswith("plugin-host: ")]
    assert errors == [
        "plugin-host: state file 'st/plugin-host.db': unreadable row in table plugins (ptype='device', name='a',"
        " alloc_id=''): column info does not decode: Invalid JSON: expected value at line 1 column 1"
    ]
    assert "Traceback" not in ran.stderr
