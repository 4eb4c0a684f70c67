"""Server-side apply: merge an applied configuration into the live object, with field ownership.

As structured-merge-diff's ``merge.Updater.Apply`` behind
k8s.io/apimachinery's field manager:

1. The configuration is merged into the live object by the schema: maps and
   structs key by key, associative lists item by item (matched by their keys,
   in upstream's merged order), sets by value; atomic values and lists are
   replaced.
2. The applier's Apply entry becomes exactly the configuration's field set.
3. Fields the applier applied last time, omits now, and nobody else owns
   are removed (a whole list item or map entry at once).
4. Fields other managers own whose values change are conflicts: 409 with
   ``Apply failed with 1 conflict: conflict with "kubectl" using apps/v1:
   .spec.replicas`` and one ``FieldManagerConflict`` cause per field — unless
   ``force``, which moves them to the applier.  Removed fields leave every
   other manager.
5. For the ``kubectl`` manager, conflicts on fields the client-side apply
   annotation (``kubectl.kubernetes.io/last-applied-configuration``) names
   are allowed, and that annotation is rewritten to the applied configuration
   when the object has one (lastappliedmanager.go / lastappliedupdater.go) —
   the migration path from client-side apply.

``apply_configuration`` runs inside the registry's compare-and-swap loop: pure,
it returns a new object.  The applier's entry is left without a time when the
object changed; the registry's write hook stamps it (``managed_fields``).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from skiff.api.status import ApiError, Cause, Details, bad_request, internal_error
from skiff.registry import field_sets
from skiff.registry.field_sets import MISSING, FieldSet, Path
from skiff.registry.field_types import FieldType, root_type
from skiff.registry.managed_fields import (
    APPLY,
    UPDATE,
    Entry,
    Managers,
    WriteManager,
    cap_update_managers,
    decode,
    encode,
    reset_prefixes,
    strip,
    take_from_others,
    without_managed_fields,
)
from skiff.registry.resource import Obj, ResourceInfo

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: The manager whose applies upgrade objects from client-side apply (kubectl apply --server-side).
KUBECTL = "kubectl"


def apply_configuration(info: ResourceInfo, live: Obj | None, config: Obj, who: WriteManager, force: bool) -> Obj:
    """The object after ``who`` applies ``config`` to ``live`` (None: create); raises ApiError."""
    check_configuration(info, config, who)
    root = root_type(info)
    base = without_managed_fields(live) if live is not None else {}
    try:
        managers = decode((live or {}).get("metadata", {}).get("managedFields"))
    except ValueError as err:
        raise internal_error(f"failed to decode managed fields: {err}") from None
    ignored = reset_prefixes(info, who.subresource)
    applied = field_sets.exclude_prefixes(field_sets.field_set(config, root), ignored)
    key = Entry(who.manager, APPLY, "", subresource=who.subresource).key
    last = managers.get(key)
    managers[key] = Entry(who.manager, APPLY, info.group_version, None, who.subresource, applied)

    merged = merge(base, config, root)
    result = prune(merged, managers, last.fields if last is not None else frozenset(), root)

    diff = field_sets.compare(base, result, root)
    changed = field_sets.exclude_prefixes(diff.changed(), ignored)
    removed = field_sets.exclude_prefixes(frozenset(diff.removed), ignored)
    conflicts = {k: e.fields & changed for k, e in managers.items() if k != key and e.fields & changed}
    if conflicts and not force:
        remaining = _not_allowed_by_last_applied(live, conflicts, root) if who.manager == KUBECTL else conflicts
        if remaining:
            raise conflict_error(managers, remaining)
    managers = strip(take_from_others(managers, changed, removed, skip=key))
    entry = managers.get(key)
    if entry is not None and last is not None and result == base:
        managers[key] = Entry(entry.manager, APPLY, entry.api_version, last.time, entry.subresource, entry.fields)
    managers = cap_update_managers(managers)

    if who.manager == KUBECTL and live is not None and LAST_APPLIED in _annotations(live):
        _set_last_applied(result, config)
    meta = result.setdefault("metadata", {})
    encoded = encode(managers)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)
    return result


def check_configuration(info: ResourceInfo, config: Obj, who: WriteManager) -> None:
    """What the field manager refuses before merging (structuredmerge.go Apply)."""
    meta = config.get("metadata")
    if "metadata" in config and not isinstance(meta, dict):
        # Merging would replace the live metadata with it; structured-merge-diff's typed conversion refuses it.
        raise bad_request(f"failed to create typed patch object: .metadata: expected map, got {meta!r}")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    if who.subresource == "scale":
        return  # the body is an autoscaling/v1 Scale, checked by the scale view
    version = config.get("apiVersion")
    if version != info.group_version:
        raise bad_request(
            "Incorrect version specified in apply patch. "
            f"Specified patch version: {version or ''}, expected: {info.group_version}"
        )


# -- merge ------------------------------------------------------------------------------------------
def merge(live: Any, config: Any, t: FieldType) -> Any:
    """``config`` merged into ``live`` (TypedValue.Merge; the configuration wins on leaves)."""
    if config is MISSING:
        return copy.deepcopy(live)
    if live is MISSING or live is None:
        return copy.deepcopy(config)
    shape = field_sets.shape_of(t, live, config)
    if shape == "map" and isinstance(live, dict) and isinstance(config, dict):
        out: dict[str, Any] = {}
        for key in [*live, *(k for k in config if k not in live)]:
            child_type, _ = t.field(key)
            out[key] = merge(live.get(key, MISSING), config.get(key, MISSING), child_type)
        return out
    if shape == "list" and isinstance(live, list) and isinstance(config, list):
        return _merge_lists(live, config, t)
    return copy.deepcopy(config)


def _merge_lists(live: list[Any], config: list[Any], t: FieldType) -> list[Any]:
    """Associative lists in upstream's order: live order kept, the configuration's order for shared items."""
    item_type = t.item()
    left = _elements(live, t)
    right = _elements(config, t)
    left_items = dict(left)
    right_items = dict(right)
    shared = [e for e, _ in right if e in left_items]
    next_shared = shared.pop(0) if shared else None
    merged: set[str] = set()
    out: list[Any] = []
    li = ri = 0
    while li < len(left) or ri < len(right):
        if li < len(left) and ri < len(right):
            element = left[li][0]
            if element == right[ri][0]:
                merged.add(element)
                out.append(merge(left_items[element], right_items[element], item_type))
                li, ri = li + 1, ri + 1
                next_shared = shared.pop(0) if shared else None
                continue
            if element in right_items and next_shared is not None and next_shared != element:
                li += 1  # a shared item, but not the one wanted in this round
                continue
        if li < len(left):
            element = left[li][0]
            if element not in right_items:
                out.append(copy.deepcopy(left[li][1]))
                li += 1
                continue
            if element in merged:
                li += 1
                continue
        if ri < len(right):
            element = right[ri][0]
            merged.add(element)
            out.append(merge(left_items.get(element, MISSING), right_items[element], item_type))
            ri += 1
            if next_shared is not None and next_shared == element:
                next_shared = shared.pop(0) if shared else None
    return out


def _elements(items: list[Any], t: FieldType) -> list[tuple[str, Any]]:
    """(element, item) pairs; repeated elements keep their first item."""
    seen: set[str] = set()
    out: list[tuple[str, Any]] = []
    for index, item in enumerate(items):
        element = field_sets.item_element(item, index, t)
        if element not in seen:
            seen.add(element)
            out.append((element, item))
    return out


# -- removal of what the applier dropped ----------------------------------------------------------------
def prune(merged: Obj, managers: Managers, last: FieldSet, root: FieldType) -> Obj:
    """Remove what the applier applied last time, omits now, and no manager owns (Updater.prune)."""
    if not last:
        return merged
    present = field_sets.with_named_parents(field_sets.field_set(merged, root), root)
    owned: FieldSet = frozenset().union(*(e.fields for e in managers.values()))
    owned = field_sets.with_named_parents(owned, root)
    dropped = (present & field_sets.with_named_parents(last, root)) - owned
    if not dropped:
        return merged
    result = field_sets.remove_paths(merged, frozenset(dropped), root)
    return result if isinstance(result, dict) else merged


# -- conflicts ----------------------------------------------------------------------------------------
def manager_text(entry: Entry) -> str:
    """printManager: ``"kubectl" with subresource "scale" using apps/v1``."""
    text = orjson.dumps(entry.manager).decode()
    if entry.subresource:
        text += f" with subresource {orjson.dumps(entry.subresource).decode()}"
    if entry.operation == UPDATE:
        text += f" using {entry.api_version}"
    return text


def conflict_error(managers: Managers, conflicts: dict[tuple[str, str, str, str], FieldSet]) -> ApiError:
    """409 as NewConflictError: one FieldManagerConflict cause per field, upstream's message."""
    found: list[tuple[str, Path]] = []
    for key in sorted(conflicts):
        text = manager_text(managers[key])
        found.extend((text, path) for path in field_sets.leaves(conflicts[key]))
    causes = tuple(Cause("FieldManagerConflict", f"conflict with {m}", field_sets.path_string(p)) for m, p in found)
    if len(found) == 1:
        message = f"Apply failed with 1 conflict: conflict with {found[0][0]}: {field_sets.path_string(found[0][1])}"
    else:
        lines: list[str] = []
        for text in sorted({m for m, _ in found}):
            lines.append(f"conflicts with {text}:")
            lines.extend(f"- {field_sets.path_string(p)}" for m, p in found if m == text)
        message = f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, Details(causes=causes))


def _annotations(obj: Obj) -> dict[str, Any]:
    annotations = (obj.get("metadata") or {}).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def _not_allowed_by_last_applied(
    live: Obj | None, conflicts: dict[tuple[str, str, str, str], FieldSet], root: FieldType
) -> dict[tuple[str, str, str, str], FieldSet]:
    """The conflicts left once those on fields of the client-side apply annotation are allowed."""
    text = _annotations(live or {}).get(LAST_APPLIED)
    if not isinstance(text, str):
        return conflicts
    try:
        last_applied = orjson.loads(text)
    except orjson.JSONDecodeError:
        return conflicts
    if not isinstance(last_applied, dict):
        return conflicts
    allowed = field_sets.field_set(last_applied, root)
    remaining = {k: paths - allowed for k, paths in conflicts.items()}
    return {k: paths for k, paths in remaining.items() if paths}


def _set_last_applied(result: Obj, config: Obj) -> None:
    """buildLastApplied: the configuration without the annotation, as UnstructuredJSONScheme encodes it."""
    document = copy.deepcopy(config)
    meta = document.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"].pop(LAST_APPLIED, None)
        if not meta["annotations"]:
            del meta["annotations"]
    text = orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"
    annotations = result.setdefault("metadata", {}).setdefault("annotations", {})
    annotations[LAST_APPLIED] = text
