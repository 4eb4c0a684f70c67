"""Typed store errors.

Every backend raises these and only these, so callers (the API server's
generic registry, the gRPC facade) translate one set of errors.  Messages are
etcd's own error strings, because the facade hands them to etcdctl verbatim and
users grep logs for them.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class.  ``grpc_code`` is the gRPC status name etcd uses for it."""

    grpc_code = "UNKNOWN"
    message = "etcdserver: unknown error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)

    @property
    def text(self) -> str:
        return str(self.args[0])


class InvalidArgument(StoreError):
    """A malformed request: empty key, inverted range, negative revision..."""

    grpc_code = "INVALID_ARGUMENT"
    message = "etcdserver: invalid argument"


class EmptyKey(InvalidArgument):
    message = "etcdserver: key is not provided"


class DuplicateKey(InvalidArgument):
    message = "etcdserver: duplicate key given in txn request"


class TooManyOps(InvalidArgument):
    message = "etcdserver: too many operations in txn request"


class TooLarge(InvalidArgument):
    """A request over the size limit (etcd's --max-request-bytes, 1.5 MiB)."""

    message = "etcdserver: request is too large"


class KeyNotFound(InvalidArgument):
    """ignore_value/ignore_lease on a missing key, or a conditional write on one."""

    message = "etcdserver: key not found"


class Compacted(StoreError):
    """The requested revision is older than the compaction point."""

    grpc_code = "OUT_OF_RANGE"
    message = "etcdserver: mvcc: required revision has been compacted"

    def __init__(self, compact_revision: int, message: str | None = None) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


class FutureRevision(StoreError):
    grpc_code = "OUT_OF_RANGE"
    message = "etcdserver: mvcc: required revision is a future revision"


class NoSpace(StoreError):
    """The space quota is exhausted (etcd's NOSPACE alarm); compact and defragment."""

    grpc_code = "RESOURCE_EXHAUSTED"
    message = "etcdserver: mvcc: database space exceeded"


class LeaseNotFound(StoreError):
    grpc_code = "NOT_FOUND"
    message = "etcdserver: requested lease not found"


class LeaseExists(StoreError):
    grpc_code = "FAILED_PRECONDITION"
    message = "etcdserver: lease already exists"


class LeaseTTLTooLarge(StoreError):
    grpc_code = "OUT_OF_RANGE"
    message = "etcdserver: too large lease TTL"


class KeyExists(StoreError):
    """create-if-absent found the key present (not an etcd error: a failed txn)."""

    grpc_code = "ALREADY_EXISTS"
    message = "key already exists"


class Conflict(StoreError):
    """update/delete-if-mod-revision lost the race; ``current`` is what won."""

    grpc_code = "ABORTED"
    message = "mod revision does not match"

    def __init__(self, current: object = None, message: str | None = None) -> None:
        super().__init__(message)
        self.current = current


class Unavailable(StoreError):
    """The backend cannot be reached (every etcd endpoint down, store closed)."""

    grpc_code = "UNAVAILABLE"
    message = "etcdserver: unavailable"
