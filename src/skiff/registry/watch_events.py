"""The watch cache's units: cached objects and events, each serialised at most once.

A ``CachedObject`` is one stored object as the API shows it (resourceVersion
set), with its labels and field values precomputed for selection and its
JSON bytes built once.  A ``CacheEvent`` is one change; the wire line for
each way a watcher may see it (``ADDED``/``MODIFIED`` with the new object,
``DELETED`` with the previous content at the event's resourceVersion — the
cacher's rule for deletes and for objects that stop matching a selector) is
built on first use and the same bytes object goes to every watcher.
"""

from __future__ import annotations

from typing import Any

import orjson

from skiff.api.json_bytes import kept_json
from skiff.registry.resource import Obj


class CachedObject:
    """One version of one object as the cache keeps it: its wire bytes plus what selectors need.

    The object itself is kept only as JSON bytes (``obj`` parses them when a
    list needs a dict): a decoded pod is ~5x its JSON in memory and hundreds of
    tracked containers for the garbage collector to walk, which at 150,000
    pods means gigabytes and seconds-long full collections.
    """

    __slots__ = ("fields", "key", "labels", "name", "namespace", "raw", "revision")

    def __init__(self, key: str, obj: Obj, revision: int, fields: dict[str, str]) -> None:
        meta = obj.get("metadata") or {}
        self.key = key
        self.revision = revision
        self.namespace: str = meta.get("namespace") or ""
        self.name: str = meta.get("name") or ""
        labels = meta.get("labels")
        self.labels: dict[str, str] = labels if isinstance(labels, dict) else {}
        self.fields = fields
        self.raw = kept_json(obj)

    @property
    def obj(self) -> Obj:
        """A fresh dict of the object (the caller may keep or change it)."""
        parsed: Obj = orjson.loads(self.raw)
        return parsed

    def added_line(self) -> bytes:
        """``{"type":"ADDED","object":...}`` for initial events: built for each use, not kept (a second
        copy of every object for the life of the cache, to save a concatenation per initial list)."""
        return event_line("ADDED", self.raw)


class CacheEvent:
    """One change of one key: ``current`` is None for a delete, ``previous`` None for a create."""

    __slots__ = ("_lines", "current", "key", "namespace", "previous", "received", "revision", "type")

    def __init__(
        self,
        type_: str,
        revision: int,
        current: CachedObject | None,
        previous: CachedObject | None,
        received: float = 0.0,
    ) -> None:
        self.type = type_
        #: time.monotonic() when the cache got the event from the store; 0 for events replayed from history.
        self.received = received
        self.revision = revision
        self.current = current
        self.previous = previous
        some = current if current is not None else previous
        assert some is not None
        self.key = some.key
        self.namespace = some.namespace
        self._lines: dict[str, bytes] = {}

    def line(self, type_: str) -> bytes:
        """The wire line for this event seen as ``type_`` (ADDED, MODIFIED or DELETED)."""
        cached = self._lines.get(type_)
        if cached is not None:
            return cached
        if type_ == "DELETED":
            assert self.previous is not None
            obj: Any = orjson.loads(self.previous.raw)
            meta = obj.get("metadata")
            if isinstance(meta, dict):
                meta["resourceVersion"] = str(self.revision)
            raw = orjson.dumps(obj)
        else:
            assert self.current is not None
            raw = self.current.raw
        line = self._lines[type_] = event_line(type_, raw)
        return line


def event_line(type_: str, raw_object: bytes) -> bytes:
    return b'{"type":"' + type_.encode() + b'","object":' + raw_object + b"}\n"


def bookmark_line(kind: str, api_version: str, revision: int, initial_events_end: bool = False) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(revision), "creationTimestamp": None}
    if initial_events_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return event_line("BOOKMARK", orjson.dumps({"kind": kind, "apiVersion": api_version, "metadata": meta}))


def error_line(status: Obj) -> bytes:
    return event_line("ERROR", orjson.dumps(status))
