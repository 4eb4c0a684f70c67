"""Bytes a cache keeps hold their own length of memory, not orjson's output buffer."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import orjson

from skiff.api.json_bytes import kept_json, own_size
from skiff.registry.watch_events import CachedObject

EVENT = {
    "kind": "Event",
    "apiVersion": "v1",
    "metadata": {"name": "web-1.17a1b2c3", "namespace": "default", "resourceVersion": "12"},
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-1"},
    "reason": "Scheduled",
    "message": "Successfully assigned default/web-1 to node-1",
}


def traced_bytes_per_item(make: Callable[[int], object], count: int = 2_000) -> float:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make(i) for i in range(count)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept) == count
    return (after - before) / count


def test_kept_json_is_the_same_json() -> None:
    for option in (None, orjson.OPT_SORT_KEYS):
        assert kept_json(EVENT, option) == orjson.dumps(EVENT, option=option)
    raw = orjson.dumps(EVENT)
    copied = own_size(raw)
    assert copied == raw and copied is not raw


def test_kept_json_costs_about_its_length() -> None:
    length = len(orjson.dumps(EVENT))
    assert traced_bytes_per_item(lambda _: kept_json(EVENT)) < length + 100
    # what it avoids: orjson's own output keeps a buffer several times the JSON's length
    assert traced_bytes_per_item(lambda _: orjson.dumps(EVENT)) > 2 * length


def test_a_cached_object_keeps_its_json_at_its_own_length() -> None:
    length = len(orjson.dumps(EVENT))
    per_object = traced_bytes_per_item(lambda i: CachedObject(f"/registry/events/default/e{i}", EVENT, i, {}))
    assert per_object < length + 400  # the JSON, the slots and the key
    cached = CachedObject("/registry/events/default/e", EVENT, 12, {})
    assert cached.obj == EVENT
    assert cached.added_line() == b'{"type":"ADDED","object":' + orjson.dumps(EVENT) + b"}\n"
