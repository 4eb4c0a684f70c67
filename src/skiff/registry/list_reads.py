"""The two ways a list is read: a page of the watch cache's snapshot, or the Store at a revision.

Both return the ``<Kind>List`` envelope with items sorted by key and, when
more items remain, a continue token pinned to the page's revision (and
``remainingItemCount`` when the request selects nothing, as upstream).
A cache page lists objects the cache owns (read-only dicts); a Store page
decodes its own.
"""

from __future__ import annotations

from skiff.api.status import gone
from skiff.registry.listing import (
    Selection,
    continue_expired,
    encode_continue,
    field_values,
    labels_of,
    list_envelope,
)
from skiff.registry.metadata import decode
from skiff.registry.resource import Obj, ResourceInfo
from skiff.registry.watch_cache import WatchCache, too_large_resource_version
from skiff.store.errors import Compacted, FutureRevision
from skiff.store.protocol import Store
from skiff.store.types import Range, prefix_end

#: Keys read per Store range when a selective list pages through the Store.
STORE_PAGE = 500


def page_from_cache(
    cache: WatchCache, info: ResourceInfo, ns: str | None, selection: Selection, limit: int, prefix: str, start: str
) -> Obj:
    """Up to ``limit`` matching objects from key ``start`` on, from one synchronous cache snapshot."""
    revision, objects = cache.snapshot(ns)
    i = cache.index_after(objects, start) if start else 0
    items: list[Obj] = []
    last_key = ""
    more = False
    while i < len(objects):
        cached = objects[i]
        if selection.empty or selection.matches(cached.labels, cached.fields):
            if limit and len(items) == limit:
                more = True
                break
            items.append(cached.obj)
            last_key = cached.key
        i += 1
    if not more:
        return list_envelope(info, items, revision)
    token = encode_continue(revision, last_key + "\x00", prefix)
    remaining = len(objects) - i if selection.empty else None
    return list_envelope(info, items, revision, token, remaining)


class StoreLists:
    """Lists read from the Store: Exact resourceVersions, later pages, and a cache that is not fresh."""

    def __init__(self, store: Store, info: ResourceInfo, cache: WatchCache) -> None:
        self.store = store
        self.info = info
        self.cache = cache

    async def list_from_store(
        self, prefix: str, selection: Selection, limit: int, revision: int, start: str, *, continuing: bool = False
    ) -> Obj:
        """A list read at ``revision`` (0: the current one), from key ``start`` on.

        Compacted revisions are 410 (upstream's two messages: one for a
        continue token, one for an Exact resourceVersion); future ones 504.
        """
        end = prefix_end(prefix.encode())
        key = start.encode()
        items: list[Obj] = []
        last_key = b""
        more = False
        remaining: int | None = None
        while True:
            if selection.empty:
                fetch = limit + 1 if limit else 0
            else:
                fetch = max(limit - len(items) + 1, STORE_PAGE)
            try:
                result = await self.store.range(Range(key, end, revision=revision, limit=fetch))
            except Compacted:
                if continuing:
                    raise continue_expired() from None
                raise gone("The resourceVersion for the provided list is too old.") from None
            except FutureRevision:
                raise too_large_resource_version(revision, self.cache.revision) from None
            revision = revision or result.revision
            for i, kv in enumerate(result.kvs):
                obj = decode(kv.value, kv.mod_revision)
                if not selection.empty and not selection.matches(labels_of(obj), field_values(obj, self.info)):
                    continue
                if limit and len(items) == limit:
                    more = True
                    if selection.empty:
                        remaining = result.count - i
                    break
                items.append(obj)
                last_key = kv.key
            if more or not result.more or not result.kvs:
                break
            key = result.kvs[-1].key + b"\0"
        if not more:
            return list_envelope(self.info, items, revision)
        token = encode_continue(revision, last_key.decode() + "\x00", prefix)
        return list_envelope(self.info, items, revision, token, remaining)
