"""Watch fan-out on the event loop: live events from the writer, history from the log.

Guarantees (etcd's watch contract): a watcher delivers every event from its
start revision on, in revision order, each revision's events together in one
response, never duplicated, never skipped.

How: a watcher registers with the hub *before* it reads any history, so every
commit published after registration lands in its buffer.  A watcher whose
start revision is already committed first "catches up": it reads the log in
windows of revisions from a WAL snapshot; when a read reaches the snapshot's
revision it has seen everything up to there, and buffered live responses at
or below that revision are dropped (they were in the history).  This is
etcd's unsynced → synced watcher hand-off.

A slow consumer never blocks the writer or other watchers: the buffer is
bounded; on overflow it is discarded and the watcher falls back to catching
up from the log (if its position has been compacted meanwhile, iteration
raises Compacted, like etcd cancelling a compacted unsynced watcher).

The writer notifies the loop directly after each commit (no polling), so an
event reaches the watcher's iterator one loop callback after COMMIT.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from skiff.store.errors import Compacted, StoreError
from skiff.store.key_span import KeySpan
from skiff.store.types import Event, WatchResponse

#: Live responses a watcher may hold before it is sent back to catching up from the log.
MAX_BUFFERED_RESPONSES = 1024
#: Revisions read from the log per catch-up step (etcd's watchBatchMaxRevs).
HISTORY_WINDOW = 1000
#: etcd's default progress notify interval (--experimental-watch-progress-notify-interval).
DEFAULT_PROGRESS_INTERVAL = 600.0


class HistoryBatch:
    """What one catch-up read saw: events of revisions ``first..last`` within a snapshot."""

    __slots__ = ("compact_revision", "events", "last", "snapshot_revision")

    def __init__(
        self, snapshot_revision: int, compact_revision: int, last: int, events: list[tuple[int, tuple[Event, ...]]]
    ) -> None:
        self.snapshot_revision = snapshot_revision
        self.compact_revision = compact_revision
        self.last = last
        self.events = events


#: (span, first revision, window, prev_kv) -> HistoryBatch, read in one snapshot.
ReadHistory = Callable[[KeySpan, int, int, bool], Awaitable[HistoryBatch]]


class WatchHub:
    """Routes each committed revision's events to the watchers whose span they hit.

    Watchers are grouped by span: matching and building the response happen
    once per distinct span (the API server has one watch per resource), and
    every watcher of the group gets the same immutable response object.
    """

    def __init__(self, revision: int, read_history: ReadHistory, progress_interval: float) -> None:
        self.revision = revision
        self.read_history = read_history
        self.progress_interval = progress_interval
        self._by_key: dict[bytes, set[HubWatcher]] = {}
        self._by_range: dict[KeySpan, set[HubWatcher]] = {}
        self._closed = False

    def watch(self, span: KeySpan, start_revision: int, prev_kv: bool, progress_notify: bool) -> HubWatcher:
        if self._closed:
            raise StoreError("etcdserver: store is closed")
        next_rev = start_revision or self.revision + 1
        watcher = HubWatcher(self, span, next_rev, prev_kv, progress_notify, catching_up=next_rev <= self.revision)
        if span.is_single:
            self._by_key.setdefault(span.start, set()).add(watcher)
        else:
            self._by_range.setdefault(span, set()).add(watcher)
        return watcher

    def remove(self, watcher: HubWatcher) -> None:
        span = watcher.span
        groups: dict[Any, set[HubWatcher]] = self._by_key if span.is_single else self._by_range
        index = span.start if span.is_single else span
        group = groups.get(index)
        if group is not None:
            group.discard(watcher)
            if not group:
                del groups[index]

    def publish(self, committed: list[tuple[int, tuple[Event, ...]]]) -> None:
        """Fan out committed revisions (ascending); called on the loop right after COMMIT."""
        if not committed:
            return
        self.revision = committed[-1][0]
        header = self.revision
        for rev, events in committed:
            hits: dict[tuple[str, Any], tuple[set[HubWatcher], list[Event]]] = {}
            for event in events:
                key = event.kv.key
                single = self._by_key.get(key)
                if single:
                    hits.setdefault(("key", key), (single, []))[1].append(event)
                for span, group in self._by_range.items():
                    if span.contains(key):
                        hits.setdefault(("range", span), (group, []))[1].append(event)
            for group, matched in hits.values():
                full = WatchResponse(header, tuple(matched))
                stripped: WatchResponse | None = None
                for watcher in list(group):
                    if watcher.prev_kv:
                        watcher.offer(rev, full)
                        continue
                    if stripped is None:
                        stripped = WatchResponse(
                            header, tuple(e if e.prev_kv is None else replace(e, prev_kv=None) for e in matched)
                        )
                    watcher.offer(rev, stripped)

    def close(self) -> None:
        self._closed = True
        groups = [*self._by_key.values(), *self._by_range.values()]
        self._by_key.clear()
        self._by_range.clear()
        for group in groups:
            for watcher in group:
                watcher.end()


class HubWatcher:
    """One watch (the Watcher protocol).  Only the loop touches it."""

    def __init__(
        self, hub: WatchHub, span: KeySpan, next_rev: int, prev_kv: bool, progress_notify: bool, catching_up: bool
    ) -> None:
        self.hub = hub
        self.span = span
        self.prev_kv = prev_kv
        self._next_rev = next_rev
        self._catching_up = catching_up
        self._overflowed = False
        self._buffer: deque[tuple[int, WatchResponse]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._error: StoreError | None = None
        self._progress_requested = False
        self._progress_notify = progress_notify
        self._progress_due = time.monotonic() + hub.progress_interval

    # -- hub side ------------------------------------------------------------------
    def offer(self, rev: int, response: WatchResponse) -> None:
        if self._ended:
            return
        self._buffer.append((rev, response))
        if len(self._buffer) > MAX_BUFFERED_RESPONSES:
            # Too slow: forget the buffer and re-read from the log instead.
            self._buffer.clear()
            self._overflowed = True
            self._catching_up = True
        self._wake()

    def end(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- consumer side -------------------------------------------------------------
    def __aiter__(self) -> HubWatcher:
        return self

    async def __anext__(self) -> WatchResponse:
        while True:
            if self._error is not None:
                raise self._error
            if self._ended:
                raise StopAsyncIteration
            if self._catching_up:
                response = await self._catch_up()
                if response is not None:
                    return self._delivered(response)
                continue
            while self._buffer:
                rev, response = self._buffer.popleft()
                if rev >= self._next_rev:
                    self._next_rev = rev + 1
                    return self._delivered(response)
            if self._progress_requested:
                self._progress_requested = False
                return self._delivered(WatchResponse(self.hub.revision, progress=True))
            timeout = None
            if self._progress_notify:
                timeout = self._progress_due - time.monotonic()
                if timeout <= 0:
                    return self._delivered(WatchResponse(self.hub.revision, progress=True))
            await self._wait(timeout)

    def _delivered(self, response: WatchResponse) -> WatchResponse:
        self._progress_due = time.monotonic() + self.hub.progress_interval
        return response

    async def _wait(self, seconds: float | None) -> None:
        """Sleep until woken (an offer, end, progress request) or ``seconds`` pass."""
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(seconds):
                await waiter
        except TimeoutError:
            pass  # time for a progress notification; __anext__ checks the deadline
        finally:
            self._waiter = None

    async def _catch_up(self) -> WatchResponse | None:
        """One log read; returns a response if it found events, None to look again."""
        self._overflowed = False
        first = self._next_rev
        batch = await self.hub.read_history(self.span, first, HISTORY_WINDOW, self.prev_kv)
        if self._ended:
            return None
        if first < batch.compact_revision:
            self._error = Compacted(batch.compact_revision)
            self.hub.remove(self)
            raise self._error
        self._next_rev = batch.last + 1
        if batch.last >= batch.snapshot_revision and not self._overflowed:
            # Everything up to the snapshot is read; what the buffer holds beyond it is live.
            self._catching_up = False
        if not batch.events:
            return None
        events = tuple(e for _, group in batch.events for e in group)
        return WatchResponse(batch.snapshot_revision, events)

    async def request_progress(self) -> None:
        self._progress_requested = True
        self._wake()

    async def close(self) -> None:
        self.hub.remove(self)
        self.end()
