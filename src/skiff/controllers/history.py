"""ControllerRevisions: the template history of DaemonSets and StatefulSets.

Upstream: pkg/controller/history (``NewControllerRevision``,
``HashControllerRevision``, ``FindEqualRevisions``) and the ``getPatch`` /
``constructHistory`` / ``truncateHistory`` parts of the DaemonSet and
StatefulSet controllers.  A revision's ``data`` is the strategic patch
``{"spec": {"template": {..., "$patch": "replace"}}}``; its name is
``<parent>-<hash>`` where the hash (FNV-32a over the data and the parent's
``collisionCount``, safe-encoded) is also its ``controller-revision-hash``
label.  Creating a revision that already exists with other data is a hash
collision: the caller bumps ``status.collisionCount`` and tries again.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from skiff.api.status import ApiError
from skiff.client import ApiClient
from skiff.client.resources import CONTROLLERREVISIONS
from skiff.controllers.controller_ref import get_controller_of, new_controller_ref

Obj = dict[str, Any]

REVISION_HASH_LABEL = "controller-revision-hash"
#: rand.SafeEncodeString's alphabet: no vowels (no words), no look-alike characters.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: map each character onto the safe alphabet."""
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in text)


def revision_data(template: Mapping[str, Any]) -> Obj:
    """getPatch: the template as a replacing strategic patch of the parent's spec."""
    replaced = copy.deepcopy(dict(template))
    replaced["$patch"] = "replace"
    return {"spec": {"template": replaced}}


def template_of(revision: Mapping[str, Any]) -> Obj:
    """The pod template a revision records (the inverse of ``revision_data``)."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return dict(template)


def hash_revision(data: Mapping[str, Any], collision_count: int | None) -> str:
    """HashControllerRevision: FNV-32a of the data (canonical JSON) and the collision count."""
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32a(raw)))


def revision_number(revision: Mapping[str, Any]) -> int:
    return int(revision.get("revision") or 0)


def sort_revisions(revisions: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """Oldest first, by revision number then creation time then name (history.SortControllerRevisions)."""
    return sorted(
        (dict(r) for r in revisions),
        key=lambda r: (
            revision_number(r),
            (r.get("metadata") or {}).get("creationTimestamp") or "",
            r["metadata"]["name"],
        ),
    )


def owned_revisions(revisions: Iterable[Mapping[str, Any]], owner_uid: str) -> list[Obj]:
    return sort_revisions(r for r in revisions if (get_controller_of(r) or {}).get("uid") == owner_uid)


def new_revision(
    parent: Mapping[str, Any],
    api_version: str,
    kind: str,
    template: Mapping[str, Any],
    number: int,
    collision: int | None,
) -> Obj:
    """NewControllerRevision for ``parent``: template labels plus the hash label, a controller reference."""
    meta = parent.get("metadata") or {}
    data = revision_data(template)
    digest = hash_revision(data, collision)
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels[REVISION_HASH_LABEL] = digest
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"{meta.get('name', '')}-{digest}",
            "namespace": meta.get("namespace"),
            "labels": labels,
            "ownerReferences": [new_controller_ref(parent, api_version, kind)],
        },
        "data": data,
        "revision": number,
    }


async def ensure_revision(
    client: ApiClient,
    parent: Mapping[str, Any],
    api_version: str,
    kind: str,
    revisions: Sequence[Mapping[str, Any]],
    template: Mapping[str, Any],
) -> tuple[Obj, int]:
    """The revision for ``template`` (found, re-numbered as newest, or created) and the collision count.

    ``revisions`` are the parent's own, oldest first.  An equal older revision
    becomes the newest by getting the next revision number (a rollback keeps
    its name and therefore its pods' hash label).
    """
    collision = int((parent.get("status") or {}).get("collisionCount") or 0)
    data = revision_data(template)
    latest = max((revision_number(r) for r in revisions), default=0)
    equal = [r for r in revisions if r.get("data") == data]
    if equal:
        found = dict(equal[-1])
        if revision_number(found) == latest:
            return found, collision
        found["revision"] = latest + 1
        return await client.update(CONTROLLERREVISIONS, found), collision
    while True:
        revision = new_revision(parent, api_version, kind, template, latest + 1, collision)
        try:
            return await client.create(CONTROLLERREVISIONS, revision), collision
        except ApiError as err:
            if err.code != 409:
                raise
        meta = revision["metadata"]
        existing = await client.get(CONTROLLERREVISIONS, meta["name"], meta["namespace"])
        if existing.get("data") == data and (get_controller_of(existing) or {}).get("uid") == parent["metadata"]["uid"]:
            return existing, collision
        collision += 1


async def truncate_history(
    client: ApiClient, revisions: Sequence[Mapping[str, Any]], keep: set[str], limit: int | None
) -> None:
    """Delete the oldest revisions beyond ``limit`` that no live pod or status names (``keep``)."""
    limit = 10 if limit is None else limit
    candidates = [r for r in sort_revisions(revisions) if r["metadata"]["name"] not in keep]
    for revision in candidates[: max(0, len(candidates) - limit)]:
        meta = revision["metadata"]
        try:
            await client.delete(CONTROLLERREVISIONS, meta["name"], meta.get("namespace"))
        except ApiError as err:
            if err.code != 404:
                raise
