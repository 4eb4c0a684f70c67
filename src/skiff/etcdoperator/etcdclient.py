"""An asyncio gRPC client for ONE etcd member, as the operator needs it to run a cluster.

Why not :mod:`skiff.store.etcd`: that is a storage driver (balanced over many
endpoints, retrying, speaking the Store protocol); the operator instead needs to
address a *particular* member (Status and MoveLeader answer for the member they
are sent to) and to see every error, so that its reconcile loop decides what to
retry.  Hence:

* one member endpoint and one gRPC channel per client: plaintext, or TLS
  with a :class:`ClientTls` (the CA to verify the member with, the client
  certificate to present, and the name to verify it under: the operator
  dials pod IPs, which no certificate names);
* every RPC has a deadline (``timeout`` seconds; :meth:`EtcdClient.snapshot` has
  ``snapshot_timeout``, for the whole transfer) and no retries happen here;
* every gRPC failure becomes :class:`EtcdError` carrying etcd's status code and
  message (``code`` None: raised by this client itself, e.g. a refused learner update);
  the ``is_*`` predicates classify them by etcd's own error strings
  (etcd's ``api/v3rpc/rpctypes``), which are the same in 3.4 and 3.5.

Membership changes, as seen with etcd 3.4.23 and 3.5.1 (the caller's concern):

* A change proposed right after another one (remove then add, within a few
  ms) can be dropped silently by Raft (its one-pending-conf-change rule) and
  then waits out the deadline: DEADLINE_EXCEEDED, "retryable".  A timed-out
  MemberAdd may still have been applied, so re-read :meth:`EtcdClient.member_list`
  (match by peer URL) before adding again; "Peer URLs already exists" means it was.
* Removing a voter is refused with "unhealthy cluster" until the remaining
  voters have been connected for 5 s (etcd's HealthInterval, --strict-reconfig-check).
* MemberList and linearizable reads are refused by a learner ("rpc not
  supported for learner"); Status and serializable reads work on it.
  MemberList, Status and serializable reads need no quorum.

Member IDs are etcd's uint64 IDs as Python ints (etcdctl prints them in hex).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import grpc
import grpc.aio

from skiff.etcd_protos import load

#: Default deadline for a snapshot stream (the whole transfer, not a chunk).
SNAPSHOT_TIMEOUT = 300.0
#: Large enough for a big Range; etcd's own client lifts the 4 MiB default too.
_MAX_RECEIVE_BYTES = 256 * 1024 * 1024
#: Snapshot chunks (etcd sends 32 KiB each) are written in batches of this many bytes.
_WRITE_BATCH_BYTES = 1024 * 1024

# etcd's error strings (server/etcdserver/api/v3rpc/rpctypes/error.go), identical in 3.4 and 3.5.
_MEMBER_NOT_FOUND = "member not found"
_LEARNER_NOT_READY = "can only promote a learner member which is in sync with leader"
_RETRYABLE_MEMBERSHIP = (
    "unhealthy cluster",  # adding a voter would leave the cluster without a quorum of started members
    "not enough started members",  # removing/promoting would do the same
    "too many learner members",  # --max-learners (1 by default) reached: wait for the promotion
    "request timed out",  # includes "... due to previous leader failure" / "connection lost"
    "leader changed",
    "no leader",
    "server stopped",
)
_RETRYABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class EtcdError(Exception):
    """An etcd RPC failed: ``code`` is the gRPC status (None if there was none), ``message`` etcd's text."""

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, method: str = "", endpoint: str = ""):
        self.code = code
        self.message = message
        self.method = method
        self.endpoint = endpoint
        where = f"{method} on {endpoint}: " if method else ""
        status = f"{code.name}: " if code is not None else ""
        super().__init__(f"{where}{status}{message}")


def _message(e: BaseException) -> str:
    if isinstance(e, EtcdError):
        return e.message
    if isinstance(e, grpc.aio.AioRpcError):
        return e.details() or ""
    return ""


def is_member_not_found(e: BaseException) -> bool:
    """etcd does not know the member ID (already removed, or never added)."""
    return _MEMBER_NOT_FOUND in _message(e)


def is_learner_not_ready(e: BaseException) -> bool:
    """MemberPromote refused: the learner has not caught up with the leader yet (retry later)."""
    return _LEARNER_NOT_READY in _message(e)


def is_retryable_membership(e: BaseException) -> bool:
    """A membership change failed for a transient reason: retry it later, unchanged.

    Not included: "learner not ready" (see :func:`is_learner_not_ready`) and
    permanent refusals such as "Peer URLs already exists" or "member not found".
    """
    if isinstance(e, EtcdError) and e.code in _RETRYABLE_CODES:
        return True
    if isinstance(e, grpc.aio.AioRpcError) and e.code() in _RETRYABLE_CODES:
        return True
    message = _message(e)
    return any(text in message for text in _RETRYABLE_MEMBERSHIP)


@dataclass(frozen=True)
class Member:
    """A cluster member as MemberList reports it; a learner added but never started has name "" and no client URLs."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool


@dataclass(frozen=True)
class EndpointStatus:
    """Maintenance.Status of one member; ``revision`` is the response header's store revision."""

    endpoint: str
    member_id: int
    version: str
    db_size: int
    leader: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    is_learner: bool
    revision: int
    errors: tuple[str, ...]

    @property
    def is_leader(self) -> bool:
        return self.leader != 0 and self.leader == self.member_id


@dataclass(frozen=True)
class ClientTls:
    """PEM bytes of the CA members' certificates chain to, and of the client certificate and key presented.

    ``server_name``: the name members' certificates are checked against instead of the dialed host (None: the host).
    """

    ca: bytes
    cert: bytes
    key: bytes
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


def _target(endpoint: str, tls: ClientTls | None) -> str:
    """``host:port`` of ``endpoint``; its scheme, when it has one, must agree with ``tls``."""
    if endpoint.startswith("https://") and tls is None:
        raise ValueError(f"etcd endpoint {endpoint!r}: https needs client TLS settings")
    if endpoint.startswith("http://") and tls is not None:
        raise ValueError(f"etcd endpoint {endpoint!r}: plaintext URL given with TLS settings")
    return endpoint.removeprefix("https://").removeprefix("http://").rstrip("/")


def _member(pb: Any) -> Member:
    return Member(
        id=int(pb.ID),
        name=str(pb.name),
        peer_urls=tuple(pb.peerURLs),
        client_urls=tuple(pb.clientURLs),
        is_learner=bool(pb.isLearner),
    )


def _members(pbs: Any) -> list[Member]:
    return [_member(pb) for pb in pbs]


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's clientv3.GetPrefixRangeEnd: the prefix with its last non-0xff byte incremented."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # an all-0xff or empty prefix: every key


def _open_part(path: Path) -> BinaryIO:
    return open(path, "wb")


def _write(file: BinaryIO, data: bytes) -> None:
    file.write(data)


def _finish(file: BinaryIO, part: Path, dest: Path) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()
    part.replace(dest)
    dir_fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _discard(file: BinaryIO, part: Path) -> None:
    file.close()
    part.unlink(missing_ok=True)


class EtcdClient:
    """A client of the etcd member at ``endpoint`` ("http://10.0.0.5:2379", "10.0.0.5:2379", or https with ``tls``)."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 5.0,
        snapshot_timeout: float = SNAPSHOT_TIMEOUT,
        tls: ClientTls | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.snapshot_timeout = snapshot_timeout
        self.tls = tls
        self._target = _target(endpoint, tls)
        self._rpc = load()
        # Created on first use, inside the caller's event loop (grpc.aio binds a channel to its loop).
        self._channel: grpc.aio.Channel | None = None

    def _open_channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", _MAX_RECEIVE_BYTES)]
            if self.tls is None:
                self._channel = grpc.aio.insecure_channel(self._target, options=options)
            else:
                if self.tls.server_name:
                    options.append(("grpc.ssl_target_name_override", self.tls.server_name))
                self._channel = grpc.aio.secure_channel(self._target, self.tls.credentials(), options=options)
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"EtcdClient({self.endpoint!r})"

    # -- plumbing -----------------------------------------------------------------------------------------

    def _error(self, method: str, err: grpc.aio.AioRpcError) -> EtcdError:
        return EtcdError(err.details() or str(err.code()), code=err.code(), method=method, endpoint=self.endpoint)

    async def _call(self, service: str, method: str, request: Any) -> Any:
        stub = getattr(self._rpc.rpc_pb2_grpc, f"{service}Stub")(self._open_channel())
        call: Callable[..., Awaitable[Any]] = getattr(stub, method)
        try:
            return await call(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise self._error(method, err) from None

    # -- Cluster --------------------------------------------------------------------------------------------

    async def member_list(self) -> list[Member]:
        """This member's view of the membership (etcd answers from local state: no quorum needed)."""
        response = await self._call("Cluster", "MemberList", self._rpc.rpc_pb2.MemberListRequest())
        return _members(response.members)

    async def member_add(self, peer_urls: Sequence[str], *, learner: bool) -> tuple[Member, list[Member]]:
        """Add a member; returns it (name "" until it starts) and the membership after the change."""
        request = self._rpc.rpc_pb2.MemberAddRequest(peerURLs=list(peer_urls), isLearner=learner)
        response = await self._call("Cluster", "MemberAdd", request)
        return _member(response.member), _members(response.members)

    async def member_promote(self, member_id: int) -> list[Member]:
        """Promote a learner to voter; refused (:func:`is_learner_not_ready`) until it is in sync with the leader."""
        response = await self._call("Cluster", "MemberPromote", self._rpc.rpc_pb2.MemberPromoteRequest(ID=member_id))
        return _members(response.members)

    async def member_remove(self, member_id: int) -> list[Member]:
        response = await self._call("Cluster", "MemberRemove", self._rpc.rpc_pb2.MemberRemoveRequest(ID=member_id))
        return _members(response.members)

    async def member_update(self, member_id: int, peer_urls: Sequence[str]) -> list[Member]:
        """Replace a voter's peer URLs (its pod came back with a new IP); learners are refused.

        Why the refusal: etcd 3.4 and 3.5.1 build the update's RaftAttributes
        without IsLearner, so updating a learner records it as a voter in the
        membership while Raft still treats it as a learner: it can then never
        be promoted ("can only promote a learner member"), and every MemberAdd
        fails with "unhealthy cluster" while it is down (seen with both
        versions).  Remove the learner and add it again instead.  The check is
        a MemberList first; a member cannot become a learner in between.
        """
        if any(m.id == member_id and m.is_learner for m in await self.member_list()):
            raise EtcdError(
                f"refusing to update learner {member_id:x}: etcd would record it as a voter; remove and re-add it",
                method="MemberUpdate",
                endpoint=self.endpoint,
            )
        request = self._rpc.rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=list(peer_urls))
        response = await self._call("Cluster", "MemberUpdate", request)
        return _members(response.members)

    # -- Maintenance ----------------------------------------------------------------------------------------

    async def status(self) -> EndpointStatus:
        """Status of the member this client talks to (answered locally: works on learners and without quorum)."""
        r = await self._call("Maintenance", "Status", self._rpc.rpc_pb2.StatusRequest())
        return EndpointStatus(
            endpoint=self.endpoint,
            member_id=int(r.header.member_id),
            version=str(r.version),
            db_size=int(r.dbSize),
            leader=int(r.leader),
            raft_index=int(r.raftIndex),
            raft_term=int(r.raftTerm),
            raft_applied_index=int(r.raftAppliedIndex),
            is_learner=bool(r.isLearner),
            revision=int(r.header.revision),
            errors=tuple(r.errors),
        )

    async def move_leader(self, target_id: int) -> None:
        """Hand leadership to ``target_id`` (a voter).

        Must be sent to the CURRENT LEADER's endpoint: any other member answers
        FAILED_PRECONDITION "etcdserver: not leader" (etcd does not forward it).
        Find the leader with :meth:`status` (``leader`` is its member ID).
        """
        await self._call("Maintenance", "MoveLeader", self._rpc.rpc_pb2.MoveLeaderRequest(targetID=target_id))

    async def alarms(self) -> list[str]:
        """Active alarms, e.g. ["NOSPACE on member 8e9e05c52164694d"]; empty when healthy."""
        pb = self._rpc.rpc_pb2
        response = await self._call("Maintenance", "Alarm", pb.AlarmRequest(action=pb.AlarmRequest.GET))
        return [f"{pb.AlarmType.Name(a.alarm)} on member {a.memberID:x}" for a in response.alarms]

    async def hash_kv(self, revision: int = 0) -> tuple[int, int, int]:
        """(hash of the keyspace up to ``revision`` (0 = latest), compact revision (-1: never), header revision).

        Members agree on the hash at the same revision (etcd's corruption check compares exactly this).
        """
        r = await self._call("Maintenance", "HashKV", self._rpc.rpc_pb2.HashKVRequest(revision=revision))
        return int(r.hash), int(r.compact_revision), int(r.header.revision)

    async def snapshot(self, dest: Path) -> int:
        """Stream this member's backend snapshot into ``dest``; returns its size in bytes.

        Written to ``dest.part``, fsynced, then renamed, so ``dest`` is either
        absent or complete.  The file is what ``etcdctl snapshot save`` writes
        (bolt db plus etcd's trailing sha256), usable by ``snapshot restore``.
        The client's ``snapshot_timeout`` bounds the whole transfer.  File IO runs in threads.
        """
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        stub = self._rpc.rpc_pb2_grpc.MaintenanceStub(self._open_channel())
        file = await asyncio.to_thread(_open_part, part)
        size = 0
        complete = False
        batch: list[bytes] = []
        batched = 0
        try:
            stream = stub.Snapshot(self._rpc.rpc_pb2.SnapshotRequest(), timeout=self.snapshot_timeout)
            async for chunk in stream:
                batch.append(chunk.blob)
                batched += len(chunk.blob)
                complete = chunk.remaining_bytes == 0
                if batched >= _WRITE_BATCH_BYTES:
                    await asyncio.to_thread(_write, file, b"".join(batch))
                    size, batch, batched = size + batched, [], 0
            if batch:
                await asyncio.to_thread(_write, file, b"".join(batch))
                size += batched
            if not complete:
                raise EtcdError("snapshot stream ended early", method="Snapshot", endpoint=self.endpoint)
            await asyncio.to_thread(_finish, file, part, dest)
        except grpc.aio.AioRpcError as err:
            await asyncio.shield(asyncio.to_thread(_discard, file, part))
            raise self._error("Snapshot", err) from None
        except BaseException:
            await asyncio.shield(asyncio.to_thread(_discard, file, part))
            raise
        return size

    # -- KV -----------------------------------------------------------------------------------------------

    async def put(self, key: str | bytes, value: str | bytes) -> int:
        """Put; returns the revision the write created."""
        response = await self._call("KV", "Put", self._rpc.rpc_pb2.PutRequest(key=_bytes(key), value=_bytes(value)))
        return int(response.header.revision)

    async def get(self, key: str | bytes) -> bytes | None:
        """Linearizable read of one key (None if absent)."""
        response = await self._call("KV", "Range", self._rpc.rpc_pb2.RangeRequest(key=_bytes(key)))
        return bytes(response.kvs[0].value) if response.kvs else None

    async def get_prefix(self, prefix: str | bytes) -> dict[bytes, bytes]:
        """Linearizable read of every key under ``prefix``."""
        start = _bytes(prefix)
        request = self._rpc.rpc_pb2.RangeRequest(key=start or b"\x00", range_end=_prefix_end(start))
        response = await self._call("KV", "Range", request)
        return {bytes(kv.key): bytes(kv.value) for kv in response.kvs}

    async def revision(self, *, serializable: bool = True) -> int:
        """The store revision: serializable (this member's, no quorum needed) or linearizable."""
        request = self._rpc.rpc_pb2.RangeRequest(key=b"\x00", limit=1, count_only=True, serializable=serializable)
        response = await self._call("KV", "Range", request)
        return int(response.header.revision)

    async def compact(self, revision: int, *, physical: bool = True) -> None:
        """Compact history before ``revision``; ``physical`` waits until the backend has dropped it."""
        await self._call("KV", "Compact", self._rpc.rpc_pb2.CompactionRequest(revision=revision, physical=physical))

    async def delete(self, key: str | bytes) -> int:
        """Delete one key; returns the header revision (raised by one only if the key existed)."""
        response = await self._call("KV", "DeleteRange", self._rpc.rpc_pb2.DeleteRangeRequest(key=_bytes(key)))
        return int(response.header.revision)

    async def bump_revision(
        self, by: int, *, key: bytes = b"/skiff/etcd-operator/revision-bump", concurrency: int = 32
    ) -> int:
        """Raise the store revision by at least ``by``; returns the new revision.

        Why: etcd 3.4 and 3.5.1 ``snapshot restore`` have no ``--bump-revision``
        (3.5.5+ has).  A cluster restored from a snapshot restarts at the
        snapshot's revision, older than what Kubernetes watchers and caches have
        seen; they would take new writes for old ones.  Writing ``key`` ``by``
        times (at most ``concurrency`` puts in flight) and then deleting it lifts
        the revision past anything seen, leaving the keyspace as restored.  Cost
        is one Raft write per revision, so keep ``by`` modest (thousands, not
        billions).  Followed by :meth:`compact` it also makes watchers of older
        revisions get "compacted" and relist (what ``--mark-compacted`` does).
        """
        if by < 0:
            raise ValueError(f"bump_revision: by must be >= 0, got {by}")
        remaining = by

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await self.put(key, str(remaining).encode())

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(max(1, min(concurrency, by))):
                    group.create_task(worker())
        except* EtcdError as failed:
            raise failed.exceptions[0] from None
        return await self.delete(key)
