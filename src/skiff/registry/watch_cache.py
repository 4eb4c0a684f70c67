"""The watch cache: one per resource, fed by ONE store watch, serving lists and watches from memory.

Contract (k8s.io/apiserver's cacher, simplified where noted):

* Start: list the resource's key prefix, then watch it from list revision + 1
  with progress notifications.  ``revision`` is the highest store revision
  the cache has fully applied: every event of the prefix up to it is in
  memory.  Event responses move it to their last event; progress
  notifications (asked for with ``request_progress`` when a reader needs
  freshness, and periodically) move it to the store's revision when idle.
* Consistent reads (etcd "consistent reads from cache", Kubernetes 1.31+):
  ``consistent_revision`` reads the store's current revision and waits until
  the cache has caught up to it.  A wait gives up early (False: the caller
  reads the store instead) when the answer to its own progress request comes
  back below the revision it waits for: the store watch cannot vouch for that
  revision yet — e.g. a watch on etcd < 3.5.8 that is not known to be synced
  reports only what it delivered (skiff.store.etcd_watch), and on an idle
  resource nothing more would come until etcd's periodic progress, minutes
  later.  Progress answers are matched to requests by count (they come back in
  order on the watch stream); a miscount only makes a wait end early (a store
  read: correct) or late (the timeout), never wrong.
* Objects: each object is parsed once and serialised once (``CachedObject``).
* Events: a ring of the last ``capacity`` events (``CacheEvent``), each
  serialised at most once per shape; the same bytes object goes to every
  watcher.  ``history_from`` is the revision after which the ring is complete.
* Watchers are filed in ONE index bucket each: by an equality field selector
  on ``metadata.name`` / ``spec.nodeName`` when they have one, else by
  namespace, else "all".  An event is offered to the "all" bucket, its
  namespace's bucket and the buckets of its old and new indexed field values
  — never to every watcher — so 5,000 kubelets watching their own node's
  pods cost O(matching watchers) per event.
* A watch from a revision older than the ring is served from a store watch
  from that revision up to the cache's revision at registration, then from
  the cache; if the store has compacted it, the stream is one ERROR event
  carrying the 410 Expired Status ``too old resource version: N (M)``.
* When the store watch fails (e.g. the cache fell behind a compaction), the
  cache closes every watcher (clients re-watch), re-lists and carries on.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import orjson

from skiff.api.status import ApiError, Cause, Details, gone, too_many_requests
from skiff.registry.cache_watcher import DEFAULT_MAX_QUEUE, CacheWatcher
from skiff.registry.keys import list_prefix, resource_prefix
from skiff.registry.listing import INDEXED_FIELDS, Selection, field_values
from skiff.registry.metadata import set_resource_version
from skiff.registry.resource import ResourceInfo
from skiff.registry.watch_events import CachedObject, CacheEvent, bookmark_line, error_line
from skiff.store.errors import Compacted, StoreError
from skiff.store.protocol import Store, Watcher
from skiff.store.types import Event, EventType, Range, WatchResponse, prefix_end

log = logging.getLogger(__name__)

#: Events kept for watches that resume from a resourceVersion (upstream sizes its ring up to 100k).
DEFAULT_CAPACITY = 10_000
#: Most lines one coalesced watch item carries (see ``WatchCache.watch``).
COALESCE_LINES = 256
#: Upstream sends bookmarks about once a minute.
DEFAULT_BOOKMARK_INTERVAL = 60.0
#: How long a read waits for the cache to reach a revision (upstream's blockTimeout is 3 s).
DEFAULT_FRESHNESS_TIMEOUT = 3.0
#: Pause before re-listing after the store watch failed.
RETRY_DELAY = 1.0

#: The bucket of watchers with neither a namespace nor an indexed field.
ALL: object = object()


def too_large_resource_version(requested: int, current: int) -> ApiError:
    """storage.NewTooLargeResourceVersionError as the apiserver reports it (504, retry after 1 s)."""
    return ApiError(
        504,
        "Timeout",
        f"Timeout: Too large resource version: {requested}, current: {current}",
        Details(causes=(Cause("ResourceVersionTooLarge", "Too large resource version"),), retry_after_seconds=1),
    )


def too_old_resource_version(requested: int, oldest: int) -> ApiError:
    return gone(f"too old resource version: {requested} ({oldest})")


class WatchCache:
    def __init__(
        self,
        store: Store,
        info: ResourceInfo,
        *,
        capacity: int = DEFAULT_CAPACITY,
        bookmark_interval: float = DEFAULT_BOOKMARK_INTERVAL,
        max_queue: int = DEFAULT_MAX_QUEUE,
        freshness_timeout: float = DEFAULT_FRESHNESS_TIMEOUT,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self.store = store
        self.info = info
        self.capacity = capacity
        self.bookmark_interval = bookmark_interval
        self.max_queue = max_queue
        self.freshness_timeout = freshness_timeout
        self.retry_delay = retry_delay
        self.revision = 0
        self.history_from = 0
        #: Counts applied events, so derived indexes (RBAC's) know when to rebuild.
        self.changes = 0
        self._prefix = resource_prefix(info)
        self._objects: dict[str, CachedObject] = {}
        self._by_namespace: dict[str, dict[str, CachedObject]] = {}
        self._sorted: dict[str | None, list[str]] = {}
        self._ring: deque[CacheEvent] = deque()
        self._all: set[CacheWatcher] = set()
        self._by_ns_watchers: dict[str, set[CacheWatcher]] = {}
        self._by_index: dict[tuple[str, str], set[CacheWatcher]] = {}
        self._waiters: list[tuple[int, int, asyncio.Future[bool]]] = []  # (revision, progress ticket, future)
        self._progress_asked = 0
        self._progress_seen = 0
        self._ready = asyncio.Event()
        self._store_watcher: Watcher | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Begin listing and watching; returns once the first list is in memory."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"watch-cache-{self._prefix}")
        await self.wait_ready(None)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close_watchers()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def cached(self, key: str) -> CachedObject | None:
        """The cache's current version of ``key`` (possibly a moment stale), or None (absent or not synced)."""
        return self._objects.get(key) if self.ready else None

    async def wait_ready(self, seconds: float | None = DEFAULT_FRESHNESS_TIMEOUT) -> None:
        """Wait for the cache to be listed; 429 (as the cacher's "storage is (re)initializing") on timeout."""
        if self._ready.is_set():
            return
        if self._task is not None and self._task.done():
            self._task.result()  # surface why the cache died
        try:
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        except TimeoutError:
            raise too_many_requests("storage is (re)initializing", 1) from None

    async def _run(self) -> None:
        while True:
            try:
                await self._list_and_watch()
                log.warning("watch cache %s: store watch ended; re-listing", self._prefix)
            except StoreError as err:
                log.warning("watch cache %s: store watch failed (%s); re-listing", self._prefix, err)
            self._ready.clear()
            self._close_watchers()
            await asyncio.sleep(self.retry_delay)

    async def _list_and_watch(self) -> None:
        start = self._prefix.encode()
        end = prefix_end(start)
        listed = await self.store.range(Range(start, end))
        objects: dict[str, CachedObject] = {}
        for kv in listed.kvs:
            cached = self._parse(kv.key.decode(), kv.value, kv.mod_revision)
            if cached is not None:
                objects[cached.key] = cached
        watcher = await self.store.watch(start, end, start_revision=listed.revision + 1, progress_notify=True)
        self._objects = objects
        self._by_namespace = {}
        for cached in objects.values():
            self._by_namespace.setdefault(cached.namespace, {})[cached.key] = cached
        self._sorted = {}
        self._ring.clear()
        self.revision = self.history_from = listed.revision
        self._progress_asked = self._progress_seen = 0
        self._store_watcher = watcher
        self.changes += 1
        self._ready.set()
        self._advance()
        ticker = asyncio.get_running_loop().create_task(self._tick_progress(watcher))
        try:
            async for response in watcher:
                self._apply(response)
        finally:
            ticker.cancel()
            self._store_watcher = None
            await watcher.close()

    async def _tick_progress(self, watcher: Watcher) -> None:
        """Keep ``revision`` current while the resource is idle, so bookmarks advance."""
        while True:
            await asyncio.sleep(self.bookmark_interval)
            await self._ask_progress(watcher)

    async def _ask_progress(self, watcher: Watcher) -> int:
        """Request a progress notification; returns its ticket (the count of requests so far)."""
        self._progress_asked += 1
        ticket = self._progress_asked
        await watcher.request_progress()
        return ticket

    def _close_watchers(self) -> None:
        for group in (self._all, *self._by_ns_watchers.values(), *self._by_index.values()):
            for w in group:
                w.close()

    # -- applying store events ---------------------------------------------------------------
    def _parse(self, key: str, value: bytes, revision: int) -> CachedObject | None:
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:
            log.error("watch cache %s: value of %s at revision %d is not JSON; not served", self._prefix, key, revision)
            return None
        set_resource_version(obj, revision)
        return CachedObject(key, obj, revision, field_values(obj, self.info))

    def _apply(self, response: WatchResponse) -> None:
        received = time.monotonic()
        for event in response.events:
            self._apply_event(event, received)
        if response.progress:
            self._progress_seen += 1
            if response.revision > self.revision:
                self.revision = response.revision
        self._advance()

    def _apply_event(self, event: Event, received: float) -> None:
        key = event.kv.key.decode()
        revision = event.kv.mod_revision
        previous = self._objects.get(key)
        if event.type == EventType.PUT:
            current = self._parse(key, event.kv.value, revision)
            if current is None:
                return
            self._objects[key] = current
            self._by_namespace.setdefault(current.namespace, {})[key] = current
            if previous is None:
                self._sorted.pop(None, None)
                self._sorted.pop(current.namespace, None)
            cache_event = CacheEvent("MODIFIED" if previous else "ADDED", revision, current, previous, received)
        else:
            if previous is None:
                return
            del self._objects[key]
            bucket = self._by_namespace.get(previous.namespace)
            if bucket is not None:
                bucket.pop(key, None)
                if not bucket:
                    del self._by_namespace[previous.namespace]
            self._sorted.pop(None, None)
            self._sorted.pop(previous.namespace, None)
            cache_event = CacheEvent("DELETED", revision, None, previous, received)
        self.changes += 1
        self._ring.append(cache_event)
        if len(self._ring) > self.capacity:
            self.history_from = self._ring.popleft().revision
        self.revision = max(self.revision, revision)
        self._dispatch(cache_event)

    def _dispatch(self, event: CacheEvent) -> None:
        for group in self._groups_for(event):
            for w in group:
                w.offer(event)

    def _groups_for(self, event: CacheEvent) -> Iterable[set[CacheWatcher]]:
        groups: list[set[CacheWatcher]] = []
        if self._all:
            groups.append(self._all)
        ns_group = self._by_ns_watchers.get(event.namespace)
        if ns_group:
            groups.append(ns_group)
        if self._by_index:
            for field_name in INDEXED_FIELDS:
                for obj in (event.current, event.previous):
                    if obj is None:
                        continue
                    value = obj.fields.get(field_name)
                    if value is None:
                        continue
                    group = self._by_index.get((field_name, value))
                    if group and not any(g is group for g in groups):
                        groups.append(group)
        return groups

    def _advance(self) -> None:
        if not self._waiters:
            return
        still: list[tuple[int, int, asyncio.Future[bool]]] = []
        for wanted, ticket, fut in self._waiters:
            if wanted <= self.revision or (ticket and ticket <= self._progress_seen):
                if not fut.done():
                    fut.set_result(wanted <= self.revision)
            else:
                still.append((wanted, ticket, fut))
        self._waiters = still

    # -- freshness ---------------------------------------------------------------------------
    async def wait_for_revision(self, revision: int, seconds: float | None = None) -> bool:
        """Wait until the cache has applied ``revision``; False if ``seconds`` (default freshness_timeout)
        pass or the store's answer to this wait's progress request stays below ``revision``."""
        if self.revision >= revision:
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        watcher = self._store_watcher
        ticket = 0
        if watcher is not None:
            ticket = self._progress_asked + 1  # the ticket _ask_progress is about to take
        self._waiters.append((revision, ticket, fut))
        if watcher is not None:
            await self._ask_progress(watcher)
        try:
            async with asyncio.timeout(self.freshness_timeout if seconds is None else seconds):
                return await fut
        except TimeoutError:
            return False
        finally:
            self._waiters = [w for w in self._waiters if w[2] is not fut]

    async def store_revision(self) -> int:
        """The store's current revision (the header of a one-key read)."""
        return (await self.store.range(Range(self._prefix.encode()))).revision

    async def consistent_revision(self) -> int | None:
        """Wait until the cache holds everything committed before this call; None if it did not in time."""
        await self.wait_ready()
        wanted = await self.store_revision()
        return self.revision if await self.wait_for_revision(wanted) else None

    # -- reads ---------------------------------------------------------------------------------
    def snapshot(self, namespace: str | None) -> tuple[int, list[CachedObject]]:
        """(revision, the objects of ``namespace`` — or all — sorted by key); synchronous, so consistent."""
        scope = namespace or None
        keys = self._sorted.get(scope)
        source = self._objects if scope is None else self._by_namespace.get(scope, {})
        if keys is None:
            keys = self._sorted[scope] = sorted(source)
        return self.revision, [source[k] for k in keys]

    @staticmethod
    def index_after(objects: list[CachedObject], key: str) -> int:
        """Position of the first object whose key is >= ``key`` in a snapshot."""
        return bisect.bisect_left(objects, key, key=lambda o: o.key)

    # -- watch ---------------------------------------------------------------------------------
    def watch(
        self,
        namespace: str | None,
        selection: Selection,
        *,
        after: int | None,
        initial_events_end: bool = False,
        bookmarks: bool = False,
        timeout: float | None = None,
        coalesce: bool = False,
    ) -> AsyncIterator[bytes]:
        """A stream of wire lines; the watcher registers when iteration starts (nothing leaks if it never does).

        ``after=None``: synthetic ADDED for every matching object at the
        cache's revision, then changes.  ``after=N``: every change after N.
        Call only when ready and (for ``after``) ``N <= revision``.
        ``coalesce``: an item may hold several lines (up to COALESCE_LINES of
        those already waiting), so a busy stream is written in a few large
        writes instead of one TLS record per event; only for consumers that
        pass lines through untouched.
        """
        ns = "" if not self.info.namespaced else (namespace or selection.namespace or "")
        w = CacheWatcher(ns, selection, self.max_queue)
        return self._stream(w, after, initial_events_end, bookmarks, timeout, COALESCE_LINES if coalesce else 1)

    def events_after(self, revision: int) -> list[CacheEvent] | None:
        """Every change after ``revision``, oldest first; None when the ring no longer holds them all
        (compacted away, or the cache re-listed since), so an index kept beside the cache re-reads a snapshot."""
        if revision < self.history_from:
            return None
        return self._events_after(revision)

    def _events_after(self, revision: int) -> list[CacheEvent]:
        out: list[CacheEvent] = []
        for event in reversed(self._ring):
            if event.revision <= revision:
                break
            out.append(event)
        out.reverse()
        return out

    def _register(self, w: CacheWatcher) -> None:
        index = w.selection.index
        if index is not None:
            w.bucket = index
            self._by_index.setdefault(index, set()).add(w)
        elif w.namespace:
            w.bucket = w.namespace
            self._by_ns_watchers.setdefault(w.namespace, set()).add(w)
        else:
            w.bucket = ALL
            self._all.add(w)

    def _unregister(self, w: CacheWatcher) -> None:
        w.close()
        bucket = w.bucket
        if isinstance(bucket, tuple):
            _discard(self._by_index, bucket, w)
        elif isinstance(bucket, str):
            _discard(self._by_ns_watchers, bucket, w)
        else:
            self._all.discard(w)

    def watcher_count(self) -> int:
        return len(self._all) + sum(map(len, self._by_ns_watchers.values())) + sum(map(len, self._by_index.values()))

    async def _stream(
        self,
        w: CacheWatcher,
        after: int | None,
        initial_events_end: bool,
        bookmarks: bool,
        duration: float | None,
        batch: int = 1,
    ) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = None if duration is None else loop.time() + duration
        # Snapshot (or replay) and registration happen in one step of the loop, so no event falls between.
        registered_at = self.revision
        initial: list[CachedObject] = []
        replay: list[CacheEvent] = []
        from_store = False
        if after is None:
            initial = self.snapshot(w.namespace or None)[1]
        elif after >= self.history_from:
            replay = self._events_after(after)
        else:
            from_store = True
        self._register(w)
        try:
            sel = w.selection
            added = (c.added_line() for c in initial if sel.empty or sel.matches(c.labels, c.fields))
            for chunk in _chunks(added, batch):
                yield chunk
            if initial_events_end:
                yield bookmark_line(self.info.kind, self.info.group_version, registered_at, initial_events_end=True)
            for event in replay:
                line = w.line_for(event)
                if line is not None:
                    yield line
            if from_store:
                try:
                    async for line in self._replay_from_store(w, after or 0, registered_at):
                        yield line
                except Compacted as err:
                    yield error_line(too_old_resource_version(after or 0, err.compact_revision).to_dict())
                    return
            next_bookmark = loop.time() + self.bookmark_interval
            while True:
                now = loop.time()
                if deadline is not None and now >= deadline:
                    return
                wait_until = deadline
                if bookmarks:
                    wait_until = next_bookmark if wait_until is None else min(wait_until, next_bookmark)
                line = await w.next_line(None if wait_until is None else wait_until - now)
                if line is not None:
                    if batch > 1 and w.pending():
                        lines = [line]
                        while len(lines) < batch and (more := w.take()) is not None:
                            lines.append(more)
                        line = b"".join(lines)
                    yield line
                    continue
                if w.closed and not w.pending():
                    return
                if bookmarks and loop.time() >= next_bookmark:
                    # The queue is empty, so every event up to ``revision`` has been handed over.
                    yield bookmark_line(self.info.kind, self.info.group_version, self.revision)
                    next_bookmark = loop.time() + self.bookmark_interval
        finally:
            self._unregister(w)

    async def _replay_from_store(self, w: CacheWatcher, after: int, until: int) -> AsyncIterator[bytes]:
        """Events (after, until] from a store watch; raises Compacted when the store no longer has them."""
        start = list_prefix(self.info, w.namespace or None).encode()
        watcher = await self.store.watch(start, prefix_end(start), start_revision=after + 1, prev_kv=True)
        try:
            await watcher.request_progress()
            async for response in watcher:
                if not response.events:
                    if response.revision >= until:
                        return
                    await watcher.request_progress()
                    continue
                for event in response.events:
                    if event.kv.mod_revision > until:
                        return
                    cache_event = self._event_from_store(event)
                    if cache_event is None:
                        continue
                    line = w.line_for(cache_event)
                    if line is not None:
                        yield line
                    if event.kv.mod_revision == until and event is response.events[-1]:
                        return
        finally:
            await watcher.close()

    def _event_from_store(self, event: Event) -> CacheEvent | None:
        key = event.kv.key.decode()
        previous = None
        if event.prev_kv is not None:
            previous = self._parse(key, event.prev_kv.value, event.prev_kv.mod_revision)
        if event.type == EventType.PUT:
            current = self._parse(key, event.kv.value, event.kv.mod_revision)
            if current is None:
                return None
            return CacheEvent("MODIFIED" if previous else "ADDED", event.kv.mod_revision, current, previous)
        if previous is None:
            return None
        return CacheEvent("DELETED", event.kv.mod_revision, None, previous)


def _chunks(lines: Iterable[bytes], size: int) -> Iterator[bytes]:
    """``lines`` joined ``size`` at a time (one at a time when size is 1)."""
    if size <= 1:
        yield from lines
        return
    it = iter(lines)
    while chunk := b"".join(itertools.islice(it, size)):
        yield chunk


def _discard(groups: dict[Any, set[CacheWatcher]], bucket: Any, w: CacheWatcher) -> None:
    group = groups.get(bucket)
    if group is not None:
        group.discard(w)
        if not group:
            del groups[bucket]
