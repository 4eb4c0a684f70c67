"""The SQLite backend's single writer: one thread, one connection, group commit.

Write requests from the event loop queue up as jobs.  The writer takes every
job waiting (up to ``MAX_GROUP``), opens one write transaction, applies each
job inside its own SAVEPOINT (a job that fails — lease not found, key not
found for ignore_value, quota — rolls back alone and gets its error), then
COMMITs the group once: one fsync of the WAL for the whole group.  Only after
COMMIT returns does it hand the outcomes back to the loop in one
``call_soon_threadsafe``; the loop publishes the events to the watch hub in
revision order and resolves the callers' futures.  So an acknowledged write is
durable and visible to every later read.

Revisions follow etcd's mvcc: a job that changes keys takes revision + 1; a
job that changes nothing (a delete matching no key, a txn whose branch only
reads, a revoke of a lease without keys) leaves the revision alone.  Txn
semantics follow etcd v3.5's ``applierV3backend.Txn``: all compares (nested
ones too) are evaluated on the state before the txn, then the puts of the
chosen path are checked (ignore_value/ignore_lease need the key, leases must
exist) and its ranges' revisions validated, and only then are ops applied;
ranges later in a branch see the branch's earlier writes.  Response
revisions: a put inside a txn reports the txn's revision, a range or delete
the revision as seen at that point, a nested txn 0 (etcd leaves the nested
header empty).

Quota: a job that adds data is refused with NoSpace, raising the NOSPACE
alarm, when the database's page bytes plus its cost reach ``quota_bytes``;
while the alarm is raised every such job is refused (etcd's capped applier).
Deletes, reads, revokes and compaction still run.  The alarm clears when a
compaction (which vacuums freed pages) brings the database below the quota —
etcd instead needs ``alarm disarm`` after a defrag; we have no disarm call.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

from skiff.store.errors import (
    Compacted,
    FutureRevision,
    KeyNotFound,
    LeaseExists,
    LeaseNotFound,
    NoSpace,
    StoreError,
    Unavailable,
)
from skiff.store.key_span import KeySpan, span_sql
from skiff.store.sqlite_reads import LEASE_KEYS_SQL, current_kvs_sql, page_usage, read_range
from skiff.store.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteResult,
    Event,
    EventType,
    KeyValue,
    LeaseGrant,
    OpResult,
    Put,
    PutResult,
    Range,
    Txn,
    TxnResult,
)

log = logging.getLogger(__name__)

#: Jobs per commit group: bounds one transaction's size and the loop's burst of callbacks.
MAX_GROUP = 1024
#: etcd's quota costs: per put on top of key and value, per lease grant.
KV_OVERHEAD = 256
LEASE_OVERHEAD = 64

_INSERT_LOG = (
    "INSERT INTO log (id, revision, key, value, create_revision, version, lease, deleted) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_CURRENT = (
    "INSERT INTO current (key, id, lease) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET id = excluded.id, "
    "lease = excluded.lease"
)
_LEASE_EXISTS = "SELECT 1 FROM lease WHERE id = ?"
_ZERO_KV = KeyValue(b"")

#: The outcome of one job, handed to the loop: (future, after-hook, result, error).
Outcome = tuple["asyncio.Future[Any]", "Callable[[Any], None] | None", Any, "BaseException | None"]
Published = list[tuple[int, tuple[Event, ...]]]
Job = tuple[Callable[[Any], Any], Any, "asyncio.Future[Any]", "Callable[[Any], None] | None"]


class SqliteWriter:
    """Owns the write connection; every method but ``submit``/``stop`` runs on the writer thread."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[list[Outcome], Published], None],
        quota_bytes: int,
    ) -> None:
        self._conn = conn
        self._loop = loop
        self._deliver = deliver
        self.quota_bytes = quota_bytes
        revision, compact_revision = conn.execute("SELECT revision, compact_revision FROM meta").fetchone()
        self.revision: int = revision
        self.compact_revision: int = compact_revision
        self._next_id: int = (conn.execute("SELECT max(id) FROM log").fetchone()[0] or 0) + 1
        self.size_bytes = page_usage(conn)[0]
        self.nospace = False
        self._vacuum_pending = False
        self._group_cost = 0
        self._events: list[Event] = []
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="skiff-sqlite-writer", daemon=True)
        self._thread.start()

    # -- loop side -------------------------------------------------------------
    def submit(
        self, fn: Callable[[Any], Any], arg: Any, after: Callable[[Any], None] | None = None
    ) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put((fn, arg, fut, after))
        return fut

    def stop(self) -> None:
        """Blocking: finish queued jobs, close the connection, join the thread."""
        self._queue.put(None)
        self._thread.join()

    # -- the thread --------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                batch = [job]
                stop = False
                while len(batch) < MAX_GROUP:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                try:
                    self._apply_group(batch)
                except Exception as err:  # never let the writer die: fail this group, keep serving
                    log.exception("sqlite store: writer failed on a group of %d", len(batch))
                    self._fail_group(batch, err)
                if stop:
                    return
        finally:
            self._conn.close()

    def _state(self) -> tuple[int, int, int]:
        return self.revision, self._next_id, self.compact_revision

    def _restore(self, state: tuple[int, int, int]) -> None:
        self.revision, self._next_id, self.compact_revision = state

    def _apply_group(self, batch: list[Job]) -> None:
        conn = self._conn
        outcomes: list[Outcome] = []
        published: Published = []
        start = self._state()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, arg, fut, after in batch:
                before = self._state()
                self._events = []
                conn.execute("SAVEPOINT job")
                try:
                    result = fn(arg)
                except Exception as err:  # handed to the caller, not swallowed
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    self._restore(before)
                    outcomes.append((fut, None, None, _as_store_error(err)))
                    continue
                conn.execute("RELEASE job")
                if self._events:
                    self.revision += 1
                    published.append((self.revision, tuple(self._events)))
                outcomes.append((fut, after, result, None))
            if self.revision != start[0] or self.compact_revision != start[2]:
                conn.execute(
                    "UPDATE meta SET revision = ?, compact_revision = ?", (self.revision, self.compact_revision)
                )
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            log.error("sqlite store: commit group of %d failed: %s", len(batch), err)
            self._restore(start)
            self._fail_group(batch, err)
            return
        self._events = []
        self._group_cost = 0
        if self._vacuum_pending:
            self._vacuum()
        self.size_bytes = page_usage(conn)[0]
        self._hand_back(outcomes, published)

    def _vacuum(self) -> None:
        """After a compaction's commit: give its freed pages back (auto_vacuum = INCREMENTAL).

        Python's sqlite3 steps a row-less PRAGMA once, which frees a single
        page; executescript runs it to completion, in its own transaction.
        """
        self._vacuum_pending = False
        try:
            self._conn.executescript("PRAGMA incremental_vacuum")
        except sqlite3.Error as err:  # the compaction itself is committed; space comes back next time
            log.warning("sqlite store: incremental vacuum failed: %s", err)
            return
        if self.nospace and page_usage(self._conn)[0] < self.quota_bytes:
            log.warning("sqlite store: database back under quota after compaction: NOSPACE alarm cleared")
            self.nospace = False

    def _fail_group(self, batch: list[Job], err: BaseException) -> None:
        """Nothing of ``batch`` happened: roll back what is open and fail every job."""
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error as rollback_err:
                log.error("sqlite store: rollback failed too: %s", rollback_err)
        self._events = []
        self._group_cost = 0
        failure = _as_store_error(err)
        self._hand_back([(fut, None, None, failure) for _, _, fut, _ in batch], [])

    def _hand_back(self, outcomes: list[Outcome], published: Published) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, outcomes, published)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("sqlite store: loop closed, dropped %d outcomes", len(outcomes))

    # -- helpers for jobs ----------------------------------------------------------
    def _write_revision(self) -> int:
        return self.revision + 1

    def _seen_revision(self) -> int:
        """The revision a read inside the current job sees (etcd: beginRev, +1 once it wrote)."""
        return self.revision + 1 if self._events else self.revision

    def _charge(self, cost: int) -> None:
        if cost <= 0:
            return
        if self.nospace or self.size_bytes + self._group_cost + cost >= self.quota_bytes:
            if not self.nospace:
                log.warning("sqlite store: database space exceeded (quota %d bytes): NOSPACE alarm", self.quota_bytes)
            self.nospace = True
            raise NoSpace()
        self._group_cost += cost

    def _lease_exists(self, lease_id: int) -> bool:
        return self._conn.execute(_LEASE_EXISTS, (lease_id,)).fetchone() is not None

    def _current(self, key: bytes) -> KeyValue | None:
        row = self._conn.execute(current_kvs_sql("single", True), (key, 1)).fetchone()
        return KeyValue(*row) if row else None

    # -- jobs: KV --------------------------------------------------------------------
    def put(self, req: Put) -> PutResult:
        self._charge(_put_cost(req))
        return self._put(req)

    def _put(self, req: Put) -> PutResult:
        prev = self._current(req.key)
        value, lease = req.value, req.lease
        if req.ignore_value or req.ignore_lease:
            if prev is None:
                raise KeyNotFound()
            if req.ignore_value:
                value = prev.value
            if req.ignore_lease:
                lease = prev.lease
        if lease and not self._lease_exists(lease):
            raise LeaseNotFound()
        rev = self._write_revision()
        create, version = (prev.create_revision, prev.version + 1) if prev else (rev, 1)
        row_id = self._next_id
        self._next_id += 1
        self._conn.execute(_INSERT_LOG, (row_id, rev, req.key, value, create, version, lease, 0))
        self._conn.execute(_UPSERT_CURRENT, (req.key, row_id, lease))
        self._events.append(Event(EventType.PUT, KeyValue(req.key, value, create, rev, version, lease), prev))
        return PutResult(rev, prev if req.prev_kv else None)

    def delete_range(self, req: DeleteRange) -> DeleteResult:
        span = KeySpan.of(req.key, req.range_end)
        prevs = [KeyValue(*row) for row in self._conn.execute(current_kvs_sql(span.shape, True), (*span.params, -1))]
        if not prevs:
            return DeleteResult(self._seen_revision())
        self._delete_keys(prevs)
        self._conn.execute(f"DELETE FROM current WHERE {span_sql(span.shape, 'key')}", span.params)
        return DeleteResult(self._write_revision(), len(prevs), tuple(prevs) if req.prev_kv else ())

    def _delete_keys(self, prevs: list[KeyValue]) -> None:
        """Tombstones for ``prevs`` (the caller removes them from ``current``)."""
        rev = self._write_revision()
        first = self._next_id
        self._next_id += len(prevs)
        self._conn.executemany(_INSERT_LOG, [(first + i, rev, kv.key, b"", 0, 0, 0, 1) for i, kv in enumerate(prevs)])
        self._events.extend(Event(EventType.DELETE, KeyValue(kv.key, b"", 0, rev, 0, 0), kv) for kv in prevs)

    def range(self, req: Range) -> Any:
        return read_range(self._conn, self._seen_revision(), self.compact_revision, req)

    # -- jobs: txn -------------------------------------------------------------------
    def txn(self, txn: Txn) -> TxnResult:
        path = self._compare_path(txn)
        self._charge(_txn_cost(txn))
        begin = self.revision
        self._check_path(txn, iter(path), begin)
        result = self._apply_branch(txn, iter(path))
        return TxnResult(self._seen_revision(), result.succeeded, result.responses)

    def _compare_path(self, txn: Txn) -> list[bool]:
        """etcd's compareToPath: this txn's outcome, then its chosen branch's nested txns, depth first."""
        ok = all(self._compare(cmp) for cmp in txn.compares)
        path = [ok]
        for op in txn.success if ok else txn.failure:
            if isinstance(op, Txn):
                path.extend(self._compare_path(op))
        return path

    def _compare(self, cmp: Compare) -> bool:
        span = KeySpan.of(cmp.key, cmp.range_end)
        sql = current_kvs_sql(span.shape, cmp.target == CompareTarget.VALUE)
        rows = self._conn.execute(sql, (*span.params, -1)).fetchall()
        if not rows:
            # etcd: a VALUE compare on a missing key is false; other targets compare against zeros.
            return cmp.target != CompareTarget.VALUE and _compare_kv(cmp, _ZERO_KV)
        return all(_compare_kv(cmp, KeyValue(*row)) for row in rows)

    def _check_path(self, txn: Txn, path: Iterator[bool], begin: int) -> None:
        """etcd's checkRequests (puts, then ranges) on the chosen path, before any write."""
        for op in txn.success if next(path) else txn.failure:
            if isinstance(op, Txn):
                self._check_path(op, path, begin)
            elif isinstance(op, Put):
                if (op.ignore_value or op.ignore_lease) and self._current(op.key) is None:
                    raise KeyNotFound()
                if op.lease and not self._lease_exists(op.lease):
                    raise LeaseNotFound()
            elif isinstance(op, Range) and op.revision:
                if op.revision > begin:
                    raise FutureRevision()
                if op.revision < self.compact_revision:
                    raise Compacted(self.compact_revision)

    def _apply_branch(self, txn: Txn, path: Iterator[bool]) -> TxnResult:
        ok = next(path)
        responses: list[OpResult] = []
        for op in txn.success if ok else txn.failure:
            if isinstance(op, Range):
                responses.append(self.range(op))
            elif isinstance(op, Put):
                responses.append(self._put(op))
            elif isinstance(op, DeleteRange):
                responses.append(self.delete_range(op))
            else:
                responses.append(self._apply_branch(op, path))
        return TxnResult(0, ok, tuple(responses))

    # -- jobs: compaction ------------------------------------------------------------
    def compact(self, revision: int) -> list[bytes]:
        """Mark ``revision`` compacted; the keys that may have rows to drop (``drop_compacted`` drops them).

        Reads and watches below ``revision`` are refused from this commit on, so rows are dropped
        afterwards a batch of keys at a time, as etcd's backend compaction works through
        ``--experimental-compaction-batch-limit`` keys per transaction: in one statement, five minutes
        of writes at 5,000 nodes held the writer (every write) for 5-10 s.
        """
        if revision > self.revision:
            raise FutureRevision()
        if revision <= self.compact_revision:
            raise Compacted(max(0, self.compact_revision))
        # Only keys written at or after the previous compaction point can have rows to drop.
        rows = self._conn.execute(
            "SELECT DISTINCT key FROM log WHERE revision >= ? AND revision <= ?", (self.compact_revision, revision)
        )
        keys = [bytes(row[0]) for row in rows]
        self.compact_revision = revision
        return keys

    def drop_compacted(self, arg: tuple[list[bytes], int]) -> None:
        """Drop what compaction at ``revision`` made unreachable, for these keys.

        Per key: every row at or below the point except the newest one there, and that one too if
        it is a tombstone below the point.  A tombstone AT the point stays until the next
        compaction: a watch from the compaction point is allowed and must still see that DELETE
        (etcd issue 18089: etcd dropped it, and a watcher resumed right at the point silently
        skipped the delete; etcd PR 18274 keeps it too).
        """
        keys, revision = arg
        self._conn.executemany(
            "DELETE FROM log WHERE key = ?1 AND revision <= ?2 AND ((deleted = 1 AND revision < ?2) OR id < "
            "(SELECT max(l2.id) FROM log l2 WHERE l2.key = ?1 AND l2.revision <= ?2))",
            [(key, revision) for key in keys],
        )
        self._vacuum_pending = True

    # -- jobs: leases ----------------------------------------------------------------
    def lease_grant(self, arg: tuple[int, int]) -> LeaseGrant:
        lease_id, ttl = arg
        self._charge(LEASE_OVERHEAD)
        if lease_id == 0:
            lease_id = random.getrandbits(63) or 1
            while self._lease_exists(lease_id):
                lease_id = random.getrandbits(63) or 1
        elif self._lease_exists(lease_id):
            raise LeaseExists()
        self._conn.execute("INSERT INTO lease (id, ttl) VALUES (?, ?)", (lease_id, ttl))
        return LeaseGrant(lease_id, ttl)

    def lease_revoke(self, lease_id: int) -> int:
        """Delete the lease and its keys (in key order, one revision); returns the revision after."""
        if not self._lease_exists(lease_id):
            raise LeaseNotFound()
        keys = [row[0] for row in self._conn.execute(LEASE_KEYS_SQL, (lease_id,))]
        prevs = [kv for kv in map(self._current, keys) if kv is not None]
        if prevs:
            self._delete_keys(prevs)
            self._conn.executemany("DELETE FROM current WHERE key = ?", [(kv.key,) for kv in prevs])
        self._conn.execute("DELETE FROM lease WHERE id = ?", (lease_id,))
        return self._seen_revision()


def _compare_kv(cmp: Compare, kv: KeyValue) -> bool:
    """etcd's compareKV."""
    target = cmp.target
    result: int
    if target == CompareTarget.VALUE:
        want = cmp.value if isinstance(cmp.value, bytes) else b""
        result = (kv.value > want) - (kv.value < want)
    else:
        have = {
            CompareTarget.VERSION: kv.version,
            CompareTarget.CREATE: kv.create_revision,
            CompareTarget.MOD: kv.mod_revision,
            CompareTarget.LEASE: kv.lease,
        }[CompareTarget(target)]
        want_int = cmp.value if isinstance(cmp.value, int) else 0
        result = (have > want_int) - (have < want_int)
    if cmp.result == CompareResult.EQUAL:
        return result == 0
    if cmp.result == CompareResult.NOT_EQUAL:
        return result != 0
    if cmp.result == CompareResult.GREATER:
        return result > 0
    return result < 0


def _put_cost(req: Put) -> int:
    return len(req.key) + len(req.value) + KV_OVERHEAD


def _txn_cost(txn: Txn) -> int:
    """etcd's costTxn: the larger branch's puts."""

    def branch(ops: tuple[Any, ...]) -> int:
        total = 0
        for op in ops:
            if isinstance(op, Put):
                total += _put_cost(op)
            elif isinstance(op, Txn):
                total += _txn_cost(op)
        return total

    return max(branch(txn.success), branch(txn.failure))


def _as_store_error(err: BaseException) -> BaseException:
    if isinstance(err, StoreError):
        return err
    wrapped: StoreError
    if isinstance(err, sqlite3.Error) and "full" in str(err).lower():
        wrapped = NoSpace(f"etcdserver: mvcc: database space exceeded ({err})")
    else:
        if not isinstance(err, sqlite3.Error):
            log.error("sqlite store: unexpected error in a write job", exc_info=err)
        wrapped = Unavailable(f"etcdserver: sqlite store failed: {err!r}")
    wrapped.__cause__ = err
    return wrapped
