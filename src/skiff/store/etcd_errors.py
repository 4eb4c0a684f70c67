"""etcd's gRPC errors as Skiff's typed store errors, and which ones a retry may follow.

etcd reports errors as a gRPC status whose details are a fixed string
(etcd's ``rpctypes`` package: ``ErrGRPCCompacted`` and friends), so we
translate by that string, falling back to the status code.  The strings are
the ones ``skiff.store.errors`` carries as messages, so we match against the
classes' own ``message`` rather than a second copy of them.

Retries (etcd clientv3's retry policy, ``isSafeRetryImmutableRPC`` /
``isSafeRetryMutableRPC``):

* a read may be retried on another member after any UNAVAILABLE (or our own
  deadline): reading twice changes nothing;
* a write may be retried only when it certainly never reached a server, i.e.
  the connection could not be established.  After a write was sent, a broken
  connection or "leader changed" leaves its outcome unknown: retrying could
  apply it twice, so we raise ``Unavailable`` and let the caller decide.
"""

from __future__ import annotations

import grpc
import grpc.aio

from skiff.store.errors import (
    Compacted,
    DuplicateKey,
    EmptyKey,
    FutureRevision,
    InvalidArgument,
    KeyNotFound,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
    NoSpace,
    StoreError,
    TooLarge,
    TooManyOps,
    Unavailable,
)

_BY_MESSAGE: dict[str, type[StoreError]] = {
    cls.message: cls
    for cls in (
        FutureRevision,
        DuplicateKey,
        EmptyKey,
        TooManyOps,
        TooLarge,
        KeyNotFound,
        NoSpace,
        LeaseNotFound,
        LeaseExists,
        LeaseTTLTooLarge,
    )
}

# gRPC's own refusal of an oversized message (etcd's limit is --max-request-bytes + 512 KiB of overhead);
# Go says "grpc: received message larger than max", C-core "SERVER: Received message larger than max".
_GRPC_TOO_LARGE = "received message larger than max"

# Details gRPC gives when it never got a connection, so nothing was sent.
_NOT_CONNECTED = ("failed to connect to all addresses", "Connection refused", "DNS resolution failed")

# etcd statuses that mean "this member cannot serve now; another may".
_UNAVAILABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def translate(err: grpc.aio.AioRpcError, compact_revision: int = 0) -> StoreError:
    """The typed error for an etcd gRPC failure (``compact_revision`` fills in a Compacted)."""
    details = err.details() or ""
    if details == Compacted.message:
        return Compacted(compact_revision)
    cls = _BY_MESSAGE.get(details)
    if cls is not None:
        return cls()
    code = err.code()
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _GRPC_TOO_LARGE in details.lower():
        return TooLarge()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(details or None)
    if code in _UNAVAILABLE_CODES:
        return Unavailable(f"{Unavailable.message}: {code.name}: {details}")
    return StoreError(f"etcdserver: {code.name}: {details}")


def is_compacted(err: grpc.aio.AioRpcError) -> bool:
    return bool(err.details() == Compacted.message)


def may_retry_read(err: grpc.aio.AioRpcError) -> bool:
    """Another member may answer this read (this one is down, partitioned, or leaderless)."""
    return bool(err.code() in _UNAVAILABLE_CODES)


def never_sent(err: grpc.aio.AioRpcError) -> bool:
    """No connection was ever made for this call, so the server never saw the request."""
    details = err.details() or ""
    return err.code() == grpc.StatusCode.UNAVAILABLE and any(s in details for s in _NOT_CONNECTED)
