"""Filter plugins: may this pod run on this node?  Pure functions over PodState and NodeInfo.

Each returns None when the node fits, or a ``Status`` carrying upstream's
reason strings (they end up, counted, in the FailedScheduling message) and
whether preemption could help (``unresolvable`` False) or not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from skiff.api.node_affinity import any_term_matches, first_untolerated, selector_matches, tolerated
from skiff.scheduler.cache import NodeInfo
from skiff.scheduler.podstate import PodState
from skiff.scheduler.resources import PODS, ports_conflict


@dataclass(frozen=True, slots=True)
class Status:
    reasons: tuple[str, ...]
    unresolvable: bool = False


Filter = Callable[[PodState, NodeInfo], Status | None]

UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
NOT_READY_TAINTS = (
    {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
)

ERR_UNSCHEDULABLE = Status(("node(s) were unschedulable",), unresolvable=True)
ERR_NOT_READY = Status(("node(s) were not ready",), unresolvable=True)
ERR_NODE_NAME = Status(("node(s) didn't match the requested node name",), unresolvable=True)
ERR_NODE_AFFINITY = Status(("node(s) didn't match Pod's node affinity/selector",), unresolvable=True)
ERR_NODE_PORTS = Status(("node(s) didn't have free ports for the requested pod ports",))
ERR_TOO_MANY_PODS = "Too many pods"


def node_unschedulable(state: PodState, node: NodeInfo) -> Status | None:
    """NodeUnschedulable: cordoned nodes take only pods tolerating node.kubernetes.io/unschedulable."""
    if node.unschedulable and not tolerated(state.tolerations, UNSCHEDULABLE_TAINT):
        return ERR_UNSCHEDULABLE
    return None


def node_ready(state: PodState, node: NodeInfo) -> Status | None:
    """NodeReady: skip nodes whose Ready condition is not True, unless the pod tolerates not-ready.

    Upstream relies on the node lifecycle controller's not-ready taints alone; this
    filter also covers the window before those taints land.
    """
    if node.ready or all(tolerated(state.tolerations, taint) for taint in NOT_READY_TAINTS):
        return None
    return ERR_NOT_READY


def node_name(state: PodState, node: NodeInfo) -> Status | None:
    if state.node_name and state.node_name != node.name:
        return ERR_NODE_NAME
    return None


def node_affinity(state: PodState, node: NodeInfo) -> Status | None:
    """NodeAffinity: spec.nodeSelector and required node affinity must both match."""
    if state.node_selector and not selector_matches(state.node_selector, node.labels):
        return ERR_NODE_AFFINITY
    if state.required_terms is not None and not any_term_matches(state.required_terms, node.name, node.labels):
        return ERR_NODE_AFFINITY
    return None


def node_ports(state: PodState, node: NodeInfo) -> Status | None:
    used = node.used_ports
    if used and any(ports_conflict(port, used) for port in state.info.ports):
        return ERR_NODE_PORTS
    return None


def node_resources_fit(state: PodState, node: NodeInfo) -> Status | None:
    """NodeResourcesFit: pod count, then every requested resource against allocatable minus requested."""
    reasons: list[str] = []
    allocatable = node.allocatable
    if len(node.pods) + 1 > allocatable.get(PODS, 0):
        reasons.append(ERR_TOO_MANY_PODS)
    requested = node.requested
    for name, value in state.info.requests.items():
        if value > allocatable.get(name, 0) - requested.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return Status(tuple(reasons)) if reasons else None


def taint_toleration(state: PodState, node: NodeInfo) -> Status | None:
    if not node.taints:
        return None
    taint = first_untolerated(node.taints, state.tolerations, ("NoSchedule", "NoExecute"))
    if taint is None:
        return None
    return Status((f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}",), True)
