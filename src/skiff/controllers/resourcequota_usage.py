"""ResourceQuota usage: what the objects of a namespace consume, as pure functions.

Upstream's controller (pkg/controller/resourcequota) sums, per resource of
``spec.hard``, the usage its evaluators report for the namespace's objects
that every scope of the quota selects (``generic.CalculateUsageStats``).  The
evaluators are ``skiff.api.quota``'s, the ones quota admission charges with,
so what admission adds to ``status.used`` and what this recomputes agree:

* object counts: ``pods`` (non-terminal pods), ``services``,
  ``services.nodeports``, ``services.loadbalancers``, ``configmaps``,
  ``secrets``, ``persistentvolumeclaims``, ``replicationcontrollers``,
  ``resourcequotas`` and the generic ``count/<resource>[.<group>]``;
* compute, over charged pods: ``requests.cpu`` (= ``cpu``),
  ``requests.memory`` (= ``memory``), ``limits.cpu``, ``limits.memory``, the
  ephemeral-storage variants, hugepages and extended resources;
* ``requests.storage`` from PersistentVolumeClaims, also per storage class;
* scopes (``spec.scopes`` and ``spec.scopeSelector``) select pods only: a
  scoped quota counts nothing else;
* ``status.used`` carries exactly the resources named in ``spec.hard``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from skiff.api.quantity import Quantity, QuantityError, parse_quantity
from skiff.api.quota import (
    LEGACY_OBJECT_COUNTS,
    STORAGE_CLASS_SUFFIX,
    ResourceList,
    add,
    evaluator_for,
    format_list,
)

Obj = dict[str, Any]

#: Resource names counted from one list, by the list that holds them.
OBJECT_COUNTS = {
    "pods": "pods",
    "services": "services",
    "persistentvolumeclaims": "persistentvolumeclaims",
    **{name: name for name in LEGACY_OBJECT_COUNTS},
}


def _quantity(value: Any) -> Quantity | None:
    try:
        return parse_quantity(value)
    except (QuantityError, ValueError, TypeError):
        return None


def count_key(resource: str) -> str | None:
    """``count/deployments.apps`` → ``deployments.apps``; core resources have no group."""
    return resource.removeprefix("count/") if resource.startswith("count/") else None


def compute_used(
    hard: Mapping[str, Any],
    scopes: Iterable[str],
    objects: Mapping[str, list[Mapping[str, Any]]],
    *,
    scope_selector: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """``status.used`` for a quota with ``hard`` over ``objects`` (list name → objects of the namespace).

    List names are plural resource names with ``.group`` for non-core
    groups (``pods``, ``deployments.apps``), the same spelling count/ uses.
    ``now`` stops charging pods past their deletion grace period.
    """
    selectors = [{"scopeName": str(scope), "operator": "Exists"} for scope in scopes]
    selectors += list((scope_selector or {}).get("matchExpressions") or [])
    totals: ResourceList = {}
    for list_name, items in objects.items():
        plural, _, group = list_name.partition(".")
        evaluator = evaluator_for(group, plural)
        if not evaluator.matching_resources(hard):
            continue
        for obj in items:
            if all(evaluator.matches_scope(selector, obj) for selector in selectors):
                totals = add(totals, evaluator.usage(obj, now))
    return format_list({name: totals.get(name, Quantity.from_int(0)) for name in hard})


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
        elif name == "requests.storage" or STORAGE_CLASS_SUFFIX in name:
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
