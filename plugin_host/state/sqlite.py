"""The durable state store: one SQLite file (WAL), one transaction per batch of mutations, O(1) work per change."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import anyio
import anyio.to_thread
from pydantic import ValidationError

from plugin_host.driver.store import TaskHandleRecord
from plugin_host.errors import StateError, StateVersionError
from plugin_host.loader.store import PluginProcessRecord
from plugin_host.registry.models import PluginInfo, PluginUpdateEvent
from plugin_host.registry.store import Change, EventHistory, RegistrySnapshot, StoredPlugin, UnreadableRow, Upsert
from plugin_host.state._schema import APPLICATION_ID, SCHEMA_VERSION, migrate

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How much of a bad value or a decoding problem an error message quotes: enough to recognise it, never a whole blob.
_SHOWN_MAX = 80
_PROBLEM_MAX = 240

_UPSERT = (
    "INSERT INTO plugins (ptype, name, alloc_id, position, info) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (ptype, name, alloc_id) DO UPDATE SET info = excluded.info"
)


class SqliteStateStore:
    """The plugin host's state file.

    ``async with SqliteStateStore(path) as store:`` creates the file (mode 0600) and its directory, checks that it
    is a plugin-host state file of a schema this version understands (without modifying it otherwise), runs the
    migrations and switches it to WAL. A file lock keeps a second process from opening the same file for writing.
    The file and its ``-wal``/``-shm`` must not be symbolic links (only the directories above ``path`` are
    followed), and are set to mode 0600 when looser. Every row is checked as it is read: one that does not decode
    is a StateError naming the table and the row.

    ``synchronous="full"`` (the default) makes every acknowledged mutation survive a power loss as well as a
    process kill; ``"normal"`` survives a process kill only, and is faster.

    ``read_only=True`` opens an existing state file for reading only (``plugin-host state show``): no lock is
    taken, so it works while a host runs; nothing is created or migrated, and writes raise StateError.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        event_retention: int = 10_000,
        synchronous: Literal["full", "normal"] = "full",
        read_only: bool = False,
    ) -> None:
        if isinstance(event_retention, bool) or not isinstance(event_retention, int) or event_retention < 1:
            raise StateError(f"event_retention must be a positive integer, got {event_retention!r}")
        if synchronous not in ("full", "normal"):
            raise StateError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        self._path = Path(path)
        self._retention = event_retention
        self._synchronous = synchronous
        self._read_only = read_only
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        # One connection, used by one worker thread at a time.
        self._limiter = anyio.CapacityLimiter(1)

    @property
    def path(self) -> Path:
        """The state file."""
        return self._path

    @property
    def event_retention(self) -> int:
        """How many of the newest events are kept for ``subscribe(since=...)``."""
        return self._retention

    # --- lifecycle ------------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._conn is not None:
            raise StateError(f"state file {str(self._path)!r} is already open by this store")
        await self._run(self._open)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self._run(self._close)

    def _open(self) -> None:
        if self._read_only:
            self._open_read_only()
            return
        directory = self._path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the state directory {str(directory)!r}: {exc.strerror}") from exc
        if self._path.is_symlink():
            raise self._symlink_error(self._path)
        if self._path.is_dir():
            raise StateError(f"state path {str(self._path)!r} is a directory; expected a file")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StateError(
                f"state directory {str(directory)!r} is not writable; the state file and its WAL live there"
            )
        try:
            # O_NOFOLLOW: a symlink planted at the state path must not make us turn its target into a database.
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._symlink_error(self._path) from None
            raise StateError(
                f"cannot open the state file {str(self._path)!r} in directory {str(directory)!r}: {exc.strerror}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(f"state file {str(self._path)!r} is in use by another process") from None
        self._lock_fd = fd
        try:
            self._make_private(fd, self._path)
            for suffix in ("-wal", "-shm"):
                self._make_companion_private(Path(f"{self._path}{suffix}"))
        except BaseException:
            self._release_lock()
            raise
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            self._release_lock()
            raise StateError(f"cannot open the state file {str(self._path)!r}: {exc}") from exc
        try:
            # SQLite opens the path again by name: make sure it opened the file we checked and locked, not
            # something swapped in between.
            if not _same_file(os.fstat(fd), self._path):
                raise StateError(f"state file {str(self._path)!r} was replaced while it was being opened")
            version = self._check(conn)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            conn.execute("PRAGMA busy_timeout = 5000")
            if version < SCHEMA_VERSION:
                if version == 0:
                    logger.info("creating state file %s (schema %d)", self._path, SCHEMA_VERSION)
                else:
                    logger.info("migrating state file %s from schema %d to %d", self._path, version, SCHEMA_VERSION)
                migrate(conn, version)
        except BaseException:
            conn.close()
            self._release_lock()
            raise
        self._conn = conn

    def _symlink_error(self, path: Path) -> StateError:
        try:
            target = f" (to {os.readlink(path)!r})"
        except OSError:
            target = ""
        return StateError(
            f"state file {str(path)!r} is a symbolic link{target}; refusing to follow it: point state_dir at the"
            " directory that should hold the state file instead"
        )

    def _make_private(self, fd: int, path: Path) -> None:
        """Refuse anything but a regular file; force mode 0600 (registrations carry socket paths and options)."""
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StateError(f"state file {str(path)!r} is not a regular file ({stat.filemode(info.st_mode)})")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            logger.warning("state file %s had mode %04o; changing it to 0600", path, mode)
            try:
                os.fchmod(fd, 0o600)
            except OSError as exc:
                raise StateError(
                    f"state file {str(path)!r} has mode {mode:04o} and cannot be made private (0600): {exc.strerror}"
                ) from exc

    def _make_companion_private(self, path: Path) -> None:
        """The WAL and shared-memory files hold the same data as the state file: same rules, when they exist."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._symlink_error(path) from None
            raise StateError(f"cannot open {str(path)!r} next to the state file: {exc.strerror}") from exc
        try:
            self._make_private(fd, path)
        finally:
            os.close(fd)

    def _open_read_only(self) -> None:
        if self._path.is_symlink():
            raise self._symlink_error(self._path)
        if not self._path.is_file():
            raise StateError(f"state file {str(self._path)!r} does not exist (or is not a file)")
        try:
            conn = sqlite3.connect(f"{self._path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the state file {str(self._path)!r} read-only: {exc}") from exc
        try:
            version = self._check(conn)
            if version != SCHEMA_VERSION:
                raise StateVersionError(
                    f"state file {str(self._path)!r} has schema version {version}; reading needs version"
                    f" {SCHEMA_VERSION} (open it once for writing to migrate it)",
                    found=version,
                    supported=SCHEMA_VERSION,
                )
            conn.execute("PRAGMA busy_timeout = 5000")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _check(self, conn: sqlite3.Connection) -> int:
        """Read-only checks: is this our file, and of a schema we understand? Returns its schema version."""
        where = f"state file {str(self._path)!r}"
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{where} is not a plugin-host state database ({exc})") from exc
        if app_id == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise StateVersionError(
                    f"{where} has schema version {version}, newer than the version {SCHEMA_VERSION} this plugin-host"
                    " understands; upgrade plugin-host",
                    found=version,
                    supported=SCHEMA_VERSION,
                )
            return int(version)
        if app_id == 0 and tables == 0:
            return 0
        raise StateError(
            f"{where} is an SQLite database of another application (application_id {app_id:#x}, {tables} schema"
            f" objects); expected a plugin-host state database (application_id {APPLICATION_ID:#x})"
        )

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
                self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- registry persistence -------------------------------------------------------------------------------------

    async def load_registry(self, *, skip_unreadable: bool = False) -> RegistrySnapshot:
        """Every stored registration and the last event seq.

        A row that does not decode is a :class:`StateError` naming the table, the row's key and what is wrong;
        with ``skip_unreadable=True`` it is left out and listed in ``RegistrySnapshot.unreadable`` instead.
        """
        return await self._run(lambda: self._load(skip_unreadable))

    def _load(self, skip_unreadable: bool) -> RegistrySnapshot:
        with self._errors("read the registry from"):
            conn = self._connection()
            rows = conn.execute(
                "SELECT ptype, name, alloc_id, position, info FROM plugins ORDER BY ptype, name, alloc_id"
            ).fetchall()
            last_seq = self._last_seq(conn)
        plugins: list[StoredPlugin] = []
        unreadable: list[UnreadableRow] = []
        for row in rows:
            decoded = _decode_plugin_row(row)
            if isinstance(decoded, StoredPlugin):
                plugins.append(decoded)
            else:
                unreadable.append(decoded)
        if unreadable and not skip_unreadable:
            raise self._unreadable(unreadable)
        return RegistrySnapshot(plugins=plugins, last_seq=last_seq, unreadable=unreadable)

    async def commit(self, commits: Sequence[tuple[Change, PluginUpdateEvent]]) -> None:
        """Apply the changes and append their events, in order, in one transaction; durable when this returns."""
        if commits:
            await self._run(lambda: self._commit(commits))

    def _commit(self, commits: Sequence[tuple[Change, PluginUpdateEvent]]) -> None:
        if self._read_only:
            raise StateError(
                f"state file {str(self._path)!r} was opened read-only; cannot record {commits[0][1].event_type}"
            )
        with self._errors("write to"):
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for change, event in commits:
                    if isinstance(change, Upsert):
                        info = change.info
                        encoded = info.model_dump_json()
                        conn.execute(_UPSERT, (info.type, info.name, info.alloc_id, change.position, encoded))
                    else:
                        conn.execute(
                            "DELETE FROM plugins WHERE ptype = ? AND name = ? AND alloc_id = ?",
                            (change.ptype, change.name, change.alloc_id),
                        )
                        encoded = event.info.model_dump_json()
                    conn.execute(
                        "INSERT INTO events (seq, ptype, event_type, info) VALUES (?, ?, ?, ?)",
                        (event.seq, event.info.type, event.event_type.value, encoded),
                    )
                # Retention: deletes as many rows as the batch added, through the primary key.
                conn.execute("DELETE FROM events WHERE seq <= ?", (commits[-1][1].seq - self._retention,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    async def events_since(self, ptype: str, since: int) -> EventHistory:
        """Retained events of ``ptype`` with ``seq > since``, oldest first."""
        return await self._run(lambda: self._events_since(ptype, since))

    def _events_since(self, ptype: str, since: int) -> EventHistory:
        with self._errors("read events from"):
            conn = self._connection()
            rows = conn.execute(
                "SELECT seq, event_type, info FROM events WHERE ptype = ? AND seq > ? ORDER BY seq", (ptype, since)
            ).fetchall()
            oldest = conn.execute("SELECT min(seq) FROM events").fetchone()[0]
            last_seq = self._last_seq(conn)
        events: list[PluginUpdateEvent] = []
        for seq, etype, info in rows:
            try:
                events.append(PluginUpdateEvent(seq=seq, event_type=etype, info=PluginInfo.model_validate_json(info)))
            except ValidationError as exc:
                raise self._unreadable([UnreadableRow("events", _row_key(seq=seq), _problem(exc))]) from None
        return EventHistory(events=events, oldest_seq=oldest, last_seq=last_seq)

    # --- launched plugin processes -----------------------------------------------------------------------------------

    async def save_plugin_process(self, record: PluginProcessRecord) -> None:
        """Insert or replace the record of ``record.name``; durable when this returns."""

        def save() -> None:
            self._writable(f"save plugin process {record.name!r}")
            with self._errors("write to"):
                self._connection().execute(
                    "INSERT OR REPLACE INTO plugin_processes (name, pid, start_time, socket_path, executable)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (record.name, record.pid, record.start_time, record.socket_path, record.executable),
                )

        await self._run(save)

    async def list_plugin_processes(self) -> list[PluginProcessRecord]:
        """Every launched plugin process recorded, sorted by name."""

        def load() -> list[PluginProcessRecord]:
            with self._errors("read plugin processes from"):
                rows = (
                    self._connection()
                    .execute(
                        "SELECT name, pid, start_time, socket_path, executable FROM plugin_processes ORDER BY name"
                    )
                    .fetchall()
                )
            records: list[PluginProcessRecord] = []
            for row in rows:
                problem = _wrong_types(row, _PROCESS_COLUMNS)
                if problem:
                    raise self._unreadable([UnreadableRow("plugin_processes", _row_key(name=row[0]), problem)])
                records.append(PluginProcessRecord(*row))
            return records

        return await self._run(load)

    async def delete_plugin_process(self, name: str) -> None:
        """Forget the record of ``name`` (no-op when there is none)."""

        def delete() -> None:
            self._writable(f"delete plugin process {name!r}")
            with self._errors("write to"):
                self._connection().execute("DELETE FROM plugin_processes WHERE name = ?", (name,))

        await self._run(delete)

    # --- task handles -----------------------------------------------------------------------------------------------

    async def save_task_handle(self, record: TaskHandleRecord) -> None:
        """Insert or replace the handle of ``record.task_id``; durable when this returns."""

        def save() -> None:
            self._writable(f"save the handle of task {record.task_id!r}")
            with self._errors("write to"):
                self._connection().execute(
                    "INSERT OR REPLACE INTO task_handles (task_id, driver, alloc_id, name, handle)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (record.task_id, record.driver, record.alloc_id, record.name, record.handle),
                )

        await self._run(save)

    async def list_task_handles(self, driver: str | None = None) -> list[TaskHandleRecord]:
        """Every stored task handle (of ``driver`` only, when given), sorted by task id."""

        def load() -> list[TaskHandleRecord]:
            query = "SELECT task_id, driver, alloc_id, name, handle FROM task_handles"
            params: tuple[str, ...] = ()
            if driver is not None:
                query, params = query + " WHERE driver = ?", (driver,)
            with self._errors("read task handles from"):
                rows = self._connection().execute(query + " ORDER BY task_id", params).fetchall()
            records: list[TaskHandleRecord] = []
            for row in rows:
                problem = _wrong_types(row, _HANDLE_COLUMNS)
                if problem:
                    raise self._unreadable([UnreadableRow("task_handles", _row_key(task_id=row[0]), problem)])
                records.append(TaskHandleRecord(*row))
            return records

        return await self._run(load)

    async def delete_task_handle(self, task_id: str) -> None:
        """Forget the handle of ``task_id`` (no-op when there is none)."""

        def delete() -> None:
            self._writable(f"delete the handle of task {task_id!r}")
            with self._errors("write to"):
                self._connection().execute("DELETE FROM task_handles WHERE task_id = ?", (task_id,))

        await self._run(delete)

    def _writable(self, action: str) -> None:
        if self._read_only:
            raise StateError(f"state file {str(self._path)!r} was opened read-only; cannot {action}")

    # --- helpers --------------------------------------------------------------------------------------------------

    @staticmethod
    def _last_seq(conn: sqlite3.Connection) -> int:
        # Retention always keeps the newest event, so max(seq) is the last seq ever issued.
        return int(conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])

    def _unreadable(self, rows: list[UnreadableRow]) -> StateError:
        first = rows[0]
        more = f" (and {len(rows) - 1} more unreadable rows)" if len(rows) > 1 else ""
        return StateError(
            f"state file {str(self._path)!r}: unreadable row in table {first.table} ({first.key}): {first.problem}"
            + more
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"state file {str(self._path)!r} is not open; use `async with SqliteStateStore(...)`")
        return self._conn

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StateError(f"cannot {action} the state file {str(self._path)!r}: {exc}") from exc

    async def _run(self, fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn, limiter=self._limiter)


# --- decoding rows ----------------------------------------------------------------------------------------------------
# SQLite columns are dynamically typed and anything can edit the file, so every row is checked as it is read: a bad
# one must be an error naming it, never a traceback from deep inside pydantic or a record holding the wrong type.

_PROCESS_COLUMNS: tuple[tuple[str, type], ...] = (
    ("name", str),
    ("pid", int),
    ("start_time", int),
    ("socket_path", str),
    ("executable", str),
)
_HANDLE_COLUMNS: tuple[tuple[str, type], ...] = (
    ("task_id", str),
    ("driver", str),
    ("alloc_id", str),
    ("name", str),
    ("handle", bytes),
)
_SQL_TYPES = {str: "text", int: "an integer", bytes: "a blob", float: "a real number", type(None): "NULL"}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."


def _truncated(text: str) -> str:
    return text if len(text) <= _PROBLEM_MAX else text[: _PROBLEM_MAX - 3] + "..."


def _row_key(**columns: Any) -> str:
    return ", ".join(f"{name}={_shown(value)}" for name, value in columns.items())


def _problem(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return _truncated("does not decode: " + "; ".join(parts))


def _wrong_types(row: tuple[Any, ...], columns: tuple[tuple[str, type], ...]) -> str:
    for value, (name, wanted) in zip(row, columns, strict=True):
        if type(value) is not wanted:
            held = _SQL_TYPES.get(type(value), type(value).__name__)
            return f"column {name} holds {held} {_shown(value)}; expected {_SQL_TYPES[wanted]}"
    return ""


def _same_file(opened: os.stat_result, path: Path) -> bool:
    try:
        current = os.lstat(path)
    except OSError:
        return False
    return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)


def _decode_plugin_row(row: tuple[Any, ...]) -> StoredPlugin | UnreadableRow:
    ptype, name, alloc_id, position, info = row
    key = _row_key(ptype=ptype, name=name, alloc_id=alloc_id)
    if type(position) is not int:
        return UnreadableRow("plugins", key, f"column position holds {_shown(position)}; expected an integer")
    try:
        parsed = PluginInfo.model_validate_json(info)
    except ValidationError as exc:
        return UnreadableRow("plugins", key, "column info " + _problem(exc))
    if (parsed.type, parsed.name, parsed.alloc_id) != (ptype, name, alloc_id):
        return UnreadableRow(
            "plugins",
            key,
            "column info describes "
            + _row_key(type=parsed.type, name=parsed.name, alloc_id=parsed.alloc_id)
            + ", not the row's key",
        )
    return StoredPlugin(position, parsed)
