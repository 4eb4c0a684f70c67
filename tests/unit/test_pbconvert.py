"""Round trips between the Store's dataclasses and etcd's protobuf messages."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.store import pbconvert as pbc
from skiff.store.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    DeleteResult,
    Event,
    EventType,
    KeyValue,
    Put,
    PutResult,
    Range,
    RangeResult,
    SortOrder,
    SortTarget,
    Txn,
    TxnResult,
)

KV = KeyValue(b"k", b"v", create_revision=2, mod_revision=5, version=3, lease=0x1234)
KV_MAX = KeyValue(b"\xff" * 3, b"\x00bin", create_revision=2**62, mod_revision=2**62, version=2**62, lease=2**62)


@pytest.mark.parametrize(
    ("to_pb", "from_pb", "value"),
    [
        pytest.param(pbc.kv_to_pb, pbc.kv_from_pb, KV, id="kv"),
        pytest.param(pbc.kv_to_pb, pbc.kv_from_pb, KeyValue(b"k"), id="kv-defaults"),
        pytest.param(pbc.kv_to_pb, pbc.kv_from_pb, KV_MAX, id="kv-large-numbers"),
        pytest.param(pbc.event_to_pb, pbc.event_from_pb, Event(EventType.PUT, KV), id="event-put"),
        pytest.param(pbc.event_to_pb, pbc.event_from_pb, Event(EventType.PUT, KV, KV_MAX), id="event-put-prev"),
        pytest.param(
            pbc.event_to_pb, pbc.event_from_pb, Event(EventType.DELETE, KeyValue(b"k", mod_revision=9)), id="event-del"
        ),
        pytest.param(pbc.range_to_pb, pbc.range_from_pb, Range(b"a"), id="range-single"),
        pytest.param(
            pbc.range_to_pb,
            pbc.range_from_pb,
            Range(
                b"a",
                b"b",
                revision=7,
                limit=3,
                keys_only=True,
                count_only=True,
                serializable=True,
                sort_order=SortOrder.DESCEND,
                sort_target=SortTarget.MOD,
                min_mod_revision=1,
                max_mod_revision=2,
                min_create_revision=3,
                max_create_revision=4,
            ),
            id="range-every-field",
        ),
        pytest.param(pbc.put_to_pb, pbc.put_from_pb, Put(b"k", b"v"), id="put"),
        pytest.param(
            pbc.put_to_pb,
            pbc.put_from_pb,
            Put(b"k", b"", lease=5, prev_kv=True, ignore_value=True, ignore_lease=True),
            id="put-every-field",
        ),
        pytest.param(pbc.delete_range_to_pb, pbc.delete_range_from_pb, DeleteRange(b"a"), id="delete"),
        pytest.param(
            pbc.delete_range_to_pb, pbc.delete_range_from_pb, DeleteRange(b"a", b"\0", prev_kv=True), id="delete-all"
        ),
        pytest.param(
            pbc.compare_to_pb,
            pbc.compare_from_pb,
            Compare(b"k", CompareTarget.VERSION, CompareResult.GREATER, 2),
            id="compare-version",
        ),
        pytest.param(
            pbc.compare_to_pb,
            pbc.compare_from_pb,
            Compare(b"k", CompareTarget.CREATE, CompareResult.LESS, 3, range_end=b"z"),
            id="compare-create-range",
        ),
        pytest.param(
            pbc.compare_to_pb,
            pbc.compare_from_pb,
            Compare(b"k", CompareTarget.MOD, CompareResult.EQUAL, 0),
            id="compare-mod-zero",
        ),
        pytest.param(
            pbc.compare_to_pb,
            pbc.compare_from_pb,
            Compare(b"k", CompareTarget.VALUE, CompareResult.NOT_EQUAL, b"x"),
            id="compare-value",
        ),
        pytest.param(
            pbc.compare_to_pb,
            pbc.compare_from_pb,
            Compare(b"k", CompareTarget.LEASE, CompareResult.EQUAL, 99),
            id="compare-lease",
        ),
        pytest.param(pbc.op_to_pb, pbc.op_from_pb, Range(b"a", b"b", limit=1), id="op-range"),
        pytest.param(pbc.op_to_pb, pbc.op_from_pb, Put(b"a", b"1", prev_kv=True), id="op-put"),
        pytest.param(pbc.op_to_pb, pbc.op_from_pb, DeleteRange(b"a"), id="op-delete"),
        pytest.param(
            pbc.op_to_pb,
            pbc.op_from_pb,
            Txn(
                compares=(Compare(b"a", CompareTarget.VALUE, CompareResult.EQUAL, b"1"),),
                success=(Put(b"b", b"2"), Txn(success=(DeleteRange(b"c"),))),
                failure=(Range(b"a"),),
            ),
            id="op-nested-txn",
        ),
        pytest.param(pbc.txn_to_pb, pbc.txn_from_pb, Txn(), id="txn-empty"),
    ],
)
def test_request_round_trip(to_pb: Any, from_pb: Any, value: object) -> None:
    assert from_pb(to_pb(value)) == value


NESTED_TXN = TxnResult(
    revision=8,
    succeeded=True,
    responses=(
        PutResult(8, prev_kv=KV),
        RangeResult(8, (KV,), more=True, count=4),
        TxnResult(0, False, (DeleteResult(8, 1, (KV,)),)),
    ),
)


@pytest.mark.parametrize(
    ("to_pb", "from_pb", "value"),
    [
        pytest.param(pbc.range_result_to_pb, pbc.range_result_from_pb, RangeResult(3), id="range-empty"),
        pytest.param(
            pbc.range_result_to_pb,
            pbc.range_result_from_pb,
            RangeResult(9, (KV, KV_MAX), more=True, count=10),
            id="range-kvs",
        ),
        pytest.param(pbc.put_result_to_pb, pbc.put_result_from_pb, PutResult(4), id="put"),
        pytest.param(pbc.put_result_to_pb, pbc.put_result_from_pb, PutResult(4, KV), id="put-prev"),
        pytest.param(pbc.delete_result_to_pb, pbc.delete_result_from_pb, DeleteResult(4), id="delete-none"),
        pytest.param(
            pbc.delete_result_to_pb, pbc.delete_result_from_pb, DeleteResult(4, 2, (KV, KV)), id="delete-prev"
        ),
        pytest.param(pbc.txn_result_to_pb, pbc.txn_result_from_pb, TxnResult(5, False), id="txn-empty"),
        pytest.param(pbc.txn_result_to_pb, pbc.txn_result_from_pb, NESTED_TXN, id="txn-nested"),
        pytest.param(pbc.op_result_to_pb, pbc.op_result_from_pb, NESTED_TXN, id="op-txn"),
        pytest.param(pbc.op_result_to_pb, pbc.op_result_from_pb, RangeResult(2, (KV,), count=1), id="op-range"),
    ],
)
def test_result_round_trip(to_pb: Any, from_pb: Any, value: Any) -> None:
    assert from_pb(to_pb(value, pbc.header(value.revision))) == value


def test_top_level_header_carries_cluster_fields() -> None:
    hdr = pbc.header(7, cluster_id=1, member_id=2, raft_term=3)
    pb = pbc.put_result_to_pb(PutResult(7), hdr)
    assert (pb.header.cluster_id, pb.header.member_id, pb.header.revision, pb.header.raft_term) == (1, 2, 7, 3)


def test_nested_responses_carry_revision_only_headers() -> None:
    pb = pbc.txn_result_to_pb(NESTED_TXN, pbc.header(8, cluster_id=1, member_id=2, raft_term=3))
    nested = pb.responses[0].response_put.header
    assert (nested.cluster_id, nested.member_id, nested.revision, nested.raft_term) == (0, 0, 8, 0)


@pytest.mark.parametrize(
    ("target", "field", "value"),
    [
        pytest.param(CompareTarget.VERSION, "version", 1, id="version"),
        pytest.param(CompareTarget.CREATE, "create_revision", 2, id="create"),
        pytest.param(CompareTarget.MOD, "mod_revision", 3, id="mod"),
        pytest.param(CompareTarget.VALUE, "value", b"v", id="value"),
        pytest.param(CompareTarget.LEASE, "lease", 4, id="lease"),
    ],
)
def test_compare_sets_the_oneof_field_the_target_names(target: CompareTarget, field: str, value: Any) -> None:
    pb = pbc.compare_to_pb(Compare(b"k", target, CompareResult.EQUAL, value))
    assert pb.WhichOneof("target_union") == field


def test_compare_without_oneof_reads_zero_value() -> None:
    pb = pbc.compare_to_pb(Compare(b"k", CompareTarget.VALUE, CompareResult.EQUAL, b"x"))
    pb.ClearField("target_union")
    assert pbc.compare_from_pb(pb).value == b""


@pytest.mark.parametrize(
    ("convert", "message"),
    [
        pytest.param(pbc.op_from_pb, "RequestOp", id="request-op"),
        pytest.param(pbc.op_result_from_pb, "ResponseOp", id="response-op"),
    ],
)
def test_empty_oneof_is_rejected(convert: Any, message: str) -> None:
    from skiff.etcd_protos import load

    with pytest.raises(ValueError, match=message):
        convert(getattr(load().rpc_pb2, message)())
