"""The Store over a real etcd cluster's v3 gRPC API.

Stubs: generated at run time from Skiff's own copies of etcd's .proto files
(:func:`skiff.etcd_protos.load`, i.e. ``grpc.protos_and_services``) rather
than a third-party etcd client.  The Python clients are unmaintained (etcd3),
or synchronous, or lag etcd 3.5's fields (aetcd), and the gRPC facade needs
the very same messages server-side anyway: one set of protos, one set of
conversions (:mod:`skiff.store.pbconvert`) for both directions.

Connection: several endpoints, one in use at a time, failover in order
(:mod:`skiff.store.etcd_endpoints`).  Reads move on after any UNAVAILABLE;
writes only when the request certainly never left this client (the connection
could not be made), because after a write was sent its outcome is unknown and
a second attempt could apply it twice (etcd clientv3 does the same).  Such a
write raises ``Unavailable``.  TLS: pass ``ca_file`` (and ``cert_file`` and
``key_file`` for client-cert auth), or ``tls=True`` to verify against the
system's roots.  Watches: :mod:`skiff.store.etcd_watch`.

Validation: requests are checked here, before sending, with the embedded
backend's stricter rules (a negative revision or a range whose end sorts
before its key is ``InvalidArgument``; etcd itself reads the first as "latest"
and the second as empty), so both backends reject the same requests.

Compact revision: etcd's Status does not report it.  ``status()`` probes for
it: a Range at revision 1 succeeds unless history was compacted; if it was, a
watch from revision 1 is answered with the exact compact revision.  The same
probe fills in ``Compacted.compact_revision`` for a Range or Compact that etcd
refused as compacted (etcd's error string does not carry the number).
``quota_bytes`` is not etcd's to tell (Status reports it only from 3.6): it is
the value given to :meth:`EtcdStore.connect`, which should match the
cluster's --quota-backend-bytes, reported as is.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from skiff.etcd_protos import load
from skiff.store import pbconvert as pbc
from skiff.store.conditional import ConditionalWrites
from skiff.store.errors import Compacted, InvalidArgument, LeaseNotFound
from skiff.store.etcd_endpoints import EtcdEndpoints
from skiff.store.etcd_errors import is_compacted, translate
from skiff.store.etcd_watch import EtcdWatcher
from skiff.store.request_checks import check_not_inverted, check_watch
from skiff.store.tls import channel_credentials
from skiff.store.types import (
    DEFAULT_QUOTA_BYTES,
    Compare,
    DeleteRange,
    DeleteResult,
    LeaseGrant,
    LeaseStatus,
    Op,
    Put,
    PutResult,
    Range,
    RangeResult,
    StoreStatus,
    Txn,
    TxnResult,
)

_NO_ALARM = 0


class EtcdStore(ConditionalWrites):
    """A Store on etcd.  Open with :meth:`connect`."""

    def __init__(self, endpoints: EtcdEndpoints, *, quota_bytes: int) -> None:
        self._endpoints = endpoints
        self._quota_bytes = quota_bytes
        self._rpc: Any = load().rpc_pb2
        # Open watchers, closed with the store; a watcher closed (and dropped) earlier leaves by itself.
        self._watchers: weakref.WeakSet[EtcdWatcher] = weakref.WeakSet()

    @classmethod
    async def connect(
        cls,
        endpoints: Sequence[str],
        *,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        tls: bool = False,
        timeout: float = 5.0,  # noqa: ASYNC109 - the agreed name; it is the deadline of each call, not of connect
        quota_bytes: int = DEFAULT_QUOTA_BYTES,
    ) -> EtcdStore:
        """Connect to the first member that answers; raises Unavailable if none does.

        TLS when ``tls`` or any of the files is given (``ca_file`` None: the system's roots).
        """
        credentials = await asyncio.to_thread(_credentials, tls, ca_file, cert_file, key_file)
        store = cls(EtcdEndpoints(endpoints, credentials, call_timeout=timeout), quota_bytes=quota_bytes)
        try:
            await store._unary("Maintenance", "Status", store._rpc.StatusRequest(), read=True)
        except BaseException:
            await store.close()
            raise
        return store

    # -- KV ---------------------------------------------------------------------

    async def range(self, req: Range) -> RangeResult:
        _check_op(req)
        resp = await self._unary("KV", "Range", pbc.range_to_pb(req), read=True)
        return pbc.range_result_from_pb(resp)

    async def put(self, req: Put) -> PutResult:
        resp = await self._unary("KV", "Put", pbc.put_to_pb(req), read=False)
        return pbc.put_result_from_pb(resp)

    async def delete_range(self, req: DeleteRange) -> DeleteResult:
        _check_op(req)
        resp = await self._unary("KV", "DeleteRange", pbc.delete_range_to_pb(req), read=False)
        return pbc.delete_result_from_pb(resp)

    async def txn(
        self,
        compares: tuple[Compare, ...] | list[Compare],
        success: tuple[Op, ...] | list[Op] = (),
        failure: tuple[Op, ...] | list[Op] = (),
    ) -> TxnResult:
        txn = Txn(tuple(compares), tuple(success), tuple(failure))
        _check_op(txn)
        resp = await self._unary("KV", "Txn", pbc.txn_to_pb(txn), read=_reads_only(txn))
        return pbc.txn_result_from_pb(resp)

    async def compact(self, revision: int) -> None:
        _check_revision(revision)
        # physical: return once the old versions are really gone (as the protocol promises).
        request = self._rpc.CompactionRequest(revision=revision, physical=True)
        # Not retried once sent: a second attempt after a lost answer would report Compacted for a success.
        await self._unary("KV", "Compact", request, read=False)

    # -- watch --------------------------------------------------------------------

    async def watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
    ) -> EtcdWatcher:
        check_watch(key, range_end, start_revision)
        watcher = EtcdWatcher(
            self._endpoints,
            key,
            range_end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            progress_notify=progress_notify,
        )
        await watcher.open()
        self._watchers.add(watcher)
        return watcher

    # -- leases -------------------------------------------------------------------

    async def lease_grant(self, ttl: int, lease_id: int = 0) -> LeaseGrant:
        # A grant with an explicit ID may be retried only if never sent; one without would leak a lease.
        resp = await self._unary("Lease", "LeaseGrant", self._rpc.LeaseGrantRequest(TTL=ttl, ID=lease_id), read=False)
        return LeaseGrant(id=resp.ID, ttl=resp.TTL)

    async def lease_revoke(self, lease_id: int) -> int:
        resp = await self._unary("Lease", "LeaseRevoke", self._rpc.LeaseRevokeRequest(ID=lease_id), read=False)
        return int(resp.header.revision)

    async def lease_keepalive(self, lease_id: int) -> int:
        """One request, one response on etcd's LeaseKeepAlive stream; renewing twice is harmless."""
        last: grpc.aio.AioRpcError | None = None
        for _ in range(2 * len(self._endpoints.endpoints)):
            endpoint, stub = self._endpoints.stub("Lease")
            try:
                resp = await self._keepalive_once(stub, lease_id)
            except grpc.aio.AioRpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise translate(err) from None
                last = err
                self._endpoints.failover(endpoint)
                continue
            if resp.TTL <= 0:  # etcd's answer for a lease it does not know
                raise LeaseNotFound()
            return int(resp.TTL)
        assert last is not None
        raise translate(last)

    async def _keepalive_once(self, stub: Any, lease_id: int) -> Any:
        call = stub.LeaseKeepAlive(timeout=self._endpoints.call_timeout)
        try:
            await call.write(self._rpc.LeaseKeepAliveRequest(ID=lease_id))
            resp = await call.read()
        finally:
            call.cancel()
        if resp is grpc.aio.EOF:
            raise LeaseNotFound()
        return resp

    async def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseStatus:
        request = self._rpc.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        resp = await self._unary("Lease", "LeaseTimeToLive", request, read=True)
        return LeaseStatus(id=resp.ID, ttl=resp.TTL, granted_ttl=resp.grantedTTL, keys=tuple(resp.keys))

    async def lease_leases(self) -> tuple[int, ...]:
        resp = await self._unary("Lease", "LeaseLeases", self._rpc.LeaseLeasesRequest(), read=True)
        return tuple(lease.ID for lease in resp.leases)

    # -- maintenance ----------------------------------------------------------------

    async def status(self) -> StoreStatus:
        status = await self._unary("Maintenance", "Status", self._rpc.StatusRequest(), read=True)
        alarm_request = self._rpc.AlarmRequest(action=self._rpc.AlarmRequest.GET)
        alarms = await self._unary("Maintenance", "Alarm", alarm_request, read=True)
        names = self._rpc.AlarmType.Name
        return StoreStatus(
            revision=status.header.revision,
            compact_revision=await self._compact_revision(),
            db_size=status.dbSize,
            db_size_in_use=status.dbSizeInUse or status.dbSize,
            quota_bytes=self._quota_bytes,
            alarms=tuple(sorted({names(a.alarm) for a in alarms.alarms if a.alarm != _NO_ALARM})),
        )

    async def _compact_revision(self) -> int:
        """etcd's compaction point (see the module docstring for how we learn it)."""
        probe = self._rpc.RangeRequest(key=b"\0", revision=1, count_only=True)
        try:
            await self._endpoints.unary("KV", "Range", probe, read=True)
            return 0
        except grpc.aio.AioRpcError as err:
            if not is_compacted(err):
                raise translate(err) from None
        watcher = EtcdWatcher(self._endpoints, b"\0", b"", start_revision=1, prev_kv=False, progress_notify=False)
        await watcher.open()
        try:
            async for _ in watcher:  # events below the compaction point cannot come: the first answer is the cancel
                pass
        except Compacted as compacted:
            return compacted.compact_revision
        finally:
            await watcher.close()
        return 0

    async def close(self) -> None:
        watchers, self._watchers = list(self._watchers), weakref.WeakSet()
        for watcher in watchers:
            await watcher.close()
        await self._endpoints.close()

    # -- calls ------------------------------------------------------------------------

    async def _unary(self, service: str, method: str, request: Any, *, read: bool) -> Any:
        try:
            return await self._endpoints.unary(service, method, request, read=read)
        except grpc.aio.AioRpcError as err:
            if is_compacted(err):
                raise Compacted(await self._compact_revision()) from None
            raise translate(err) from None


def _credentials(
    tls: bool, ca_file: str | Path | None, cert_file: str | Path | None, key_file: str | Path | None
) -> grpc.ChannelCredentials | None:
    if not tls and ca_file is None and cert_file is None and key_file is None:
        return None
    return channel_credentials(ca_file, cert_file, key_file)


# -- validation: Skiff's own stricter rules (skiff.store.request_checks), before sending ------
# etcd enforces its own rules (empty key, sizes, txn limits) itself, with its own messages.


def _check_revision(revision: int) -> None:
    if revision < 0:
        raise InvalidArgument(f"etcdserver: negative revision {revision} is not allowed")


def _check_op(op: Op) -> None:
    if isinstance(op, Range):
        check_not_inverted(op.key, op.range_end)
        _check_revision(op.revision)
    elif isinstance(op, DeleteRange):
        check_not_inverted(op.key, op.range_end)
    elif isinstance(op, Txn):
        for branch_op in (*op.success, *op.failure):
            _check_op(branch_op)


def _reads_only(txn: Txn) -> bool:
    """A txn whose branches only read may be retried like a read."""
    return all(
        isinstance(op, Range) or (isinstance(op, Txn) and _reads_only(op)) for op in (*txn.success, *txn.failure)
    )
