"""A watcher that behaves like a client: resumes after disconnects and after compaction.

It follows a prefix from a start revision until it sees a marker key.  After
a (forced) disconnect it reopens from last_seen+1.  When the store answers
Compacted it does what an informer does: relists at the compact revision and
watches on from compact_revision+1.  Everything it saw is logged in order —
events, and ``Relisted`` where it had to skip — for ``verify_follow`` to
compare with the committed sequence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from workload import state_at

from skiff.store.errors import Compacted
from skiff.store.protocol import Store, Watcher
from skiff.store.types import Event, KeyValue, Range, prefix_end

#: A hang guard per response, not a timing threshold.
HANG_GUARD_S = 30.0


@dataclass(frozen=True)
class Relisted:
    compact_revision: int
    kvs: tuple[KeyValue, ...]


@dataclass
class FollowLog:
    items: list[Event | Relisted] = field(default_factory=list)
    reconnects: int = 0

    @property
    def relists(self) -> list[Relisted]:
        return [item for item in self.items if isinstance(item, Relisted)]


async def relist(store: Store, prefix: bytes, compact_revision: int) -> Relisted:
    """The prefix's kvs at the compaction point (moving on if compaction moved on meanwhile)."""
    while True:
        try:
            result = await store.range(Range(prefix, prefix_end(prefix), revision=compact_revision))
        except Compacted:
            compact_revision = (await store.status()).compact_revision
            continue
        return Relisted(compact_revision, result.kvs)


async def follow(
    store: Store,
    prefix: bytes,
    start_revision: int,
    marker: bytes,
    *,
    reconnect_every: int = 0,
    on_first_disconnect: Callable[[int], Awaitable[None]] | None = None,
) -> FollowLog:
    """Watch ``prefix`` from ``start_revision`` until an event on ``marker``."""
    log = FollowLog()
    next_revision = start_revision
    while True:
        watcher: Watcher | None = None
        try:
            watcher = await store.watch(prefix, prefix_end(prefix), start_revision=next_revision)
            received = 0
            while not reconnect_every or received < reconnect_every:
                async with asyncio.timeout(HANG_GUARD_S):
                    response = await anext(watcher)
                for event in response.events:
                    log.items.append(event)
                    next_revision = event.kv.mod_revision + 1
                    if event.kv.key == marker:
                        return log
                received += len(response.events)
        except Compacted as compacted:
            relisted = await relist(store, prefix, compacted.compact_revision)
            log.items.append(relisted)
            next_revision = relisted.compact_revision + 1
            continue
        finally:
            if watcher is not None:
                await watcher.close()
        log.reconnects += 1
        if on_first_disconnect is not None:
            await on_first_disconnect(next_revision - 1)
            on_first_disconnect = None


def verify_follow(log: FollowLog, committed: list[Event], start_revision: int) -> None:
    """Every event seen is exactly the next committed one; a gap only where compaction forced a relist."""
    position = sum(1 for e in committed if e.kv.mod_revision < start_revision)
    for n, item in enumerate(log.items):
        if isinstance(item, Relisted):
            needed = committed[position].kv.mod_revision
            assert item.compact_revision >= needed, f"item {n}: relisted at {item.compact_revision}, needed {needed}"
            assert item.kvs == state_at(committed, item.compact_revision), f"item {n}: relist differs from history"
            position = sum(1 for e in committed if e.kv.mod_revision <= item.compact_revision)
            continue
        assert position < len(committed), f"item {n}: event {item} beyond the committed history"
        assert item == committed[position], f"item {n}: saw {item}, committed {committed[position]}"
        position += 1
    assert position == len(committed), f"stopped at {position} of {len(committed)} committed events"
