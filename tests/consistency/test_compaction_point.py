"""A watcher resumed exactly at the compaction point still sees (or is told it missed) a DELETE there.

The rare failure of ``test_watchers_resume_across_compaction`` pinned down: a
follower had delivered up to C-1 and reopened its watch from C just after
``compact(C)``, where revision C deleted a key.  etcd 3.4/3.5 (issue 18089)
and the SQLite store removed the tombstone at exactly C, yet accepted the
watch from C, so it delivered C+1 first — a silent gap.  Either the DELETE at
C arrives, or iteration raises Compacted and the follower relists; both keep
its log equal to the committed history.  ``tests/unit/test_etcd_watch.py``
drives the etcd watcher's side of this against a scripted server.
"""

from __future__ import annotations

import pytest
from watch_follower import follow, verify_follow

from skiff.store.protocol import Store
from skiff.store.types import DeleteRange, Event, EventType, KeyValue, Put

CONSISTENCY_BACKENDS = ["sqlite", "etcd-3.5.1", "etcd-3.4.23", "facade"]


@pytest.mark.parametrize("backend", CONSISTENCY_BACKENDS, indirect=True)
@pytest.mark.parametrize("later", ["put-after", "nothing-after"])
async def test_watch_resumed_at_a_compacted_delete(store: Store, prefix: bytes, later: str) -> None:
    key, marker = prefix + b"k", prefix + b"~done"
    r1 = (await store.put(Put(key, b"1"))).revision
    r2 = (await store.put(Put(key, b"2"))).revision
    rd = (await store.delete_range(DeleteRange(key))).revision
    committed = [
        Event(EventType.PUT, KeyValue(key, b"1", r1, r1, 1)),
        Event(EventType.PUT, KeyValue(key, b"2", r1, r2, 2)),
        Event(EventType.DELETE, KeyValue(key, mod_revision=rd)),
    ]
    if later == "put-after":
        r4 = (await store.put(Put(key, b"3"))).revision
        committed.append(Event(EventType.PUT, KeyValue(key, b"3", r4, r4, 1)))
    await store.compact(rd)
    done = (await store.put(Put(marker, b"done"))).revision
    committed.append(Event(EventType.PUT, KeyValue(marker, b"done", done, done, 1)))

    log = await follow(store, prefix, rd, marker)  # resumed at the compaction point, as after delivering r2
    verify_follow(log, committed, rd)


@pytest.mark.parametrize("backend", CONSISTENCY_BACKENDS, indirect=True)
async def test_watch_resumed_just_past_the_compaction_point_needs_no_relist(store: Store, prefix: bytes) -> None:
    key, marker = prefix + b"k", prefix + b"~done"
    await store.put(Put(key, b"1"))
    rd = (await store.delete_range(DeleteRange(key))).revision
    r3 = (await store.put(Put(key, b"2"))).revision
    await store.compact(rd)
    done = (await store.put(Put(marker, b"done"))).revision
    committed = [
        Event(EventType.PUT, KeyValue(key, b"2", r3, r3, 1)),
        Event(EventType.PUT, KeyValue(marker, b"done", done, done, 1)),
    ]
    log = await follow(store, prefix, rd + 1, marker)
    assert log.relists == []
    verify_follow(log, committed, rd + 1)
