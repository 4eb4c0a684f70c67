"""LimitRanger (plugin/pkg/admission/limitranger): a namespace's LimitRanges applied to pods and claims.

Mutating (pod create): every container and init container gets the
``default`` limits and ``defaultRequest`` requests of the namespace's
``Container`` items for resources it does not set, and the pod is annotated
``kubernetes.io/limit-ranger: LimitRanger plugin set: ...``.

Validating: per container (``Container`` items) and per pod (``Pod`` items:
the containers' sum, or the largest init container when bigger) the
``min``, ``max`` and ``maxLimitRequestRatio`` bounds hold; a claim's storage
request respects ``PersistentVolumeClaim`` items.  Violations are one 403
whose message lists them (utilerrors aggregate), worded as upstream.
Quantities compare at milli precision, as ``requestLimitEnforcedValues``.
Pod updates are not limited (containers are immutable), as upstream.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from skiff.api.field_errors import aggregate_text
from skiff.api.quantity import Quantity, QuantityError, parse_quantity
from skiff.registry.admission.chain import Attributes, ObjectReader, Operation, PluginBase, admission_forbidden

ANNOTATION = "kubernetes.io/limit-ranger"
ResourceList = dict[str, Quantity]

#: Upstream's liveTTL and LRU size for live LimitRange lookups.
LIVE_TTL_S = 30.0
LIVE_CACHE_SIZE = 10_000


def _quantities(raw: Any) -> ResourceList:
    out: ResourceList = {}
    if not isinstance(raw, dict):
        return out
    for name, value in raw.items():
        try:
            out[str(name)] = parse_quantity(value)
        except (QuantityError, TypeError, ValueError):
            continue  # validation reports malformed quantities
    return out


def _containers(spec: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [c for c in spec.get(key) or [] if isinstance(c, dict)]


def _items(limit_range: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    limits = (limit_range.get("spec") or {}).get("limits") or []
    return [item for item in limits if isinstance(item, dict) and item.get("type") == kind]


# -- defaults ---------------------------------------------------------------------------------


def apply_defaults(pod: dict[str, Any], limit_range: dict[str, Any]) -> None:
    """PodMutateLimitFunc: fill missing requests/limits from the Container items, annotate the pod."""
    default_limits: dict[str, Any] = {}
    default_requests: dict[str, Any] = {}
    for item in _items(limit_range, "Container"):
        default_requests.update(item.get("defaultRequest") or {})
        default_limits.update(item.get("default") or {})
    spec = pod.get("spec") or {}
    notes: list[str] = []
    for key, label in (("containers", "container"), ("initContainers", "init container")):
        for container in _containers(spec, key):
            notes += _merge_container(container, default_limits, default_requests, label)
    if notes:
        annotations = pod.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def _merge_container(
    container: dict[str, Any], limits: dict[str, Any], requests: dict[str, Any], label: str
) -> list[str]:
    """mergeContainerResources: the notes name requests first, then limits, resources sorted."""
    resources = container.setdefault("resources", {})
    if not isinstance(resources, dict):
        return []
    added: dict[str, list[str]] = {}
    for field, defaults in (("limits", limits), ("requests", requests)):
        current = resources.setdefault(field, {})
        added[field] = sorted(name for name in defaults if name not in current)
        for name in added[field]:
            current[name] = defaults[name]
        if not current:
            resources.pop(field)
    name = container.get("name", "")
    notes = []
    if added["requests"]:
        notes.append(f"{', '.join(added['requests'])} request for {label} {name}")
    if added["limits"]:
        notes.append(f"{', '.join(added['limits'])} limit for {label} {name}")
    return notes


# -- constraints ---------------------------------------------------------------------------------


def _milli(q: Quantity) -> int:
    return q.milli_value()


def min_constraint(kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList) -> str:
    req, lim = requests.get(name), limits.get(name)
    if req is None:
        return f"minimum {name} usage per {kind} is {enforced}.  No request is specified"
    if _milli(req) < _milli(enforced):
        return f"minimum {name} usage per {kind} is {enforced}, but request is {req}"
    if lim is not None and _milli(lim) < _milli(enforced):
        return f"minimum {name} usage per {kind} is {enforced}, but limit is {lim}"
    return ""


def max_constraint(kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList) -> str:
    req, lim = requests.get(name), limits.get(name)
    if lim is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No limit is specified"
    if _milli(lim) > _milli(enforced):
        return f"maximum {name} usage per {kind} is {enforced}, but limit is {lim}"
    if req is not None and _milli(req) > _milli(enforced):
        return f"maximum {name} usage per {kind} is {enforced}, but request is {req}"
    return ""


def max_request_constraint(kind: str, name: str, enforced: Quantity, requests: ResourceList) -> str:
    req = requests.get(name)
    if req is None:
        return f"maximum {name} usage per {kind} is {enforced}.  No request is specified"
    if _milli(req) > _milli(enforced):
        return f"maximum {name} usage per {kind} is {enforced}, but request is {req}"
    return ""


def ratio_constraint(kind: str, name: str, enforced: Quantity, requests: ResourceList, limits: ResourceList) -> str:
    req, lim = requests.get(name), limits.get(name)
    if req is None or _milli(req) == 0:
        return (
            f"{name} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
        )
    if lim is None or _milli(lim) == 0:
        return f"{name} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
    observed = _milli(lim) / _milli(req)
    if observed * 1000 > _milli(enforced):
        return f"{name} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:f}"
    return ""


def _check_item(item: dict[str, Any], kind: str, requests: ResourceList, limits: ResourceList) -> list[str]:
    errors: list[str] = []
    for name, q in sorted(_quantities(item.get("min")).items()):
        errors.append(min_constraint(kind, name, q, requests, limits))
    for name, q in sorted(_quantities(item.get("max")).items()):
        errors.append(max_constraint(kind, name, q, requests, limits))
    for name, q in sorted(_quantities(item.get("maxLimitRequestRatio")).items()):
        errors.append(ratio_constraint(kind, name, q, requests, limits))
    return [e for e in errors if e]


def _pod_total(spec: dict[str, Any], field: str) -> ResourceList:
    """podRequests/podLimits: the containers' sum, raised to the largest init container's value."""
    total: ResourceList = {}
    for container in _containers(spec, "containers"):
        for name, q in _quantities((container.get("resources") or {}).get(field)).items():
            total[name] = total[name] + q if name in total else q
    for container in _containers(spec, "initContainers"):
        for name, q in _quantities((container.get("resources") or {}).get(field)).items():
            if name not in total or total[name] < q:
                total[name] = q
    return total


def pod_violations(pod: dict[str, Any], limit_range: dict[str, Any]) -> list[str]:
    """PodValidateLimitFunc."""
    spec = pod.get("spec") or {}
    errors: list[str] = []
    for item in _items(limit_range, "Container"):
        for key in ("containers", "initContainers"):
            for container in _containers(spec, key):
                resources = container.get("resources") or {}
                errors += _check_item(
                    item, "Container", _quantities(resources.get("requests")), _quantities(resources.get("limits"))
                )
    for item in _items(limit_range, "Pod"):
        errors += _check_item(item, "Pod", _pod_total(spec, "requests"), _pod_total(spec, "limits"))
    return errors


def claim_violations(claim: dict[str, Any], limit_range: dict[str, Any]) -> list[str]:
    """PersistentVolumeClaimValidateLimitFunc: min and max of the storage request."""
    requests = _quantities(((claim.get("spec") or {}).get("resources") or {}).get("requests"))
    errors: list[str] = []
    for item in _items(limit_range, "PersistentVolumeClaim"):
        for name, q in sorted(_quantities(item.get("min")).items()):
            errors.append(min_constraint("PersistentVolumeClaim", name, q, requests, {}))
        for name, q in sorted(_quantities(item.get("max")).items()):
            errors.append(max_request_constraint("PersistentVolumeClaim", name, q, requests))
    return [e for e in errors if e]


class LimitRanger(PluginBase):
    def __init__(self, reader: ObjectReader) -> None:
        self.reader = reader
        #: namespace -> (expiry, live read): upstream's liveLookupCache, for namespaces the cache shows none in.
        self._live: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def _applies(self, attrs: Attributes) -> bool:
        if attrs.subresource or attrs.obj is None or not attrs.namespace:
            return False
        if attrs.is_kind("", "Pod"):
            return attrs.operation is Operation.CREATE
        return attrs.is_kind("", "PersistentVolumeClaim") and attrs.operation in (Operation.CREATE, Operation.UPDATE)

    async def _ranges(self, namespace: str) -> Iterable[dict[str, Any]]:
        """Upstream's lookup: the lister (watch cache); when it has none for the namespace, a live read,
        remembered for LIVE_TTL_S (a LimitRange created a moment ago applies at once)."""
        cached = await self.reader.list("", "limitranges", namespace, fresh=False)
        if cached:
            return cached
        now = time.monotonic()
        hit = self._live.get(namespace)
        if hit is not None and hit[0] > now:
            return hit[1]
        live = await self.reader.list("", "limitranges", namespace)
        if len(self._live) >= LIVE_CACHE_SIZE:
            self._live.clear()
        self._live[namespace] = (now + LIVE_TTL_S, live)
        return live

    async def admit(self, attrs: Attributes) -> None:
        if not self._applies(attrs) or not attrs.is_kind("", "Pod"):
            return
        assert attrs.obj is not None
        for limit_range in await self._ranges(attrs.namespace):
            apply_defaults(attrs.obj, limit_range)

    async def validate(self, attrs: Attributes) -> None:
        if not self._applies(attrs):
            return
        assert attrs.obj is not None
        check = pod_violations if attrs.is_kind("", "Pod") else claim_violations
        errors: list[str] = []
        for limit_range in await self._ranges(attrs.namespace):
            errors += check(attrs.obj, limit_range)
        if errors:
            raise admission_forbidden(attrs, aggregate_text(errors))
