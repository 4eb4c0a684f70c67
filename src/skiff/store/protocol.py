"""The Store protocol: the one seam between Skiff and persistence.

The contract is etcd v3's (api_guarantees and the KV/Watch/Lease RPC docs):

* One global revision, 1 on an empty store, +1 per write transaction.  A txn
  (or put, or delete) that changes nothing does not advance it (a delete that
  matches no key, a txn whose chosen branch only reads), exactly as etcd.
* ``range`` reads at the current or a past revision; past revisions below the
  compaction point raise ``Compacted``, future ones ``FutureRevision``.
* ``txn`` evaluates every compare against the state before the txn, then runs
  one branch atomically at a single revision; later ops in the branch see the
  branch's earlier writes.
* ``watch`` delivers every event from ``start_revision`` on, ordered by
  revision, never duplicated or skipped, all events of one revision in one
  response.  Once ``watch`` has returned, every later commit will be delivered.
  A start below the compaction point makes iteration raise ``Compacted``.
* Keys attached to a lease are deleted when the lease expires or is revoked;
  those deletes are ordinary events.

Backends: ``skiff.store.sqlite`` (embedded) and ``skiff.store.etcd`` (real etcd).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from skiff.store.types import (
    Compare,
    DeleteRange,
    DeleteResult,
    KeyValue,
    LeaseGrant,
    LeaseStatus,
    Op,
    Put,
    PutResult,
    Range,
    RangeResult,
    StoreStatus,
    TxnResult,
    WatchResponse,
)


@runtime_checkable
class Watcher(Protocol):
    """An open watch; iterate it for responses, close it when done."""

    def __aiter__(self) -> AsyncIterator[WatchResponse]: ...

    async def __anext__(self) -> WatchResponse: ...

    async def request_progress(self) -> None:
        """Ask for a progress notification (delivered once caught up)."""

    async def close(self) -> None: ...


@runtime_checkable
class Store(Protocol):
    # -- KV -----------------------------------------------------------------
    async def range(self, req: Range) -> RangeResult: ...

    async def put(self, req: Put) -> PutResult: ...

    async def delete_range(self, req: DeleteRange) -> DeleteResult: ...

    async def txn(
        self,
        compares: tuple[Compare, ...] | list[Compare],
        success: tuple[Op, ...] | list[Op] = (),
        failure: tuple[Op, ...] | list[Op] = (),
    ) -> TxnResult: ...

    async def compact(self, revision: int) -> None:
        """Drop every version superseded at or before ``revision`` (physically)."""

    # -- the API server's conditional writes (txns; see ConditionalWrites) ---
    async def get(self, key: bytes, revision: int = 0) -> KeyValue | None: ...

    async def create(self, key: bytes, value: bytes, lease: int = 0) -> int:
        """Put only if absent; returns the new revision or raises KeyExists."""

    async def update(self, key: bytes, value: bytes, mod_revision: int, lease: int = 0) -> int:
        """Put only if the key's mod revision is ``mod_revision``; else Conflict/KeyNotFound."""

    async def delete(self, key: bytes, mod_revision: int = 0) -> KeyValue:
        """Delete (only at ``mod_revision`` if non-zero); returns the deleted kv."""

    # -- watch ---------------------------------------------------------------
    async def watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
    ) -> Watcher: ...

    # -- leases --------------------------------------------------------------
    async def lease_grant(self, ttl: int, lease_id: int = 0) -> LeaseGrant: ...

    async def lease_revoke(self, lease_id: int) -> int:
        """Revoke and delete the lease's keys; returns the store revision after."""

    async def lease_keepalive(self, lease_id: int) -> int:
        """Renew; returns the TTL granted again.  Raises LeaseNotFound."""

    async def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseStatus: ...

    async def lease_leases(self) -> tuple[int, ...]: ...

    # -- maintenance ---------------------------------------------------------
    async def status(self) -> StoreStatus: ...

    async def close(self) -> None: ...
