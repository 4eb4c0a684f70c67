"""The DaemonSet controller's decisions, as pure functions over a per-node view.

Upstream: ``manage``/``podsShouldBeOnNode`` (which nodes need a pod, which
pods must go), ``rollingUpdate`` (pkg/controller/daemon/update.go: replace old
pods within maxUnavailable, or surge new pods within maxSurge and delete the
old one once the new one is available) and ``updateDaemonSetStatus``.  A pod
is *available* when it has been Ready for ``minReadySeconds``.  Nothing here
does I/O; the controller turns the decisions into API calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skiff.controllers.history import REVISION_HASH_LABEL
from skiff.controllers.pod_status import is_pod_available, is_pod_ready

Obj = dict[str, Any]


@dataclass
class NodeView:
    """One node (or a pod's target node that no longer exists) and its daemon pods, oldest first."""

    name: str
    should_run: bool
    should_continue: bool
    pods: list[Obj] = field(default_factory=list)


@dataclass(frozen=True)
class Decisions:
    create_on: list[str]
    delete: list[Obj]


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_hash(pod: Mapping[str, Any]) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_HASH_LABEL)


def target_node_name(pod: Mapping[str, Any]) -> str | None:
    """util.GetTargetNodeName: spec.nodeName, or the node named by the metadata.name affinity field."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for expr in term.get("matchFields") or []:
            if (
                expr.get("key") == "metadata.name"
                and expr.get("operator") == "In"
                and len(expr.get("values") or []) == 1
            ):
                return str(expr["values"][0])
    return None


def scaled_value(value: Any, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent with rounding up."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value or 0)


def surge_and_unavailable(strategy: Mapping[str, Any], desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for ``desired`` nodes; both zero means maxUnavailable 1."""
    rolling = strategy.get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge", 0), desired)
    unavailable = scaled_value(rolling.get("maxUnavailable", 1), desired)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def manage_decisions(
    nodes: Sequence[NodeView], current_hash: str, surge_allowed: bool, backing_off: frozenset[str] = frozenset()
) -> Decisions:
    """podsShouldBeOnNode for every node: create where missing, delete failed, extra and misplaced pods.

    Failed pods on nodes in ``backing_off`` are left for now: a kubelet that keeps
    rejecting daemon pods must not make the controller hot-loop (failedPodsBackoff).
    """
    create_on: list[str] = []
    delete: list[Obj] = []
    for view in nodes:
        if view.should_run and not view.pods:
            create_on.append(view.name)
            continue
        live = [p for p in view.pods if not is_terminating(p)]
        if not view.should_continue:
            delete += live
            continue
        # A failed pod is deleted now and replaced by a later sync, once it is gone.
        failed = [p for p in live if (p.get("status") or {}).get("phase") == "Failed"]
        if view.name not in backing_off:
            delete += failed
        running = [p for p in live if p not in failed]
        if not running:
            continue
        keep: list[Obj] = [running[0]]
        if surge_allowed:
            # During a surge the oldest updated pod lives beside the oldest old one.
            updated = [p for p in running if pod_hash(p) == current_hash]
            old = [p for p in running if pod_hash(p) != current_hash]
            keep = [group[0] for group in (old, updated) if group]
        delete += [p for p in running if all(p is not k for k in keep)]
    return Decisions(create_on, delete)


def failed_nodes(nodes: Sequence[NodeView], decisions: Decisions) -> list[str]:
    """Nodes where ``decisions`` delete a failed pod (they enter back-off)."""
    doomed = {id(p) for p in decisions.delete}
    return [
        v.name
        for v in nodes
        if any(id(p) in doomed and (p.get("status") or {}).get("phase") == "Failed" for p in v.pods)
    ]


def rolling_update_decisions(
    nodes: Sequence[NodeView], current_hash: str, strategy: Mapping[str, Any], min_ready: int, now: float
) -> Decisions:
    """rollingUpdate: which old pods to delete (maxUnavailable) or where to surge new pods (maxSurge)."""
    desired = sum(1 for v in nodes if v.should_run)
    max_surge, max_unavailable = surge_and_unavailable(strategy, desired)
    if max_surge > 0:
        return _surge_decisions(nodes, current_hash, max_surge, min_ready, now)
    unavailable = 0
    delete: list[Obj] = []
    candidates: list[Obj] = []
    for view in nodes:
        if not view.should_run:
            continue
        live = [p for p in view.pods if not is_terminating(p)]
        new = [p for p in live if pod_hash(p) == current_hash]
        old = [p for p in live if pod_hash(p) != current_hash]
        available = [p for p in live if is_pod_available(p, min_ready, now)]
        if not available:
            unavailable += 1
        if new or not old:
            continue
        if not any(is_pod_available(p, min_ready, now) for p in old):
            delete += old  # an unavailable old pod costs nothing to replace
        else:
            candidates.append(old[0])
    budget = max(0, max_unavailable - unavailable)
    return Decisions([], delete + candidates[:budget])


def _surge_decisions(
    nodes: Sequence[NodeView], current_hash: str, max_surge: int, min_ready: int, now: float
) -> Decisions:
    create_on: list[str] = []
    delete: list[Obj] = []
    candidates: list[str] = []
    surging = 0
    for view in nodes:
        if not view.should_run:
            continue
        live = [p for p in view.pods if not is_terminating(p)]
        new = [p for p in live if pod_hash(p) == current_hash]
        old = [p for p in live if pod_hash(p) != current_hash]
        if not old:
            continue
        if new:
            if any(is_pod_available(p, min_ready, now) for p in new):
                delete += old
            else:
                surging += 1
            continue
        if not any(is_pod_available(p, min_ready, now) for p in old):
            create_on.append(view.name)  # nothing available to protect: replace right away
        else:
            candidates.append(view.name)
    create_on += candidates[: max(0, max_surge - surging)]
    return Decisions(create_on, delete)


def calculate_status(nodes: Sequence[NodeView], current_hash: str, min_ready: int, now: float) -> Obj:
    """updateDaemonSetStatus's counters (observedGeneration is the caller's)."""
    desired = current = misscheduled = ready = available = updated = 0
    for view in nodes:
        live = [p for p in view.pods if not is_terminating(p)]
        if view.should_run:
            desired += 1
            if live:
                current += 1
                pod = live[0]
                ready += is_pod_ready(pod)
                available += is_pod_available(pod, min_ready, now)
                if any(pod_hash(p) == current_hash for p in live):
                    updated += 1
        elif live:
            misscheduled += 1
    return {
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "numberReady": ready,
        "numberAvailable": available,
        "numberUnavailable": desired - available,
        "updatedNumberScheduled": updated,
    }
