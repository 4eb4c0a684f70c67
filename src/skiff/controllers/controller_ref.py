"""Controller references: who controls an object, and adopting or releasing it.

Upstream: metav1.GetControllerOf, metav1.NewControllerRef and the
``ClaimPods``/``ClaimReplicaSets`` logic of BaseControllerRefManager
(pkg/controller/controller_ref_manager.go):

* an object with a controller ownerReference belongs to that controller only;
  if it is ours but no longer matches our selector we *release* it (remove our
  reference), unless we are being deleted;
* an orphan (no controller reference) that matches our selector is *adopted*
  (our controller reference added), unless it or we are being deleted;
* objects controlled by someone else are never touched.

``claim_action`` is the pure decision; ``adopt``/``release`` write it with a
JSON merge patch that carries the object's ``uid`` and ``resourceVersion`` so
the write fails (409/422) rather than clobbering a concurrent change — the
caller then retries its sync with a fresher cache.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from skiff.api.selectors import LabelSelector
from skiff.client import ApiClient, Resource

Obj = dict[str, Any]


class ClaimAction(enum.Enum):
    KEEP = "keep"  # ours and still matching: count it
    ADOPT = "adopt"  # an orphan that matches: take it
    RELEASE = "release"  # ours but no longer matching: let go
    IGNORE = "ignore"  # someone else's, or an orphan we do not want


def get_controller_of(obj: Mapping[str, Any]) -> Obj | None:
    """The ownerReference with ``controller: true`` (metav1.GetControllerOf), or None."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def new_controller_ref(owner: Mapping[str, Any], api_version: str, kind: str) -> Obj:
    """metav1.NewControllerRef: controller and blockOwnerDeletion both true."""
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_controlled_by(obj: Mapping[str, Any], owner_uid: str) -> bool:
    ref = get_controller_of(obj)
    return ref is not None and ref.get("uid") == owner_uid


def is_being_deleted(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def claim_action(obj: Mapping[str, Any], owner: Mapping[str, Any], selector: LabelSelector) -> ClaimAction:
    """What ClaimObject would do with ``obj`` for ``owner`` (a pure decision, no writes)."""
    owner_meta = owner.get("metadata") or {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    ref = get_controller_of(obj)
    if ref is not None:
        if ref.get("uid") != owner_meta.get("uid"):
            return ClaimAction.IGNORE
        if selector.matches(labels):
            return ClaimAction.KEEP
        if is_being_deleted(owner):
            return ClaimAction.IGNORE
        return ClaimAction.RELEASE
    if is_being_deleted(owner) or selector.empty or not selector.matches(labels):
        return ClaimAction.IGNORE
    if is_being_deleted(obj):
        return ClaimAction.IGNORE
    return ClaimAction.ADOPT


def owner_refs_with(obj: Mapping[str, Any], ref: Mapping[str, Any]) -> list[Obj]:
    """``obj``'s ownerReferences with ``ref`` added (replacing one with the same uid)."""
    refs = [dict(r) for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("uid") != ref["uid"]]
    return [*refs, dict(ref)]


def owner_refs_without(obj: Mapping[str, Any], owner_uid: str) -> list[Obj]:
    """``obj``'s ownerReferences without the one pointing at ``owner_uid``."""
    return [dict(r) for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("uid") != owner_uid]


def _guarded_refs_patch(obj: Mapping[str, Any], refs: list[Obj]) -> Obj:
    meta = obj.get("metadata") or {}
    return {
        "metadata": {
            "ownerReferences": refs or None,
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        }
    }


async def adopt(client: ApiClient, res: Resource, obj: Mapping[str, Any], controller_ref: Mapping[str, Any]) -> Obj:
    """Add ``controller_ref`` to ``obj`` (guarded by uid and resourceVersion); returns the updated object."""
    meta = obj.get("metadata") or {}
    patch = _guarded_refs_patch(obj, owner_refs_with(obj, controller_ref))
    return await client.patch(res, meta["name"], patch, meta.get("namespace"))


async def release(client: ApiClient, res: Resource, obj: Mapping[str, Any], owner_uid: str) -> Obj:
    """Remove the reference to ``owner_uid`` from ``obj``; NotFound (already gone) is left to the caller."""
    meta = obj.get("metadata") or {}
    patch = _guarded_refs_patch(obj, owner_refs_without(obj, owner_uid))
    return await client.patch(res, meta["name"], patch, meta.get("namespace"))


#: Informer index: the uid of an object's controller (no entry for orphans).
CONTROLLER_UID_INDEX = "controller-uid"
#: Informer index: the controller's uid, or ``_ORPHAN_POD/<namespace>`` (upstream's PodControllerUIDIndex).
CONTROLLER_OR_ORPHAN_INDEX = "controller-uid-or-orphan"


def controller_uid_index(obj: Obj) -> list[str]:
    ref = get_controller_of(obj)
    return [str(ref["uid"])] if ref and ref.get("uid") else []


def controller_or_orphan_index(obj: Obj) -> list[str]:
    """What a controller may claim is its own objects and its namespace's orphans: finding those through
    this index instead of scanning the namespace keeps a sync O(own) at thousands of pods per namespace."""
    return controller_uid_index(obj) or [orphan_key((obj.get("metadata") or {}).get("namespace") or "")]


def orphan_key(namespace: str) -> str:
    return f"_ORPHAN_POD/{namespace}"
