"""Leases (etcd's Lease RPC doc and ``lease.lessor``).

* Grant raises a TTL below the minimum to MIN_LEASE_TTL (etcd's lessor uses
  its minLeaseTTL), honours an explicit id, and refuses a taken id.
* Revoking deletes the lease's keys in one revision, and those deletes are
  ordinary watch events; a lease with no keys revokes without a revision.
* TimeToLive of an unknown lease reports ttl -1 (etcd answers, it does not
  fail); keep-alive and revoke of an unknown lease raise LeaseNotFound.
* Expiry after the TTL deletes the keys like a revoke.  The one test that
  waits for it uses real time (ttl 2 s) and waits on a watch, not a sleep.
"""

from __future__ import annotations

import random

import pytest
from observe import HANG_GUARD_S, current_revision, flatten, next_events

from skiff.store.errors import LeaseExists, LeaseNotFound
from skiff.store.protocol import Store
from skiff.store.types import MIN_LEASE_TTL, Event, EventType, KeyValue, LeaseStatus, Put, prefix_end


def random_lease_id() -> int:
    """An explicit id unlikely to clash with another test's on a shared etcd."""
    return random.randrange(1 << 40, 1 << 62)


@pytest.mark.parametrize(
    ("asked", "granted"),
    [
        pytest.param(1, MIN_LEASE_TTL, id="raised-to-minimum"),
        pytest.param(MIN_LEASE_TTL, MIN_LEASE_TTL, id="minimum"),
        pytest.param(60, 60, id="sixty"),
    ],
)
async def test_grant_ttl(store: Store, asked: int, granted: int) -> None:
    lease = await store.lease_grant(asked)
    try:
        assert lease.ttl == granted
        assert lease.id > 0
        assert lease.id in await store.lease_leases()
    finally:
        await store.lease_revoke(lease.id)
    assert lease.id not in await store.lease_leases()


async def test_grant_with_explicit_id_and_lease_exists(store: Store) -> None:
    wanted = random_lease_id()
    lease = await store.lease_grant(60, lease_id=wanted)
    try:
        assert lease.id == wanted
        with pytest.raises(LeaseExists) as raised:
            await store.lease_grant(30, lease_id=wanted)
        assert raised.value.text == "etcdserver: lease already exists"
        status = await store.lease_time_to_live(wanted)
        assert status.granted_ttl == 60
    finally:
        await store.lease_revoke(wanted)


async def test_keepalive_and_time_to_live_with_keys(store: Store, prefix: bytes) -> None:
    lease = await store.lease_grant(60)
    try:
        await store.put(Put(prefix + b"a", b"1", lease=lease.id))
        await store.put(Put(prefix + b"b", b"2", lease=lease.id))
        assert await store.lease_keepalive(lease.id) == 60

        with_keys = await store.lease_time_to_live(lease.id, keys=True)
        assert with_keys.id == lease.id
        assert with_keys.granted_ttl == 60
        assert 0 < with_keys.ttl <= 60
        assert sorted(with_keys.keys) == [prefix + b"a", prefix + b"b"]

        without_keys = await store.lease_time_to_live(lease.id)
        assert without_keys.keys == ()

        # Re-putting a key without the lease detaches it.
        await store.put(Put(prefix + b"b", b"3"))
        assert (await store.lease_time_to_live(lease.id, keys=True)).keys == (prefix + b"a",)
    finally:
        await store.lease_revoke(lease.id)


async def test_unknown_lease(store: Store, prefix: bytes) -> None:
    unknown = random_lease_id()
    before = await current_revision(store)
    assert await store.lease_time_to_live(unknown) == LeaseStatus(id=unknown, ttl=-1, granted_ttl=0)
    with pytest.raises(LeaseNotFound) as raised:
        await store.lease_keepalive(unknown)
    assert raised.value.text == "etcdserver: requested lease not found"
    with pytest.raises(LeaseNotFound):
        await store.lease_revoke(unknown)
    with pytest.raises(LeaseNotFound):
        await store.put(Put(prefix + b"k", b"v", lease=unknown))
    assert await store.get(prefix + b"k") is None
    assert await current_revision(store) == before


async def test_revoke_deletes_keys_in_one_revision_seen_by_watch(store: Store, prefix: bytes) -> None:
    lease = await store.lease_grant(60)
    await store.put(Put(prefix + b"a", b"1", lease=lease.id))
    await store.put(Put(prefix + b"b", b"2", lease=lease.id))
    await store.put(Put(prefix + b"keep", b"3"))
    before = await current_revision(store)
    watcher = await store.watch(prefix, prefix_end(prefix))
    try:
        after = await store.lease_revoke(lease.id)
        assert after == before + 1
        (response,) = await next_events(watcher, 2)
    finally:
        await watcher.close()
    assert sorted(response.events, key=lambda e: e.kv.key) == [
        Event(EventType.DELETE, KeyValue(prefix + b"a", mod_revision=after)),
        Event(EventType.DELETE, KeyValue(prefix + b"b", mod_revision=after)),
    ]
    assert await store.get(prefix + b"a") is None
    assert await store.get(prefix + b"keep") is not None
    assert (await store.lease_time_to_live(lease.id)).ttl == -1


async def test_revoking_a_lease_without_keys_is_not_a_write(store: Store) -> None:
    lease = await store.lease_grant(60)
    before = await current_revision(store)
    assert await store.lease_revoke(lease.id) == before
    assert await current_revision(store) == before


async def test_expiry_deletes_the_keys(store: Store, prefix: bytes) -> None:
    lease = await store.lease_grant(MIN_LEASE_TTL)
    key = prefix + b"ephemeral"
    put = await store.put(Put(key, b"v", lease=lease.id))
    watcher = await store.watch(key, start_revision=put.revision + 1)
    try:
        # Expiry takes the TTL plus the backend's check interval; the guard only stops a hang.
        assert HANG_GUARD_S > 3 * MIN_LEASE_TTL
        events = flatten(await next_events(watcher, 1))
    finally:
        await watcher.close()
    (deleted,) = events
    assert deleted.type == EventType.DELETE
    assert deleted.kv.key == key
    assert deleted.kv.mod_revision > put.revision
    assert await store.get(key) is None
    assert (await store.lease_time_to_live(lease.id)).ttl == -1
    assert lease.id not in await store.lease_leases()
