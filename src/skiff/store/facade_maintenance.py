"""etcd's Maintenance and Cluster services for the one member the facade impersonates.

What the facade reports (``etcdctl endpoint status`` prints all of it):

* version: ``facade_member.SERVER_VERSION`` ("3.5.1"): the facade speaks etcd
  3.5's API, and etcdctl's version checks expect a real etcd version;
* dbSize / dbSizeInUse: the Store's own figures (for SQLite, the file size and
  the pages in use) — not comparable byte for byte with bbolt's;
* leader: the member itself; raftTerm: 2; raftIndex = raftAppliedIndex: the
  counter described in ``facade_member``;
* errors: one entry per active alarm, as etcd formats an AlarmMember.

Optional Store capabilities, used when the backend has them:

* ``defragment()`` (e.g. SQLite's VACUUM) answers Defragment; without it
  Defragment is a successful no-op, as there is nothing to rewrite;
* ``backup(path)`` — write a consistent copy of the database to ``path``
  (for SQLite, its online backup API) — answers Snapshot: the copy is made in
  a temporary directory, streamed in 32 KiB messages with ``remaining_bytes``
  counting down and, as etcd does, followed by its SHA-256 (etcdctl 3.5
  refuses a snapshot whose size is not whole 512-byte pages plus 32 bytes of
  checksum; SQLite pages are whole multiples of 512), then removed.  Without it Snapshot is UNIMPLEMENTED.  The
  bytes are the backend's own format (a SQLite file for SQLite), not bbolt:
  ``etcdctl snapshot save`` stores them, ``etcdutl snapshot restore`` cannot
  read them.

Alarms: GET lists the store's alarms (and, as in etcd, counts as a raft
entry: ``etcdctl endpoint health`` asks for alarms); ACTIVATE and DEACTIVATE change nothing
(the Store decides its NOSPACE alarm from its quota) and answer the list.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

import grpc.aio

from skiff.etcd_protos import load
from skiff.store.facade_member import RAFT_TERM, SERVER_VERSION, Member
from skiff.store.facade_wire import RequestError
from skiff.store.protocol import Store

_rpc: Any = load().rpc_pb2

#: Bytes per Snapshot message (etcd's snapshotSendBufferSize is 32 KiB).
SNAPSHOT_CHUNK = 32 * 1024
#: etcd ends a snapshot with the SHA-256 of the database; clients check it is there.
SHA256_BYTES = 32


@runtime_checkable
class SupportsDefragment(Protocol):
    async def defragment(self) -> None: ...


@runtime_checkable
class SupportsBackup(Protocol):
    async def backup(self, path: Path) -> None: ...


def _read_chunk(file: BinaryIO) -> bytes:
    return file.read(SNAPSHOT_CHUNK)


class MaintenanceService:
    """The Maintenance servicer; method names are the rpc names."""

    def __init__(self, store: Store, member: Member) -> None:
        self._store = store
        self._member = member

    def _alarm_members(self, alarms: tuple[str, ...]) -> list[Any]:
        known = _rpc.AlarmType.keys()
        return [
            _rpc.AlarmMember(memberID=self._member.id, alarm=_rpc.AlarmType.Value(name))
            for name in alarms
            if name in known
        ]

    async def Status(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        status = await self._store.status()
        errors = [f"memberID:{self._member.id} alarm:{name} " for name in status.alarms]
        return _rpc.StatusResponse(
            header=self._member.header(status.revision),
            version=SERVER_VERSION,
            dbSize=status.db_size,
            leader=self._member.id,
            raftIndex=self._member.raft_index,
            raftTerm=RAFT_TERM,
            raftAppliedIndex=self._member.raft_index,
            errors=errors,
            dbSizeInUse=status.db_size_in_use,
            isLearner=False,
        )

    async def Alarm(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self._member.applied()  # etcd sends every Alarm request through raft, GET included
        status = await self._store.status()
        return _rpc.AlarmResponse(
            header=self._member.header(status.revision), alarms=self._alarm_members(status.alarms)
        )

    async def Defragment(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(self._store, SupportsDefragment):
            await self._store.defragment()
        status = await self._store.status()
        return _rpc.DefragmentResponse(header=self._member.header(status.revision))

    async def Snapshot(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if not isinstance(self._store, SupportsBackup):
            raise RequestError("UNIMPLEMENTED", "etcdserver: snapshot is not supported by this store")
        status = await self._store.status()
        header = self._member.header(status.revision)
        with tempfile.TemporaryDirectory(prefix="skiff-snapshot-") as tmp:
            path = Path(tmp) / "snapshot.db"
            await self._store.backup(path)
            remaining = (await asyncio.to_thread(path.stat)).st_size + SHA256_BYTES
            digest = hashlib.sha256()
            file = await asyncio.to_thread(path.open, "rb")
            try:
                while blob := await asyncio.to_thread(_read_chunk, file):
                    digest.update(blob)
                    remaining -= len(blob)
                    yield _rpc.SnapshotResponse(header=header, remaining_bytes=remaining, blob=blob)
            finally:
                file.close()
            yield _rpc.SnapshotResponse(header=header, remaining_bytes=0, blob=digest.digest())


class ClusterService:
    """The Cluster servicer: a one-member cluster that cannot be reconfigured."""

    def __init__(self, member: Member) -> None:
        self._member = member

    async def MemberList(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        member = _rpc.Member(
            ID=self._member.id,
            name=self._member.name,
            peerURLs=list(self._member.peer_urls),
            clientURLs=list(self._member.client_urls),
        )
        # etcd's cluster server fills no revision in its headers.
        return _rpc.MemberListResponse(header=self._member.header(), members=[member])
