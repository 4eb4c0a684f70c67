"""The global revision and per-key metadata (etcd api_guarantees, "Revision" and KV docs).

* The store's revision is 1 when empty and +1 per write transaction; a txn of
  several ops is one revision, and a write that changes nothing (a delete that
  matches no key, a read-only txn) does not advance it (etcd's mvcc
  ``storeTxnWrite.End`` bumps only when there are changes).
* A key's create_revision is the revision that created it, mod_revision the
  last one that changed it, version counts its puts since creation, and a
  delete resets it: re-creating starts again at version 1.
"""

from __future__ import annotations

from observe import current_revision

from skiff.store.protocol import Store
from skiff.store.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    KeyValue,
    Put,
    Range,
    prefix_end,
)


async def test_revision_starts_at_one_and_counts_write_transactions(fresh_store: Store) -> None:
    store = fresh_store
    assert await current_revision(store) == 1
    status = await store.status()
    assert (status.revision, status.compact_revision) == (1, 0)
    assert await store.lease_leases() == ()
    assert (await store.range(Range(b"\0", b"\0"))).count == 0

    assert (await store.put(Put(b"a", b"1"))).revision == 2
    assert (await store.put(Put(b"a", b"2"))).revision == 3
    assert (await store.delete_range(DeleteRange(b"a"))).revision == 4
    assert await current_revision(store) == 4
    assert (await store.status()).revision == 4


async def test_multi_op_txn_is_one_revision(store: Store, prefix: bytes) -> None:
    start = await current_revision(store)
    a, b, c = prefix + b"a", prefix + b"b", prefix + b"c"
    await store.put(Put(c, b"old"))
    result = await store.txn([], [Put(a, b"1"), Put(b, b"2"), DeleteRange(c)])
    assert result.succeeded
    assert result.revision == start + 2
    assert await current_revision(store) == start + 2
    kvs = (await store.range(Range(prefix, prefix_end(prefix)))).kvs
    assert [(kv.key, kv.mod_revision) for kv in kvs] == [(a, start + 2), (b, start + 2)]


async def test_writes_that_change_nothing_do_not_advance_the_revision(store: Store, prefix: bytes) -> None:
    await store.put(Put(prefix + b"k", b"v"))
    start = await current_revision(store)

    deleted = await store.delete_range(DeleteRange(prefix + b"missing"))
    assert (deleted.deleted, deleted.revision) == (0, start)

    read_only = await store.txn([], [Range(prefix + b"k")])
    assert read_only.succeeded
    assert read_only.revision == start

    # The failure branch runs, and it only reads.
    failed = await store.txn(
        [Compare(prefix + b"k", CompareTarget.VALUE, CompareResult.EQUAL, b"other")],
        [Put(prefix + b"k", b"never")],
        [Range(prefix + b"k")],
    )
    assert not failed.succeeded
    assert failed.revision == start

    # A txn whose only write is a delete of nothing changes nothing either.
    noop_delete = await store.txn([], [DeleteRange(prefix + b"missing")])
    assert noop_delete.revision == start
    assert await current_revision(store) == start


async def test_key_metadata_across_puts_delete_and_recreate(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    r1 = (await store.put(Put(key, b"one"))).revision
    assert (await store.get(key)) == KeyValue(key, b"one", create_revision=r1, mod_revision=r1, version=1)

    r2 = (await store.put(Put(key, b"two"))).revision
    assert r2 == r1 + 1
    assert (await store.get(key)) == KeyValue(key, b"two", create_revision=r1, mod_revision=r2, version=2)

    r3 = (await store.delete_range(DeleteRange(key))).revision
    assert r3 == r2 + 1
    assert await store.get(key) is None

    r4 = (await store.put(Put(key, b"three"))).revision
    assert (await store.get(key)) == KeyValue(key, b"three", create_revision=r4, mod_revision=r4, version=1)

    # History stays readable at each revision.
    assert (await store.get(key, revision=r1)) == KeyValue(key, b"one", r1, r1, 1)
    assert (await store.get(key, revision=r2)) == KeyValue(key, b"two", r1, r2, 2)
    assert await store.get(key, revision=r3) is None


async def test_put_with_lease_records_it_and_a_later_put_without_detaches(store: Store, prefix: bytes) -> None:
    key = prefix + b"leased"
    lease = await store.lease_grant(60)
    try:
        await store.put(Put(key, b"v", lease=lease.id))
        assert (await store.get(key)) is not None
        assert (await store.get(key)).lease == lease.id  # type: ignore[union-attr]

        # ignore_lease keeps the attached lease; a plain put replaces it with none.
        await store.put(Put(key, b"v2", ignore_lease=True))
        assert (await store.get(key)).lease == lease.id  # type: ignore[union-attr]
        await store.put(Put(key, b"v3"))
        assert (await store.get(key)).lease == 0  # type: ignore[union-attr]
    finally:
        await store.lease_revoke(lease.id)
    assert (await store.get(key)) is not None  # detached, so the revoke left it alone


async def test_put_and_delete_return_previous_kvs_when_asked(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    first = await store.put(Put(key, b"one", prev_kv=True))
    assert first.prev_kv is None

    second = await store.put(Put(key, b"two", prev_kv=True))
    assert second.prev_kv == KeyValue(key, b"one", first.revision, first.revision, 1)

    without = await store.put(Put(key, b"three"))
    assert without.prev_kv is None

    deleted = await store.delete_range(DeleteRange(key, prev_kv=True))
    assert deleted.deleted == 1
    assert deleted.prev_kvs == (KeyValue(key, b"three", first.revision, without.revision, 3),)


async def test_put_ignore_value_keeps_the_value_and_bumps_the_revision(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    created = await store.put(Put(key, b"kept"))
    touched = await store.put(Put(key, ignore_value=True))
    assert touched.revision == created.revision + 1
    assert (await store.get(key)) == KeyValue(key, b"kept", created.revision, touched.revision, 2)


async def test_delete_range_counts_and_deletes_in_one_revision(store: Store, prefix: bytes) -> None:
    for name in (b"a", b"b", b"c"):
        await store.put(Put(prefix + name, name))
    start = await current_revision(store)
    deleted = await store.delete_range(DeleteRange(prefix + b"a", prefix + b"c", prev_kv=True))
    assert deleted.deleted == 2
    assert deleted.revision == start + 1
    assert [kv.key for kv in deleted.prev_kvs] == [prefix + b"a", prefix + b"b"]
    assert [kv.key for kv in (await store.range(Range(prefix, prefix_end(prefix)))).kvs] == [prefix + b"c"]
