"""The API server's writes, expressed once as txns over any backend.

Kubernetes' storage layer needs exactly three conditional writes: create if
absent, update if the mod revision is unchanged, delete (optionally at a mod
revision).  Each is one etcd txn whose failure branch reads the key back, so a
lost race reports what won without a second round trip.
"""

from __future__ import annotations

from skiff.store.errors import Conflict, KeyExists, KeyNotFound
from skiff.store.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteResult,
    KeyValue,
    Op,
    Put,
    Range,
    RangeResult,
    TxnResult,
)


class ConditionalWrites:
    """Mixin for backends: implements get/create/update/delete on ``range`` and ``txn``."""

    async def range(self, req: Range) -> RangeResult:  # pragma: no cover - provided by backend
        raise NotImplementedError

    async def txn(
        self,
        compares: tuple[Compare, ...] | list[Compare],
        success: tuple[Op, ...] | list[Op] = (),
        failure: tuple[Op, ...] | list[Op] = (),
    ) -> TxnResult:  # pragma: no cover - provided by backend
        raise NotImplementedError

    async def get(self, key: bytes, revision: int = 0) -> KeyValue | None:
        result = await self.range(Range(key, revision=revision))
        return result.kvs[0] if result.kvs else None

    async def create(self, key: bytes, value: bytes, lease: int = 0) -> int:
        absent = Compare(key, CompareTarget.MOD, CompareResult.EQUAL, 0)
        res = await self.txn([absent], [Put(key, value, lease=lease)], [Range(key)])
        if not res.succeeded:
            raise KeyExists(f"key already exists: {key!r}")
        return res.revision

    async def update(self, key: bytes, value: bytes, mod_revision: int, lease: int = 0) -> int:
        same = Compare(key, CompareTarget.MOD, CompareResult.EQUAL, mod_revision)
        res = await self.txn([same], [Put(key, value, lease=lease)], [Range(key)])
        if not res.succeeded:
            raise _lost_race(key, res)
        return res.revision

    async def delete(self, key: bytes, mod_revision: int = 0) -> KeyValue:
        compares = [Compare(key, CompareTarget.MOD, CompareResult.EQUAL, mod_revision)] if mod_revision else []
        res = await self.txn(compares, [DeleteRange(key, prev_kv=True)], [Range(key)])
        if not res.succeeded:
            raise _lost_race(key, res)
        deleted = res.responses[0]
        assert isinstance(deleted, DeleteResult)
        if not deleted.prev_kvs:
            raise KeyNotFound(f"key not found: {key!r}")
        return deleted.prev_kvs[0]


def _lost_race(key: bytes, res: TxnResult) -> Exception:
    current = res.responses[0]
    assert isinstance(current, RangeResult)
    if not current.kvs:
        return KeyNotFound(f"key not found: {key!r}")
    return Conflict(current.kvs[0], f"mod revision of {key!r} is {current.kvs[0].mod_revision}")
