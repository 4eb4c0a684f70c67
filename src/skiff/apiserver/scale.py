"""The ``scale`` subresource: an ``autoscaling/v1`` Scale view of a resource's replica fields.

Where the replicas and selector live is the resource's ``ScaleSpec`` (dotted
paths; CRDs map theirs from ``specReplicasPath`` etc.).  Reads convert the
object to a Scale; writes (PUT or any PATCH type on ``/scale``) become a
mutation of the parent object that changes only the spec replicas field, run
inside the registry's compare-and-swap like any patch.  A Scale carrying a
``resourceVersion`` is a precondition on the parent's, as upstream's scale
REST does (409 Conflict when stale).  ``SCALE_VIEW`` is how admission
webhooks see a write through ``/scale``: as the Scale, their patches to it
written back to the parent like a PUT of the Scale.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from skiff.api.status import MODIFIED, Cause, bad_request, conflict, invalid, not_found
from skiff.registry.admission.webhooks import GroupVersionKind, SubresourceView
from skiff.registry.resource import Obj, ResourceInfo, ScaleSpec
from skiff.registry.table_format import dig, selector_string

Mutate = Callable[[Obj | None], Obj]


def _spec(info: ResourceInfo) -> ScaleSpec:
    spec = info.strategy.scale
    if spec is None:
        raise bad_request(f"{info.plural} has no scale subresource")
    return spec


def _get(obj: Obj, dotted: str) -> Any:
    return dig(obj, *dotted.split(".")) if dotted else None


def _set(obj: Obj, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = obj
    for step in parents:
        child = node.get(step)
        if not isinstance(child, dict):
            child = node[step] = {}
        node = child
    node[last] = value


def to_scale(info: ResourceInfo, obj: Obj) -> Obj:
    spec = _spec(info)
    meta = obj.get("metadata") or {}
    selector = _get(obj, spec.label_selector)
    if isinstance(selector, dict):
        selector = selector_string(selector)
    status: dict[str, Any] = {"replicas": int(_get(obj, spec.status_replicas) or 0)}
    if selector:
        status["selector"] = str(selector)
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": int(_get(obj, spec.spec_replicas) or 0)},
        "status": status,
    }


def apply_scale(info: ResourceInfo, current: Obj, scale: Obj) -> Obj:
    """``current`` (copied) with the Scale's spec.replicas written to the spec replicas field."""
    spec = _spec(info)
    meta = current.get("metadata") or {}
    name = str(meta.get("name", ""))
    wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
    if wanted_rv and wanted_rv != meta.get("resourceVersion"):
        raise conflict(info.plural, info.group, name, MODIFIED)
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise invalid(
            "Scale",
            "autoscaling",
            name,
            [
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                    "spec.replicas",
                )
            ],
        )
    out = copy.deepcopy(current)
    _set(out, spec.spec_replicas, replicas)
    return out


def update_through_scale(info: ResourceInfo, scale: Obj, name: str) -> Mutate:
    def mutate(current: Obj | None) -> Obj:
        if current is None:
            raise not_found(info.plural, info.group, name)
        return apply_scale(info, current, scale)

    return mutate


def patch_through_scale(info: ResourceInfo, mutate_scale: Mutate) -> Mutate:
    """Turn a patch of the Scale view into a mutation of the parent object."""

    def mutate(current: Obj | None) -> Obj:
        if current is None:
            return mutate_scale(None)  # raises NotFound
        return apply_scale(info, current, mutate_scale(to_scale(info, current)))

    return mutate


SCALE_VIEW = SubresourceView(GroupVersionKind("autoscaling", "v1", "Scale"), to_scale, apply_scale)
