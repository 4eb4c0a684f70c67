"""The Watch stream's control protocol, raw gRPC, on the facade and on a fresh real etcd 3.5.1.

etcdctl shows only events; other clients (client-go, the etcd backend) also
rely on the control responses: created, canceled, watch ids, filters,
progress responses, compaction and bad requests.  One conversation runs on
both servers and every response is compared field by field.  What cannot
match is left out of the comparison explicitly: nothing here, as both servers
pose as the same member (same name, peer URL and token).

Each step sends one request and reads exactly the responses etcd sends for
it, so the comparison does not depend on timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
import pytest_asyncio
from facade_harness import ETCD_PROCESS_TOKEN, FacadeProcess

from conftest import etcd_binary
from skiff.etcd_protos import load
from skiff.store.etcd_process import EtcdMember

pytestmark = pytest.mark.timeout(120)

rpc: Any = load().rpc_pb2
grpc_stubs: Any = load().rpc_pb2_grpc
READ_DEADLINE = 10.0


class WatchConversation:
    """One Watch stream and a KV stub on the same endpoint."""

    def __init__(self, endpoint: str) -> None:
        self.channel = grpc.aio.insecure_channel(endpoint)
        self.kv = grpc_stubs.KVStub(self.channel)
        self.requests: asyncio.Queue[Any] = asyncio.Queue()
        self.stream = grpc_stubs.WatchStub(self.channel).Watch(self._requests())

    async def _requests(self) -> AsyncIterator[Any]:
        while True:
            yield await self.requests.get()

    async def exchange(self, request: Any, responses: int) -> list[str]:
        """Send ``request`` and read ``responses`` responses, as text."""
        await self.requests.put(request)
        return [str(await asyncio.wait_for(self.stream.read(), READ_DEADLINE)) for _ in range(responses)]

    async def close(self) -> None:
        self.stream.cancel()
        await self.channel.close()


def create(key: bytes, **fields: Any) -> Any:
    return rpc.WatchRequest(create_request=rpc.WatchCreateRequest(key=key, **fields))


def progress() -> Any:
    return rpc.WatchRequest(progress_request=rpc.WatchProgressRequest())


def cancel(watch_id: int) -> Any:
    return rpc.WatchRequest(cancel_request=rpc.WatchCancelRequest(watch_id=watch_id))


async def converse(endpoint: str) -> list[str]:
    """The conversation; returns every response read, in order."""
    talk = WatchConversation(endpoint)
    try:
        out: list[str] = []
        for key, value in [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]:
            await talk.kv.Put(rpc.PutRequest(key=key, value=value))
        # Progress with no watch: answered at once, watch id -1, current revision.
        out += await talk.exchange(progress(), 1)
        # One key from a past revision with prev_kv: created (id 0), then the put of revision 4.
        out += await talk.exchange(create(b"a", start_revision=4, prev_kv=True), 2)
        # Every key from now, PUTs dropped: created (id 1).
        out += await talk.exchange(create(b"", range_end=b"\0", filters=[rpc.WatchCreateRequest.NOPUT]), 1)
        # A put (filtered out of watch 1, not watch 0's key), then a delete: one response, for watch 1.
        await talk.kv.Put(rpc.PutRequest(key=b"c", value=b"4"))
        await talk.kv.DeleteRange(rpc.DeleteRangeRequest(key=b"c"))
        out += [str(await asyncio.wait_for(talk.stream.read(), READ_DEADLINE))]
        # Progress with watches that have caught up: one response, watch id -1.
        out += await talk.exchange(progress(), 1)
        # Cancel watch 0: canceled.  Cancel an unknown id: nothing (the next response is the progress).
        out += await talk.exchange(cancel(0), 1)
        await talk.requests.put(cancel(42))
        out += await talk.exchange(progress(), 1)
        # Refused creates: created and canceled at once, watch id -1, etcd's reason.
        out += await talk.exchange(create(b"a", watch_id=1), 1)
        out += await talk.exchange(create(b"z", range_end=b"a"), 1)
        # From below the compaction point: created, then compact_revision with canceled.
        await talk.kv.Compact(rpc.CompactionRequest(revision=5))
        out += await talk.exchange(create(b"a", start_revision=2), 2)
        # A client-chosen id; its events carry it.
        out += await talk.exchange(create(b"a", watch_id=7), 1)
        await talk.kv.Put(rpc.PutRequest(key=b"a", value=b"5", prev_kv=True))
        out += [str(await asyncio.wait_for(talk.stream.read(), READ_DEADLINE))]
        return out
    finally:
        await talk.close()


@pytest_asyncio.fixture
async def etcd(tmp_path: Path) -> AsyncIterator[EtcdMember]:
    async with await EtcdMember.start(etcd_binary("3.5.1"), tmp_path / "etcd") as member:
        yield member


async def test_watch_control_responses_match_real_etcd(etcd: EtcdMember, tmp_path: Path) -> None:
    expected = await converse(etcd.endpoint)
    facade = await FacadeProcess.start(tmp_path / "facade", peer_url=etcd.peer_url, token=ETCD_PROCESS_TOKEN)
    try:
        got = await converse(facade.endpoint)
    finally:
        assert await facade.stop() == 0, facade.log()
    assert got == expected
