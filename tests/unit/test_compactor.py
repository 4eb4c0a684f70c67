"""Periodic compaction keeps one interval of history, as kube-apiserver's compactor does."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from skiff.store.compactor import compact_periodically
from skiff.store.errors import Compacted
from skiff.store.sqlite import SqliteStore
from skiff.store.types import Put, Range


async def wait_for_compaction(store: SqliteStore, at_least: int) -> int:
    for _ in range(500):
        compacted = (await store.status()).compact_revision
        if compacted >= at_least:
            return compacted
        await asyncio.sleep(0.01)
    raise AssertionError(f"no compaction reached revision {at_least}")


async def test_each_tick_compacts_at_the_revision_seen_one_tick_earlier(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "store.db")
    for i in range(5):
        await store.put(Put(b"k", b"%d" % i))
    remembered = (await store.status()).revision  # 6: what the first tick will see
    task = asyncio.create_task(compact_periodically(store, interval_s=0.05))
    try:
        compacted = await wait_for_compaction(store, 1)
        # The first tick only remembers; the second compacts at what the first saw,
        # so history newer than one interval is never compacted away.
        assert compacted == remembered
        assert (await store.range(Range(b"k", revision=remembered))).kvs[0].value == b"4"
        with pytest.raises(Compacted):
            await store.range(Range(b"k", revision=remembered - 1))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
