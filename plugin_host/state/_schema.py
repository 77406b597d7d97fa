"""The state file's schema and its migrations.

``PRAGMA application_id`` marks the file as ours; ``PRAGMA user_version`` is the schema version. Migration ``n``
takes a file from version ``n`` to ``n + 1``; they run in one transaction together with the version bump.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

# "PHST" (plugin-host state), stored big-endian in the SQLite header at offset 68.
APPLICATION_ID = 0x50485354
SCHEMA_VERSION = 3


def _v0_to_v1(db: sqlite_utils.Database) -> None:
    # One row per registration; position orders registrations of a name (newest = largest), so a change touches
    # one row instead of rewriting the registry as Nomad's state store does.
    db["plugins"].create(  # type: ignore[union-attr]
        {"ptype": str, "name": str, "alloc_id": str, "position": int, "info": str},
        pk=("ptype", "name", "alloc_id"),
    )
    db["events"].create(  # type: ignore[union-attr]
        {"seq": int, "ptype": str, "event_type": str, "info": str},
        pk="seq",
    )
    db["events"].create_index(["ptype", "seq"], index_name="events_by_type")  # type: ignore[union-attr]


def _v1_to_v2(db: sqlite_utils.Database) -> None:
    # External plugin processes the launcher started, to reattach to them after a restart (one row per plugin).
    db["plugin_processes"].create(  # type: ignore[union-attr]
        {"name": str, "pid": int, "start_time": int, "socket_path": str, "executable": str},
        pk="name",
        not_null={"pid", "start_time", "socket_path", "executable"},
    )


def _v2_to_v3(db: sqlite_utils.Database) -> None:
    # Task handles of the tasks the DriverManager started, to recover them after a restart (one row per task).
    # The handle is the bytes of its wire message, exactly what the driver returned (driver config as msgpack).
    db["task_handles"].create(  # type: ignore[union-attr]
        {"task_id": str, "driver": str, "alloc_id": str, "name": str, "handle": bytes},
        pk="task_id",
        not_null={"driver", "alloc_id", "name", "handle"},
    )
    db["task_handles"].create_index(["driver"], index_name="task_handles_by_driver")  # type: ignore[union-attr]


MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (_v0_to_v1, _v1_to_v2, _v2_to_v3)
assert len(MIGRATIONS) == SCHEMA_VERSION


def migrate(conn: sqlite3.Connection, current: int) -> None:
    """Bring a file at schema ``current`` to :data:`SCHEMA_VERSION` atomically (the caller holds no transaction)."""
    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for step in MIGRATIONS[current:]:
            step(db)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
