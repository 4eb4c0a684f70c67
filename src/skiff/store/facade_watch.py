"""etcd's Watch service: many watches multiplexed on one bidi stream, over Store watchers.

Follows etcd 3.5's ``serverWatchStream`` (server/etcdserver/api/v3rpc/watch.go)
and mvcc ``watchStream``:

* create: an empty key means "\\0"; watch ids are assigned from 0 up per
  stream (a client-chosen non-zero id is honoured unless in use); the
  ``created`` response (header revision = current revision) precedes every
  event of that watch.  A negative start revision means "from now" (etcd
  3.5.1 accepts it too, with quirks — such a watch is later reported
  compacted; later etcd versions refuse it; the Store refuses it, so it is
  rewritten here).  A duplicate id or an inverted range is answered
  with created+canceled, watch id -1 and etcd's cancel reason.
* events: whole revisions, NOPUT/NODELETE filters applied, a response whose
  events were all filtered out is not sent.
* compacted: a watch from below the compaction point gets one response with
  ``compact_revision`` set, ``canceled`` true and no header revision, and is gone.
* cancel: answered with ``canceled`` for a known id, ignored otherwise.
* progress request: one response with watch id -1 once every watch of the
  stream has caught up (the store confirms each), at the lowest revision they
  confirmed; immediately, at the current revision, when there is none.
* a client that half-closes the stream keeps receiving (etcd's recvLoop ends
  on EOF without ending the stream).

All responses go through one queue to one writer, so the order the session
decides is the order on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc.aio

from skiff.etcd_protos import load
from skiff.store import pbconvert
from skiff.store.errors import Compacted
from skiff.store.facade_kv import current_revision, is_inverted
from skiff.store.facade_member import Member
from skiff.store.protocol import Store, Watcher
from skiff.store.types import EventType, WatchResponse

_rpc: Any = load().rpc_pb2

#: clientv3.InvalidWatchID: a response on behalf of no (or every) watch.
INVALID_WATCH_ID = -1
#: mvcc's error texts, sent as cancel reasons.
ERR_EMPTY_RANGE = "mvcc: watcher range is empty"
ERR_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"

_FILTERED_TYPE = {0: EventType.PUT, 1: EventType.DELETE}  # NOPUT, NODELETE


@dataclass
class _Watch:
    id: int
    watcher: Watcher
    dropped: frozenset[EventType]
    progress_notify: bool
    pump: asyncio.Task[None] | None = None


@dataclass
class _ProgressRequest:
    """A stream-wide progress request waiting for every watch to confirm."""

    waiting: set[int]
    revision: int | None = None


@dataclass
class _End:
    error: BaseException | None = None


@dataclass
class WatchSession:
    """One Watch stream: the watches it holds and the responses it owes."""

    store: Store
    member: Member
    out: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    watches: dict[int, _Watch] = field(default_factory=dict)
    next_id: int = 0
    progress: _ProgressRequest | None = None
    last_revision: int = 0

    def _send(self, revision: int, watch_id: int, **fields: Any) -> None:
        self.last_revision = max(self.last_revision, revision)
        self.out.put_nowait(_rpc.WatchResponse(header=self.member.header(revision), watch_id=watch_id, **fields))

    async def read(self, requests: AsyncIterator[Any]) -> None:
        """The receive loop: act on each request; end the session only on error."""
        try:
            async for request in requests:
                kind = request.WhichOneof("request_union")
                if kind == "create_request":
                    await self._create(request.create_request)
                elif kind == "cancel_request":
                    await self._cancel(request.cancel_request.watch_id)
                elif kind == "progress_request":
                    await self._request_progress()
        except Exception as exc:
            self.out.put_nowait(_End(exc))

    async def _create(self, creq: Any) -> None:
        key = creq.key or b"\0"
        reason = ""
        if is_inverted(key, creq.range_end):
            reason = ERR_EMPTY_RANGE
        elif creq.watch_id != 0 and creq.watch_id in self.watches:
            reason = ERR_DUPLICATE_ID
        if reason:
            revision = await current_revision(self.store)
            self._send(revision, INVALID_WATCH_ID, created=True, canceled=True, cancel_reason=reason)
            return
        watch_id = creq.watch_id or self._auto_id()
        watcher = await self.store.watch(
            key,
            creq.range_end,
            start_revision=max(creq.start_revision, 0),
            prev_kv=creq.prev_kv,
            progress_notify=creq.progress_notify,
        )
        dropped = frozenset(_FILTERED_TYPE[f] for f in creq.filters if f in _FILTERED_TYPE)
        watch = _Watch(watch_id, watcher, dropped, creq.progress_notify)
        self.watches[watch_id] = watch
        self._send(await current_revision(self.store), watch_id, created=True)
        watch.pump = asyncio.create_task(self._pump(watch), name=f"facade-watch-{watch_id}")

    def _auto_id(self) -> int:
        while self.next_id in self.watches:
            self.next_id += 1
        watch_id = self.next_id
        self.next_id += 1
        return watch_id

    async def _pump(self, watch: _Watch) -> None:
        """Forward one store watcher's responses, in order, until it ends."""
        try:
            async for resp in watch.watcher:
                self._forward(watch, resp)
        except Compacted as exc:
            self.watches.pop(watch.id, None)
            self._confirm_progress(watch.id, None)
            # etcd's compacted response carries no revision in its header.
            self._send(0, watch.id, compact_revision=exc.compact_revision, canceled=True)
            await watch.watcher.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.out.put_nowait(_End(exc))

    def _forward(self, watch: _Watch, resp: WatchResponse) -> None:
        if resp.progress and not resp.events:
            if self.progress is not None and watch.id in self.progress.waiting:
                self._confirm_progress(watch.id, resp.revision)
            elif watch.progress_notify:
                self._send(resp.revision, watch.id)
            return
        events = [pbconvert.event_to_pb(e) for e in resp.events if e.type not in watch.dropped]
        if events:
            self._send(resp.revision, watch.id, events=events)

    async def _cancel(self, watch_id: int) -> None:
        watch = self.watches.pop(watch_id, None)
        if watch is None:
            return
        await self._stop(watch)
        self._confirm_progress(watch_id, None)
        self._send(await current_revision(self.store), watch_id, canceled=True)

    async def _request_progress(self) -> None:
        if not self.watches:
            self._send(await current_revision(self.store), INVALID_WATCH_ID)
            return
        if self.progress is None:
            self.progress = _ProgressRequest(set(self.watches))
        for watch in list(self.watches.values()):
            await watch.watcher.request_progress()

    def _confirm_progress(self, watch_id: int, revision: int | None) -> None:
        """Count one watch as caught up (or gone); answer the request once all are."""
        request = self.progress
        if request is None or watch_id not in request.waiting:
            return
        request.waiting.discard(watch_id)
        if revision is not None:
            request.revision = revision if request.revision is None else min(request.revision, revision)
        if not request.waiting:
            self.progress = None
            self._send(request.revision or self.last_revision, INVALID_WATCH_ID)

    @staticmethod
    async def _stop(watch: _Watch) -> None:
        if watch.pump is not None:
            watch.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch.pump
        await watch.watcher.close()

    async def close(self) -> None:
        watches, self.watches = list(self.watches.values()), {}
        for watch in watches:
            await self._stop(watch)


class WatchService:
    """The Watch servicer."""

    def __init__(self, store: Store, member: Member) -> None:
        self._store = store
        self._member = member

    async def Watch(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        session = WatchSession(self._store, self._member)
        reader = asyncio.create_task(session.read(requests), name="facade-watch-reader")
        try:
            while True:
                item = await session.out.get()
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                await context.write(item)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await session.close()
