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
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

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
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = FIELDS_V1
        out["fieldsV1"] = field_sets.to_fields_v1(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


Managers = dict[tuple[str, str, str, str], Entry]


def decode(raw: Any) -> Managers:
    """Entries of ``metadata.managedFields``; ValueError when they do not decode (as DecodeManagedFields)."""
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
        entry = Entry(
            manager=str(item.get("manager") or ""),
            operation=str(operation),
            api_version=str(item.get("apiVersion") or ""),
            time=item.get("time") if isinstance(item.get("time"), str) else None,
            subresource=str(item.get("subresource") or ""),
            fields=field_sets.from_fields_v1(item.get("fieldsV1") or {}),
        )
        if entry.key in out:
            raise ValueError(f"duplicate entries for manager {entry.manager!r}")
        out[entry.key] = entry
    return out


def encode(managers: Managers) -> list[dict[str, Any]]:
    """sortEncodedManagedFields: Apply before Update, then oldest first, then manager/apiVersion/subresource."""
    entries = [e for e in managers.values() if e.fields]
    entries.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    return [e.to_dict() for e in entries]


def is_reset(raw: Any) -> bool:
    """isResetManagedFields: ``[]`` or ``[{}]`` in a request clears ownership."""
    return isinstance(raw, list) and (len(raw) == 0 or (len(raw) == 1 and raw[0] == {}))


def strip(managers: Managers) -> Managers:
    """Drop the never-owned paths from every entry, and entries left empty."""
    out: Managers = {}
    for key, entry in managers.items():
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
        fields = entry.fields - changed - removed
        if fields:
            out[key] = replace(entry, fields=fields)
    return out


def cap_update_managers(managers: Managers, limit: int = MAX_UPDATE_MANAGERS) -> Managers:
    """Fold the oldest Update entries into per-apiVersion ``ancient-changes`` buckets until ``limit`` remain."""
    out = dict(managers)
    while True:
        updaters = [e for e in out.values() if e.operation == UPDATE]
        candidates = sorted((e for e in updaters if e.manager != ANCIENT_CHANGES), key=lambda e: e.time or "")
        if len(updaters) <= limit or not candidates:
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
    live = old if old is not None else zero_object(info, root)
    managers = _request_or_live(old, new)
    if managers is None:
        return  # undecodable managedFields in the request: left for validation to report
    updated = update_managers(
        managers, live, new, who, root, info.group_version, format_time(now), reset_prefixes(info, who.subresource)
    )
    meta = new.setdefault("metadata", {})
    encoded = encode(updated)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


def _request_or_live(old: Obj | None, new: Obj) -> Managers | None:
    """decodeLiveOrNew: the request's entries when it sends some that decode, else the stored ones."""
    raw = (new.get("metadata") or {}).get("managedFields")
    if is_reset(raw):
        return {}
    stored = ((old or {}).get("metadata") or {}).get("managedFields")
    if raw is not None:
        try:
            managers = decode(raw)
        except ValueError:
            return None
        if managers:
            return managers
    try:
        return decode(stored)
    except ValueError:
        return {}


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
        key = Entry(who.manager, UPDATE, api_version, subresource=who.subresource).key
        previous = out.get(key)
        fields = taken | (previous.fields if previous is not None else EMPTY)
        out[key] = Entry(who.manager, UPDATE, api_version, now, who.subresource, fields)
    return cap_update_managers(out)


def stamp_applier(obj: Obj, who: WriteManager, now: str) -> None:
    """Give the applier's entry the write's time when the apply left it unstamped (it changed something)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return
    try:
        managers = decode(meta.get("managedFields"))
    except ValueError:
        return
    key = Entry(who.manager, APPLY, "", subresource=who.subresource).key
    entry = managers.get(key)
    if entry is not None and entry.time is None:
        managers[key] = replace(entry, time=now)
        meta["managedFields"] = encode(managers)
