"""Compaction (etcd's KV.Compact RPC doc and mvcc ``kvstore.compact``/``rangeKeys``).

* compact(rev) drops every version superseded at or before ``rev``; a read at
  a revision below ``rev`` raises Compacted, a read at ``rev`` itself still
  works (etcd rejects only ``rev < compactMainRev``).
* Compacting at or below the previous compaction point raises Compacted;
  beyond the current revision FutureRevision.  Compaction is not a write: the
  revision does not move.
"""

from __future__ import annotations

import pytest
from observe import contents, current_revision

from skiff.store.errors import Compacted, FutureRevision
from skiff.store.protocol import Store
from skiff.store.types import DeleteRange, KeyValue, Put, Range, prefix_end


async def test_reads_below_the_compaction_point_raise_compacted(store: Store, prefix: bytes) -> None:
    a, b = prefix + b"a", prefix + b"b"
    r1 = (await store.put(Put(a, b"1"))).revision
    r2 = (await store.put(Put(a, b"2"))).revision
    r3 = (await store.put(Put(b, b"gone"))).revision
    r4 = (await store.delete_range(DeleteRange(b))).revision
    r5 = (await store.put(Put(a, b"3"))).revision

    await store.compact(r4)
    assert await current_revision(store) == r5
    whole = (prefix, prefix_end(prefix))
    for below in (r1, r2, r3):
        with pytest.raises(Compacted) as raised:
            await store.range(Range(*whole, revision=below))
        assert raised.value.text == "etcdserver: mvcc: required revision has been compacted"
        assert raised.value.compact_revision == r4
        with pytest.raises(Compacted):
            await store.get(a, revision=below)

    # At the compaction point the keyspace as of r4 is intact.
    assert (await store.range(Range(*whole, revision=r4))).kvs == (KeyValue(a, b"2", r1, r2, 2),)
    assert (await store.range(Range(*whole))).kvs == (KeyValue(a, b"3", r1, r5, 3),)
    assert (await store.status()).compact_revision == r4


async def test_compact_at_or_below_previous_point_raises_compacted(store: Store, prefix: bytes) -> None:
    for i in range(3):
        await store.put(Put(prefix + b"k", b"%d" % i))
    current = await current_revision(store)
    await store.compact(current - 1)
    for again in (current - 1, current - 2):
        with pytest.raises(Compacted):
            await store.compact(again)
    await store.compact(current)  # at the current revision: allowed
    assert await current_revision(store) == current


async def test_compact_beyond_current_raises_future_revision(store: Store, prefix: bytes) -> None:
    await store.put(Put(prefix + b"k", b"v"))
    current = await current_revision(store)
    with pytest.raises(FutureRevision) as raised:
        await store.compact(current + 1)
    assert raised.value.text == "etcdserver: mvcc: required revision is a future revision"
    assert await current_revision(store) == current
    assert (await store.range(Range(prefix + b"k", revision=current - 1))).kvs == ()  # history still readable


async def test_compaction_keeps_live_keys_and_counts(store: Store, prefix: bytes) -> None:
    for i in range(20):
        await store.put(Put(prefix + b"k%02d" % (i % 5), b"v%d" % i))
    await store.delete_range(DeleteRange(prefix + b"k00"))
    before = await contents(store, prefix)
    await store.compact(await current_revision(store))
    assert await contents(store, prefix) == before
    assert [kv.version for kv in before] == [4, 4, 4, 4]
    await store.put(Put(prefix + b"k00", b"again"))
    again = await store.get(prefix + b"k00")
    assert again is not None and again.version == 1
