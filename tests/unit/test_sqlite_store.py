"""Fast checks of the SQLite backend's own machinery (the deep semantics are in tests/conformance).

These look at what only this backend has: the log rows compaction removes,
page reuse, the writer's group commit, the watch hub's overflow fallback, the
lease expiry task (driven by a fake clock) and reopening the file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from skiff.store.errors import Compacted, DuplicateKey, InvalidArgument, KeyNotFound, LeaseNotFound, NoSpace
from skiff.store.protocol import Watcher
from skiff.store.request_checks import check_txn
from skiff.store.sqlite import SqliteStore
from skiff.store.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    EventType,
    Put,
    Range,
    RangeResult,
    Txn,
    WatchResponse,
)
from skiff.store.watch_hub import MAX_BUFFERED_RESPONSES


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "store.db", clock=clock, lease_check_interval=0.01)
    yield opened
    await opened.close()


async def next_response(watcher: Watcher) -> WatchResponse:
    return await asyncio.wait_for(watcher.__anext__(), 10)


def log_rows(path: Path) -> list[tuple[int, bytes, int]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT revision, key, deleted FROM log ORDER BY id").fetchall()


async def test_revisions_move_only_on_writes(store: SqliteStore) -> None:
    assert (await store.status()).revision == 1
    assert (await store.put(Put(b"a", b"1"))).revision == 2
    assert (await store.delete_range(DeleteRange(b"missing"))).revision == 2
    read_only = await store.txn([], [Range(b"a")])
    assert read_only.revision == 2
    assert (await store.txn([], [Put(b"a", b"2"), Put(b"b", b"3")])).revision == 3
    assert (await store.range(Range(b"a", b"\0"))).revision == 3


async def test_concurrent_writes_get_distinct_contiguous_revisions(store: SqliteStore) -> None:
    results = await asyncio.gather(*(store.put(Put(f"k{i}".encode(), b"v")) for i in range(200)))
    assert sorted(r.revision for r in results) == list(range(2, 202))


async def test_failing_request_in_a_group_rolls_back_alone(store: SqliteStore) -> None:
    ok, missing_lease, ignore_missing = await asyncio.gather(
        store.put(Put(b"a", b"1")),
        store.put(Put(b"b", b"1", lease=12345)),
        store.put(Put(b"c", ignore_value=True)),
        return_exceptions=True,
    )
    assert not isinstance(ok, BaseException) and ok.revision == 2
    assert isinstance(missing_lease, LeaseNotFound)
    assert isinstance(ignore_missing, KeyNotFound)
    assert [kv.key for kv in (await store.range(Range(b"\0", b"\0"))).kvs] == [b"a"]
    assert (await store.status()).revision == 2


async def test_txn_compares_see_the_state_before_the_txn(store: SqliteStore) -> None:
    await store.put(Put(b"k", b"v1"))
    nested = Txn((Compare(b"k", CompareTarget.VALUE, CompareResult.EQUAL, b"v1"),), (Range(b"k"),), ())
    res = await store.txn(
        [Compare(b"k", CompareTarget.VERSION, CompareResult.EQUAL, 1)],
        [Put(b"k", b"v2"), nested],
    )
    assert res.succeeded
    inner = res.responses[1]
    assert not isinstance(inner, RangeResult) and inner.succeeded  # compared with v1, before the put
    seen = inner.responses[0]
    assert isinstance(seen, RangeResult) and seen.kvs[0].value == b"v2"  # but reads see the put


@pytest.mark.parametrize(
    "success",
    [
        pytest.param((Put(b"a"), Put(b"a")), id="same-key-twice"),
        pytest.param((DeleteRange(b"a", b"c"), Put(b"b")), id="put-inside-deleted-range"),
        pytest.param((Put(b"b"), Txn((), (DeleteRange(b"b"),), ())), id="put-deleted-in-nested-txn"),
    ],
)
def test_duplicate_writes_in_one_branch_are_refused(success: tuple[Put | DeleteRange | Txn, ...]) -> None:
    with pytest.raises(DuplicateKey):
        check_txn(Txn((), success, ()))


def test_then_and_else_of_a_nested_txn_may_put_the_same_key() -> None:
    check_txn(Txn((), (Txn((), (Put(b"a"),), (Put(b"a"),)),), ()))


async def test_inverted_range_and_negative_revision_are_invalid(store: SqliteStore) -> None:
    with pytest.raises(InvalidArgument):
        await store.range(Range(b"b", b"a"))
    with pytest.raises(InvalidArgument):
        await store.range(Range(b"a", revision=-1))


async def test_watch_replays_history_then_goes_live_without_gap_or_duplicate(store: SqliteStore) -> None:
    for i in range(5):
        await store.put(Put(b"w", str(i).encode()))
    watcher = await store.watch(b"w", start_revision=3)
    await store.put(Put(b"w", b"live"))  # committed while the watcher has not read history yet
    revisions: list[int] = []
    while len(revisions) < 5:
        response = await next_response(watcher)
        revisions.extend(e.kv.mod_revision for e in response.events)
    assert revisions == [3, 4, 5, 6, 7]
    await store.put(Put(b"w", b"later"))
    assert [e.kv.value for e in (await next_response(watcher)).events] == [b"later"]
    await watcher.close()


async def test_a_watcher_that_falls_behind_catches_up_from_the_log(store: SqliteStore) -> None:
    watcher = await store.watch(b"p/", b"p0")
    total = MAX_BUFFERED_RESPONSES + 50
    for i in range(total):
        await store.put(Put(f"p/{i % 7}".encode(), b"x"))
    revisions: list[int] = []
    while len(revisions) < total:
        revisions.extend(e.kv.mod_revision for e in (await next_response(watcher)).events)
    assert revisions == list(range(2, total + 2))
    await watcher.close()


async def test_compaction_removes_superseded_rows_and_frees_pages(tmp_path: Path, store: SqliteStore) -> None:
    big = b"x" * 20_000
    for _ in range(50):
        await store.put(Put(b"big", big))
    await store.put(Put(b"gone", b"1"))
    await store.delete_range(DeleteRange(b"gone"))
    before = await store.status()
    await store.compact(before.revision)
    after = await store.status()
    # The tombstone AT the compaction point stays (a watch from there must still see the DELETE).
    assert log_rows(tmp_path / "store.db") == [(51, b"big", 0), (53, b"gone", 1)]
    assert after.db_size_in_use < before.db_size_in_use / 10
    await store.defragment()  # the freed pages leave the file itself, not just SQLite's freelist
    assert (await store.status()).db_size < before.db_size / 10
    assert (await store.range(Range(b"big"))).kvs[0].version == 50
    with pytest.raises(Compacted) as err:
        await store.range(Range(b"big", revision=before.revision - 1))
    assert err.value.compact_revision == before.revision


async def test_tombstone_at_the_compaction_point_goes_next_time(tmp_path: Path, store: SqliteStore) -> None:
    """etcd issue 18089: a watch from the compaction point C sees a DELETE at C; the next compaction drops it."""
    await store.put(Put(b"k", b"1"))
    deleted = (await store.delete_range(DeleteRange(b"k"))).revision
    await store.put(Put(b"other", b"1"))
    await store.compact(deleted)
    watcher = await store.watch(b"k", start_revision=deleted)
    response = await next_response(watcher)
    await watcher.close()
    assert [(e.type, e.kv.mod_revision) for e in response.events] == [(EventType.DELETE, deleted)]
    assert log_rows(tmp_path / "store.db") == [(deleted, b"k", 1), (deleted + 1, b"other", 0)]
    await store.compact(deleted + 1)  # "k" unwritten since: its tombstone below the new point still goes
    assert log_rows(tmp_path / "store.db") == [(deleted + 1, b"other", 0)]


async def test_expired_lease_deletes_its_keys_in_one_revision(store: SqliteStore, clock: FakeClock) -> None:
    grant = await store.lease_grant(2)
    await store.put(Put(b"l/a", b"1", lease=grant.id))
    await store.put(Put(b"l/b", b"1", lease=grant.id))
    watcher = await store.watch(b"l/", b"l0")
    clock.now += 3  # the expiry task polls every 10 ms of real time and sees the lease expired
    response = await next_response(watcher)
    assert [(e.type, e.kv.key, e.kv.mod_revision) for e in response.events] == [
        (EventType.DELETE, b"l/a", 4),
        (EventType.DELETE, b"l/b", 4),
    ]
    assert (await store.lease_time_to_live(grant.id)).ttl == -1
    with pytest.raises(LeaseNotFound):
        await store.lease_keepalive(grant.id)
    await watcher.close()


async def test_quota_refuses_puts_and_compaction_clears_the_alarm(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "quota.db", quota_bytes=1_000_000)
    try:
        with pytest.raises(NoSpace):
            for _ in range(100):
                await store.put(Put(b"k", b"v" * 50_000))
        assert (await store.status()).alarms == ("NOSPACE",)
        with pytest.raises(NoSpace):
            await store.put(Put(b"small", b"v"))  # the alarm refuses every put, even a small one
        await store.delete_range(DeleteRange(b"k"))  # deletes still work
        await store.compact((await store.status()).revision)
        assert (await store.status()).alarms == ()
        await store.put(Put(b"small", b"v"))
    finally:
        await store.close()


async def test_backup_is_a_consistent_openable_copy(tmp_path: Path, store: SqliteStore) -> None:
    for i in range(20):
        await store.put(Put(b"k%d" % i, b"v"))
    await store.backup(tmp_path / "copy.db")
    copy = await SqliteStore.open(tmp_path / "copy.db")
    try:
        assert (await copy.status()).revision == (await store.status()).revision == 21
        assert (await copy.range(Range(b"k", b"l", count_only=True))).count == 20
    finally:
        await copy.close()


async def test_reopen_keeps_data_revision_and_leases(tmp_path: Path) -> None:
    path = tmp_path / "reopen.db"
    store = await SqliteStore.open(path)
    grant = await store.lease_grant(60)
    await store.put(Put(b"a", b"1", lease=grant.id))
    await store.compact(2)
    await store.close()
    store = await SqliteStore.open(path)
    try:
        status = await store.status()
        assert (status.revision, status.compact_revision) == (2, 2)
        assert (await store.range(Range(b"a"))).kvs[0].lease == grant.id
        assert (await store.lease_time_to_live(grant.id, keys=True)).keys == (b"a",)
        assert (await store.put(Put(b"b", b"2"))).revision == 3
    finally:
        await store.close()


async def test_close_ends_watch_iteration(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "close.db")
    watcher = await store.watch(b"a")
    pending = asyncio.ensure_future(watcher.__anext__())
    await asyncio.sleep(0)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 10)


async def test_progress_notify_reports_the_revision_when_idle(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "progress.db", progress_interval=0.01)
    try:
        await store.put(Put(b"other", b"1"))
        watcher = await store.watch(b"quiet", progress_notify=True)
        response = await next_response(watcher)
        assert response == WatchResponse(2, progress=True)
        await watcher.close()
    finally:
        await store.close()
