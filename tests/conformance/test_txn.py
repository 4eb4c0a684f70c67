"""Txn (etcd's KV.Txn RPC doc and ``applierV3backend.Txn``/``applyCompare``).

* Every compare, nested ones included, is evaluated against the state before
  the txn (etcd's ``compareToPath`` walks the whole tree first); then one
  branch runs at a single revision.
* A compare over a range holds when it holds for every key in it; on a missing
  key (or an empty range) version/create/mod/lease are 0 and a VALUE compare is
  always false.
* Ops later in a branch see the branch's earlier writes.
* Both branches are checked before anything runs: a key written twice (or put
  and deleted) in one branch is DuplicateKey, more than 128 ops TooManyOps.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from observe import contents, current_revision

from skiff.store.errors import DuplicateKey, InvalidArgument, TooManyOps
from skiff.store.protocol import Store
from skiff.store.types import (
    MAX_TXN_OPS,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteResult,
    KeyValue,
    Op,
    Put,
    PutResult,
    Range,
    RangeResult,
    Txn,
    TxnResult,
    prefix_end,
)

EQ, NE, LT, GT = CompareResult.EQUAL, CompareResult.NOT_EQUAL, CompareResult.LESS, CompareResult.GREATER
VERSION, CREATE, MOD, VALUE, LEASE = (
    CompareTarget.VERSION,
    CompareTarget.CREATE,
    CompareTarget.MOD,
    CompareTarget.VALUE,
    CompareTarget.LEASE,
)

CompareValue = Callable[[KeyValue], int | bytes]

# Compares against the key written by ``twice_written_key`` (value b"v2", version 2).
PRESENT_KEY_CASES = [
    pytest.param(VALUE, EQ, lambda kv: b"v2", True, id="value=same"),
    pytest.param(VALUE, EQ, lambda kv: b"v1", False, id="value=other"),
    pytest.param(VALUE, NE, lambda kv: b"v1", True, id="value!=other"),
    pytest.param(VALUE, NE, lambda kv: b"v2", False, id="value!=same"),
    pytest.param(VALUE, GT, lambda kv: b"v1", True, id="value>smaller"),
    pytest.param(VALUE, GT, lambda kv: b"v3", False, id="value>larger"),
    pytest.param(VALUE, LT, lambda kv: b"v3", True, id="value<larger"),
    pytest.param(VALUE, LT, lambda kv: b"v", False, id="value<prefix-of-it"),
    pytest.param(VERSION, EQ, lambda kv: 2, True, id="version=2"),
    pytest.param(VERSION, NE, lambda kv: 2, False, id="version!=2"),
    pytest.param(VERSION, GT, lambda kv: 1, True, id="version>1"),
    pytest.param(VERSION, LT, lambda kv: 2, False, id="version<2"),
    pytest.param(CREATE, EQ, lambda kv: kv.create_revision, True, id="create=own"),
    pytest.param(CREATE, LT, lambda kv: kv.mod_revision, True, id="create<mod"),
    pytest.param(CREATE, GT, lambda kv: kv.create_revision, False, id="create>own"),
    pytest.param(MOD, EQ, lambda kv: kv.mod_revision, True, id="mod=own"),
    pytest.param(MOD, EQ, lambda kv: kv.create_revision, False, id="mod=create"),
    pytest.param(MOD, NE, lambda kv: kv.create_revision, True, id="mod!=create"),
    pytest.param(MOD, GT, lambda kv: kv.create_revision, True, id="mod>create"),
    pytest.param(MOD, LT, lambda kv: kv.mod_revision + 1, True, id="mod<next"),
    pytest.param(MOD, EQ, lambda kv: 0, False, id="mod=0"),
    pytest.param(LEASE, EQ, lambda kv: 0, True, id="lease=0"),
    pytest.param(LEASE, GT, lambda kv: 0, False, id="lease>0"),
]

MISSING_KEY_CASES = [
    pytest.param(VERSION, EQ, 0, True, id="version=0"),
    pytest.param(VERSION, GT, 0, False, id="version>0"),
    pytest.param(CREATE, EQ, 0, True, id="create=0"),
    pytest.param(MOD, EQ, 0, True, id="mod=0"),
    pytest.param(MOD, LT, 5, True, id="mod<5"),
    pytest.param(MOD, NE, 0, False, id="mod!=0"),
    pytest.param(LEASE, EQ, 0, True, id="lease=0"),
    pytest.param(VALUE, EQ, b"", False, id="value=empty-is-false"),
    pytest.param(VALUE, NE, b"x", False, id="value!=x-is-false"),
    pytest.param(VALUE, GT, b"", False, id="value>empty-is-false"),
]


async def twice_written_key(store: Store, prefix: bytes) -> KeyValue:
    key = prefix + b"k"
    await store.put(Put(key, b"v1"))
    await store.put(Put(key, b"v2"))
    kv = await store.get(key)
    assert kv is not None
    return kv


async def assert_branch(store: Store, compare: Compare, expected: bool) -> None:
    """Run a txn with ``compare``; the branch taken must be the ``expected`` one and nothing else."""
    marker = compare.key + b"/taken"
    result = await store.txn([compare], [Put(marker, b"success")], [Put(marker, b"failure")])
    assert result.succeeded is expected
    kv = await store.get(marker)
    assert kv is not None and kv.value == (b"success" if expected else b"failure")


@pytest.mark.parametrize(("target", "result", "value", "expected"), PRESENT_KEY_CASES)
async def test_compare_on_present_key(
    store: Store, prefix: bytes, target: CompareTarget, result: CompareResult, value: CompareValue, expected: bool
) -> None:
    kv = await twice_written_key(store, prefix)
    await assert_branch(store, Compare(kv.key, target, result, value(kv)), expected)


@pytest.mark.parametrize(("target", "result", "value", "expected"), MISSING_KEY_CASES)
async def test_compare_on_missing_key(
    store: Store, prefix: bytes, target: CompareTarget, result: CompareResult, value: int | bytes, expected: bool
) -> None:
    await assert_branch(store, Compare(prefix + b"missing", target, result, value), expected)


async def test_compare_on_lease(store: Store, prefix: bytes) -> None:
    lease = await store.lease_grant(60)
    try:
        key = prefix + b"leased"
        await store.put(Put(key, b"v", lease=lease.id))
        await assert_branch(store, Compare(key, LEASE, EQ, lease.id), True)
        await assert_branch(store, Compare(key, LEASE, NE, lease.id), False)
        await assert_branch(store, Compare(key, LEASE, GT, 0), True)
    finally:
        await store.lease_revoke(lease.id)


RANGE_COMPARE_CASES = [
    pytest.param(b"r/", VERSION, GT, 0, True, id="all-versions>0"),
    pytest.param(b"r/", VERSION, EQ, 1, False, id="one-version-differs"),
    pytest.param(b"r/", VERSION, LT, 3, True, id="all-versions<3"),
    pytest.param(b"r/", VALUE, EQ, b"same", True, id="all-values-equal"),
    pytest.param(b"r/", MOD, GT, 0, True, id="all-mods>0"),
    pytest.param(b"empty/", VERSION, EQ, 0, True, id="empty-range-is-missing-key"),
    pytest.param(b"empty/", VALUE, EQ, b"", False, id="empty-range-value-is-false"),
]


@pytest.mark.parametrize(("sub", "target", "result", "value", "expected"), RANGE_COMPARE_CASES)
async def test_compare_over_a_range(
    store: Store,
    prefix: bytes,
    sub: bytes,
    target: CompareTarget,
    result: CompareResult,
    value: int | bytes,
    expected: bool,
) -> None:
    await store.put(Put(prefix + b"r/a", b"same"))
    await store.put(Put(prefix + b"r/b", b"same"))
    await store.put(Put(prefix + b"r/b", b"same"))
    start = prefix + sub
    compare = Compare(start, target, result, value, range_end=prefix_end(start))
    txn = await store.txn([compare], [Range(prefix + b"r/a")], [])
    assert txn.succeeded is expected


async def test_all_compares_must_hold(store: Store, prefix: bytes) -> None:
    kv = await twice_written_key(store, prefix)
    holds = Compare(kv.key, VERSION, EQ, 2)
    fails = Compare(kv.key, VALUE, EQ, b"nope")
    assert (await store.txn([holds, holds], [], [])).succeeded
    assert not (await store.txn([holds, fails], [], [])).succeeded
    assert (await store.txn([], [], [])).succeeded  # no compares: success


async def test_branch_responses_in_op_order(store: Store, prefix: bytes) -> None:
    a, b = prefix + b"a", prefix + b"b"
    old = await store.put(Put(b, b"old"))
    start = await current_revision(store)
    result = await store.txn(
        [Compare(a, VERSION, EQ, 0)],
        [Put(a, b"1", prev_kv=True), Range(a), DeleteRange(b, prev_kv=True), Range(prefix, prefix_end(prefix))],
        [Range(a)],
    )
    assert result.succeeded
    assert result.revision == start + 1
    put, read_a, deleted, read_all = result.responses
    assert isinstance(put, PutResult) and put.prev_kv is None
    assert isinstance(read_a, RangeResult)
    # Later ops see the branch's earlier writes, at the txn's revision.
    assert read_a.kvs == (KeyValue(a, b"1", start + 1, start + 1, 1),)
    assert isinstance(deleted, DeleteResult)
    assert deleted.deleted == 1
    assert deleted.prev_kvs == (KeyValue(b, b"old", old.revision, old.revision, 1),)
    assert isinstance(read_all, RangeResult)
    assert [kv.key for kv in read_all.kvs] == [a]

    failed = await store.txn([Compare(a, VERSION, EQ, 0)], [Put(a, b"2")], [Range(a)])
    assert not failed.succeeded
    assert failed.revision == start + 1
    (read_again,) = failed.responses
    assert isinstance(read_again, RangeResult)
    assert read_again.kvs == (KeyValue(a, b"1", start + 1, start + 1, 1),)


async def test_nested_txn(store: Store, prefix: bytes) -> None:
    a, b, c = prefix + b"a", prefix + b"b", prefix + b"c"
    start = await current_revision(store)
    result = await store.txn(
        [Compare(a, VERSION, EQ, 0)],
        [
            Put(a, b"1"),
            # Nested compares see the state before the outer txn: a is still absent.
            Txn(
                compares=(Compare(a, VERSION, EQ, 0),),
                success=(Put(b, b"inner-success"), Range(a)),
                failure=(Put(b, b"inner-failure"),),
            ),
            Txn(compares=(Compare(c, VERSION, GT, 0),), success=(Put(c, b"no"),), failure=(Range(b),)),
            Range(b),
        ],
        [],
    )
    assert result.succeeded
    assert result.revision == start + 1
    _put, inner, inner_failed, read_b = result.responses
    assert isinstance(inner, TxnResult) and inner.succeeded
    _inner_put, inner_read_a = inner.responses
    assert isinstance(inner_read_a, RangeResult)
    assert [kv.value for kv in inner_read_a.kvs] == [b"1"]
    assert isinstance(inner_failed, TxnResult) and not inner_failed.succeeded
    (inner_read_b,) = inner_failed.responses
    assert isinstance(inner_read_b, RangeResult)
    assert [kv.value for kv in inner_read_b.kvs] == [b"inner-success"]
    assert isinstance(read_b, RangeResult)
    assert read_b.kvs == (KeyValue(b, b"inner-success", start + 1, start + 1, 1),)
    assert await store.get(c) is None


def duplicate_branches(prefix: bytes) -> list[tuple[list[Op], list[Op]]]:
    k = prefix + b"k"
    return [
        ([Put(k, b"1"), Put(k, b"2")], []),
        ([Put(k, b"1"), DeleteRange(k)], []),
        ([Put(k, b"1"), DeleteRange(prefix, prefix_end(prefix))], []),
        ([], [Put(k, b"1"), Put(k, b"2")]),  # checked even though the failure branch is not taken
    ]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(i, id=name)
        for i, name in enumerate(["put-put", "put-delete", "put-in-deleted-range", "in-failure-branch"])
    ],
)
async def test_duplicate_key(store: Store, prefix: bytes, case: int) -> None:
    await store.put(Put(prefix + b"k", b"0"))
    before = await current_revision(store)
    success, failure = duplicate_branches(prefix)[case]
    with pytest.raises(DuplicateKey) as raised:
        await store.txn([], success, failure)
    assert isinstance(raised.value, InvalidArgument)
    assert raised.value.text == "etcdserver: duplicate key given in txn request"
    assert await current_revision(store) == before
    assert [kv.value for kv in await contents(store, prefix)] == [b"0"]


async def test_reading_and_writing_a_key_in_one_branch_is_allowed(store: Store, prefix: bytes) -> None:
    k = prefix + b"k"
    result = await store.txn([], [Range(k), Put(k, b"1"), Range(k)], [])
    assert result.succeeded
    first, _, second = result.responses
    assert isinstance(first, RangeResult) and first.kvs == ()
    assert isinstance(second, RangeResult) and [kv.value for kv in second.kvs] == [b"1"]


async def test_max_txn_ops(store: Store, prefix: bytes) -> None:
    puts = [Put(prefix + b"%04d" % i, b"v") for i in range(MAX_TXN_OPS + 1)]
    before = await current_revision(store)
    for success, failure, compares in [
        (puts, [], []),
        ([], puts, []),
        ([], [], [Compare(prefix + b"x", VERSION, EQ, 0)] * (MAX_TXN_OPS + 1)),
    ]:
        with pytest.raises(TooManyOps) as raised:
            await store.txn(compares, success, failure)
        assert raised.value.text == "etcdserver: too many operations in txn request"
    assert await current_revision(store) == before
    assert await contents(store, prefix) == ()

    at_limit = await store.txn([], puts[:MAX_TXN_OPS], [])
    assert at_limit.revision == before + 1
    assert len(await contents(store, prefix)) == MAX_TXN_OPS
