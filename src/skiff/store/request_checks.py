"""Stateless request validation, as etcd's gRPC layer does before anything is applied.

Mirrors etcd v3.5 ``api/v3rpc/key.go``: ``checkPutRequest``,
``checkTxnRequest`` (the op-count limit shrinks for nested txns exactly as
there) and ``checkIntervals`` (a txn branch may not put one key twice nor put
inside a range it deletes; the ``then``/``else`` of a nested txn may put the
same key).  Two stricter rules are Skiff's own and hold on every backend: a
negative revision and an inverted range (``range_end`` set, not ``b"\\0"``, and
not after ``key``) are ``InvalidArgument`` instead of etcd's silent "current
revision" / "nothing".  Also the request size limit (``TooLarge``).

Every check here needs no state, so a backend runs them before queueing.
"""

from __future__ import annotations

from skiff.store.errors import DuplicateKey, EmptyKey, InvalidArgument, TooLarge, TooManyOps
from skiff.store.key_span import KeySpan
from skiff.store.types import MAX_REQUEST_BYTES, MAX_TXN_OPS, DeleteRange, Op, Put, Range, Txn


def check_range(req: Range) -> None:
    if not req.key:
        raise EmptyKey()
    if req.revision < 0:
        raise InvalidArgument(f"etcdserver: negative revision {req.revision} is not allowed")
    check_not_inverted(req.key, req.range_end)


def check_put(req: Put) -> None:
    if not req.key:
        raise EmptyKey()
    if req.ignore_value and req.value:
        raise InvalidArgument("etcdserver: value is provided")
    if req.ignore_lease and req.lease:
        raise InvalidArgument("etcdserver: lease is provided")


def check_delete(req: DeleteRange) -> None:
    if not req.key:
        raise EmptyKey()
    check_not_inverted(req.key, req.range_end)


def check_not_inverted(key: bytes, range_end: bytes) -> None:
    if KeySpan.of(key, range_end).is_inverted:
        raise InvalidArgument(f"etcdserver: invalid range: range_end {range_end!r} is not after key {key!r}")


def check_watch(key: bytes, range_end: bytes, start_revision: int) -> None:
    if start_revision < 0:
        raise InvalidArgument(f"etcdserver: negative revision {start_revision} is not allowed")
    check_not_inverted(key, range_end)


def check_txn(txn: Txn, max_txn_ops: int = MAX_TXN_OPS) -> None:
    """etcd's checkTxnRequest followed by checkIntervals on both branches, then the size limit."""
    _check_txn_request(txn, max_txn_ops)
    _check_intervals(txn.success)
    _check_intervals(txn.failure)
    check_size(txn_size(txn))


def _check_txn_request(txn: Txn, max_txn_ops: int) -> None:
    opc = max(len(txn.compares), len(txn.success), len(txn.failure))
    if opc > max_txn_ops:
        raise TooManyOps()
    for cmp in txn.compares:
        if not cmp.key:
            raise EmptyKey()
    for op in (*txn.success, *txn.failure):
        _check_op(op, max_txn_ops - opc)


def _check_op(op: Op, max_txn_ops: int) -> None:
    if isinstance(op, Range):
        check_range(op)
    elif isinstance(op, Put):
        check_put(op)
    elif isinstance(op, DeleteRange):
        check_delete(op)
    else:
        _check_txn_request(op, max_txn_ops)


def check_size(size: int) -> None:
    if size > MAX_REQUEST_BYTES:
        raise TooLarge()


def put_size(req: Put) -> int:
    return len(req.key) + len(req.value)


def txn_size(txn: Txn) -> int:
    """Bytes of keys and values carried by a txn (our stand-in for etcd's marshalled size)."""
    total = sum(
        len(c.key) + len(c.range_end) + (len(c.value) if isinstance(c.value, bytes) else 8) for c in txn.compares
    )
    for op in (*txn.success, *txn.failure):
        if isinstance(op, Put):
            total += put_size(op)
        elif isinstance(op, Txn):
            total += txn_size(op)
        else:
            total += len(op.key) + len(op.range_end)
    return total


# -- checkIntervals ---------------------------------------------------------
# etcd compares interval bounds as "affine" strings: the empty string is +inf.
# A single-key delete is the point interval [k, k+"\0").  Note the quirk kept
# on purpose: a from-key delete (range_end "\0") is the interval [key, "\0"),
# which contains no key at all, so etcd lets a put follow it in one txn.


def _affine_less(a: bytes, b: bytes) -> bool:
    if not a:
        return False
    if not b:
        return True
    return a < b


def _interval_of(req: DeleteRange) -> tuple[bytes, bytes]:
    if req.range_end:
        return (req.key, req.range_end)
    return (req.key, req.key + b"\0")


def _intersects(dels: list[tuple[bytes, bytes]], key: bytes) -> bool:
    return any(not _affine_less(key, begin) and _affine_less(key, end) for begin, end in dels)


def _check_intervals(ops: tuple[Op, ...]) -> tuple[set[bytes], list[tuple[bytes, bytes]]]:
    dels = [_interval_of(op) for op in ops if isinstance(op, DeleteRange)]
    puts: set[bytes] = set()
    for op in ops:
        if not isinstance(op, Txn):
            continue
        puts_then, dels_then = _check_intervals(op.success)
        puts_else, dels_else = _check_intervals(op.failure)
        for key in puts_then:
            if key in puts or _intersects(dels, key):
                raise DuplicateKey()
            puts.add(key)
        for key in puts_else:
            if (key in puts and key not in puts_then) or _intersects(dels, key):
                raise DuplicateKey()
            puts.add(key)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for op in ops:
        if not isinstance(op, Put):
            continue
        if op.key in puts or _intersects(dels, op.key):
            raise DuplicateKey()
        puts.add(op.key)
    return puts, dels
