"""Which pods a scaled-down ReplicaSet deletes first (controller.ActivePodsWithRanks).

Pods sort so the ones to delete come first:

1. unscheduled before scheduled;
2. Pending before Unknown before Running;
3. not ready before ready;
4. lower ``controller.kubernetes.io/pod-deletion-cost`` before higher;
5. higher rank (more related pods on the same node) before lower;
6. both ready: ready more recently before ready longer;
7. more container restarts before fewer;
8. newer before older (a missing creationTimestamp counts as newest).

Ties keep input order (the sort is stable).  Upstream compares ready times on
a logarithmic scale; we compare them directly (same order for distinct times
far apart, simpler to test).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from skiff.controllers.pod_status import (
    creation_time,
    is_pod_active,
    is_pod_ready,
    max_container_restarts,
    pod_phase,
    pod_ready_time,
)

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}

Obj = Mapping[str, Any]
P = TypeVar("P", bound=Mapping[str, Any])


def deletion_cost(pod: Obj) -> int:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST_ANNOTATION)
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0


def _node(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def _newer_first(a: float | None, b: float | None) -> int:
    """-1 when ``a`` should come first: the later time (or a missing one) first."""
    if a == b:
        return 0
    if a is None:
        return -1
    if b is None:
        return 1
    return -1 if a > b else 1


def compare_for_deletion(a: Obj, b: Obj, rank_a: int = 0, rank_b: int = 0) -> int:
    """Negative when ``a`` should be deleted before ``b`` (ActivePodsWithRanks.Less)."""
    node_a, node_b = _node(a), _node(b)
    if node_a != node_b and (not node_a or not node_b):
        return -1 if not node_a else 1
    phase_a, phase_b = _PHASE_ORDER.get(pod_phase(a), 0), _PHASE_ORDER.get(pod_phase(b), 0)
    if phase_a != phase_b:
        return -1 if phase_a < phase_b else 1
    ready_a, ready_b = is_pod_ready(a), is_pod_ready(b)
    if ready_a != ready_b:
        return -1 if not ready_a else 1
    cost_a, cost_b = deletion_cost(a), deletion_cost(b)
    if cost_a != cost_b:
        return -1 if cost_a < cost_b else 1
    if rank_a != rank_b:
        return -1 if rank_a > rank_b else 1
    if ready_a and ready_b:
        order = _newer_first(pod_ready_time(a), pod_ready_time(b))
        if order:
            return order
    restarts_a, restarts_b = max_container_restarts(a), max_container_restarts(b)
    if restarts_a != restarts_b:
        return -1 if restarts_a > restarts_b else 1
    return _newer_first(creation_time(a), creation_time(b))


def related_pod_ranks(pods: Sequence[Obj], related: Sequence[Obj]) -> list[int]:
    """getPodsRankedByRelatedPodsOnSameNode: for each pod, active related pods sharing its node."""
    on_node: dict[str, int] = {}
    for pod in related:
        if is_pod_active(pod) and _node(pod):
            on_node[_node(pod)] = on_node.get(_node(pod), 0) + 1
    return [on_node.get(_node(pod), 0) if _node(pod) else 0 for pod in pods]


def pods_to_delete(pods: Sequence[P], count: int, related: Sequence[Obj] | None = None) -> list[P]:
    """The ``count`` pods to delete first (getPodsToDelete); ``related`` defaults to ``pods``."""
    if count >= len(pods):
        return list(pods)
    ranks = related_pod_ranks(pods, pods if related is None else related)

    def compare(x: tuple[P, int], y: tuple[P, int]) -> int:
        return compare_for_deletion(x[0], y[0], x[1], y[1])

    ranked = sorted(zip(pods, ranks, strict=True), key=functools.cmp_to_key(compare))
    return [pod for pod, _ in ranked[:count]]
