"""System metadata the generic registry owns: what create fills, what update carries over.

Follows k8s.io/apiserver's ``rest.FillObjectMetaSystemFields``,
``rest.BeforeCreate`` / ``rest.BeforeUpdate`` and the etcd3 store's
versioner:

* create sets ``uid``, ``creationTimestamp`` (RFC 3339, whole seconds, ``Z``),
  the generated name, ``generation: 1`` for kinds that track generation, and
  drops ``selfLink``, ``deletionTimestamp`` and ``deletionGracePeriodSeconds``;
* update keeps ``uid`` (when the body has none), ``creationTimestamp``,
  ``generation`` (bumped here, not by the client, when the object's content
  outside metadata — and outside status, for kinds with a status subresource —
  changes), ``deletionTimestamp`` and ``deletionGracePeriodSeconds``;
* ``resourceVersion`` is never stored: the value in the Store is the object
  without it and reads set it from the key's mod revision (the etcd3
  versioner's PrepareObjectForStorage / UpdateObject).

Everything here is pure; the clock and the random sources are passed in.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from skiff.api.status import ApiError, bad_request
from skiff.registry.resource import Obj, ResourceInfo

#: Kubernetes' name generator alphabet (k8s.io/apimachinery util/rand: no vowels, no confusable digits).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
#: names.SimpleNameGenerator: 5 random characters, the prefix cut so the name fits 63.
RANDOM_LENGTH = 5
MAX_GENERATED_PREFIX = 63 - RANDOM_LENGTH

#: ObjectMeta's field order in Go, so objects read back the way kubectl shows them.
META_ORDER = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
_META_RANK = {name: i for i, name in enumerate(META_ORDER)}

NAMESPACE_MISMATCH = "the namespace of the provided object does not match the namespace sent on the request"


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """metav1.Time on the wire: ``2006-01-02T15:04:05Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix() -> str:
    """generateName's suffix; like upstream's (math/rand), unique-enough rather than secret: an OS random
    read per name cost several percent of the API server under a pod-creation burst."""
    return "".join(_names_random.choices(NAME_ALPHABET, k=RANDOM_LENGTH))


_names_random = random.Random()


def generate_name(prefix: str, suffix: Callable[[], str] = random_suffix) -> str:
    return prefix[:MAX_GENERATED_PREFIX] + suffix()


def metadata_of(obj: Obj) -> dict[str, Any]:
    """``obj.metadata``, created if absent; a non-object metadata is a 400."""
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise bad_request("metadata must be an object")
    return meta


def resource_version_of(obj: Obj) -> str:
    meta = obj.get("metadata")
    value = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else ""


def ordered_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """The same metadata, keys in Go's ObjectMeta order (unknown keys last, as given)."""
    return dict(sorted(meta.items(), key=lambda kv: _META_RANK.get(kv[0], len(_META_RANK))))


def ensure_namespace(obj: Obj, info: ResourceInfo, namespace: str | None) -> None:
    """rest.EnsureObjectNamespaceMatchesRequestNamespace: default, clear, or 400 on mismatch."""
    meta = metadata_of(obj)
    expected = (namespace or "") if info.namespaced else ""
    given = meta.get("namespace") or ""
    if given == expected:
        if not expected:
            meta.pop("namespace", None)
        return
    if not given:
        meta["namespace"] = expected
    elif not expected:
        meta.pop("namespace", None)
    else:
        raise bad_request(NAMESPACE_MISMATCH)


def set_type_meta(obj: Obj, info: ResourceInfo) -> None:
    """Every stored object carries the kind and apiVersion it is served as."""
    rest = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
    obj.clear()
    obj["kind"] = info.kind
    obj["apiVersion"] = info.group_version
    obj.update(rest)


def fill_create_metadata(obj: Obj, info: ResourceInfo, now: datetime, uid: str, suffix: Callable[[], str]) -> None:
    """FillObjectMetaSystemFields + generateName + the create-time clearing of BeforeCreate."""
    meta = metadata_of(obj)
    meta["uid"] = uid
    meta["creationTimestamp"] = format_time(now)
    meta.pop("selfLink", None)
    meta.pop("deletionTimestamp", None)
    meta.pop("deletionGracePeriodSeconds", None)
    if meta.get("generateName") and not meta.get("name"):
        meta["name"] = generate_name(str(meta["generateName"]), suffix)
    if info.strategy.tracks_generation:
        meta["generation"] = 1
    else:
        meta.pop("generation", None)


def carry_update_metadata(new: Obj, old: Obj) -> None:
    """What rest.BeforeUpdate keeps from the stored object whatever the body says."""
    meta = metadata_of(new)
    old_meta = old.get("metadata") or {}
    if "generation" in old_meta:
        meta["generation"] = old_meta["generation"]
    else:
        meta.pop("generation", None)
    if not meta.get("uid") and old_meta.get("uid"):
        meta["uid"] = old_meta["uid"]
    if old_meta.get("creationTimestamp"):
        meta["creationTimestamp"] = old_meta["creationTimestamp"]
    if old_meta.get("deletionTimestamp"):
        meta["deletionTimestamp"] = old_meta["deletionTimestamp"]
    if old_meta.get("deletionGracePeriodSeconds") is not None and meta.get("deletionGracePeriodSeconds") is None:
        meta["deletionGracePeriodSeconds"] = old_meta["deletionGracePeriodSeconds"]
    meta.pop("selfLink", None)


def content_changed(new: Obj, old: Obj, has_status: bool) -> bool:
    """True when what ``generation`` tracks differs: all but metadata (and status, with a status subresource)."""
    skipped = {"metadata", "kind", "apiVersion"}
    if has_status:
        skipped.add("status")
    keys = (set(new) | set(old)) - skipped
    return any(new.get(k) != old.get(k) for k in keys)


def bump_generation(new: Obj, old: Obj, info: ResourceInfo) -> None:
    strategy = info.strategy
    if strategy.tracks_generation and content_changed(new, old, strategy.has_status):
        meta = metadata_of(new)
        meta["generation"] = int((old.get("metadata") or {}).get("generation") or 0) + 1


def same_object(new: Obj, old: Obj) -> bool:
    """Equal but for resourceVersion: an update that changes nothing is not written (etcd3 GuaranteedUpdate)."""
    return strip_resource_version(new) == strip_resource_version(old)


def strip_resource_version(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "resourceVersion" not in meta:
        return obj
    out = dict(obj)
    out["metadata"] = {k: v for k, v in meta.items() if k != "resourceVersion"}
    return out


def encode(obj: Obj) -> bytes:
    """The stored value: the object without resourceVersion, metadata in Go order."""
    out = strip_resource_version(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        out = dict(out)
        out["metadata"] = ordered_metadata(meta)
    return orjson.dumps(out)


def decode(value: bytes, mod_revision: int) -> Obj:
    """A stored value as the API returns it: resourceVersion is the key's mod revision."""
    obj: Obj = orjson.loads(value)
    set_resource_version(obj, mod_revision)
    return obj


def set_resource_version(obj: Obj, revision: int) -> None:
    """Set metadata.resourceVersion in its Go position (after uid)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        obj["metadata"] = {"resourceVersion": str(revision)}
        return
    if "resourceVersion" in meta:
        meta["resourceVersion"] = str(revision)
        return
    meta["resourceVersion"] = str(revision)
    obj["metadata"] = ordered_metadata(meta)


def resource_version_set_on_create() -> ApiError:
    """The etcd3 store's refusal, which the apiserver reports as a 500 with no reason."""
    return ApiError(500, "", "resourceVersion should not be set on objects to be created")
