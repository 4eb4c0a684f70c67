"""Reads over one SQLite connection: ranges (current and past), watch history, lease keys.

Used by the reader pool (each call inside one read transaction, so the store
revision and the rows come from the same WAL snapshot) and by the writer
thread (inside its write transaction, so a txn's later ops see its earlier
writes).  Functions take the revision and compact revision the caller read in
the same transaction.  SQL text is built once per (span shape, variant) and
reused, so sqlite3's statement cache keeps it prepared.
"""

from __future__ import annotations

import sqlite3
from functools import cache

from skiff.store.errors import Compacted, FutureRevision
from skiff.store.key_span import KeySpan, span_sql
from skiff.store.range_filter import needs_values, needs_whole_range, shape_range
from skiff.store.types import Event, EventType, KeyValue, Range, RangeResult

META_SQL = "SELECT revision, compact_revision FROM meta"
LEASE_KEYS_SQL = "SELECT key FROM current WHERE lease = ? ORDER BY key"
#: Columns in KeyValue's field order, so ``KeyValue(*row)`` builds one.
_KV = "l.key, {value}, l.create_revision, l.revision, l.version, l.lease"


@cache
def current_kvs_sql(shape: str, values: bool) -> str:
    """Live keys of a span at the current revision, key order; last parameter is the LIMIT."""
    cols = _KV.format(value="l.value" if values else "x''")
    return (
        f"SELECT {cols} FROM current c JOIN log l ON l.id = c.id "
        f"WHERE {span_sql(shape, 'c.key')} ORDER BY c.key LIMIT ?"
    )


@cache
def _current_count_sql(shape: str) -> str:
    return f"SELECT count(*) FROM current WHERE {span_sql(shape, 'key')}"


_LATEST_AT = "SELECT max(id) AS mid FROM log WHERE {span} AND revision <= ? GROUP BY key"


@cache
def _past_kvs_sql(shape: str, values: bool) -> str:
    cols = _KV.format(value="l.value" if values else "x''")
    latest = _LATEST_AT.format(span=span_sql(shape, "key"))
    return f"SELECT {cols} FROM ({latest}) m JOIN log l ON l.id = m.mid WHERE l.deleted = 0 ORDER BY l.key LIMIT ?"


@cache
def _past_count_sql(shape: str) -> str:
    latest = _LATEST_AT.format(span=span_sql(shape, "key"))
    return f"SELECT count(*) FROM ({latest}) m JOIN log l ON l.id = m.mid WHERE l.deleted = 0"


def read_range(conn: sqlite3.Connection, revision: int, compact_revision: int, req: Range) -> RangeResult:
    """etcd's Range at ``req.revision`` (0: ``revision``, the store's); header revision is ``revision``."""
    at = req.revision or revision
    if at > revision:
        raise FutureRevision()
    if at < compact_revision:
        raise Compacted(compact_revision)
    span = KeySpan.of(req.key, req.range_end)
    past = at < revision
    params: tuple[object, ...] = (*span.params, at) if past else span.params
    count_sql = _past_count_sql(span.shape) if past else _current_count_sql(span.shape)
    if req.count_only:
        return RangeResult(revision, (), False, conn.execute(count_sql, params).fetchone()[0])
    limit = -1 if req.limit <= 0 or needs_whole_range(req) else req.limit + 1
    values = needs_values(req)
    sql = _past_kvs_sql(span.shape, values) if past else current_kvs_sql(span.shape, values)
    kvs = [KeyValue(*row) for row in conn.execute(sql, (*params, limit))]
    count = conn.execute(count_sql, params).fetchone()[0] if limit > 0 and len(kvs) == limit else len(kvs)
    shaped, more = shape_range(req, kvs)
    return RangeResult(revision, shaped, more, count)


@cache
def _history_sql(shape: str) -> str:
    # A single key walks the (key, revision) index; a range walks the
    # revision index ("+key" keeps the planner off the key index).
    column = "key" if shape == "single" else "+key"
    return (
        "SELECT id, revision, key, value, create_revision, version, lease, deleted FROM log "
        f"WHERE {span_sql(shape, column)} AND revision BETWEEN ? AND ? ORDER BY revision, id"
    )


_PREV_SQL = (
    "SELECT key, value, create_revision, revision, version, lease, deleted FROM log "
    "WHERE key = ? AND revision <= ? AND id < ? ORDER BY revision DESC, id DESC LIMIT 1"
)


def read_events(
    conn: sqlite3.Connection, span: KeySpan, first: int, last: int, prev_kv: bool
) -> list[tuple[int, tuple[Event, ...]]]:
    """Events of revisions ``first..last`` in ``span`` from the log, grouped by revision."""
    out: list[tuple[int, tuple[Event, ...]]] = []
    current_rev = 0
    group: list[Event] = []
    for row_id, rev, key, value, create, version, lease, deleted in conn.execute(
        _history_sql(span.shape), (*span.params, first, last)
    ):
        prev = _prev_kv(conn, key, rev, row_id) if prev_kv else None
        if deleted:
            event = Event(EventType.DELETE, KeyValue(key, b"", 0, rev, 0, 0), prev)
        else:
            event = Event(EventType.PUT, KeyValue(key, value, create, rev, version, lease), prev)
        if rev != current_rev:
            if group:
                out.append((current_rev, tuple(group)))
            group = []
            current_rev = rev
        group.append(event)
    if group:
        out.append((current_rev, tuple(group)))
    return out


def _prev_kv(conn: sqlite3.Connection, key: bytes, rev: int, row_id: int) -> KeyValue | None:
    row = conn.execute(_PREV_SQL, (key, rev, row_id)).fetchone()
    if row is None or row[6]:
        return None
    return KeyValue(*row[:6])


def lease_keys(conn: sqlite3.Connection, lease_id: int) -> tuple[bytes, ...]:
    return tuple(row[0] for row in conn.execute(LEASE_KEYS_SQL, (lease_id,)))


def page_usage(conn: sqlite3.Connection) -> tuple[int, int]:
    """(bytes of all pages, bytes of pages in use): SQLite's view of the main file."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return pages * page_size, (pages - free) * page_size
