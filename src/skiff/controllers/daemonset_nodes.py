"""Which nodes should run a DaemonSet's pod: the pure predicates of the DaemonSet controller.

Upstream: ``NodeShouldRunDaemonPod`` and ``predicates`` (pkg/controller/daemon/
daemon_controller.go), ``AddOrUpdateDaemonPodTolerations`` and
``ReplaceDaemonSetPodNodeNameNodeAffinity`` (pkg/controller/daemon/util).

A node *should run* a daemon pod when the pod's ``nodeName`` (if any), its
``nodeSelector`` and required node affinity all match the node and every
NoSchedule/NoExecute taint is tolerated.  A pod already running on a node
*should continue running* when only NoSchedule taints are untolerated (a
NoExecute taint would evict it anyway).  Daemon pods always tolerate the
node-condition taints the DaemonSet controller adds, so they keep running on
NotReady/unreachable nodes and on nodes under pressure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from skiff.api.node_affinity import term_matches, tolerated

Obj = dict[str, Any]

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
PID_PRESSURE = "node.kubernetes.io/pid-pressure"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"


def daemon_pod_tolerations(pod_spec: Mapping[str, Any]) -> list[Obj]:
    """The template's tolerations plus the ones every daemon pod gets (AddOrUpdateDaemonPodTolerations)."""
    tolerations = [dict(t) for t in pod_spec.get("tolerations") or []]
    extra = [
        {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"},
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
        {"key": DISK_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
        {"key": MEMORY_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
        {"key": PID_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
        {"key": UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"},
    ]
    if pod_spec.get("hostNetwork"):
        extra.append({"key": NETWORK_UNAVAILABLE, "operator": "Exists", "effect": "NoSchedule"})
    for toleration in extra:
        # AddOrUpdateTolerationInPod: replace an existing toleration for the same key/effect.
        tolerations = [
            t
            for t in tolerations
            if not (t.get("key") == toleration["key"] and t.get("effect") == toleration["effect"])
        ]
        tolerations.append(toleration)
    return tolerations


def node_name_affinity(affinity: Mapping[str, Any] | None, node_name: str) -> Obj:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: require ``metadata.name In [node]`` in every term."""
    result: Obj = copy.deepcopy(dict(affinity or {}))
    node_affinity = result.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    field = {"key": "metadata.name", "operator": "In", "values": [node_name]}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        required["nodeSelectorTerms"] = [{"matchFields": [field]}]
        return result
    for term in terms:
        term["matchFields"] = [field]
    return result


def daemon_pod_spec(template_spec: Mapping[str, Any], node_name: str) -> Obj:
    """The spec of the daemon pod for ``node_name``: template + default tolerations + node-name affinity."""
    spec: Obj = copy.deepcopy(dict(template_spec))
    spec["tolerations"] = daemon_pod_tolerations(template_spec)
    spec["affinity"] = node_name_affinity(template_spec.get("affinity"), node_name)
    return spec


def untolerated_taints(
    taints: Sequence[Mapping[str, Any]], tolerations: Sequence[Mapping[str, Any]], effects: set[str]
) -> list[Obj]:
    """Taints with one of ``effects`` that no toleration tolerates."""
    return [dict(taint) for taint in taints if taint.get("effect") in effects and not tolerated(tolerations, taint)]


def node_selector_term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A NodeSelectorTerm: its matchExpressions (labels) and matchFields (metadata.name) all hold; empty → no."""
    meta = node.get("metadata") or {}
    return term_matches(term, str(meta.get("name") or ""), meta.get("labels") or {})


def node_affinity_matches(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """nodeSelector (every pair) and required node affinity (any term) both match the node."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return True
    return any(node_selector_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def node_should_run_daemon_pod(node: Mapping[str, Any], template_spec: Mapping[str, Any]) -> tuple[bool, bool]:
    """(should run, should continue running) for a daemon pod of ``template_spec`` on ``node``."""
    node_name = (node.get("metadata") or {}).get("name") or ""
    wanted = template_spec.get("nodeName")
    if wanted and wanted != node_name:
        return False, False
    if not node_affinity_matches(template_spec, node):
        return False, False
    taints = (node.get("spec") or {}).get("taints") or []
    tolerations = daemon_pod_tolerations(template_spec)
    if untolerated_taints(taints, tolerations, {"NoSchedule", "NoExecute"}):
        return False, not untolerated_taints(taints, tolerations, {"NoExecute"})
    return True, True
