"""EtcdWatcher against a scripted etcd: the watch from etcd's compaction point (etcd issue 18089).

etcd 3.4/3.5 (before PR 18274) drops a DELETE's tombstone whose revision is
exactly the compaction point C, yet accepts a watch from C and serves it from
history without that DELETE.  ``FakeEtcd`` models just that: a history, a
head, a compaction point, and a watch served from history (all of it in one
response) unless it starts above the head.  The real-etcd version of these
checks is ``tests/consistency/test_compaction_point.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc.aio
import pytest

from skiff.etcd_protos import load
from skiff.store.errors import Compacted
from skiff.store.etcd_watch import EtcdWatcher
from skiff.store.pbconvert import event_to_pb
from skiff.store.types import Event, EventType, KeyValue

rpc: Any = load().rpc_pb2
KEY = b"/k"


def put(revision: int, value: bytes = b"v") -> Event:
    return Event(EventType.PUT, KeyValue(KEY, value, 2, revision, revision - 1))


def delete(revision: int) -> Event:
    return Event(EventType.DELETE, KeyValue(KEY, b"", 0, revision, 0))


class FakeCall:
    def __init__(self, etcd: FakeEtcd) -> None:
        self.etcd = etcd
        self.responses: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = False

    async def write(self, request: Any) -> None:
        if request.HasField("create_request"):
            self.etcd.serve(self, request.create_request.start_revision)

    async def read(self) -> Any:
        if self.cancelled:
            return grpc.aio.EOF
        return await self.responses.get()

    def cancel(self) -> None:
        self.cancelled = True


class FakeEtcd:
    """One member: ``history`` of events, ``head`` revision, ``compacted`` at (0: never)."""

    endpoints = ("fake:2379",)

    def __init__(self, history: list[Event], head: int, compacted: int = 0) -> None:
        self.history = history
        self.head = head
        self.compacted = compacted
        self.starts: list[int] = []  # start_revision of every watch created, in order
        self.calls: list[FakeCall] = []

    # EtcdEndpoints' face, as EtcdWatcher uses it.
    def stub(self, service: str) -> tuple[str, FakeEtcd]:
        return self.endpoints[0], self

    def failover(self, endpoint: str) -> None:
        pass

    def Watch(self, metadata: Any = None) -> FakeCall:  # gRPC stub method name
        self.calls.append(FakeCall(self))
        return self.calls[-1]

    def serve(self, call: FakeCall, start: int) -> None:
        self.starts.append(start)
        call.responses.put_nowait(rpc.WatchResponse(header=rpc.ResponseHeader(revision=self.head), created=True))
        if start == 0 or start > self.head:
            return  # synced: only live events would come
        if start < self.compacted:
            call.responses.put_nowait(rpc.WatchResponse(canceled=True, compact_revision=self.compacted))
            return
        # etcd issue 18089: the tombstone AT the compaction point is gone from history.
        served = [
            e
            for e in self.history
            if e.kv.mod_revision >= start and not (e.type is EventType.DELETE and e.kv.mod_revision == self.compacted)
        ]
        if served:
            call.responses.put_nowait(
                rpc.WatchResponse(header=rpc.ResponseHeader(revision=self.head), events=map(event_to_pb, served))
            )


async def watch(etcd: FakeEtcd, start_revision: int) -> EtcdWatcher:
    watcher = EtcdWatcher(etcd, KEY, b"", start_revision=start_revision, prev_kv=False, progress_notify=False)  # type: ignore[arg-type]
    await watcher.open()
    return watcher


async def test_watch_from_the_compaction_point_raises_compacted_when_its_delete_may_be_gone() -> None:
    """The consistency-suite failure: resumed at next == C == a DELETE; etcd serves only the PUT after it."""
    etcd = FakeEtcd([put(2), delete(3), put(4)], head=4, compacted=3)
    watcher = await watch(etcd, 3)
    with pytest.raises(Compacted) as raised:
        await asyncio.wait_for(anext(watcher), 5)
    assert raised.value.compact_revision == 3  # relist at 3 (a Range at C works), watch on from 4
    # From 3 (a history read), again from 2 (3 is the compaction point), then from 3 to see what survived.
    assert etcd.starts == [3, 2, 3]


async def test_watch_from_the_compaction_point_delivers_a_surviving_put() -> None:
    etcd = FakeEtcd([put(2), put(3), put(4)], head=4, compacted=3)
    watcher = await watch(etcd, 3)
    response = await asyncio.wait_for(anext(watcher), 5)
    assert [e.kv.mod_revision for e in response.events] == [3, 4]
    assert etcd.starts == [3, 2, 3]
    await watcher.close()


async def test_history_read_starts_one_revision_early_and_drops_that_revision() -> None:
    etcd = FakeEtcd([put(2), delete(3), put(4)], head=4, compacted=2)
    watcher = await watch(etcd, 3)
    response = await asyncio.wait_for(anext(watcher), 5)
    assert response.events == (delete(3), put(4))
    assert etcd.starts == [3, 2]
    await watcher.close()


async def test_compaction_above_next_raises_etcds_compact_revision() -> None:
    etcd = FakeEtcd([put(2), delete(3), put(4), put(5)], head=5, compacted=4)
    watcher = await watch(etcd, 3)
    with pytest.raises(Compacted) as raised:
        await asyncio.wait_for(anext(watcher), 5)
    assert raised.value.compact_revision == 4
    assert etcd.starts == [3, 2]


@pytest.mark.parametrize("start", [0, 5, 9])
async def test_watch_from_now_or_the_future_is_opened_once(start: int) -> None:
    etcd = FakeEtcd([put(2), delete(3), put(4)], head=4, compacted=4)
    watcher = await watch(etcd, start)
    assert etcd.starts == [start]
    await watcher.close()


async def test_an_event_after_a_progress_that_covered_it_is_still_delivered() -> None:
    """etcd < 3.5.8 may send a progress at R just before the event at R (module docstring): not lost."""
    etcd = FakeEtcd([put(2)], head=4)
    watcher = await watch(etcd, 0)  # from now: synced, next = 5
    live = etcd.calls[-1].responses
    live.put_nowait(rpc.WatchResponse(header=rpc.ResponseHeader(revision=5)))  # progress at 5, too early
    live.put_nowait(rpc.WatchResponse(header=rpc.ResponseHeader(revision=5), events=[event_to_pb(put(5))]))
    progress = await asyncio.wait_for(anext(watcher), 5)
    assert progress.progress and progress.revision == 5
    response = await asyncio.wait_for(anext(watcher), 5)
    assert response.events == (put(5),)
    await watcher.close()
