"""Conversions between the Store's dataclasses and etcd's v3 protobuf messages.

Used in both directions by two sides of one wire: the etcd backend (dataclass
request -> protobuf -> real etcd -> protobuf response -> dataclass result) and
the gRPC facade (protobuf request from etcdctl -> dataclass -> store ->
dataclass result -> protobuf response).  Every ``x_to_pb`` has an
``x_from_pb`` so that ``x_from_pb(x_to_pb(v)) == v``.

Pure functions: no I/O, no validation (the backends validate; a facade must
see etcd's own errors, not ours).  Messages come from
:func:`skiff.etcd_protos.load`, generated at run time, hence typed ``Any``.

Headers follow etcd: a top-level response's header carries cluster_id,
member_id, revision and raft_term (the caller builds it with :func:`header`);
responses nested in a txn carry a header with only ``revision`` set (etcd's
applier creates an empty header per op and fills in just the revision).
"""

from __future__ import annotations

from typing import Any

from skiff.etcd_protos import load
from skiff.store.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteResult,
    Event,
    EventType,
    KeyValue,
    Op,
    OpResult,
    Put,
    PutResult,
    Range,
    RangeResult,
    SortOrder,
    SortTarget,
    Txn,
    TxnResult,
)

#: A generated protobuf message (the classes exist only at run time).
Message = Any

_protos = load()
_rpc: Any = _protos.rpc_pb2
_mvcc: Any = _protos.kv_pb2

# Compare.target_union field for each target (etcd reads the field named by the target).
_COMPARE_FIELD = {
    CompareTarget.VERSION: "version",
    CompareTarget.CREATE: "create_revision",
    CompareTarget.MOD: "mod_revision",
    CompareTarget.VALUE: "value",
    CompareTarget.LEASE: "lease",
}


def header(revision: int, *, cluster_id: int = 0, member_id: int = 0, raft_term: int = 0) -> Message:
    """An etcdserverpb.ResponseHeader."""
    return _rpc.ResponseHeader(cluster_id=cluster_id, member_id=member_id, revision=revision, raft_term=raft_term)


# -- KeyValue and Event -------------------------------------------------------


def kv_to_pb(kv: KeyValue) -> Message:
    return _mvcc.KeyValue(
        key=kv.key,
        value=kv.value,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        lease=kv.lease,
    )


def kv_from_pb(pb: Message) -> KeyValue:
    return KeyValue(
        key=pb.key,
        value=pb.value,
        create_revision=pb.create_revision,
        mod_revision=pb.mod_revision,
        version=pb.version,
        lease=pb.lease,
    )


def event_to_pb(event: Event) -> Message:
    pb = _mvcc.Event(type=int(event.type), kv=kv_to_pb(event.kv))
    if event.prev_kv is not None:
        pb.prev_kv.CopyFrom(kv_to_pb(event.prev_kv))
    return pb


def event_from_pb(pb: Message) -> Event:
    prev = kv_from_pb(pb.prev_kv) if pb.HasField("prev_kv") else None
    return Event(type=EventType(pb.type), kv=kv_from_pb(pb.kv), prev_kv=prev)


# -- requests -----------------------------------------------------------------


def range_to_pb(req: Range) -> Message:
    return _rpc.RangeRequest(
        key=req.key,
        range_end=req.range_end,
        limit=req.limit,
        revision=req.revision,
        sort_order=int(req.sort_order),
        sort_target=int(req.sort_target),
        serializable=req.serializable,
        keys_only=req.keys_only,
        count_only=req.count_only,
        min_mod_revision=req.min_mod_revision,
        max_mod_revision=req.max_mod_revision,
        min_create_revision=req.min_create_revision,
        max_create_revision=req.max_create_revision,
    )


def range_from_pb(pb: Message) -> Range:
    return Range(
        key=pb.key,
        range_end=pb.range_end,
        revision=pb.revision,
        limit=pb.limit,
        keys_only=pb.keys_only,
        count_only=pb.count_only,
        serializable=pb.serializable,
        sort_order=SortOrder(pb.sort_order),
        sort_target=SortTarget(pb.sort_target),
        min_mod_revision=pb.min_mod_revision,
        max_mod_revision=pb.max_mod_revision,
        min_create_revision=pb.min_create_revision,
        max_create_revision=pb.max_create_revision,
    )


def put_to_pb(req: Put) -> Message:
    return _rpc.PutRequest(
        key=req.key,
        value=req.value,
        lease=req.lease,
        prev_kv=req.prev_kv,
        ignore_value=req.ignore_value,
        ignore_lease=req.ignore_lease,
    )


def put_from_pb(pb: Message) -> Put:
    return Put(
        key=pb.key,
        value=pb.value,
        lease=pb.lease,
        prev_kv=pb.prev_kv,
        ignore_value=pb.ignore_value,
        ignore_lease=pb.ignore_lease,
    )


def delete_range_to_pb(req: DeleteRange) -> Message:
    return _rpc.DeleteRangeRequest(key=req.key, range_end=req.range_end, prev_kv=req.prev_kv)


def delete_range_from_pb(pb: Message) -> DeleteRange:
    return DeleteRange(key=pb.key, range_end=pb.range_end, prev_kv=pb.prev_kv)


def compare_to_pb(cmp: Compare) -> Message:
    pb = _rpc.Compare(result=int(cmp.result), target=int(cmp.target), key=cmp.key, range_end=cmp.range_end)
    setattr(pb, _COMPARE_FIELD[cmp.target], cmp.value)
    return pb


def compare_from_pb(pb: Message) -> Compare:
    """Reads the field the target names; an unset oneof reads as 0 / b"" (as etcd compares)."""
    target = CompareTarget(pb.target)
    value: int | bytes = getattr(pb, _COMPARE_FIELD[target])
    return Compare(key=pb.key, target=target, result=CompareResult(pb.result), value=value, range_end=pb.range_end)


def txn_to_pb(txn: Txn) -> Message:
    return _rpc.TxnRequest(
        compare=[compare_to_pb(c) for c in txn.compares],
        success=[op_to_pb(op) for op in txn.success],
        failure=[op_to_pb(op) for op in txn.failure],
    )


def txn_from_pb(pb: Message) -> Txn:
    return Txn(
        compares=tuple(compare_from_pb(c) for c in pb.compare),
        success=tuple(op_from_pb(op) for op in pb.success),
        failure=tuple(op_from_pb(op) for op in pb.failure),
    )


def op_to_pb(op: Op) -> Message:
    if isinstance(op, Range):
        return _rpc.RequestOp(request_range=range_to_pb(op))
    if isinstance(op, Put):
        return _rpc.RequestOp(request_put=put_to_pb(op))
    if isinstance(op, DeleteRange):
        return _rpc.RequestOp(request_delete_range=delete_range_to_pb(op))
    return _rpc.RequestOp(request_txn=txn_to_pb(op))


def op_from_pb(pb: Message) -> Op:
    """Raises ValueError for a RequestOp with no request set."""
    which = pb.WhichOneof("request")
    if which == "request_range":
        return range_from_pb(pb.request_range)
    if which == "request_put":
        return put_from_pb(pb.request_put)
    if which == "request_delete_range":
        return delete_range_from_pb(pb.request_delete_range)
    if which == "request_txn":
        return txn_from_pb(pb.request_txn)
    raise ValueError("RequestOp carries no request")


# -- results ------------------------------------------------------------------


def range_result_to_pb(res: RangeResult, hdr: Message) -> Message:
    return _rpc.RangeResponse(header=hdr, kvs=[kv_to_pb(kv) for kv in res.kvs], more=res.more, count=res.count)


def range_result_from_pb(pb: Message) -> RangeResult:
    return RangeResult(
        revision=pb.header.revision,
        kvs=tuple(kv_from_pb(kv) for kv in pb.kvs),
        more=pb.more,
        count=pb.count,
    )


def put_result_to_pb(res: PutResult, hdr: Message) -> Message:
    pb = _rpc.PutResponse(header=hdr)
    if res.prev_kv is not None:
        pb.prev_kv.CopyFrom(kv_to_pb(res.prev_kv))
    return pb


def put_result_from_pb(pb: Message) -> PutResult:
    prev = kv_from_pb(pb.prev_kv) if pb.HasField("prev_kv") else None
    return PutResult(revision=pb.header.revision, prev_kv=prev)


def delete_result_to_pb(res: DeleteResult, hdr: Message) -> Message:
    return _rpc.DeleteRangeResponse(header=hdr, deleted=res.deleted, prev_kvs=[kv_to_pb(kv) for kv in res.prev_kvs])


def delete_result_from_pb(pb: Message) -> DeleteResult:
    return DeleteResult(
        revision=pb.header.revision,
        deleted=pb.deleted,
        prev_kvs=tuple(kv_from_pb(kv) for kv in pb.prev_kvs),
    )


def txn_result_to_pb(res: TxnResult, hdr: Message) -> Message:
    """Nested responses get a revision-only header, as etcd's applier builds them."""
    return _rpc.TxnResponse(
        header=hdr,
        succeeded=res.succeeded,
        responses=[op_result_to_pb(r, header(r.revision)) for r in res.responses],
    )


def txn_result_from_pb(pb: Message) -> TxnResult:
    return TxnResult(
        revision=pb.header.revision,
        succeeded=pb.succeeded,
        responses=tuple(op_result_from_pb(r) for r in pb.responses),
    )


def op_result_to_pb(res: OpResult, hdr: Message) -> Message:
    if isinstance(res, RangeResult):
        return _rpc.ResponseOp(response_range=range_result_to_pb(res, hdr))
    if isinstance(res, PutResult):
        return _rpc.ResponseOp(response_put=put_result_to_pb(res, hdr))
    if isinstance(res, DeleteResult):
        return _rpc.ResponseOp(response_delete_range=delete_result_to_pb(res, hdr))
    return _rpc.ResponseOp(response_txn=txn_result_to_pb(res, hdr))


def op_result_from_pb(pb: Message) -> OpResult:
    """Raises ValueError for a ResponseOp with no response set."""
    which = pb.WhichOneof("response")
    if which == "response_range":
        return range_result_from_pb(pb.response_range)
    if which == "response_put":
        return put_result_from_pb(pb.response_put)
    if which == "response_delete_range":
        return delete_result_from_pb(pb.response_delete_range)
    if which == "response_txn":
        return txn_result_from_pb(pb.response_txn)
    raise ValueError("ResponseOp carries no response")
