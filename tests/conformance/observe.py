"""Reading a store's state from the outside, the way the conformance tests assert on it.

The watch readers carry a hang guard (a deadline after which the test fails
instead of hanging); it is not a timing threshold: a correct backend delivers
long before it.
"""

from __future__ import annotations

import asyncio

from skiff.store.protocol import Store, Watcher
from skiff.store.types import Event, KeyValue, Range, WatchResponse, prefix_end

HANG_GUARD_S = 20.0


async def current_revision(store: Store) -> int:
    """The store's revision (the header revision of a read)."""
    return (await store.range(Range(b"/current-revision-probe"))).revision


async def contents(store: Store, prefix: bytes) -> tuple[KeyValue, ...]:
    """Every live key under ``prefix``, with its metadata."""
    return (await store.range(Range(prefix, prefix_end(prefix)))).kvs


async def next_response(watcher: Watcher) -> WatchResponse:
    async with asyncio.timeout(HANG_GUARD_S):
        return await anext(watcher)


async def next_events(watcher: Watcher, count: int) -> list[WatchResponse]:
    """Responses carrying events until ``count`` events have arrived (progress responses skipped)."""
    responses: list[WatchResponse] = []
    seen = 0
    while seen < count:
        response = await next_response(watcher)
        if response.events:
            responses.append(response)
            seen += len(response.events)
    return responses


def flatten(responses: list[WatchResponse]) -> list[Event]:
    return [event for response in responses for event in response.events]
