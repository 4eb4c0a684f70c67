"""WatchCache.wait_for_revision when the store watch answers progress requests below the wanted revision.

etcd before 3.5.8 cannot tell a watcher that is still catching up from one at
the head, so ``skiff.store.etcd_watch`` answers a requested progress with the
last revision it delivered until it knows the watcher is synced.  On an idle
resource nothing more arrives, so a consistent read must give up as soon as
the answer to its own request is in (and read the store) rather than wait
out the freshness timeout.  ``LaggingStore`` reproduces that watcher over
SQLite: its progress answers report the last event revision delivered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from skiff.registry.builtin import find
from skiff.registry.watch_cache import WatchCache
from skiff.store.protocol import Store, Watcher
from skiff.store.sqlite import SqliteStore
from skiff.store.types import Put, WatchResponse

pytestmark = pytest.mark.timeout(60)  # a wait that never gives up would hang: the hour-long timeout below


class LaggingWatcher:
    """Delivers the inner watcher's events; answers progress requests with the last revision delivered."""

    def __init__(self, inner: Watcher, start_revision: int) -> None:
        self._inner = inner
        self._delivered = start_revision - 1
        self._answers = 0
        self._pending: list[WatchResponse] = []

    def __aiter__(self) -> LaggingWatcher:
        return self

    async def __anext__(self) -> WatchResponse:
        while True:
            if self._pending:
                return self._pending.pop(0)
            response = await anext(self._inner)
            if response.events:
                self._delivered = response.events[-1].kv.mod_revision
                return WatchResponse(revision=self._delivered, events=response.events)

    async def request_progress(self) -> None:
        self._pending.append(WatchResponse(revision=self._delivered, progress=True))
        await self._inner.request_progress()  # wakes __anext__ (the inner progress answer is dropped)

    async def close(self) -> None:
        await self._inner.close()


class LaggingStore:
    def __init__(self, inner: SqliteStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def watch(self, key: bytes, range_end: bytes = b"", **kwargs: Any) -> Watcher:
        inner = await self._inner.watch(key, range_end, **kwargs)
        return LaggingWatcher(inner, kwargs.get("start_revision", 0))


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[tuple[WatchCache, SqliteStore]]:
    sqlite = await SqliteStore.open(tmp_path / "store.db")
    info = find("", "v1", "configmaps")
    assert info is not None
    lagging: Any = LaggingStore(sqlite)
    store: Store = lagging
    watch_cache = WatchCache(store, info, freshness_timeout=3600)
    await watch_cache.start()
    try:
        yield watch_cache, sqlite
    finally:
        await watch_cache.stop()
        await sqlite.close()


async def test_a_consistent_read_gives_up_when_progress_stays_below(cache: tuple[WatchCache, SqliteStore]) -> None:
    watch_cache, sqlite = cache
    await sqlite.put(Put(b"/registry/other/key", b"{}"))  # moves the store's revision, not the resource's
    assert await watch_cache.consistent_revision() is None  # the caller reads the store instead


async def test_a_consistent_read_waits_for_events_that_reach_it(cache: tuple[WatchCache, SqliteStore]) -> None:
    watch_cache, sqlite = cache
    value = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"default"}}'
    result = await sqlite.put(Put(b"/registry/core/configmaps/default/a", value))
    assert await watch_cache.consistent_revision() == result.revision
