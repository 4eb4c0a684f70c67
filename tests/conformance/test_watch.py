"""Watch (etcd's Watch RPC doc, api_guarantees "Watch APIs", ``watchable_store``).

* Events arrive in revision order, never duplicated or skipped; all events of
  one revision come in one response, in the order of the txn's ops.
* A past start revision replays history, then goes on live; a future one
  waits; 0 means "from the next revision".
* A DELETE event's kv carries only the key and the deleting revision as
  mod_revision (etcd builds it from the tombstone); ``prev_kv`` adds the kv
  before the event.
* A start revision below the compaction point fails with Compacted carrying
  the compact revision.
* request_progress answers, once every earlier event is delivered, with an
  empty response whose revision is the store's.
"""

from __future__ import annotations

import itertools

import pytest
from observe import current_revision, flatten, next_events, next_response

from skiff.store.errors import Compacted
from skiff.store.protocol import Store
from skiff.store.types import DeleteRange, Event, EventType, KeyValue, Put, Txn, WatchResponse, prefix_end

PUT, DELETE = EventType.PUT, EventType.DELETE


def assert_revisions_not_split(responses: list[WatchResponse]) -> None:
    """All events of one revision arrive in one response, and responses come in revision order."""
    revisions = [[e.kv.mod_revision for e in r.events] for r in responses]
    flat = [rev for group in revisions for rev in group]
    assert flat == sorted(flat)
    for earlier, later in itertools.pairwise(revisions):
        assert earlier[-1] < later[0], f"a revision split across responses: {revisions}"


async def test_key_watch_sees_puts_and_deletes_of_that_key_only(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    watcher = await store.watch(key)
    try:
        r1 = (await store.put(Put(key, b"one"))).revision
        await store.put(Put(prefix + b"k2", b"other key"))
        r3 = (await store.put(Put(key, b"two"))).revision
        r4 = (await store.delete_range(DeleteRange(key))).revision
        responses = await next_events(watcher, 3)
    finally:
        await watcher.close()
    assert flatten(responses) == [
        Event(PUT, KeyValue(key, b"one", r1, r1, 1)),
        Event(PUT, KeyValue(key, b"two", r1, r3, 2)),
        Event(DELETE, KeyValue(key, mod_revision=r4)),
    ]
    for response in responses:
        assert response.revision >= response.events[-1].kv.mod_revision
        assert not response.progress


async def test_prefix_watch_and_prev_kv(store: Store, prefix: bytes) -> None:
    watched = prefix + b"dir/"
    await store.put(Put(watched + b"a", b"before"))
    watcher = await store.watch(watched, prefix_end(watched), prev_kv=True)
    try:
        await store.put(Put(prefix + b"outside", b"x"))
        r2 = (await store.put(Put(watched + b"a", b"after"))).revision
        r3 = (await store.put(Put(watched + b"b", b"new"))).revision
        r4 = (await store.delete_range(DeleteRange(watched, prefix_end(watched)))).revision
        responses = await next_events(watcher, 4)
    finally:
        await watcher.close()
    assert_revisions_not_split(responses)
    events = flatten(responses)
    first = events[0].prev_kv
    assert first is not None and first.value == b"before"
    created = first.create_revision
    assert events == [
        Event(PUT, KeyValue(watched + b"a", b"after", created, r2, 2), prev_kv=first),
        Event(PUT, KeyValue(watched + b"b", b"new", r3, r3, 1), prev_kv=None),
        Event(DELETE, KeyValue(watched + b"a", mod_revision=r4), KeyValue(watched + b"a", b"after", created, r2, 2)),
        Event(DELETE, KeyValue(watched + b"b", mod_revision=r4), KeyValue(watched + b"b", b"new", r3, r3, 1)),
    ]


async def test_events_of_one_txn_arrive_together_in_op_order(store: Store, prefix: bytes) -> None:
    await store.put(Put(prefix + b"c", b"doomed"))
    watcher = await store.watch(prefix, prefix_end(prefix))
    try:
        result = await store.txn([], [Put(prefix + b"b", b"1"), DeleteRange(prefix + b"c"), Put(prefix + b"a", b"2")])
        (response,) = await next_events(watcher, 3)
    finally:
        await watcher.close()
    r = result.revision
    assert response.events == (
        Event(PUT, KeyValue(prefix + b"b", b"1", r, r, 1)),
        Event(DELETE, KeyValue(prefix + b"c", mod_revision=r)),
        Event(PUT, KeyValue(prefix + b"a", b"2", r, r, 1)),
    )


async def test_past_start_revision_replays_history_then_goes_live(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    r1 = (await store.put(Put(key, b"1"))).revision
    r2 = (await store.txn([], [Put(key, b"2"), Put(prefix + b"other", b"x")])).revision
    r3 = (await store.delete_range(DeleteRange(key))).revision
    watcher = await store.watch(prefix, prefix_end(prefix), start_revision=r1)
    try:
        replayed = await next_events(watcher, 4)
        r4 = (await store.put(Put(key, b"live"))).revision
        live = await next_events(watcher, 1)
    finally:
        await watcher.close()
    assert flatten(replayed) == [
        Event(PUT, KeyValue(key, b"1", r1, r1, 1)),
        Event(PUT, KeyValue(key, b"2", r1, r2, 2)),
        Event(PUT, KeyValue(prefix + b"other", b"x", r2, r2, 1)),
        Event(DELETE, KeyValue(key, mod_revision=r3)),
    ]
    # The two events of revision r2 share a response (a response may hold several revisions).
    assert_revisions_not_split(replayed)
    assert flatten(live) == [Event(PUT, KeyValue(key, b"live", r4, r4, 1))]


async def test_replayed_history_has_prev_kv(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    r1 = (await store.put(Put(key, b"1"))).revision
    r2 = (await store.put(Put(key, b"2"))).revision
    r3 = (await store.delete_range(DeleteRange(key))).revision
    watcher = await store.watch(key, start_revision=r2, prev_kv=True)
    try:
        events = flatten(await next_events(watcher, 2))
    finally:
        await watcher.close()
    assert events == [
        Event(PUT, KeyValue(key, b"2", r1, r2, 2), KeyValue(key, b"1", r1, r1, 1)),
        Event(DELETE, KeyValue(key, mod_revision=r3), KeyValue(key, b"2", r1, r2, 2)),
    ]


async def test_future_start_revision_waits_for_it(store: Store, prefix: bytes) -> None:
    start = await current_revision(store)
    watcher = await store.watch(prefix, prefix_end(prefix), start_revision=start + 3)
    try:
        for value in (b"1", b"2", b"3", b"4"):
            await store.put(Put(prefix + b"k", value))
        events = flatten(await next_events(watcher, 2))
    finally:
        await watcher.close()
    assert [(e.kv.value, e.kv.mod_revision) for e in events] == [(b"3", start + 3), (b"4", start + 4)]


async def test_start_revision_zero_means_from_the_next_revision(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    await store.put(Put(key, b"before"))
    watcher = await store.watch(key)
    try:
        r = (await store.put(Put(key, b"after"))).revision
        events = flatten(await next_events(watcher, 1))
    finally:
        await watcher.close()
    assert [(e.kv.value, e.kv.mod_revision) for e in events] == [(b"after", r)]


async def test_resume_after_close_from_last_seen_plus_one(store: Store, prefix: bytes) -> None:
    start = await current_revision(store)
    watcher = await store.watch(prefix, prefix_end(prefix), start_revision=start + 1)
    for i in range(3):
        await store.put(Put(prefix + b"k", b"%d" % i))
    try:
        first = flatten(await next_events(watcher, 2))
    finally:
        await watcher.close()
    for i in range(3, 5):
        await store.put(Put(prefix + b"k", b"%d" % i))
    last_seen = first[-1].kv.mod_revision
    resumed = await store.watch(prefix, prefix_end(prefix), start_revision=last_seen + 1)
    try:
        rest = flatten(await next_events(resumed, 3))
    finally:
        await resumed.close()
    assert [e.kv.value for e in first + rest] == [b"0", b"1", b"2", b"3", b"4"]
    assert [e.kv.mod_revision for e in first + rest] == list(range(start + 1, start + 6))


async def test_request_progress(store: Store, prefix: bytes) -> None:
    watcher = await store.watch(prefix, prefix_end(prefix))
    try:
        r = (await store.put(Put(prefix + b"k", b"v"))).revision
        assert [e.kv.mod_revision for e in flatten(await next_events(watcher, 1))] == [r]
        await watcher.request_progress()
        progress = await next_response(watcher)
        assert progress.progress
        assert progress.events == ()
        assert progress.revision >= r
        assert progress.revision == await current_revision(store)
    finally:
        await watcher.close()


async def test_progress_revision_covers_unwatched_writes(store: Store, prefix: bytes) -> None:
    watcher = await store.watch(prefix + b"watched")
    try:
        r = (await store.put(Put(prefix + b"unwatched", b"v"))).revision
        await watcher.request_progress()
        progress = await next_response(watcher)
    finally:
        await watcher.close()
    assert progress.progress and progress.events == ()
    assert progress.revision >= r


async def test_watch_from_compacted_revision_raises_compacted(store: Store, prefix: bytes) -> None:
    key = prefix + b"k"
    r1 = (await store.put(Put(key, b"1"))).revision
    await store.put(Put(key, b"2"))
    r3 = (await store.put(Put(key, b"3"))).revision
    await store.compact(r3)
    watcher = await store.watch(key, start_revision=r1)
    try:
        with pytest.raises(Compacted) as raised:
            await next_response(watcher)
    finally:
        await watcher.close()
    assert raised.value.compact_revision == r3

    # From the compaction point itself the watch works: the kv at r3 is still there.
    at_compaction = await store.watch(key, start_revision=r3)
    try:
        events = flatten(await next_events(at_compaction, 1))
    finally:
        await at_compaction.close()
    assert [(e.kv.value, e.kv.mod_revision) for e in events] == [(b"3", r3)]


async def test_nested_txn_events_arrive_together(store: Store, prefix: bytes) -> None:
    watcher = await store.watch(prefix, prefix_end(prefix))
    try:
        result = await store.txn([], [Put(prefix + b"a", b"1"), Txn(success=(Put(prefix + b"b", b"2"),))])
        (response,) = await next_events(watcher, 2)
    finally:
        await watcher.close()
    assert [(e.kv.key, e.kv.mod_revision) for e in response.events] == [
        (prefix + b"a", result.revision),
        (prefix + b"b", result.revision),
    ]


async def test_several_watchers_see_the_same_events(store: Store, prefix: bytes) -> None:
    watchers = [await store.watch(prefix, prefix_end(prefix)) for _ in range(3)]
    try:
        for i in range(5):
            await store.put(Put(prefix + b"k%d" % (i % 2), b"%d" % i))
        seen = [flatten(await next_events(w, 5)) for w in watchers]
    finally:
        for w in watchers:
            await w.close()
    assert seen[0] == seen[1] == seen[2]
    assert [e.kv.value for e in seen[0]] == [b"0", b"1", b"2", b"3", b"4"]
