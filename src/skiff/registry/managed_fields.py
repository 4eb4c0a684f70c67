"""``metadata.managedFields``: who owns which fields, and how a write changes that.

As k8s.io/apimachinery pkg/util/managedfields (internal/fieldmanager.go,
structuredmerge.go, managedfieldsupdater.go, stripmeta.go, capmanagers.go)
over sigs.k8s.io/structured-merge-diff's ``merge.Updater``:

* Entries are ``{manager, operation: Apply|Update, apiVersion, time,
  fieldsType: FieldsV1, fieldsV1, subresource}``, sorted Apply first, then
  by time, manager, apiVersion, subresource.  A manager is identified by
  (manager, operation, subresource, and apiVersion for Update entries).
* An *Update* (create, update, non-apply patch) diffs the stored object with
  the new one: the writer takes the fields it added or changed (from every
  other manager: updates always "force"), every manager loses the fields
  that were removed, and the writer's entry becomes the union of what it
  took now and what it owned before, stamped with the time — only when it
  took something.  A create is diffed against the kind's zero object.
* The request may set ``managedFields`` itself: an empty list or a list of
  one empty entry resets ownership; other entries replace the stored ones
  (when they decode); none keeps the stored ones.
* Never owned: apiVersion, kind, and metadata's name, namespace, uid,
  resourceVersion, generation, creationTimestamp, selfLink, managedFields.
  With a status subresource, a main-resource write owns nothing under
  ``status`` and a status write nothing under ``spec`` or
  ``metadata.labels`` (the strategies' reset fields).
* At most ``MAX_UPDATE_MANAGERS`` Update entries: the oldest are folded into
  an ``ancient-changes`` entry.

``record_write`` is the registry's hook, called on every create and update
after the strategy prepared and defaulted the object; it reads the request's
manager from ``REQUEST_MANAGER``, a context variable the HTTP layer sets for
the duration of one write (upstream passes it down in the request context).
Pure otherwise: the time is passed in.

Cost, as every write pays it: the diff skips equal sections (``field_sets.compare``);
an entry a write leaves alone keeps the FieldsV1 object it was decoded from
(``decode``/``encode``'s ``encodings``; copied when it was the stored object's)
instead of being re-encoded; FieldsV1 is decoded and encoded through caches keyed
by content (the same entries recur on every pod of a ReplicaSet, every Node, every
renewal of a Lease); a create diffs against the kind's zero object worked out once.
The output is what encoding every entry afresh gives, byte for byte.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson

from skiff.api.json_bytes import kept_json, own_size
from skiff.registry import field_sets
from skiff.registry.field_sets import EMPTY, FieldSet, Path
from skiff.registry.field_types import FieldType, root_type, zero_object
from skiff.registry.metadata import format_time
from skiff.registry.resource import Obj, ResourceInfo

APPLY = "Apply"
UPDATE = "Update"
FIELDS_V1 = "FieldsV1"
#: capmanagers.go DefaultMaxUpdateManagers and the bucket's name.
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"

#: stripmeta.go: paths no manager ever owns (exact members; children are untouched).
STRIPPED: FieldSet = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        ("f:metadata",),
        *(
            ("f:metadata", "f:" + name)
            for name in (
                "name",
                "namespace",
                "creationTimestamp",
                "selfLink",
                "uid",
                "clusterName",
                "generation",
                "managedFields",
                "resourceVersion",
            )
        ),
    }
)


@dataclass(frozen=True, slots=True)
class WriteManager:
    """The manager of one write: its name, Apply or Update, and the subresource written through."""

    manager: str
    operation: str = UPDATE
    subresource: str = ""


#: The manager of the write being served (None: not tracked, e.g. the registry's own unit tests).
REQUEST_MANAGER: ContextVar[WriteManager | None] = ContextVar("skiff_request_manager", default=None)


@contextlib.contextmanager
def managing(who: WriteManager) -> Iterator[None]:
    """Set ``REQUEST_MANAGER`` for the block (one request's registry call)."""
    token = REQUEST_MANAGER.set(who)
    try:
        yield
    finally:
        REQUEST_MANAGER.reset(token)


@dataclass(frozen=True, slots=True)
class Entry:
    """One managedFields entry, decoded."""

    manager: str
    operation: str
    api_version: str
    time: str | None = None
    subresource: str = ""
    fields: FieldSet = field(default=EMPTY)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """BuildManagerIdentifier: appliers are one manager whatever apiVersion they applied with."""
        return (self.manager, self.operation, self.subresource, "" if self.operation == APPLY else self.api_version)

    def to_dict(self) -> dict[str, Any]:
        return self._to_dict(field_sets.to_fields_v1(self.fields))

    def _to_dict(self, fields_v1: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = FIELDS_V1
        out["fieldsV1"] = fields_v1
        if self.subresource:
            out["subresource"] = self.subresource
        return out


Managers = dict[tuple[str, str, str, str], Entry]

#: FieldsV1 already at hand for field sets, by the set's id (the set is kept with it, so the id is its
#: own): the objects ``decode`` read each set from, when exactly what ``to_fields_v1`` would make of it.
#: An entry whose set a write leaves as it is encodes to them again without being re-encoded.
Encodings = dict[int, tuple[FieldSet, dict[str, Any]]]


def decode(raw: Any, encodings: Encodings | None = None) -> Managers:
    """Entries of ``metadata.managedFields``; ValueError when they do not decode (as DecodeManagedFields).

    With ``encodings``, the FieldsV1 objects of ``raw`` that can stand for the encoding of what they
    decode to are recorded there (for ``encode``).
    """
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise ValueError("managedFields must be a list")
    out: Managers = {}
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("a managedFields entry must be an object")
        operation = item.get("operation")
        if operation not in (APPLY, UPDATE):
            raise ValueError("operation must be `Apply` or `Update`")
        if item.get("fieldsType", FIELDS_V1) != FIELDS_V1:
            raise ValueError("fieldsType must be FieldsV1")
        raw_fields = item.get("fieldsV1") or {}
        fields, canonical = _decode_fields(raw_fields)
        entry = Entry(
            manager=str(item.get("manager") or ""),
            operation=str(operation),
            api_version=str(item.get("apiVersion") or ""),
            time=item.get("time") if isinstance(item.get("time"), str) else None,
            subresource=str(item.get("subresource") or ""),
            fields=fields,
        )
        if entry.key in out:
            raise ValueError(f"duplicate entries for manager {entry.manager!r}")
        out[entry.key] = entry
        if encodings is not None and canonical and fields:  # (the empty set is one shared object)
            encodings[id(fields)] = (fields, raw_fields)
    return out


def encode(managers: Managers, encodings: Encodings | None = None) -> list[dict[str, Any]]:
    """sortEncodedManagedFields: Apply before Update, then oldest first, then manager/apiVersion/subresource.

    An entry whose field set is in ``encodings`` (``decode``'s) reuses the FieldsV1 object recorded
    there: the caller makes sure it may end up in the encoded list (or copies it).
    """
    entries = [e for e in managers.values() if e.fields]
    entries.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    out = []
    reused: set[int] = set()
    for e in entries:
        known = encodings.get(id(e.fields)) if encodings else None
        if known is not None and known[0] is e.fields and id(e.fields) not in reused:
            reused.add(id(e.fields))  # (two entries of the same set: the second gets an object of its own)
            out.append(e._to_dict(known[1]))
        else:
            out.append(e._to_dict(_encode_fields(e.fields)))
    return out


# FieldsV1 by content, both ways: most entries recur, on later writes of the same object and across
# objects alike (every pod of a ReplicaSet, every Node: the same fields, owned by the same managers).
# Least recently used first; sizes bound the memory (a set of a few dozen paths is a few KiB).
_DECODED: OrderedDict[bytes, tuple[FieldSet, bool]] = OrderedDict()
_ENCODED: OrderedDict[FieldSet, bytes] = OrderedDict()
_MAX_DECODED = 2048
_MAX_ENCODED = 1024
#: JSON only: anything else in a FieldsV1 object (which the decoder may judge by type) is not cached.
_JSON_ONLY = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _decode_fields(raw: Any) -> tuple[FieldSet, bool]:
    """``field_sets.decode_fields_v1``, remembered by the JSON of ``raw``."""
    try:
        blob = orjson.dumps(raw, option=_JSON_ONLY)
    except TypeError:
        return field_sets.decode_fields_v1(raw)
    hit = _DECODED.get(blob)
    if hit is not None:
        _touch(_DECODED, blob)
        return hit
    decoded = field_sets.decode_fields_v1(raw)  # ValueError: not remembered
    blob = own_size(blob)
    _DECODED[blob] = decoded
    _trim(_DECODED, _MAX_DECODED)
    fields, canonical = decoded
    if canonical and fields:
        _remember_encoding(fields, blob)
    return decoded


def _encode_fields(fields: FieldSet) -> dict[str, Any]:
    """``field_sets.to_fields_v1``, remembered by the set: a fresh object each time."""
    blob = _ENCODED.get(fields)
    if blob is not None:
        _touch(_ENCODED, fields)
        out: dict[str, Any] = orjson.loads(blob)
        return out
    out, alone = field_sets.encode_fields_v1(fields)
    if alone:  # (else another set of the same paths may have to come out in another order)
        _remember_encoding(fields, kept_json(out))
    return out


def _remember_encoding(fields: FieldSet, blob: bytes) -> None:
    _ENCODED[fields] = blob
    _touch(_ENCODED, fields)
    _trim(_ENCODED, _MAX_ENCODED)


def _touch(cache: OrderedDict[Any, Any], key: Any) -> None:
    """Mark ``key`` most recently used (gone already, when another thread trimmed it: no matter)."""
    with contextlib.suppress(KeyError):
        cache.move_to_end(key)


def _trim(cache: OrderedDict[Any, Any], size: int) -> None:
    while len(cache) > size:
        with contextlib.suppress(KeyError):
            cache.popitem(last=False)


def is_reset(raw: Any) -> bool:
    """isResetManagedFields: ``[]`` or ``[{}]`` in a request clears ownership."""
    return isinstance(raw, list) and (len(raw) == 0 or (len(raw) == 1 and raw[0] == {}))


def strip(managers: Managers) -> Managers:
    """Drop the never-owned paths from every entry, and entries left empty."""
    out: Managers = {}
    for key, entry in managers.items():
        if entry.fields.isdisjoint(STRIPPED):
            if entry.fields:
                out[key] = entry  # as it was: its field set (and the FieldsV1 it came from) still holds
            continue
        fields = entry.fields - STRIPPED
        if fields:
            out[key] = replace(entry, fields=fields)
    return out


def reset_prefixes(info: ResourceInfo, subresource: str) -> tuple[Path, ...]:
    """The strategy's reset fields for this endpoint: ignored in every field set."""
    if not info.strategy.has_status:
        return ()
    if subresource == "status":
        return (("f:spec",), ("f:metadata", "f:labels"))
    if subresource:
        return ()
    return (("f:status",),)


def without_managed_fields(obj: Obj) -> Obj:
    """A shallow copy with ``metadata.managedFields`` removed (the field never takes part in diffs)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    out = dict(obj)
    out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def take_from_others(
    managers: Managers, changed: FieldSet, removed: FieldSet, *, skip: tuple[str, str, str, str] | None = None
) -> Managers:
    """Other managers lose what changed (forced) and what was removed (merge.Updater.update)."""
    out: Managers = {}
    for key, entry in managers.items():
        if key == skip:
            out[key] = entry
            continue
        if entry.fields.isdisjoint(changed) and entry.fields.isdisjoint(removed):
            if entry.fields:
                out[key] = entry  # untouched: kept as it is
            continue
        fields = entry.fields - changed - removed
        if fields:
            out[key] = replace(entry, fields=fields)
    return out


def cap_update_managers(managers: Managers, limit: int = MAX_UPDATE_MANAGERS) -> Managers:
    """Fold the oldest Update entries into per-apiVersion ``ancient-changes`` buckets until ``limit`` remain."""
    out = dict(managers)
    while True:
        updaters = [e for e in out.values() if e.operation == UPDATE]
        if len(updaters) <= limit:
            return out
        candidates = sorted((e for e in updaters if e.manager != ANCIENT_CHANGES), key=lambda e: e.time or "")
        if not candidates:
            return out
        oldest = candidates[0]
        del out[oldest.key]
        bucket = Entry(ANCIENT_CHANGES, UPDATE, oldest.api_version, oldest.time, fields=oldest.fields)
        previous = out.get(bucket.key)
        if previous is not None:
            time = max(previous.time or "", oldest.time or "") or None
            bucket = replace(bucket, time=time, fields=previous.fields | oldest.fields)
        out[bucket.key] = bucket


# -- the registry's hook -----------------------------------------------------------------------------
def record_write(info: ResourceInfo, old: Obj | None, new: Obj, now: datetime) -> None:
    """Set ``new``'s managedFields for the request's manager (see the module docstring); in place."""
    who = REQUEST_MANAGER.get()
    if who is None:
        return
    if who.operation == APPLY:
        stamp_applier(new, who, format_time(now))
        return
    root = root_type(info)
    live = old if old is not None else _zero_object(info, root)
    encodings: Encodings = {}
    managers = _request_or_live(old, new, encodings)
    if managers is None:
        return  # undecodable managedFields in the request: left for validation to report
    updated = update_managers(
        managers, live, new, who, root, info.group_version, format_time(now), reset_prefixes(info, who.subresource)
    )
    meta = new.setdefault("metadata", {})
    encoded = encode(updated, encodings)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


#: ``zero_object`` by root type (the type kept with it, so the id is its own), least recently used first.
_ZEROS: OrderedDict[int, tuple[FieldType, Obj]] = OrderedDict()
_MAX_ZEROS = 64


def _zero_object(info: ResourceInfo, root: FieldType) -> Obj:
    """``zero_object``, worked out once per root type (a built-in kind's lives for the process).

    Only read: ``update_managers`` diffs against it.
    """
    known = _ZEROS.get(id(root))
    if known is not None and known[0] is root:
        _touch(_ZEROS, id(root))
        return known[1]
    zero = zero_object(info, root)
    _ZEROS[id(root)] = (root, zero)
    _trim(_ZEROS, _MAX_ZEROS)
    return zero


def _request_or_live(old: Obj | None, new: Obj, encodings: Encodings | None = None) -> Managers | None:
    """decodeLiveOrNew: the request's entries when it sends some that decode, else the stored ones.

    ``encodings`` gets the FieldsV1 objects ``encode`` may put back in ``new``: the request's own,
    or copies of the stored object's.
    """
    raw = (new.get("metadata") or {}).get("managedFields")
    if is_reset(raw):
        return {}
    stored = ((old or {}).get("metadata") or {}).get("managedFields")
    if raw is not None:
        try:
            managers = decode(raw, encodings)
        except ValueError:
            return None
        if managers:
            return managers
        if encodings:
            encodings.clear()
    found: Encodings = {}
    try:
        managers = decode(stored, found if encodings is not None else None)
    except ValueError:
        return {}
    if encodings is not None and found:
        # ``old``'s own objects must not end up shared with ``new``: one copy of them all.
        sets = list(found.values())
        copies = orjson.loads(orjson.dumps([raw_fields for _, raw_fields in sets]))
        encodings.update((id(fields), (fields, copied)) for (fields, _), copied in zip(sets, copies, strict=True))
    return managers


def update_managers(
    managers: Managers,
    live: Obj,
    new: Obj,
    who: WriteManager,
    root: FieldType,
    api_version: str,
    now: str,
    ignored: Iterable[Path] = (),
) -> Managers:
    """The managers after an Update by ``who`` from ``live`` to ``new`` (managedfieldsupdater.go)."""
    diff = field_sets.compare(without_managed_fields(live), without_managed_fields(new), root)
    blocked = tuple(ignored)
    changed = field_sets.exclude_prefixes(diff.changed(), blocked)
    removed = field_sets.exclude_prefixes(frozenset(diff.removed), blocked)
    out = take_from_others(managers, changed, removed)
    taken = changed - STRIPPED
    out = strip(out)
    if taken:
        key = (who.manager, UPDATE, who.subresource, api_version)  # Entry(...).key
        mine = managers.get(key)
        if (
            mine is not None
            and taken <= mine.fields
            and mine.fields.isdisjoint(removed)
            and mine.fields.isdisjoint(STRIPPED)
        ):
            # What the writer lost above it takes back, and nothing else: its set as it was, the same
            # object (whose FieldsV1 ``encode`` may reuse).
            fields = mine.fields
        else:
            previous = out.get(key)
            fields = taken | (previous.fields if previous is not None else EMPTY)
        out[key] = Entry(who.manager, UPDATE, api_version, now, who.subresource, fields)
    return cap_update_managers(out)


def stamp_applier(obj: Obj, who: WriteManager, now: str) -> None:
    """Give the applier's entry the write's time when the apply left it unstamped (it changed something)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return
    encodings: Encodings = {}
    try:
        managers = decode(meta.get("managedFields"), encodings)
    except ValueError:
        return
    key = Entry(who.manager, APPLY, "", subresource=who.subresource).key
    entry = managers.get(key)
    if entry is not None and entry.time is None:
        managers[key] = replace(entry, time=now)
        meta["managedFields"] = encode(managers, encodings)  # the object's own FieldsV1 objects, reused
