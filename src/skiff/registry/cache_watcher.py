"""One client's watch on a ``WatchCache``: a bounded queue of wire lines.

The cache calls ``offer(event)`` synchronously while it applies a store
response, so when a consumer finds the queue empty it has been handed every
event up to the cache's current revision (which is what makes a BOOKMARK at
that revision truthful).  Which line a watcher gets follows the cacher's
``convertToWatchEvent``: the new object must match for ADDED/MODIFIED, the
old one for DELETED, and an update that makes an object start (stop)
matching is seen as ADDED (DELETED).

A watcher that falls ``max_queue`` lines behind is closed, as upstream
terminates a blocked cacheWatcher; its client re-watches from the last
resourceVersion it saw.

Each live line carries the time the cache received its event, so handing it
to the client's stream observes ``skiff_watch_event_delay_seconds``: the
watch-latency SLI Kubernetes defines (stored → ready to send to a watcher),
which no upstream metric exports.  For the embedded store the cache receives
an event moments after the commit, in the same process.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from prometheus_client import CollectorRegistry, Histogram

from skiff.registry.listing import Selection
from skiff.registry.watch_events import CacheEvent

#: Lines a watcher may fall behind before it is closed.
DEFAULT_MAX_QUEUE = 10_000

#: Process-wide (every watch cache of this process feeds it); the API server appends it to its /metrics.
WATCH_METRICS = CollectorRegistry()
WATCH_EVENT_DELAY = Histogram(
    "skiff_watch_event_delay_seconds",
    "Time from the watch cache receiving an event from the store to the event being handed to a watch stream.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=WATCH_METRICS,
)


class CacheWatcher:
    __slots__ = (
        "_queue",
        "_received",
        "_waiter",
        "bucket",
        "closed",
        "max_queue",
        "namespace",
        "overflowed",
        "selection",
    )

    def __init__(self, namespace: str, selection: Selection, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        #: "" for every namespace.
        self.namespace = namespace
        self.selection = selection
        self.max_queue = max_queue
        self.closed = False
        self.overflowed = False
        #: Where the cache filed this watcher (its index key); set by the cache.
        self.bucket: object = None
        self._queue: deque[bytes] = deque()
        #: CacheEvent.received of each queued line, in step with _queue.
        self._received: deque[float] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def line_for(self, event: CacheEvent) -> bytes | None:
        """The line this watcher sees for ``event``, or None when it is not interested."""
        if self.namespace and event.namespace != self.namespace:
            return None
        sel = self.selection
        cur = event.current
        prev = event.previous
        if sel.empty:
            cur_ok = cur is not None
            prev_ok = prev is not None
        else:
            cur_ok = cur is not None and sel.matches(cur.labels, cur.fields)
            prev_ok = prev is not None and sel.matches(prev.labels, prev.fields)
        if cur_ok:
            return event.line("MODIFIED" if prev_ok else "ADDED")
        if prev_ok:
            return event.line("DELETED")
        return None

    def offer(self, event: CacheEvent) -> None:
        if self.closed:
            return
        line = self.line_for(event)
        if line is None:
            return
        if len(self._queue) >= self.max_queue:
            self.overflowed = True
            self.close()
            return
        self._queue.append(line)
        self._received.append(event.received)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pending(self) -> int:
        return len(self._queue)

    async def next_line(self, seconds: float | None) -> bytes | None:
        """The next queued line; None when ``seconds`` pass first or the watcher is closed and drained."""
        if self._queue:
            return self._pop()
        if self.closed:
            return None
        if seconds is not None and seconds <= 0:
            return None
        self._waiter = waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(seconds):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._waiter = None
        if self._queue:
            return self._pop()
        return None

    def take(self) -> bytes | None:
        """The next queued line without waiting; None when there is none."""
        return self._pop() if self._queue else None

    def _pop(self) -> bytes:
        received = self._received.popleft()
        if received:
            WATCH_EVENT_DELAY.observe(time.monotonic() - received)
        return self._queue.popleft()
