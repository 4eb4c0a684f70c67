"""A Store that encrypts one resource's values on the way in and decrypts them on the way out.

``EncryptedStore(store, transformer)`` is handed to a resource's registry and
watch cache in place of the shared store (Kubernetes gives each resource its
own storage with its own value transformer, k8s.io/apiserver
pkg/storage/value).  Keys, revisions and leases pass through; only values
change.  The store underneath (and the etcd v3 facade, which serves it) sees
ciphertext.  The store key is the authenticated context of the AEAD providers.

Undecryptable values (a key removed from the configuration, corrupt data):

* ``get`` raises a 500 ``InternalError`` naming the key and the reason;
* ``range`` and ``watch`` leave the object out and log an error, as the watch
  cache does for a value that is not JSON, so one bad object does not stop the
  resource's cache (``get`` still reports it);
* ``delete`` returns what it deleted as stored.

A value read through a provider other than the first is remembered as stale
(by key and mod revision) until it is rewritten or deleted; ``is_stale`` lets
the registry write an unchanged object again, which is how keys rotate.
VALUE compares in a ``txn`` see ciphertext.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

from skiff.api.status import internal_error
from skiff.registry.encryption import EncryptionConfig, Transformer, TransformError
from skiff.store.protocol import Store, Watcher
from skiff.store.types import (
    Compare,
    DeleteRange,
    DeleteResult,
    Event,
    KeyValue,
    LeaseGrant,
    LeaseStatus,
    Op,
    OpResult,
    Put,
    PutResult,
    Range,
    RangeResult,
    StoreStatus,
    Txn,
    TxnResult,
    WatchResponse,
)

log = logging.getLogger(__name__)


def storage_for(store: Store, config: EncryptionConfig | None, group: str, plural: str) -> Store:
    """``store`` as the resource ``plural.group`` should see it: encrypting when ``config`` covers it."""
    transformer = config.transformer_for(group, plural) if config is not None else None
    return store if transformer is None else EncryptedStore(store, transformer)


def is_stale(store: Store, kv: KeyValue) -> bool:
    """True when ``kv`` (read from ``store``) should be rewritten even if unchanged."""
    return isinstance(store, EncryptedStore) and store.is_stale(kv)


class EncryptedStore:
    def __init__(self, store: Store, transformer: Transformer) -> None:
        self.inner = store
        self.transformer = transformer
        self._stale: dict[bytes, int] = {}

    # -- value transformation ---------------------------------------------------------------
    def _seal(self, key: bytes, value: bytes) -> bytes:
        self._stale.pop(key, None)
        return self.transformer.to_storage(value, key)

    def _open(self, kv: KeyValue) -> KeyValue:
        """``kv`` with its plaintext; raises TransformError."""
        if not kv.value:
            return kv  # a DELETE event's kv, a keys-only read
        plain, stale = self.transformer.from_storage(kv.value, kv.key)
        if stale:
            self._stale[kv.key] = kv.mod_revision
        return dataclasses.replace(kv, value=plain)

    def _open_or_none(self, kv: KeyValue | None) -> KeyValue | None:
        if kv is None:
            return None
        try:
            return self._open(kv)
        except TransformError as err:
            log.error("cannot decrypt %s at revision %d: %s; not served", kv.key.decode(), kv.mod_revision, err)
            return None

    def _open_all(self, kvs: tuple[KeyValue, ...]) -> tuple[KeyValue, ...]:
        return tuple(kv for kv in map(self._open_or_none, kvs) if kv is not None)

    def is_stale(self, kv: KeyValue) -> bool:
        return self._stale.get(kv.key) == kv.mod_revision

    # -- KV ---------------------------------------------------------------------------------
    async def get(self, key: bytes, revision: int = 0) -> KeyValue | None:
        kv = await self.inner.get(key, revision)
        if kv is None:
            return None
        try:
            return self._open(kv)
        except TransformError as err:
            raise internal_error(f"unable to transform key {key.decode()!r}: {err}") from None

    async def create(self, key: bytes, value: bytes, lease: int = 0) -> int:
        return await self.inner.create(key, self._seal(key, value), lease)

    async def update(self, key: bytes, value: bytes, mod_revision: int, lease: int = 0) -> int:
        return await self.inner.update(key, self._seal(key, value), mod_revision, lease)

    async def delete(self, key: bytes, mod_revision: int = 0) -> KeyValue:
        kv = await self.inner.delete(key, mod_revision)
        self._stale.pop(key, None)
        return self._open_or_none(kv) or kv

    async def range(self, req: Range) -> RangeResult:
        return self._open_range(await self.inner.range(req))

    def _open_range(self, result: RangeResult) -> RangeResult:
        return dataclasses.replace(result, kvs=self._open_all(result.kvs))

    async def put(self, req: Put) -> PutResult:
        sealed = req if req.ignore_value else dataclasses.replace(req, value=self._seal(req.key, req.value))
        return self._open_put(await self.inner.put(sealed))

    def _open_put(self, result: PutResult) -> PutResult:
        return dataclasses.replace(result, prev_kv=self._open_or_none(result.prev_kv))

    async def delete_range(self, req: DeleteRange) -> DeleteResult:
        return self._open_delete(await self.inner.delete_range(req))

    def _open_delete(self, result: DeleteResult) -> DeleteResult:
        return dataclasses.replace(result, prev_kvs=self._open_all(result.prev_kvs))

    async def txn(
        self,
        compares: tuple[Compare, ...] | list[Compare],
        success: tuple[Op, ...] | list[Op] = (),
        failure: tuple[Op, ...] | list[Op] = (),
    ) -> TxnResult:
        result = await self.inner.txn(compares, tuple(map(self._seal_op, success)), tuple(map(self._seal_op, failure)))
        return self._open_txn(result)

    def _seal_op(self, op: Op) -> Op:
        if isinstance(op, Put) and not op.ignore_value:
            return dataclasses.replace(op, value=self._seal(op.key, op.value))
        if isinstance(op, Txn):
            return Txn(op.compares, tuple(map(self._seal_op, op.success)), tuple(map(self._seal_op, op.failure)))
        return op

    def _open_txn(self, result: TxnResult) -> TxnResult:
        return dataclasses.replace(result, responses=tuple(map(self._open_result, result.responses)))

    def _open_result(self, result: OpResult) -> OpResult:
        if isinstance(result, RangeResult):
            return self._open_range(result)
        if isinstance(result, PutResult):
            return self._open_put(result)
        if isinstance(result, DeleteResult):
            return self._open_delete(result)
        return self._open_txn(result)

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    # -- watch ------------------------------------------------------------------------------
    async def watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
    ) -> Watcher:
        watcher = await self.inner.watch(
            key, range_end, start_revision=start_revision, prev_kv=prev_kv, progress_notify=progress_notify
        )
        return _DecryptingWatcher(watcher, self)

    def open_response(self, response: WatchResponse) -> WatchResponse:
        if not response.events:
            return response
        events: list[Event] = []
        for event in response.events:
            kv = self._open_or_none(event.kv)
            if kv is None:
                continue
            events.append(Event(event.type, kv, self._open_or_none(event.prev_kv)))
        return dataclasses.replace(response, events=tuple(events))

    # -- leases and maintenance -------------------------------------------------------------
    async def lease_grant(self, ttl: int, lease_id: int = 0) -> LeaseGrant:
        return await self.inner.lease_grant(ttl, lease_id)

    async def lease_revoke(self, lease_id: int) -> int:
        return await self.inner.lease_revoke(lease_id)

    async def lease_keepalive(self, lease_id: int) -> int:
        return await self.inner.lease_keepalive(lease_id)

    async def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseStatus:
        return await self.inner.lease_time_to_live(lease_id, keys)

    async def lease_leases(self) -> tuple[int, ...]:
        return await self.inner.lease_leases()

    async def status(self) -> StoreStatus:
        return await self.inner.status()

    async def close(self) -> None:
        """The shared store underneath is its owner's to close."""


class _DecryptingWatcher:
    def __init__(self, watcher: Watcher, store: EncryptedStore) -> None:
        self._watcher = watcher
        self._store = store

    def __aiter__(self) -> AsyncIterator[WatchResponse]:
        return self

    async def __anext__(self) -> WatchResponse:
        return self._store.open_response(await self._watcher.__anext__())

    async def request_progress(self) -> None:
        await self._watcher.request_progress()

    async def close(self) -> None:
        await self._watcher.close()
