"""ResourceQuota usage: what the objects of a namespace consume, as pure functions.

Upstream (pkg/quota/v1/evaluator/core, pkg/controller/resourcequota):

* object counts: ``pods`` (non-terminal pods), ``services``,
  ``services.nodeports``, ``services.loadbalancers``, ``configmaps``,
  ``secrets``, ``persistentvolumeclaims``, ``replicationcontrollers``,
  ``resourcequotas`` and the generic ``count/<resource>[.<group>]``;
* compute, over non-terminal pods: ``requests.cpu`` (= ``cpu``),
  ``requests.memory`` (= ``memory``), ``limits.cpu``, ``limits.memory`` and
  the ephemeral-storage variants; a pod's amount is the larger of its
  containers' sum and its largest init container, plus spec.overhead;
* ``requests.storage`` from PersistentVolumeClaims;
* scopes Terminating / NotTerminating / BestEffort / NotBestEffort restrict
  the pods counted (and then only pod resources are tracked);
* ``status.used`` carries exactly the resources named in ``spec.hard``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from skiff.api.quantity import Quantity, QuantityError, parse_quantity

Obj = dict[str, Any]

#: Resource names counted as "number of objects of this list", by the list that holds them.
OBJECT_COUNTS = {
    "pods": "pods",
    "services": "services",
    "configmaps": "configmaps",
    "secrets": "secrets",
    "persistentvolumeclaims": "persistentvolumeclaims",
    "replicationcontrollers": "replicationcontrollers",
    "resourcequotas": "resourcequotas",
}
_POD_COMPUTE = ("cpu", "memory", "ephemeral-storage")
POD_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort")


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _quantity(value: Any) -> Quantity | None:
    try:
        return parse_quantity(value)
    except (QuantityError, ValueError, TypeError):
        return None


def _add(a: Quantity | None, b: Quantity) -> Quantity:
    return b if a is None else a + b


def pod_amounts(pod: Mapping[str, Any], kind: str) -> dict[str, Quantity]:
    """The pod's ``kind`` ("requests"/"limits") per resource: max(sum of containers, any init container) + overhead."""
    spec = pod.get("spec") or {}
    total: dict[str, Quantity] = {}
    for container in spec.get("containers") or []:
        for name, value in ((container.get("resources") or {}).get(kind) or {}).items():
            amount = _quantity(value)
            if amount is not None:
                total[name] = _add(total.get(name), amount)
    for container in spec.get("initContainers") or []:
        for name, value in ((container.get("resources") or {}).get(kind) or {}).items():
            amount = _quantity(value)
            if amount is not None and (name not in total or total[name] < amount):
                total[name] = amount
    for name, value in (spec.get("overhead") or {}).items():
        amount = _quantity(value)
        if amount is not None and name in total:
            total[name] = total[name] + amount
    return total


def is_best_effort(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    for container in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        resources = container.get("resources") or {}
        if resources.get("requests") or resources.get("limits"):
            return False
    return True


def pod_matches_scopes(pod: Mapping[str, Any], scopes: Iterable[str]) -> bool:
    terminating = (pod.get("spec") or {}).get("activeDeadlineSeconds") is not None
    checks = {
        "Terminating": terminating,
        "NotTerminating": not terminating,
        "BestEffort": is_best_effort(pod),
        "NotBestEffort": not is_best_effort(pod),
    }
    return all(checks.get(scope, True) for scope in scopes)


def pod_usage(pod: Mapping[str, Any]) -> dict[str, Quantity]:
    """Everything one non-terminal pod charges to a quota."""
    usage = {"pods": Quantity.from_int(1), "count/pods": Quantity.from_int(1)}
    requests, limits = pod_amounts(pod, "requests"), pod_amounts(pod, "limits")
    for name, amount in requests.items():
        usage[f"requests.{name}"] = amount
        if name in _POD_COMPUTE:
            usage[name] = amount
    for name, amount in limits.items():
        usage[f"limits.{name}"] = amount
    return usage


def service_usage(service: Mapping[str, Any]) -> dict[str, Quantity]:
    spec = service.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    usage = {"services": Quantity.from_int(1), "count/services": Quantity.from_int(1)}
    if kind in ("NodePort", "LoadBalancer"):
        usage["services.nodeports"] = Quantity.from_int(len(spec.get("ports") or []))
    if kind == "LoadBalancer":
        usage["services.loadbalancers"] = Quantity.from_int(1)
    return usage


def claim_usage(claim: Mapping[str, Any]) -> dict[str, Quantity]:
    usage = {"persistentvolumeclaims": Quantity.from_int(1), "count/persistentvolumeclaims": Quantity.from_int(1)}
    storage = _quantity((((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage"))
    if storage is not None:
        usage["requests.storage"] = storage
    return usage


def count_key(resource: str) -> str | None:
    """``count/deployments.apps`` → ``deployments.apps``; core resources have no group."""
    return resource.removeprefix("count/") if resource.startswith("count/") else None


def compute_used(
    hard: Mapping[str, Any], scopes: Iterable[str], objects: Mapping[str, list[Mapping[str, Any]]]
) -> dict[str, str]:
    """``status.used`` for a quota with ``hard`` over ``objects`` (list name → objects of the namespace).

    List names are plural resource names with ``.group`` for non-core
    groups (``pods``, ``deployments.apps``), the same spelling count/ uses.
    """
    scopes = list(scopes)
    totals: dict[str, Quantity] = {}

    def charge(usage: Mapping[str, Quantity]) -> None:
        for name, amount in usage.items():
            totals[name] = _add(totals.get(name), amount)

    for pod in objects.get("pods") or []:
        if not is_terminal(pod) and pod_matches_scopes(pod, scopes):
            charge(pod_usage(pod))
    pod_scoped = any(scope in POD_SCOPES for scope in scopes)
    if not pod_scoped:
        for service in objects.get("services") or []:
            charge(service_usage(service))
        for claim in objects.get("persistentvolumeclaims") or []:
            charge(claim_usage(claim))
        for name in ("configmaps", "secrets", "replicationcontrollers", "resourcequotas"):
            charge({name: Quantity.from_int(len(objects.get(name) or []))})
    used: dict[str, str] = {}
    for name in hard:
        key = count_key(name)
        if key is not None and f"count/{key}" not in totals and not pod_scoped:
            totals[name] = Quantity.from_int(len(objects.get(key) or []))
        used[name] = str(totals.get(name, Quantity.from_int(0)))
    return used


def lists_needed(hard: Iterable[str]) -> set[str]:
    """The object lists ``compute_used`` needs for these hard limits."""
    needed: set[str] = set()
    for name in hard:
        key = count_key(name)
        if key is not None:
            needed.add(key)
        elif name in OBJECT_COUNTS:
            needed.add(OBJECT_COUNTS[name])
        elif name.startswith("services."):
            needed.add("services")
        elif name == "requests.storage" or name.endswith(".storageclass.storage.k8s.io/requests.storage"):
            needed.add("persistentvolumeclaims")
        else:
            needed.add("pods")
    return needed


def same_amounts(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Equal resource lists, comparing quantities by value (the server may print them canonically)."""
    a, b = a or {}, b or {}
    if set(a) != set(b):
        return False
    return all(_quantity(a[k]) == _quantity(b[k]) and _quantity(a[k]) is not None for k in a)
