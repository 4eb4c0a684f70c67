"""Range (etcd's KV.Range RPC doc and ``applierV3backend.Range``).

* ``range_end`` b"" is one key, b"\\0" every key >= ``key`` (with key b"\\0":
  all keys), anything else the half-open [key, range_end).
* A past ``revision`` reads the keyspace as it was; the header revision is
  still the current one.
* ``count`` is how many keys the range holds, whatever ``limit`` says; ``more``
  says whether ``limit`` cut the result.
* Sorting a non-key target with order NONE sorts ascending (etcd defaults it).
* The min/max mod/create revision filters prune the returned kvs after the
  range is read, so ``count`` still counts every key in the range (etcd).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from observe import current_revision

from skiff.store.protocol import Store
from skiff.store.types import (
    FROM_KEY,
    DeleteRange,
    KeyValue,
    Put,
    Range,
    SortOrder,
    SortTarget,
    prefix_end,
)


def keys(kvs: tuple[KeyValue, ...]) -> list[bytes]:
    return [kv.key for kv in kvs]


async def test_single_key_present_and_absent(store: Store, prefix: bytes) -> None:
    r = (await store.put(Put(prefix + b"a", b"va"))).revision
    await store.put(Put(prefix + b"ab", b"vab"))
    result = await store.range(Range(prefix + b"a"))
    assert result.kvs == (KeyValue(prefix + b"a", b"va", r, r, 1),)
    assert (result.count, result.more) == (1, False)
    assert result.revision == r + 1

    serializable = await store.range(Range(prefix + b"a", serializable=True))
    assert serializable.kvs == result.kvs

    missing = await store.range(Range(prefix + b"zz"))
    assert (missing.kvs, missing.count, missing.more) == ((), 0, False)


async def test_prefix_and_half_open_ranges(store: Store, prefix: bytes) -> None:
    for name in (b"a/1", b"a/2", b"a/3", b"b", b"a"):
        await store.put(Put(prefix + name, name))
    under_a = await store.range(Range(prefix + b"a/", prefix_end(prefix + b"a/")))
    assert keys(under_a.kvs) == [prefix + b"a/1", prefix + b"a/2", prefix + b"a/3"]
    assert under_a.count == 3

    half_open = await store.range(Range(prefix + b"a/2", prefix + b"b"))
    assert keys(half_open.kvs) == [prefix + b"a/2", prefix + b"a/3"]

    everything = await store.range(Range(prefix, prefix_end(prefix)))
    assert keys(everything.kvs) == [prefix + n for n in (b"a", b"a/1", b"a/2", b"a/3", b"b")]


async def test_from_key_and_all_keys(fresh_store: Store) -> None:
    store = fresh_store
    for name in (b"c", b"a", b"b", b"\xff\xff"):
        await store.put(Put(name, name))
    from_b = await store.range(Range(b"b", FROM_KEY))
    assert keys(from_b.kvs) == [b"b", b"c", b"\xff\xff"]
    all_keys = await store.range(Range(FROM_KEY, FROM_KEY))
    assert keys(all_keys.kvs) == [b"a", b"b", b"c", b"\xff\xff"]
    assert all_keys.count == 4
    # A prefix of all-0xff bytes has no successor: prefix_end gives from-key.
    assert keys((await store.range(Range(b"\xff", prefix_end(b"\xff")))).kvs) == [b"\xff\xff"]


async def test_read_at_a_past_revision(store: Store, prefix: bytes) -> None:
    a, b = prefix + b"a", prefix + b"b"
    r1 = (await store.put(Put(a, b"a1"))).revision
    r2 = (await store.put(Put(a, b"a2"))).revision
    r3 = (await store.put(Put(b, b"b1"))).revision
    r4 = (await store.delete_range(DeleteRange(a))).revision
    whole = Range(prefix, prefix_end(prefix))

    def at(revision: int) -> Range:
        return Range(whole.key, whole.range_end, revision=revision)

    assert (await store.range(at(r1))).kvs == (KeyValue(a, b"a1", r1, r1, 1),)
    assert (await store.range(at(r2))).kvs == (KeyValue(a, b"a2", r1, r2, 2),)
    assert (await store.range(at(r3))).kvs == (KeyValue(a, b"a2", r1, r2, 2), KeyValue(b, b"b1", r3, r3, 1))
    past = await store.range(at(r4))
    assert past.kvs == (KeyValue(b, b"b1", r3, r3, 1),)
    assert past.revision == r4  # the header revision is the current one, not the one read
    await store.put(Put(b, b"b2"))
    assert (await store.range(at(r1))).revision == r4 + 1
    assert (await store.range(at(r1 - 1))).kvs == ()


@pytest.mark.parametrize(
    ("limit", "expected", "more"),
    [
        pytest.param(1, [b"a"], True, id="limit-1"),
        pytest.param(3, [b"a", b"b", b"c"], True, id="limit-3-of-4"),
        pytest.param(4, [b"a", b"b", b"c", b"d"], False, id="limit-exact"),
        pytest.param(10, [b"a", b"b", b"c", b"d"], False, id="limit-above"),
        pytest.param(0, [b"a", b"b", b"c", b"d"], False, id="no-limit"),
    ],
)
async def test_limit_sets_more_and_count_counts_all(
    store: Store, prefix: bytes, limit: int, expected: list[bytes], more: bool
) -> None:
    for name in (b"d", b"b", b"a", b"c"):
        await store.put(Put(prefix + name, b"v"))
    result = await store.range(Range(prefix, prefix_end(prefix), limit=limit))
    assert keys(result.kvs) == [prefix + n for n in expected]
    assert result.more is more
    assert result.count == 4


async def test_keys_only_and_count_only(store: Store, prefix: bytes) -> None:
    r1 = (await store.put(Put(prefix + b"a", b"value-a"))).revision
    r2 = (await store.put(Put(prefix + b"b", b"value-b"))).revision
    whole = (prefix, prefix_end(prefix))

    keys_only = await store.range(Range(*whole, keys_only=True))
    assert keys_only.kvs == (KeyValue(prefix + b"a", b"", r1, r1, 1), KeyValue(prefix + b"b", b"", r2, r2, 1))
    assert keys_only.count == 2

    count_only = await store.range(Range(*whole, count_only=True))
    assert (count_only.kvs, count_only.count, count_only.more) == ((), 2, False)

    counted_at_past = await store.range(Range(*whole, count_only=True, revision=r1))
    assert counted_at_past.count == 1


@dataclass(frozen=True)
class SortCase:
    order: SortOrder
    target: SortTarget
    expected: str  # key names in the expected order


# Built by ``sortable_keys``: a (version 1, created 3rd, modified 3rd, value "3"),
# b (version 3, created 1st, modified last, value "2"), c (version 2, created 2nd, modified 4th, value "1").
SORT_CASES = [
    pytest.param(SortCase(SortOrder.NONE, SortTarget.KEY, "abc"), id="none-key"),
    pytest.param(SortCase(SortOrder.ASCEND, SortTarget.KEY, "abc"), id="ascend-key"),
    pytest.param(SortCase(SortOrder.DESCEND, SortTarget.KEY, "cba"), id="descend-key"),
    pytest.param(SortCase(SortOrder.ASCEND, SortTarget.VERSION, "acb"), id="ascend-version"),
    pytest.param(SortCase(SortOrder.DESCEND, SortTarget.VERSION, "bca"), id="descend-version"),
    pytest.param(SortCase(SortOrder.ASCEND, SortTarget.CREATE, "bca"), id="ascend-create"),
    pytest.param(SortCase(SortOrder.DESCEND, SortTarget.CREATE, "acb"), id="descend-create"),
    pytest.param(SortCase(SortOrder.ASCEND, SortTarget.MOD, "acb"), id="ascend-mod"),
    pytest.param(SortCase(SortOrder.DESCEND, SortTarget.MOD, "bca"), id="descend-mod"),
    pytest.param(SortCase(SortOrder.ASCEND, SortTarget.VALUE, "cba"), id="ascend-value"),
    pytest.param(SortCase(SortOrder.DESCEND, SortTarget.VALUE, "abc"), id="descend-value"),
    pytest.param(SortCase(SortOrder.NONE, SortTarget.VERSION, "acb"), id="none-version-ascends"),
    pytest.param(SortCase(SortOrder.NONE, SortTarget.VALUE, "cba"), id="none-value-ascends"),
]


async def sortable_keys(store: Store, prefix: bytes) -> dict[str, KeyValue]:
    await store.put(Put(prefix + b"b", b"2"))
    await store.put(Put(prefix + b"c", b"1"))
    await store.put(Put(prefix + b"a", b"3"))
    await store.put(Put(prefix + b"c", b"1"))
    await store.put(Put(prefix + b"b", b"2"))
    await store.put(Put(prefix + b"b", b"2"))
    kvs = (await store.range(Range(prefix, prefix_end(prefix)))).kvs
    return {kv.key.removeprefix(prefix).decode(): kv for kv in kvs}


@pytest.mark.parametrize("case", SORT_CASES)
async def test_sort(store: Store, prefix: bytes, case: SortCase) -> None:
    await sortable_keys(store, prefix)
    result = await store.range(Range(prefix, prefix_end(prefix), sort_order=case.order, sort_target=case.target))
    assert [kv.key.removeprefix(prefix).decode() for kv in result.kvs] == list(case.expected)


async def test_sort_then_limit(store: Store, prefix: bytes) -> None:
    await sortable_keys(store, prefix)
    result = await store.range(
        Range(prefix, prefix_end(prefix), limit=2, sort_order=SortOrder.DESCEND, sort_target=SortTarget.MOD)
    )
    assert [kv.key for kv in result.kvs] == [prefix + b"b", prefix + b"c"]
    assert (result.more, result.count) == (True, 3)


# (field of Range, which key's revision to use, expected names); see ``sortable_keys``.
FILTER_CASES = [
    pytest.param("min_mod_revision", ("c", "mod"), "bc", id="min-mod"),
    pytest.param("max_mod_revision", ("c", "mod"), "ac", id="max-mod"),
    pytest.param("min_create_revision", ("c", "create"), "ac", id="min-create"),
    pytest.param("max_create_revision", ("c", "create"), "bc", id="max-create"),
]


@pytest.mark.parametrize(("field", "bound", "expected"), FILTER_CASES)
async def test_revision_filters(store: Store, prefix: bytes, field: str, bound: tuple[str, str], expected: str) -> None:
    by_name = await sortable_keys(store, prefix)
    name, which = bound
    revision = by_name[name].mod_revision if which == "mod" else by_name[name].create_revision
    result = await store.range(Range(prefix, prefix_end(prefix), **{field: revision}))  # type: ignore[arg-type]
    assert [kv.key.removeprefix(prefix).decode() for kv in result.kvs] == list(expected)
    assert result.count == 3  # etcd counts the range before filtering


async def test_range_revision_is_current_after_reads(store: Store, prefix: bytes) -> None:
    r = (await store.put(Put(prefix + b"a", b"v"))).revision
    assert await current_revision(store) == r
    assert (await store.range(Range(prefix + b"nothing"))).revision == r
