"""Requests and results of the Store contract (etcd v3 semantics).

Plain frozen dataclasses with etcd's field names, so the gRPC facade and the
etcd backend map them to protobuf field by field.  Keys and values are bytes.

Range ends follow etcd: ``b""`` means the single key, ``b"\\0"`` means every
key >= ``key`` (and key ``b"\\0"`` with range end ``b"\\0"`` means all keys);
any other value is the exclusive end of ``[key, range_end)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

FROM_KEY = b"\0"

#: etcd's default --max-request-bytes.
MAX_REQUEST_BYTES = int(1.5 * 1024 * 1024)
#: etcd's limit on operations in one txn (--max-txn-ops).
MAX_TXN_OPS = 128
#: etcd's default backend quota (--quota-backend-bytes).
DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024
#: etcd's minimum lease TTL with default election settings: 3/2 * 1 s election timeout, rounded up.
MIN_LEASE_TTL = 2
#: etcd's maximum lease TTL (MaxLeaseTTL).
MAX_LEASE_TTL = 9_000_000_000


def prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with ``prefix`` (etcd's GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return FROM_KEY


class SortOrder(IntEnum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(IntEnum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class CompareTarget(IntEnum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


class CompareResult(IntEnum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class EventType(IntEnum):
    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes = b""
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Range:
    key: bytes
    range_end: bytes = b""
    revision: int = 0
    limit: int = 0
    keys_only: bool = False
    count_only: bool = False
    serializable: bool = False
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


@dataclass(frozen=True, slots=True)
class DeleteRange:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    """``target`` of every key in [key, range_end) compared ``result``-wise with ``value``.

    ``value`` is bytes for VALUE, an int otherwise.  A missing key has
    version/create/mod/lease 0, and a VALUE compare on it is always false (etcd).
    """

    key: bytes
    target: CompareTarget
    result: CompareResult
    value: int | bytes
    range_end: bytes = b""


@dataclass(frozen=True, slots=True)
class Txn:
    compares: tuple[Compare, ...] = ()
    success: tuple[Op, ...] = ()
    failure: tuple[Op, ...] = ()


Op = Range | Put | DeleteRange | Txn


@dataclass(frozen=True, slots=True)
class RangeResult:
    """``revision`` is the store's revision when read (the response header's)."""

    revision: int
    kvs: tuple[KeyValue, ...] = ()
    more: bool = False
    count: int = 0


@dataclass(frozen=True, slots=True)
class PutResult:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    revision: int
    deleted: int = 0
    prev_kvs: tuple[KeyValue, ...] = ()


@dataclass(frozen=True, slots=True)
class TxnResult:
    revision: int
    succeeded: bool
    responses: tuple[OpResult, ...] = ()


OpResult = RangeResult | PutResult | DeleteResult | TxnResult


@dataclass(frozen=True, slots=True)
class Event:
    """A DELETE's ``kv`` carries only the key and the deletion's mod_revision (as etcd)."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class WatchResponse:
    """One delivery: events of whole revisions, in revision order.

    ``revision`` is the header revision: for events, the store revision when
    sent (at least the last event's); for a progress notification (no events,
    ``progress=True``) every earlier event has been delivered.
    """

    revision: int
    events: tuple[Event, ...] = ()
    progress: bool = False


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """``ttl`` is the remaining seconds, -1 when the lease is gone (etcd's TimeToLive)."""

    id: int
    ttl: int
    granted_ttl: int
    keys: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class StoreStatus:
    revision: int
    compact_revision: int
    db_size: int
    db_size_in_use: int
    quota_bytes: int
    alarms: tuple[str, ...] = field(default=())
