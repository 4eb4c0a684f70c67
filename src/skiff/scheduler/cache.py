"""The scheduler's view of the cluster: one NodeInfo per node, built from informers plus assumed pods.

A pod counts against a node from the moment the scheduler *assumes* it there
(before the binding POST returns), so the next scheduling decision already sees
the resources taken, as kube-scheduler's cache does.  When the informer later
delivers the bound pod, the assumed entry is confirmed; a failed binding
``forget``s it.  Pods in a terminal phase hold no resources and are dropped.
Nodes the cache has not seen yet still collect their pods (a placeholder
NodeInfo with ``node`` None), which is not offered for scheduling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.scheduler.resources import (
    CPU,
    MEMORY,
    PODS,
    HostPort,
    Obj,
    Resources,
    host_ports,
    non_zero_requests,
    pod_requests,
    resource_list,
)

TERMINAL_PHASES = ("Succeeded", "Failed")


def pod_key(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


@dataclass(slots=True)
class PodInfo:
    """A pod with what the filters need precomputed once."""

    key: str
    pod: Obj
    namespace: str
    labels: dict[str, str]
    requests: Resources
    non_zero: tuple[int, int]
    ports: list[HostPort]
    has_affinity: bool
    has_required_anti_affinity: bool
    priority: int = 0
    terminating: bool = False

    @classmethod
    def of(cls, pod: Obj) -> PodInfo:
        meta = pod.get("metadata") or {}
        affinity = (pod.get("spec") or {}).get("affinity") or {}
        anti = affinity.get("podAntiAffinity") or {}
        return cls(
            key=pod_key(pod),
            pod=pod,
            namespace=meta.get("namespace") or "",
            labels=meta.get("labels") or {},
            requests=pod_requests(pod),
            non_zero=non_zero_requests(pod),
            ports=host_ports(pod),
            has_affinity=bool(affinity.get("podAffinity") or anti),
            has_required_anti_affinity=bool(anti.get("requiredDuringSchedulingIgnoredDuringExecution")),
            priority=int((pod.get("spec") or {}).get("priority") or 0),
            terminating=bool(meta.get("deletionTimestamp")),
        )


@dataclass(slots=True)
class NodeInfo:
    """One node and the pods the scheduler counts on it."""

    name: str
    node: Obj | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    allocatable: Resources = field(default_factory=dict)
    unschedulable: bool = False
    ready: bool = False
    pods: dict[str, PodInfo] = field(default_factory=dict)
    requested: Resources = field(default_factory=dict)
    non_zero_cpu: int = 0
    non_zero_memory: int = 0
    used_ports: set[HostPort] = field(default_factory=set)
    # Hot-path copies of the numbers every attempt reads (milli-CPU, bytes, pod count).
    alloc_cpu: int = 0
    alloc_memory: int = 0
    alloc_pods: int = 0
    requested_cpu: int = 0
    requested_memory: int = 0
    #: Ready, not cordoned, no NoSchedule/NoExecute taint: only resources can reject a plain pod here.
    plain: bool = False
    #: The node's PreferNoSchedule taints (the TaintToleration score reads only these).
    soft_taints: list[Obj] = field(default_factory=list)

    def set_node(self, node: Obj) -> None:
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        self.node = node
        self.labels = meta.get("labels") or {}
        self.taints = spec.get("taints") or []
        self.allocatable = resource_list(status.get("allocatable") or status.get("capacity"))
        self.unschedulable = bool(spec.get("unschedulable"))
        self.ready = node_is_ready(node)
        self.alloc_cpu = self.allocatable.get(CPU, 0)
        self.alloc_memory = self.allocatable.get(MEMORY, 0)
        self.alloc_pods = self.allocatable.get(PODS, 0)
        hard_taint = any(t.get("effect") in ("NoSchedule", "NoExecute") for t in self.taints)
        self.plain = self.ready and not self.unschedulable and not hard_taint
        self.soft_taints = [t for t in self.taints if t.get("effect") == "PreferNoSchedule"]

    def add_pod(self, info: PodInfo) -> None:
        self.pods[info.key] = info
        for name, value in info.requests.items():
            self.requested[name] = self.requested.get(name, 0) + value
        self.non_zero_cpu += info.non_zero[0]
        self.non_zero_memory += info.non_zero[1]
        self.requested_cpu = self.requested.get(CPU, 0)
        self.requested_memory = self.requested.get(MEMORY, 0)
        self.used_ports.update(info.ports)

    def remove_pod(self, key: str) -> PodInfo | None:
        info = self.pods.pop(key, None)
        if info is None:
            return None
        for name, value in info.requests.items():
            self.requested[name] = self.requested.get(name, 0) - value
        self.non_zero_cpu -= info.non_zero[0]
        self.non_zero_memory -= info.non_zero[1]
        self.requested_cpu = self.requested.get(CPU, 0)
        self.requested_memory = self.requested.get(MEMORY, 0)
        if info.ports:
            self.used_ports = {port for other in self.pods.values() for port in other.ports}
        return info


def node_is_ready(node: Mapping[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


class SchedulerCache:
    """NodeInfos by node name, and which node each counted pod is on."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._pod_node: dict[str, str] = {}
        self._assumed: set[str] = set()
        #: Counted pods with inter-pod (anti-)affinity and their node: the InterPodAffinity plugin reads only these.
        self.affinity_pods: dict[str, tuple[PodInfo, str]] = {}
        self._order: list[NodeInfo] | None = None

    # --- nodes -------------------------------------------------------------------------------

    def add_node(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name") or ""
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name)
            self._order = None
        elif info.node is None:
            self._order = None
        info.set_node(node)

    update_node = add_node

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        self._order = None
        if info.pods:
            info.node = None  # pods still point here until their deletions arrive
        else:
            del self.nodes[name]

    def node_list(self) -> list[NodeInfo]:
        """Known nodes (placeholders excluded) in a stable order, for the scheduling cycle."""
        if self._order is None:
            self._order = [info for _, info in sorted(self.nodes.items()) if info.node is not None]
        return self._order

    # --- pods --------------------------------------------------------------------------------

    def add_pod(self, pod: Obj) -> None:
        """A bound pod seen by the informer (confirms an assumed pod)."""
        key = pod_key(pod)
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        if not node_name:
            return
        self._assumed.discard(key)
        self._remove(key)
        if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            return
        self._place(key, node_name, PodInfo.of(pod))

    update_pod = add_pod

    def remove_pod(self, pod: Obj) -> None:
        key = pod_key(pod)
        self._assumed.discard(key)
        self._remove(key)

    def assume_pod(self, pod: Obj, node_name: str) -> None:
        """Count ``pod`` on ``node_name`` before its binding is confirmed."""
        assumed = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node_name}}
        key = pod_key(pod)
        self._remove(key)
        self._assumed.add(key)
        self._place(key, node_name, PodInfo.of(assumed))

    def forget_pod(self, key: str) -> None:
        """Undo ``assume_pod`` after a failed binding."""
        if key in self._assumed:
            self._assumed.discard(key)
            self._remove(key)

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def node_of(self, key: str) -> str | None:
        return self._pod_node.get(key)

    def _place(self, key: str, node_name: str, info: PodInfo) -> None:
        node = self.nodes.get(node_name)
        if node is None:
            node = self.nodes[node_name] = NodeInfo(node_name)
        node.add_pod(info)
        self._pod_node[key] = node_name
        if info.has_affinity:
            self.affinity_pods[key] = (info, node_name)

    def _remove(self, key: str) -> None:
        node_name = self._pod_node.pop(key, None)
        if node_name is None:
            return
        self.affinity_pods.pop(key, None)
        node = self.nodes.get(node_name)
        if node is None:
            return
        node.remove_pod(key)
        if node.node is None and not node.pods:
            del self.nodes[node_name]
