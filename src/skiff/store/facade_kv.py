"""etcd's KV service (Range, Put, DeleteRange, Txn, Compact) over a Store.

The Store is stricter than etcd in two places, and etcdctl users must not see
that: it refuses negative revisions and limits and inverted ranges with
InvalidArgument, where etcd (mvcc ``rangeKeys``, ``applyCompare``) reads a
negative revision as "current", a negative limit as "no limit", and an
inverted range (``key >= range_end``, range_end neither empty nor "\\0") as a
range holding no keys.  So this module rewrites such requests before the
store sees them:

* negative revision / limit -> 0;
* an inverted Range or DeleteRange is answered without touching any key —
  a one-key count-only read still runs, so compacted or future revisions and
  an empty key fail exactly as in etcd, and the header carries the current
  revision;
* inside a txn, inverted ops are taken out and their empty results put back
  in place; a compare over an inverted range is decided up front the way
  etcd decides it over no keys (VALUE is false, the others compare 0).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import grpc.aio

from skiff.etcd_protos import load
from skiff.store import pbconvert
from skiff.store.errors import InvalidArgument, KeyNotFound, StoreError
from skiff.store.facade_member import Member
from skiff.store.facade_wire import RequestError
from skiff.store.protocol import Store
from skiff.store.types import (
    FROM_KEY,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteResult,
    Op,
    OpResult,
    Put,
    Range,
    RangeResult,
    SortOrder,
    SortTarget,
    Txn,
    TxnResult,
)

_rpc: Any = load().rpc_pb2

#: etcd's ErrGRPCInvalidSortOption.
INVALID_SORT_OPTION = RequestError("INVALID_ARGUMENT", "etcdserver: invalid sort option")


async def current_revision(store: Store) -> int:
    """The store's revision, read the cheapest way the protocol offers (one key, count only)."""
    return (await store.range(Range(b"\0", count_only=True, serializable=True))).revision


def is_inverted(key: bytes, range_end: bytes) -> bool:
    """True when [key, range_end) holds no key at all, by etcd's reading of range_end."""
    return bool(range_end) and range_end != FROM_KEY and key >= range_end


@dataclass(frozen=True, slots=True)
class _NoKeys:
    """An inverted Range or DeleteRange taken out of a txn; answered with an empty result."""

    op: Range | DeleteRange


@dataclass(frozen=True, slots=True)
class _TxnPlan:
    compares: tuple[Compare, ...]
    success: tuple[Op | _NoKeys | _TxnPlan, ...]
    failure: tuple[Op | _NoKeys | _TxnPlan, ...]


def _compare_nothing(cmp: Compare) -> bool:
    """etcd's applyCompare over a range with no keys."""
    if cmp.target == CompareTarget.VALUE:
        return False
    if not isinstance(cmp.value, int):
        return False
    if cmp.result == CompareResult.EQUAL:
        return cmp.value == 0
    if cmp.result == CompareResult.NOT_EQUAL:
        return cmp.value != 0
    if cmp.result == CompareResult.GREATER:
        return cmp.value < 0
    return cmp.value > 0


def _plan_compares(compares: tuple[Compare, ...]) -> tuple[Compare, ...]:
    out: list[Compare] = []
    for cmp in compares:
        if not is_inverted(cmp.key, cmp.range_end):
            out.append(cmp)
        elif not _compare_nothing(cmp):
            # Always false: no key has a negative version.
            out.append(Compare(cmp.key, CompareTarget.VERSION, CompareResult.LESS, 0))
    return tuple(out)


def _plan_op(op: Op) -> Op | _NoKeys | _TxnPlan:
    if isinstance(op, Range):
        op = normalise_range(op)
        return _NoKeys(op) if is_inverted(op.key, op.range_end) else op
    if isinstance(op, DeleteRange):
        return _NoKeys(op) if is_inverted(op.key, op.range_end) else op
    if isinstance(op, Txn):
        return plan_txn(op)
    return op


def plan_txn(txn: Txn) -> _TxnPlan:
    return _TxnPlan(
        _plan_compares(txn.compares),
        tuple(_plan_op(op) for op in txn.success),
        tuple(_plan_op(op) for op in txn.failure),
    )


def _store_ops(ops: tuple[Op | _NoKeys | _TxnPlan, ...]) -> tuple[Op, ...]:
    out: list[Op] = []
    for op in ops:
        if isinstance(op, _TxnPlan):
            out.append(Txn(op.compares, _store_ops(op.success), _store_ops(op.failure)))
        elif not isinstance(op, _NoKeys):
            out.append(op)
    return tuple(out)


def _splice(plan: _TxnPlan, result: TxnResult) -> TxnResult:
    """Put the empty results of taken-out ops back in their places."""
    branch = plan.success if result.succeeded else plan.failure
    given = iter(result.responses)
    responses: list[OpResult] = []
    for op in branch:
        if isinstance(op, _NoKeys):
            empty: OpResult = (
                RangeResult(revision=result.revision)
                if isinstance(op.op, Range)
                else DeleteResult(revision=result.revision)
            )
            responses.append(empty)
            continue
        res = next(given)
        if isinstance(op, _TxnPlan) and isinstance(res, TxnResult):
            res = _splice(op, res)
        responses.append(res)
    return dataclasses.replace(result, responses=tuple(responses))


def _writes(ops: tuple[Op, ...]) -> bool:
    for op in ops:
        if isinstance(op, Put | DeleteRange):
            return True
        if isinstance(op, Txn) and (_writes(op.success) or _writes(op.failure)):
            return True
    return False


def normalise_range(req: Range) -> Range:
    if req.revision < 0 or req.limit < 0:
        return dataclasses.replace(req, revision=max(req.revision, 0), limit=max(req.limit, 0))
    return req


def _check_sort(request: Any) -> None:
    if (
        request.sort_order not in SortOrder._value2member_map_
        or request.sort_target not in SortTarget._value2member_map_
    ):
        raise INVALID_SORT_OPTION


def _txn_from_pb(request: Any) -> Txn:
    for op in (*request.success, *request.failure):
        if op.WhichOneof("request") == "request_range":
            _check_sort(op.request_range)
    try:
        return pbconvert.txn_from_pb(request)
    except ValueError as exc:
        # etcd's checkRequestOp answers an empty RequestOp with ErrGRPCKeyNotFound.
        if "no request" in str(exc):
            raise KeyNotFound() from exc
        raise InvalidArgument() from exc


def _reaches_raft(err: StoreError) -> bool:
    """Whether etcd would have appended the failed request to its log (apply-time errors)."""
    return not isinstance(err, InvalidArgument) or isinstance(err, KeyNotFound)


class KVService:
    """The KV servicer; method names are the rpc names."""

    def __init__(self, store: Store, member: Member) -> None:
        self._store = store
        self._member = member

    async def _no_keys(self, key: bytes, revision: int = 0, serializable: bool = False) -> int:
        """Validate key and revision as a real read would; returns the header revision."""
        probe = await self._store.range(Range(key, revision=revision, count_only=True, serializable=serializable))
        return probe.revision

    async def Range(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        _check_sort(request)
        req = normalise_range(pbconvert.range_from_pb(request))
        if is_inverted(req.key, req.range_end):
            res = RangeResult(revision=await self._no_keys(req.key, req.revision, req.serializable))
        else:
            res = await self._store.range(req)
        return pbconvert.range_result_to_pb(res, self._member.header(res.revision))

    async def Put(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            res = await self._store.put(pbconvert.put_from_pb(request))
        except StoreError as err:
            if _reaches_raft(err):
                self._member.applied()
            raise
        self._member.applied()
        return pbconvert.put_result_to_pb(res, self._member.header(res.revision))

    async def DeleteRange(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        req = pbconvert.delete_range_from_pb(request)
        if is_inverted(req.key, req.range_end):
            res = DeleteResult(revision=await self._no_keys(req.key))
        else:
            res = await self._store.delete_range(req)
        self._member.applied()
        return pbconvert.delete_result_to_pb(res, self._member.header(res.revision))

    async def Txn(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        txn = _txn_from_pb(request)
        plan = plan_txn(txn)
        success, failure = _store_ops(plan.success), _store_ops(plan.failure)
        writes = _writes(txn.success) or _writes(txn.failure)
        try:
            res = await self._store.txn(plan.compares, success, failure)
        except StoreError as err:
            if writes and _reaches_raft(err):
                self._member.applied()
            raise
        if writes:
            self._member.applied()
        res = _splice(plan, res)
        return pbconvert.txn_result_to_pb(res, self._member.header(res.revision))

    async def Compact(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            await self._store.compact(request.revision)
        except StoreError as err:
            if _reaches_raft(err):
                self._member.applied()
            raise
        self._member.applied()
        return _rpc.CompactionResponse(header=self._member.header(await current_revision(self._store)))
