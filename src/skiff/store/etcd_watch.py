"""A Store watch over etcd's Watch stream, resumed across member failures.

One bidirectional Watch stream per watcher: simple, and a slow watcher never
holds up another.  Guarantees on top of etcd's:

* No gap, no duplicate across reconnects.  We keep ``next``, the first
  revision not yet delivered (after the created response of a watch "from
  now": its header revision + 1; after events: the last one's revision + 1;
  after a progress notification R: R + 1).  When the stream breaks we reopen
  it on the next endpoint from ``next``.  etcd batches catch-up events at
  revision boundaries and notifies live ones per revision, so ``next`` never
  falls inside a revision; events below ``next`` are dropped all the same.
* Whole responses.  We ask etcd to fragment huge responses (``fragment``,
  etcd >= 3.4) rather than fail them, and glue fragments back together.
* Compaction.  etcd answers a watch from a compacted revision with "created",
  then a "canceled" carrying ``compact_revision``: iteration raises
  ``Compacted(compact_revision)``.
* The compaction point itself.  etcd 3.4/3.5 (etcd issue 18089; fixed by PR
  18274, backported in August 2024) deletes a DELETE's tombstone whose
  revision is *exactly* the compaction point C, yet accepts a watch from C: a
  watch served from history (started at or below the head) silently skips
  that DELETE — e.g. a watcher resumed from ``next`` == C right after
  ``compact(C)``.  So such a watch is opened one revision early, from
  ``next - 1`` (events below ``next`` are dropped anyway): then either etcd
  serves ``next`` from intact history or it cancels the watch as compacted,
  by the same check that guards its history read, so a compaction racing
  with the creation is caught too.  Only a created response showing ``next``
  at or below the head makes us redo the open one revision early: a watch
  from the future stays synced (which the progress rule below relies on).
  If the point is exactly ``next`` (cancel with compact_revision == next), the
  watch is reopened from ``next``, and its first word must show revision
  ``next`` (a PUT at C survives): later events or a progress past it first
  make iteration raise ``Compacted(next)`` — what revision ``next`` deleted
  may be gone; the caller relists at ``next`` (a Range at C works).  Left to
  etcd: a DELETE in the same txn as a surviving PUT at C, and a watcher etcd
  moves back to history (1000+ revisions behind, or a slow reader) just as C
  is compacted.
* Leader loss.  The stream is opened with etcd's ``hasleader`` metadata
  (clientv3's WithRequireLeader), so a member cut off from the leader ends it
  and we move to another member instead of waiting forever.

Progress: etcd before 3.4.24/3.5.8 answers a requested progress at once with
the store revision, even while a watcher is still catching up on history
(etcd issue 15220).  A progress revision from etcd is therefore passed on only
once this watcher is known to be synced (it was created at or past the head, or
a response showed it at the head, or etcd sent it a periodic progress, which
etcd sends to synced watchers only).  Before that, a requested progress reports
the last revision delivered, which is always true.  Even when synced, those
etcd versions may, rarely, send the progress just before an event it covers;
that event is still delivered: on an open stream events are only filtered
against ``floor``, where the stream was opened (etcd never repeats an event
within one stream), not against ``next``, which the progress moved past it.

Writes to the stream are serialised (``_write_lock``): gRPC's asyncio stream
allows one pending write at a time, and a second concurrent ``write`` (two
readers asking for progress at once) breaks the whole call with
``INTERNAL: Internal error from Core``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio

from skiff.etcd_protos import load
from skiff.store.errors import Compacted, InvalidArgument, StoreError, Unavailable
from skiff.store.etcd_endpoints import EtcdEndpoints
from skiff.store.etcd_errors import may_retry_read, translate
from skiff.store.pbconvert import event_from_pb
from skiff.store.types import Event, WatchResponse

_REQUIRE_LEADER = (("hasleader", "true"),)
_NO_LEADER = "etcdserver: no leader"
# etcd's clientv3.InvalidWatchID: the watch id of a requested progress notification.
_PROGRESS_WATCH_ID = -1


class EtcdWatcher:
    def __init__(
        self,
        endpoints: EtcdEndpoints,
        key: bytes,
        range_end: bytes,
        *,
        start_revision: int,
        prev_kv: bool,
        progress_notify: bool,
    ) -> None:
        self._endpoints = endpoints
        self._key = key
        self._range_end = range_end
        self._prev_kv = prev_kv
        self._progress_notify = progress_notify
        self._next = start_revision  # 0 until the first created response says where "now" is
        #: ``next`` when the current stream was opened: what it replays below this was delivered before.
        self._floor = start_revision
        self._rpc: Any = load().rpc_pb2
        self._call: Any = None
        self._endpoint = ""
        self._watch_id = 0
        self._synced = False
        # ``next`` when it is exactly etcd's compaction point and not yet shown intact (see above); else 0.
        self._at_compaction_point = 0
        self._fragments: list[Any] = []
        self._progress_wanted = False
        self._closed = False
        self._write_lock = asyncio.Lock()

    async def open(self) -> None:
        """Create the watch; after this returns, every later commit will be delivered."""
        await self._open_with_failover()

    def __aiter__(self) -> EtcdWatcher:
        return self

    async def __anext__(self) -> WatchResponse:
        while True:
            if self._closed:
                raise StopAsyncIteration
            try:
                resp = await self._call.read()
            except asyncio.CancelledError:
                if self._closed and not _being_cancelled():  # close() from another task ended the stream
                    raise StopAsyncIteration from None
                raise
            except grpc.aio.AioRpcError as err:
                if self._closed:
                    raise StopAsyncIteration from None
                if not may_retry_read(err):
                    await self._fail()
                    raise translate(err) from None
                await self._reconnect()
                continue
            if resp is grpc.aio.EOF:
                await self._reconnect()
                continue
            delivered = await self._accept(resp)
            if delivered is not None:
                return delivered

    async def request_progress(self) -> None:
        self._progress_wanted = True
        try:
            await self._write_progress_request(self._call)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass  # the stream is broken: the reader reconnects and asks again

    async def _write_progress_request(self, call: Any) -> None:
        async with self._write_lock:
            await call.write(self._rpc.WatchRequest(progress_request=self._rpc.WatchProgressRequest()))

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._call is not None:
                self._call.cancel()

    # -- responses ------------------------------------------------------------

    async def _accept(self, resp: Any) -> WatchResponse | None:
        """The response to deliver for ``resp``, or None (a fragment, a duplicate, a stale notice)."""
        if resp.canceled:
            if resp.compact_revision:
                if resp.compact_revision == self._next and self._at_compaction_point != self._next:
                    # Only the revision before ``next`` is gone: ``next`` is the compaction point itself.
                    self._at_compaction_point = self._next
                    await self._reconnect(failover=False)
                    return None
                await self._fail()
                raise Compacted(resp.compact_revision)
            if resp.cancel_reason == _NO_LEADER:
                await self._reconnect()
                return None
            await self._fail()
            raise StoreError(resp.cancel_reason or "etcdserver: watch canceled")
        if resp.created:
            return None
        if resp.fragment:
            self._fragments.extend(resp.events)
            return None
        pb_events = [*self._fragments, *resp.events]
        self._fragments.clear()
        revision = resp.header.revision
        events = [event_from_pb(e) for e in pb_events]
        periodic = resp.watch_id == self._watch_id
        if self._at_compaction_point and (events or periodic or self._synced):
            # The first word on revision ``next`` (all of etcd's history from it comes in one response).
            point, self._at_compaction_point = self._at_compaction_point, 0
            if not any(e.kv.mod_revision == point for e in events):
                await self._fail()
                raise Compacted(point)
        if events:
            return self._deliver_events(revision, events)
        return self._deliver_progress(revision, periodic=periodic)

    def _deliver_events(self, revision: int, events: list[Event]) -> WatchResponse | None:
        fresh = tuple(e for e in events if e.kv.mod_revision >= self._floor)
        if not fresh:
            return None
        last = fresh[-1].kv.mod_revision
        self._next = max(self._next, last + 1)
        if revision == last:  # sent at the head: this watcher is synced
            self._synced = True
        return WatchResponse(revision=revision, events=fresh)

    def _deliver_progress(self, revision: int, *, periodic: bool) -> WatchResponse:
        self._progress_wanted = False
        if periodic:
            self._synced = True
        if not self._synced:
            return WatchResponse(revision=self._next - 1, progress=True)
        self._next = max(self._next, revision + 1)
        return WatchResponse(revision=revision, progress=True)

    # -- the stream -------------------------------------------------------------

    async def _open_with_failover(self) -> None:
        attempts = 3 * len(self._endpoints.endpoints)
        for attempt in range(attempts):
            endpoint, stub = self._endpoints.stub("Watch")
            try:
                await self._open_on(endpoint, stub)
                return
            except grpc.aio.AioRpcError as err:
                if not may_retry_read(err) or attempt == attempts - 1:
                    raise translate(err) from None
                self._endpoints.failover(endpoint)
            except _StreamEnded:
                self._endpoints.failover(endpoint)
            # Every member refused in turn: wait a little longer each pass for one to come back.
            await asyncio.sleep(min(0.05 * 2 ** (attempt // len(self._endpoints.endpoints)), 1.0))
        raise Unavailable("etcdserver: unavailable: no member accepted the watch")

    async def _open_on(self, endpoint: str, stub: Any) -> None:
        call, resp = await self._create(stub, self._next)
        if 1 < self._next <= resp.header.revision and self._at_compaction_point != self._next:
            # etcd reads ``next`` from history: open one revision early (module docstring, compaction point).
            call.cancel()
            call, resp = await self._create(stub, self._next - 1)
        head = resp.header.revision
        if self._next == 0:
            self._next = head + 1
        self._synced = self._next > head
        self._floor = self._next
        self._call, self._endpoint, self._watch_id = call, endpoint, resp.watch_id
        if self._progress_wanted:
            await self._write_progress_request(call)

    async def _create(self, stub: Any, start_revision: int) -> tuple[Any, Any]:
        """A new Watch stream with the watch created from ``start_revision``; returns it and the created response."""
        call = stub.Watch(metadata=_REQUIRE_LEADER)
        create = self._rpc.WatchCreateRequest(
            key=self._key,
            range_end=self._range_end,
            start_revision=start_revision,
            progress_notify=self._progress_notify,
            prev_kv=self._prev_kv,
            fragment=True,
        )
        try:
            await call.write(self._rpc.WatchRequest(create_request=create))
            resp = await call.read()
        except BaseException:
            call.cancel()
            raise
        if resp is grpc.aio.EOF or not resp.created:
            call.cancel()
            raise _StreamEnded
        if resp.canceled:
            call.cancel()
            raise InvalidArgument(resp.cancel_reason or "etcdserver: watch canceled at creation")
        return call, resp

    async def _reconnect(self, *, failover: bool = True) -> None:
        self._call.cancel()
        self._fragments.clear()  # the whole response is sent again from ``next``
        if failover:
            self._endpoints.failover(self._endpoint)
        try:
            await self._open_with_failover()
        except BaseException:
            await self._fail()
            raise

    async def _fail(self) -> None:
        """A terminal error: the watcher is closed once the error is raised."""
        await self.close()


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _StreamEnded(Exception):
    """The server ended the stream before confirming the watch."""
