"""Node health decisions of the node lifecycle controller: pure functions of node, lease and time.

Upstream (pkg/controller/nodelifecycle/node_lifecycle_controller.go,
tryUpdateNodeHealth and doNoScheduleTaintingPass / doNoExecuteTaintingPass):

* a node is heard from when its Ready condition's lastHeartbeatTime or its
  kube-node-lease Lease's renewTime changes; the controller remembers the
  local time it last heard (the "probe timestamp"), so clock skew between
  kubelet and controller does not matter;
* a node never heard from is judged from its creationTimestamp;
* after the grace period without news, Ready, MemoryPressure, DiskPressure
  and PIDPressure become Unknown, reason ``NodeStatusUnknown``, message
  "Kubelet stopped posting node status." (missing ones are added with
  ``NodeStatusNeverUpdated`` / "Kubelet never posted node status.");
* taints follow the conditions: Ready=False → ``node.kubernetes.io/not-ready``,
  Ready=Unknown → ``node.kubernetes.io/unreachable``, each with NoExecute
  (carrying ``timeAdded``) and NoSchedule; pressure conditions and
  ``spec.unschedulable`` give their NoSchedule taints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.client.timefmt import parse_rfc3339, rfc3339

Obj = dict[str, Any]

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
MONITORED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
#: NoSchedule taints for conditions (TaintNodesByCondition): (type, status) → key.
CONDITION_TAINTS = {
    ("Ready", "False"): NOT_READY_TAINT,
    ("Ready", "Unknown"): UNREACHABLE_TAINT,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
}
MANAGED_TAINT_KEYS = frozenset(CONDITION_TAINTS.values()) | {UNSCHEDULABLE_TAINT}


@dataclass(frozen=True)
class NodeHealth:
    """What the controller last heard from a node, and when (its own clock)."""

    heartbeat: str | None
    lease_renew: str | None
    probe_timestamp: float


def condition(node: Mapping[str, Any], kind: str) -> Obj | None:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def observe(
    previous: NodeHealth | None, node: Mapping[str, Any], lease: Mapping[str, Any] | None, now: float
) -> NodeHealth:
    """The node's health record after looking at it at ``now``."""
    ready = condition(node, "Ready")
    heartbeat = str(ready.get("lastHeartbeatTime") or "") if ready else None
    renew = str((lease or {}).get("spec", {}).get("renewTime") or "") or None
    if previous is None:
        if ready is None and renew is None:
            created = (node.get("metadata") or {}).get("creationTimestamp")
            return NodeHealth(None, None, parse_rfc3339(created) if created else now)
        return NodeHealth(heartbeat, renew, now)
    if heartbeat != previous.heartbeat or (renew is not None and renew != previous.lease_renew):
        return NodeHealth(heartbeat, renew, now)
    return previous


def is_overdue(health: NodeHealth, now: float, grace_period_s: float) -> bool:
    return now > health.probe_timestamp + grace_period_s


def unknown_conditions(node: Mapping[str, Any], now: float) -> list[Obj] | None:
    """The node's conditions with the monitored ones set to Unknown; None when nothing changes."""
    stamp = rfc3339(now)
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or []]
    changed = False
    for kind in MONITORED_CONDITIONS:
        current = next((c for c in conditions if c.get("type") == kind), None)
        if current is None:
            created = (node.get("metadata") or {}).get("creationTimestamp") or stamp
            conditions.append(
                {
                    "type": kind,
                    "status": "Unknown",
                    "reason": "NodeStatusNeverUpdated",
                    "message": "Kubelet never posted node status.",
                    "lastHeartbeatTime": created,
                    "lastTransitionTime": stamp,
                }
            )
            changed = True
        elif current.get("status") != "Unknown":
            current.update(
                status="Unknown",
                reason="NodeStatusUnknown",
                message="Kubelet stopped posting node status.",
                lastTransitionTime=stamp,
            )
            changed = True
    return conditions if changed else None


def desired_taints(node: Mapping[str, Any], now: float) -> list[Obj] | None:
    """The node's taints with the condition taints brought up to date; None when unchanged.

    Taints this controller does not own are kept as they are; an owned taint
    that stays keeps its ``timeAdded`` (taint-based eviction counts from it).
    """
    current = [dict(t) for t in (node.get("spec") or {}).get("taints") or []]
    wanted: list[tuple[str, str]] = []
    for cond in (node.get("status") or {}).get("conditions") or []:
        key = CONDITION_TAINTS.get((str(cond.get("type")), str(cond.get("status"))))
        if key:
            wanted.append((key, "NoSchedule"))
            if cond.get("type") == "Ready":
                wanted.append((key, "NoExecute"))
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.append((UNSCHEDULABLE_TAINT, "NoSchedule"))
    kept = [t for t in current if t.get("key") not in MANAGED_TAINT_KEYS or (t.get("key"), t.get("effect")) in wanted]
    have = {(t.get("key"), t.get("effect")) for t in kept}
    for key, effect in wanted:
        if (key, effect) not in have:
            taint: Obj = {"key": key, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = rfc3339(now)
            kept.append(taint)
    return kept if kept != current else None


def ready_status(node: Mapping[str, Any]) -> str:
    ready = condition(node, "Ready")
    return str(ready.get("status")) if ready else "Unknown"
