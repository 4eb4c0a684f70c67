"""The embedded Store: etcd v3 semantics on one SQLite file.

Layout and schema: ``sqlite_schema`` (a kine-like revision log plus a
current-state table).  Threads: one writer thread (``sqlite_writer``: every
write, group commit) and a small pool of reader threads, each with its own
connection; the event loop never touches SQLite.  Watchers are fed on the
loop by ``watch_hub``.

Durability (fsync policy): WAL with ``synchronous = FULL`` — every commit
group fsyncs the WAL before any request in it is acknowledged, so an
acknowledged write survives ``kill -9`` and power loss; concurrent writers
share one fsync per group, which is what makes throughput grow with the
number of clients.  Checkpoints (SQLite's automatic ones, every ~1000 pages)
fsync the main file too.

Consistency: a request's future resolves only after its group's COMMIT, and
every read runs in a fresh read transaction, so a read issued after an
acknowledged write sees it (linearizable); a read's header revision and its
rows come from the same WAL snapshot.  Readers never block the writer.

Space: compaction deletes superseded versions and tombstones below the compact
revision (a tombstone at it stays until the next compaction, so that a watch
from the compaction point still sees that DELETE), then runs ``PRAGMA
incremental_vacuum`` right after that write commits (the file is created with
``auto_vacuum = INCREMENTAL``), so ``db_size_in_use`` drops at once and the
file shrinks at the next WAL checkpoint.  The quota and its NOSPACE alarm are
described in ``sqlite_writer``.

Leases: granted leases and their TTLs live in the ``lease`` table; deadlines
are kept in memory and a background task revokes expired leases every 500 ms
(etcd's lessor checks at the same pace).  After a restart every lease gets a
fresh full TTL, as etcd's lessor does when a member is promoted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from skiff.store.conditional import ConditionalWrites
from skiff.store.errors import LeaseNotFound, LeaseTTLTooLarge, Unavailable
from skiff.store.key_span import KeySpan
from skiff.store.protocol import Watcher
from skiff.store.request_checks import (
    check_delete,
    check_put,
    check_range,
    check_size,
    check_txn,
    check_watch,
    put_size,
)
from skiff.store.sqlite_reads import META_SQL, lease_keys, page_usage, read_events, read_range
from skiff.store.sqlite_schema import connect, create_or_open
from skiff.store.sqlite_writer import Outcome, Published, SqliteWriter
from skiff.store.types import (
    DEFAULT_QUOTA_BYTES,
    MAX_LEASE_TTL,
    MIN_LEASE_TTL,
    Compare,
    DeleteRange,
    DeleteResult,
    LeaseGrant,
    LeaseStatus,
    Op,
    Put,
    PutResult,
    Range,
    RangeResult,
    StoreStatus,
    Txn,
    TxnResult,
)
from skiff.store.watch_hub import DEFAULT_PROGRESS_INTERVAL, HistoryBatch, WatchHub

log = logging.getLogger(__name__)

T = TypeVar("T")

#: etcd's lessor checks for expired leases every 500 ms.
LEASE_CHECK_INTERVAL = 0.5
#: Reader threads; SQLite releases the GIL while it works, two cores are plenty busy with 4.
READER_THREADS = 4
#: Keys whose compacted rows are dropped per write transaction (etcd's compaction batch limit is 1,000).
COMPACTION_BATCH_KEYS = 1000


class _LeaseTimer:
    __slots__ = ("deadline", "ttl")

    def __init__(self, ttl: int, deadline: float) -> None:
        self.ttl = ttl
        self.deadline = deadline


class SqliteStore(ConditionalWrites):
    """Open with ``await SqliteStore.open(path)``; satisfies ``skiff.store.protocol.Store``."""

    def __init__(
        self,
        path: Path,
        loop: asyncio.AbstractEventLoop,
        *,
        progress_interval: float,
        clock: Callable[[], float],
        lease_check_interval: float,
        reader_threads: int,
    ) -> None:
        self._path = path
        self._loop = loop
        self._clock = clock
        self._lease_check_interval = lease_check_interval
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_conns_lock = threading.Lock()
        self._readers = ThreadPoolExecutor(max_workers=reader_threads, thread_name_prefix="skiff-sqlite-reader")
        self._hub = WatchHub(0, self._read_history, progress_interval)
        self._leases: dict[int, _LeaseTimer] = {}
        self._revoking: set[int] = set()
        self._closed = False
        self._compacting = asyncio.Lock()
        self._writer: SqliteWriter
        self._expiry_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        quota_bytes: int = DEFAULT_QUOTA_BYTES,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        lease_check_interval: float = LEASE_CHECK_INTERVAL,
        reader_threads: int = READER_THREADS,
    ) -> SqliteStore:
        loop = asyncio.get_running_loop()
        store = cls(
            Path(path),
            loop,
            progress_interval=progress_interval,
            clock=clock,
            lease_check_interval=lease_check_interval,
            reader_threads=reader_threads,
        )
        conn = await asyncio.to_thread(create_or_open, store._path)
        leases = await asyncio.to_thread(lambda: conn.execute("SELECT id, ttl FROM lease").fetchall())
        store._writer = await asyncio.to_thread(SqliteWriter, conn, loop, store._deliver, quota_bytes)
        store._hub.revision = store._writer.revision
        now = clock()
        store._leases = {lease_id: _LeaseTimer(ttl, now + ttl) for lease_id, ttl in leases}
        store._expiry_task = loop.create_task(store._expire_leases(), name="skiff-sqlite-lease-expiry")
        return store

    # -- plumbing --------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("etcdserver: store is closed")

    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self._path, writer=False)
            self._local.conn = conn
            with self._reader_conns_lock:
                self._reader_conns.append(conn)
        return conn

    def _in_snapshot(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, revision, compact_revision, *args)`` in one read transaction."""
        conn = self._reader_conn()
        conn.execute("BEGIN")
        try:
            revision, compact_revision = conn.execute(META_SQL).fetchone()
            return fn(conn, revision, compact_revision, *args)
        finally:
            conn.execute("COMMIT")

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        self._check_open()
        try:
            return await self._loop.run_in_executor(self._readers, self._in_snapshot, fn, *args)
        except sqlite3.Error as err:
            raise Unavailable(f"etcdserver: sqlite store failed: {err}") from err

    async def _write(self, fn: Callable[[Any], T], arg: Any, after: Callable[[Any], None] | None = None) -> T:
        self._check_open()
        result: T = await self._writer.submit(fn, arg, after)
        return result

    def _deliver(self, outcomes: list[Outcome], published: Published) -> None:
        """On the loop, after a commit: events to watchers first, then the callers' answers."""
        self._hub.publish(published)
        for fut, after, result, error in outcomes:
            if error is None and after is not None:
                after(result)
            if fut.done():
                continue
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)

    # -- KV ----------------------------------------------------------------------------
    async def range(self, req: Range) -> RangeResult:
        check_range(req)
        return await self._read(read_range, req)

    async def put(self, req: Put) -> PutResult:
        check_put(req)
        check_size(put_size(req))
        return await self._write(self._writer.put, req)

    async def delete_range(self, req: DeleteRange) -> DeleteResult:
        check_delete(req)
        return await self._write(self._writer.delete_range, req)

    async def txn(
        self,
        compares: tuple[Compare, ...] | list[Compare],
        success: tuple[Op, ...] | list[Op] = (),
        failure: tuple[Op, ...] | list[Op] = (),
    ) -> TxnResult:
        request = Txn(tuple(compares), tuple(success), tuple(failure))
        check_txn(request)
        return await self._write(self._writer.txn, request)

    async def compact(self, revision: int) -> None:
        """Compaction is marked at once; the rows go in batches of keys, other writes in between.

        Returns once every batch is done (etcd's ``physical`` compaction).  One compaction at a time:
        the next one only looks at keys written since this one's point.
        """
        async with self._compacting:
            keys = await self._write(self._writer.compact, revision)
            for start in range(0, len(keys), COMPACTION_BATCH_KEYS):
                await self._write(self._writer.drop_compacted, (keys[start : start + COMPACTION_BATCH_KEYS], revision))

    # -- watch ---------------------------------------------------------------------------
    async def watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
    ) -> Watcher:
        self._check_open()
        key = key or b"\0"  # etcd's watch server: an empty key means the smallest key
        check_watch(key, range_end, start_revision)
        return self._hub.watch(KeySpan.of(key, range_end), start_revision, prev_kv, progress_notify)

    async def _read_history(self, span: KeySpan, first: int, window: int, prev_kv: bool) -> HistoryBatch:
        def read(conn: sqlite3.Connection, revision: int, compact_revision: int) -> HistoryBatch:
            if first < compact_revision:
                return HistoryBatch(revision, compact_revision, first - 1, [])
            last = min(revision, first + window - 1)
            if last < first:
                return HistoryBatch(revision, compact_revision, first - 1, [])
            return HistoryBatch(revision, compact_revision, last, read_events(conn, span, first, last, prev_kv))

        return await self._read(read)

    # -- leases --------------------------------------------------------------------------
    async def lease_grant(self, ttl: int, lease_id: int = 0) -> LeaseGrant:
        if ttl > MAX_LEASE_TTL:
            raise LeaseTTLTooLarge()
        ttl = max(ttl, MIN_LEASE_TTL)
        return await self._write(self._writer.lease_grant, (lease_id, ttl), self._lease_granted)

    def _lease_granted(self, grant: LeaseGrant) -> None:
        self._leases[grant.id] = _LeaseTimer(grant.ttl, self._clock() + grant.ttl)

    async def lease_revoke(self, lease_id: int) -> int:
        try:
            return await self._write(self._writer.lease_revoke, lease_id, functools.partial(self._lease_gone, lease_id))
        except LeaseNotFound:
            self._lease_gone(lease_id)
            raise

    def _lease_gone(self, lease_id: int, _result: object = None) -> None:
        self._leases.pop(lease_id, None)
        self._revoking.discard(lease_id)

    async def lease_keepalive(self, lease_id: int) -> int:
        self._check_open()
        timer = self._leases.get(lease_id)
        now = self._clock()
        if timer is None or lease_id in self._revoking or timer.deadline <= now:
            raise LeaseNotFound()
        timer.deadline = now + timer.ttl
        return timer.ttl

    async def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseStatus:
        self._check_open()
        timer = self._leases.get(lease_id)
        if timer is None:
            return LeaseStatus(lease_id, -1, 0)  # etcd's TimeToLive answer for an unknown lease
        attached = await self._read(lambda conn, _rev, _compact: lease_keys(conn, lease_id)) if keys else ()
        remaining = max(0, int(timer.deadline - self._clock()))
        return LeaseStatus(lease_id, remaining, timer.ttl, attached)

    async def lease_leases(self) -> tuple[int, ...]:
        self._check_open()
        return tuple(sorted(self._leases))

    async def _expire_leases(self) -> None:
        while True:
            await asyncio.sleep(self._lease_check_interval)
            now = self._clock()
            for lease_id, timer in list(self._leases.items()):
                if timer.deadline <= now and lease_id not in self._revoking:
                    self._revoking.add(lease_id)
                    fut = self._writer.submit(
                        self._writer.lease_revoke, lease_id, functools.partial(self._lease_gone, lease_id)
                    )
                    fut.add_done_callback(functools.partial(self._expiry_done, lease_id))

    def _expiry_done(self, lease_id: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        error = fut.exception()
        if isinstance(error, LeaseNotFound):
            self._lease_gone(lease_id)
        elif error is not None:
            log.warning("sqlite store: revoking expired lease %x failed (will retry): %s", lease_id, error)
            self._revoking.discard(lease_id)

    # -- maintenance ---------------------------------------------------------------------
    async def status(self) -> StoreStatus:
        def read(conn: sqlite3.Connection, revision: int, compact_revision: int) -> tuple[int, int, int, int]:
            _, in_use = page_usage(conn)
            files = (self._path, self._path.with_name(self._path.name + "-wal"))
            size = sum(p.stat().st_size for p in files if p.exists())
            return revision, max(0, compact_revision), size, in_use

        revision, compact_revision, size, in_use = await self._read(read)
        alarms = ("NOSPACE",) if self._writer.nospace else ()
        return StoreStatus(revision, compact_revision, size, in_use, self._writer.quota_bytes, alarms)

    async def backup(self, path: Path) -> None:
        """Write a consistent copy of the database to ``path`` (answers etcd's Snapshot).

        SQLite's online backup API copies one read snapshot while writes go on.
        """

        def copy() -> None:
            dest = sqlite3.connect(path)
            try:
                self._reader_conn().backup(dest)
            finally:
                dest.close()

        self._check_open()
        await self._loop.run_in_executor(self._readers, copy)

    async def defragment(self) -> None:
        """Give freed pages back to the file system (answers etcd's Defragment).

        Compaction already vacuums freed pages into the WAL; a truncating
        checkpoint moves them into the main file and shrinks both files.
        """

        def checkpoint() -> None:
            self._reader_conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

        self._check_open()
        await self._loop.run_in_executor(self._readers, checkpoint)

    async def close(self) -> None:
        """Stop lease expiry, end every watcher's iteration, finish queued writes, close files."""
        if self._closed:
            return
        self._closed = True
        if self._expiry_task is not None:
            self._expiry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry_task
        self._hub.close()
        await asyncio.to_thread(self._writer.stop)
        await asyncio.to_thread(self._readers.shutdown, True)
        with self._reader_conns_lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            conn.close()
        await asyncio.sleep(0)  # let the writer's last call_soon_threadsafe deliveries run


__all__ = ["SqliteStore"]
