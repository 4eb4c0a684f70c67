"""The SQLite backend's file layout: pragmas, tables, indexes.

Tables (one file, WAL):

* ``log`` — the revision log (as k3s's kine): one row per event, ``id``
  increasing in (revision, position within the revision) order.  A put row
  carries the key's full state after the put; a delete row (``deleted = 1``)
  is a tombstone.  Indexes: ``(revision)`` for watch replay, ``(key,
  revision)`` (+ the implicit rowid) for reads at past revisions.
* ``current`` — one row per live key pointing at its latest log row, so
  current reads and writes never scan history.  ``lease`` is copied here,
  indexed, to find a lease's keys.
* ``meta`` — one row: the store revision and the compact revision (-1 until
  the first compaction, as etcd's compactMainRev, so ``compact(0)`` on a new
  store succeeds once).  Kept apart from the log because compaction may
  delete the log's last rows.
* ``lease`` — granted leases and their TTL.  Remaining time is not stored:
  on restart every lease gets a fresh full TTL (etcd's lessor Promote).

``auto_vacuum = INCREMENTAL`` must be set before the first table exists; it
lets compaction give freed pages back to the file system without a full
VACUUM.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 1

_DDL = (
    """CREATE TABLE IF NOT EXISTS log (
        id INTEGER PRIMARY KEY,
        revision INTEGER NOT NULL,
        key BLOB NOT NULL,
        value BLOB NOT NULL,
        create_revision INTEGER NOT NULL,
        version INTEGER NOT NULL,
        lease INTEGER NOT NULL,
        deleted INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS log_revision ON log (revision)",
    "CREATE INDEX IF NOT EXISTS log_key ON log (key, revision)",
    """CREATE TABLE IF NOT EXISTS current (
        key BLOB PRIMARY KEY,
        id INTEGER NOT NULL,
        lease INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS current_lease ON current (lease) WHERE lease != 0",
    """CREATE TABLE IF NOT EXISTS meta (
        one INTEGER PRIMARY KEY CHECK (one = 0),
        revision INTEGER NOT NULL,
        compact_revision INTEGER NOT NULL,
        schema_version INTEGER NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS lease (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL)",
)

#: WAL growth bound: after a checkpoint the WAL file is truncated to this size.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


def connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT ourselves)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    conn.execute("PRAGMA busy_timeout = 10000")
    # FULL: the WAL is fsynced at every commit, so an acknowledged write
    # survives kill -9 and power loss (NORMAL would only survive kill -9).
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute(f"PRAGMA cache_size = {-65536 if writer else -16384}")
    if not writer:
        conn.execute("PRAGMA query_only = 1")
    return conn


def create_or_open(path: Path) -> sqlite3.Connection:
    """Open the writer's connection, creating the file and schema on first use."""
    conn = connect(path, writer=True)
    fresh = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    if fresh:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise RuntimeError(f"cannot put {path} in WAL mode (got {mode})")
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _DDL:
            conn.execute(statement)
        conn.execute(
            "INSERT OR IGNORE INTO meta (one, revision, compact_revision, schema_version) VALUES (0, 1, -1, ?)",
            (SCHEMA_VERSION,),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        conn.close()
        raise
    return conn
