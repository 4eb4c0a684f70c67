"""etcd's gRPC statuses become Skiff's typed errors; and which failures allow a retry."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from skiff.store import errors
from skiff.store.etcd_errors import may_retry_read, never_sent, translate

REFUSED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
    "Failed to connect to remote host: Connection refused"
)


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@pytest.mark.parametrize(
    ("code", "details", "expected"),
    [
        pytest.param(
            grpc.StatusCode.OUT_OF_RANGE,
            "etcdserver: mvcc: required revision has been compacted",
            errors.Compacted,
            id="compacted",
        ),
        pytest.param(
            grpc.StatusCode.OUT_OF_RANGE,
            "etcdserver: mvcc: required revision is a future revision",
            errors.FutureRevision,
            id="future",
        ),
        pytest.param(
            grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found", errors.LeaseNotFound, id="lease"
        ),
        pytest.param(
            grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: request is too large", errors.TooLarge, id="too-large"
        ),
        pytest.param(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "grpc: received message larger than max (3145736 vs. 2097152)",
            errors.TooLarge,
            id="grpc-too-large-go",
        ),
        pytest.param(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "SERVER: Received message larger than max (3145782 vs. 2097152)",
            errors.TooLarge,
            id="grpc-too-large-c-core",
        ),
        pytest.param(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "etcdserver: mvcc: database space exceeded",
            errors.NoSpace,
            id="nospace",
        ),
        pytest.param(
            grpc.StatusCode.INVALID_ARGUMENT,
            "etcdserver: duplicate key given in txn request",
            errors.DuplicateKey,
            id="duplicate",
        ),
        pytest.param(
            grpc.StatusCode.INVALID_ARGUMENT,
            "etcdserver: too many operations in txn request",
            errors.TooManyOps,
            id="too-many-ops",
        ),
        pytest.param(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key not found", errors.KeyNotFound, id="key"),
        pytest.param(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided", errors.EmptyKey, id="empty"),
        pytest.param(
            grpc.StatusCode.FAILED_PRECONDITION,
            "etcdserver: lease already exists",
            errors.LeaseExists,
            id="lease-exists",
        ),
        pytest.param(
            grpc.StatusCode.OUT_OF_RANGE, "etcdserver: too large lease TTL", errors.LeaseTTLTooLarge, id="ttl"
        ),
        pytest.param(
            grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: something new", errors.InvalidArgument, id="other-invalid"
        ),
        pytest.param(grpc.StatusCode.UNAVAILABLE, REFUSED, errors.Unavailable, id="refused"),
        pytest.param(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", errors.Unavailable, id="deadline"),
        pytest.param(grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied", errors.StoreError, id="other"),
    ],
)
def test_translate(code: grpc.StatusCode, details: str, expected: type[errors.StoreError]) -> None:
    err = translate(rpc_error(code, details))
    assert type(err) is expected
    if expected not in (errors.InvalidArgument, errors.Unavailable, errors.StoreError):  # these add the details
        assert err.text == expected.message
    else:
        assert details in err.text


def test_compacted_carries_the_given_revision() -> None:
    err = translate(rpc_error(grpc.StatusCode.OUT_OF_RANGE, errors.Compacted.message), compact_revision=42)
    assert isinstance(err, errors.Compacted)
    assert err.compact_revision == 42


@pytest.mark.parametrize(
    ("code", "details", "read", "write"),
    [
        pytest.param(grpc.StatusCode.UNAVAILABLE, REFUSED, True, True, id="never-connected"),
        pytest.param(
            grpc.StatusCode.UNAVAILABLE, "Stream removed (Socket closed)", True, False, id="broken-after-send"
        ),
        pytest.param(grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed", True, False, id="leader-changed"),
        pytest.param(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", True, False, id="deadline"),
        pytest.param(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided", False, False, id="invalid"),
    ],
)
def test_retry_rules(code: grpc.StatusCode, details: str, read: bool, write: bool) -> None:
    err = rpc_error(code, details)
    assert (may_retry_read(err), never_sent(err)) == (read, write)
