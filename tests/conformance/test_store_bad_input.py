"""Bad input gets a typed error and leaves the store exactly as it was.

etcd's rules: a request over --max-request-bytes (1.5 MiB) is "request is too
large" (a value over the gRPC receive limit, 2 MiB, too — etcd's client sees
ResourceExhausted, which the backend maps to the same error); an empty key is
"key is not provided"; a revision beyond the current one is a future revision;
an unknown lease is "requested lease not found"; more than 128 ops is "too
many operations".  Skiff is stricter than etcd in two places, on every
backend (the etcd backend checks them client-side): an inverted range
(range_end < key) and a negative revision are InvalidArgument, where etcd
would return nothing or read the current revision.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from observe import contents, current_revision

from skiff.store.errors import (
    EmptyKey,
    FutureRevision,
    InvalidArgument,
    KeyNotFound,
    LeaseNotFound,
    LeaseTTLTooLarge,
    StoreError,
    TooLarge,
    TooManyOps,
)
from skiff.store.protocol import Store
from skiff.store.types import (
    MAX_LEASE_TTL,
    MAX_REQUEST_BYTES,
    MAX_TXN_OPS,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    Put,
    Range,
)

BadCall = Callable[[Store, bytes, int], Awaitable[object]]
UNKNOWN_LEASE = 0x7EAD_BEEF_0000_0001


def big(size: int) -> bytes:
    return b"x" * size


BAD_CALLS = [
    pytest.param(
        lambda s, p, r: s.put(Put(p + b"k", big(MAX_REQUEST_BYTES + 1))),
        TooLarge,
        id="value-over-1.5MiB",
    ),
    pytest.param(lambda s, p, r: s.put(Put(p + b"k", big(3 * 1024 * 1024))), TooLarge, id="value-3MiB"),
    pytest.param(
        lambda s, p, r: s.txn(
            [], [Put(p + b"a", big(MAX_REQUEST_BYTES // 2)), Put(p + b"b", big(MAX_REQUEST_BYTES // 2 + 1))]
        ),
        TooLarge,
        id="txn-over-1.5MiB",
    ),
    pytest.param(lambda s, p, r: s.create(p + b"new", big(MAX_REQUEST_BYTES + 1)), TooLarge, id="create-over-1.5MiB"),
    pytest.param(lambda s, p, r: s.put(Put(b"", b"v")), EmptyKey, id="put-empty-key"),
    pytest.param(lambda s, p, r: s.range(Range(b"")), EmptyKey, id="range-empty-key"),
    pytest.param(lambda s, p, r: s.delete_range(DeleteRange(b"")), EmptyKey, id="delete-empty-key"),
    pytest.param(lambda s, p, r: s.txn([], [Put(b"", b"v")]), EmptyKey, id="txn-put-empty-key"),
    pytest.param(lambda s, p, r: s.range(Range(p + b"b", p + b"a")), InvalidArgument, id="range-inverted"),
    pytest.param(
        lambda s, p, r: s.delete_range(DeleteRange(p + b"b", p + b"a")), InvalidArgument, id="delete-inverted"
    ),
    pytest.param(lambda s, p, r: s.range(Range(p + b"k", revision=-1)), InvalidArgument, id="negative-revision"),
    pytest.param(lambda s, p, r: s.range(Range(p + b"k", revision=r + 1)), FutureRevision, id="future-revision"),
    pytest.param(lambda s, p, r: s.range(Range(p + b"k", revision=r + 1000)), FutureRevision, id="far-future-revision"),
    pytest.param(lambda s, p, r: s.get(p + b"k", revision=r + 1), FutureRevision, id="get-future-revision"),
    pytest.param(
        lambda s, p, r: s.put(Put(p + b"k", b"v", lease=UNKNOWN_LEASE)), LeaseNotFound, id="put-unknown-lease"
    ),
    pytest.param(
        lambda s, p, r: s.txn([], [Put(p + b"k", b"v", lease=UNKNOWN_LEASE)]), LeaseNotFound, id="txn-unknown-lease"
    ),
    pytest.param(lambda s, p, r: s.lease_keepalive(UNKNOWN_LEASE), LeaseNotFound, id="keepalive-unknown-lease"),
    pytest.param(lambda s, p, r: s.lease_revoke(UNKNOWN_LEASE), LeaseNotFound, id="revoke-unknown-lease"),
    pytest.param(lambda s, p, r: s.lease_grant(MAX_LEASE_TTL + 1), LeaseTTLTooLarge, id="lease-ttl-too-large"),
    pytest.param(
        lambda s, p, r: s.txn([], [Put(p + b"%d" % i, b"v") for i in range(MAX_TXN_OPS + 1)]),
        TooManyOps,
        id="too-many-ops",
    ),
    pytest.param(
        lambda s, p, r: s.txn(
            [Compare(p + b"k", CompareTarget.VALUE, CompareResult.EQUAL, b"v")],
            [Put(p + b"k", b"2")],
            [Put(p + b"f%d" % i, b"v") for i in range(MAX_TXN_OPS + 1)],
        ),
        TooManyOps,
        id="too-many-ops-in-failure",
    ),
    pytest.param(lambda s, p, r: s.put(Put(p + b"missing", ignore_value=True)), KeyNotFound, id="ignore-value-missing"),
    pytest.param(lambda s, p, r: s.compact(r + 1), FutureRevision, id="compact-future"),
]


@pytest.mark.parametrize(("call", "error"), BAD_CALLS)
async def test_bad_input_raises_typed_error_and_changes_nothing(
    store: Store, prefix: bytes, call: BadCall, error: type[StoreError]
) -> None:
    await store.put(Put(prefix + b"k", b"v"))
    await store.put(Put(prefix + b"other", b"w"))
    before_revision = await current_revision(store)
    before = await contents(store, prefix)

    with pytest.raises(error) as raised:
        await call(store, prefix, before_revision)
    if error is not InvalidArgument:  # Skiff's own rules may explain themselves; etcd's errors are exact
        assert raised.value.text == error.message

    assert await current_revision(store) == before_revision
    assert await contents(store, prefix) == before
    # The store still serves ordinary requests.
    assert (await store.put(Put(prefix + b"after", b"ok"))).revision == before_revision + 1


async def test_value_just_under_the_limit_is_accepted(store: Store, prefix: bytes) -> None:
    value = big(MAX_REQUEST_BYTES - 64 * 1024)
    revision = (await store.put(Put(prefix + b"k", value))).revision
    kv = await store.get(prefix + b"k")
    assert kv is not None and kv.value == value and kv.mod_revision == revision
