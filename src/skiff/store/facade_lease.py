"""etcd's Lease service over a Store.

Follows etcd 3.5's v3rpc LeaseServer where it differs from a plain mapping:

* a keep-alive for an unknown lease is not an error on the stream: etcd answers
  TTL 0 (``ErrLeaseNotFound`` becomes ``ttl = 0``) and the client turns that
  into "requested lease not found";
* TimeToLive of an unknown lease answers TTL -1 (granted TTL 0, no keys),
  which etcdctl prints as "lease ... already expired";
* headers carry the current store revision (v3rpc's ``header.fill``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc.aio

from skiff.etcd_protos import load
from skiff.store.errors import LeaseNotFound, StoreError
from skiff.store.facade_kv import current_revision
from skiff.store.facade_member import Member
from skiff.store.protocol import Store

_rpc: Any = load().rpc_pb2


class LeaseService:
    """The Lease servicer; method names are the rpc names."""

    def __init__(self, store: Store, member: Member) -> None:
        self._store = store
        self._member = member

    async def _header(self) -> Any:
        return self._member.header(await current_revision(self._store))

    async def LeaseGrant(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            grant = await self._store.lease_grant(request.TTL, request.ID)
        except StoreError:
            self._member.applied()
            raise
        self._member.applied()
        return _rpc.LeaseGrantResponse(header=await self._header(), ID=grant.id, TTL=grant.ttl)

    async def LeaseRevoke(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            revision = await self._store.lease_revoke(request.ID)
        except StoreError:
            self._member.applied()
            raise
        self._member.applied()
        return _rpc.LeaseRevokeResponse(header=self._member.header(revision))

    async def LeaseKeepAlive(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        async for request in requests:
            header = await self._header()  # before the renewal, as etcd does
            try:
                ttl = await self._store.lease_keepalive(request.ID)
            except LeaseNotFound:
                ttl = 0
            await context.write(_rpc.LeaseKeepAliveResponse(header=header, ID=request.ID, TTL=ttl))

    async def LeaseTimeToLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            status = await self._store.lease_time_to_live(request.ID, request.keys)
        except LeaseNotFound:
            return _rpc.LeaseTimeToLiveResponse(header=await self._header(), ID=request.ID, TTL=-1)
        if status.ttl < 0:
            return _rpc.LeaseTimeToLiveResponse(header=await self._header(), ID=request.ID, TTL=-1)
        return _rpc.LeaseTimeToLiveResponse(
            header=await self._header(),
            ID=status.id,
            TTL=status.ttl,
            grantedTTL=status.granted_ttl,
            keys=list(status.keys),
        )

    async def LeaseLeases(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ids = await self._store.lease_leases()
        return _rpc.LeaseLeasesResponse(header=await self._header(), leases=[_rpc.LeaseStatus(ID=i) for i in ids])
