"""The API server's conditional writes (``ConditionalWrites``: create/update/delete as txns).

Kubernetes' etcd3 storage does exactly these: create-if-absent (mod_revision
= 0), update-if-mod-revision, delete optionally at a mod revision; a lost race
reports the current kv read by the failure branch.
"""

from __future__ import annotations

import pytest
from observe import current_revision

from skiff.store.errors import Conflict, KeyExists, KeyNotFound
from skiff.store.protocol import Store
from skiff.store.types import KeyValue, Put


async def test_create_if_absent(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    revision = await store.create(key, b"v")
    assert revision == await current_revision(store)
    assert await store.get(key) == KeyValue(key, b"v", revision, revision, 1)
    with pytest.raises(KeyExists):
        await store.create(key, b"again")
    assert await current_revision(store) == revision
    assert (await store.get(key)) == KeyValue(key, b"v", revision, revision, 1)


async def test_create_with_lease(store: Store, prefix: bytes) -> None:
    lease = await store.lease_grant(60)
    try:
        await store.create(prefix + b"k", b"v", lease=lease.id)
        kv = await store.get(prefix + b"k")
        assert kv is not None and kv.lease == lease.id
    finally:
        await store.lease_revoke(lease.id)
    assert await store.get(prefix + b"k") is None


async def test_update_if_mod_revision(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    created = await store.create(key, b"v1")
    updated = await store.update(key, b"v2", created)
    assert updated == created + 1
    assert await store.get(key) == KeyValue(key, b"v2", created, updated, 2)

    with pytest.raises(Conflict) as raised:
        await store.update(key, b"stale", created)
    assert raised.value.current == KeyValue(key, b"v2", created, updated, 2)
    assert await current_revision(store) == updated


async def test_update_of_missing_key_raises_key_not_found(store: Store, prefix: bytes) -> None:
    before = await current_revision(store)
    with pytest.raises(KeyNotFound):
        await store.update(prefix + b"missing", b"v", 5)
    assert await current_revision(store) == before
    assert await store.get(prefix + b"missing") is None


async def test_delete(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    created = await store.create(key, b"v")
    await store.put(Put(key, b"v2"))
    with pytest.raises(Conflict) as raised:
        await store.delete(key, mod_revision=created)
    assert isinstance(raised.value.current, KeyValue)
    assert raised.value.current.value == b"v2"
    current = raised.value.current.mod_revision

    deleted = await store.delete(key, mod_revision=current)
    assert deleted == KeyValue(key, b"v2", created, current, 2)
    assert await store.get(key) is None
    with pytest.raises(KeyNotFound):
        await store.delete(key)
    with pytest.raises(KeyNotFound):
        await store.delete(key, mod_revision=current)

    unconditional = await store.create(key, b"v3")
    assert (await store.delete(key)).mod_revision == unconditional


async def test_get_at_a_past_revision(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    first = await store.create(key, b"v1")
    await store.update(key, b"v2", first)
    assert await store.get(key, revision=first) == KeyValue(key, b"v1", first, first, 1)
    assert await store.get(key, revision=first - 1) is None
