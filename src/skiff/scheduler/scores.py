"""Score plugins over feasible nodes, each returning 0-100 per node (higher is better).

Resource scores use the *non-zero* requests (a container without requests counts
as 100m CPU / 200Mi memory) like upstream, so empty pods still spread.  Weights
are kube-scheduler's defaults (see ``framework.SCORE_WEIGHTS``).
"""

from __future__ import annotations

from skiff.api.node_affinity import term_matches, tolerates
from skiff.scheduler.cache import NodeInfo
from skiff.scheduler.podstate import PodState

MAX_SCORE = 100.0


def _fractions(state: PodState, node: NodeInfo) -> tuple[float, float]:
    cpu_alloc = node.alloc_cpu
    mem_alloc = node.alloc_memory
    cpu = (node.non_zero_cpu + state.info.non_zero[0]) / cpu_alloc if cpu_alloc else 1.0
    mem = (node.non_zero_memory + state.info.non_zero[1]) / mem_alloc if mem_alloc else 1.0
    return min(cpu, 1.0), min(mem, 1.0)


def resource_scores(state: PodState, nodes: list[NodeInfo]) -> list[float]:
    """least_allocated + balanced_allocation (both weight 1) in one pass: the hot path of every attempt."""
    pod_cpu, pod_mem = state.info.non_zero
    result: list[float] = []
    append = result.append
    for node in nodes:
        cpu_alloc, mem_alloc = node.alloc_cpu, node.alloc_memory
        cpu = (node.non_zero_cpu + pod_cpu) / cpu_alloc if cpu_alloc else 1.0
        mem = (node.non_zero_memory + pod_mem) / mem_alloc if mem_alloc else 1.0
        cpu = 1.0 if cpu > 1.0 else cpu
        mem = 1.0 if mem > 1.0 else mem
        spread = cpu - mem if cpu > mem else mem - cpu
        append(MAX_SCORE * ((2.0 - cpu - mem) / 2.0 + 1.0 - spread / 2.0))
    return result


def least_allocated(state: PodState, nodes: list[NodeInfo]) -> list[float]:
    """NodeResourcesFit (LeastAllocated, cpu and memory weighted 1:1): free share after placing the pod."""
    result = []
    for node in nodes:
        cpu, mem = _fractions(state, node)
        result.append(MAX_SCORE * ((1.0 - cpu) + (1.0 - mem)) / 2.0)
    return result


def balanced_allocation(state: PodState, nodes: list[NodeInfo]) -> list[float]:
    """NodeResourcesBalancedAllocation: 100 * (1 - std-dev of the cpu and memory fractions)."""
    result = []
    for node in nodes:
        cpu, mem = _fractions(state, node)
        result.append(MAX_SCORE * (1.0 - abs(cpu - mem) / 2.0))
    return result


def _default_normalize(raw: list[float], reverse: bool) -> list[float]:
    """helper.DefaultNormalizeScore: scale so the maximum is 100 (reverse: 100 minus that)."""
    high = max(raw) if raw else 0.0
    if high == 0:
        return [MAX_SCORE if reverse else 0.0] * len(raw)
    scaled = [MAX_SCORE * r / high for r in raw]
    return [MAX_SCORE - s for s in scaled] if reverse else scaled


def node_affinity(state: PodState, nodes: list[NodeInfo]) -> list[float] | None:
    """NodeAffinity score: sum of weights of matching preferred terms; None when the pod has none."""
    if not state.preferred_terms:
        return None
    raw = [
        float(sum(weight for weight, term in state.preferred_terms if term_matches(term, node.name, node.labels)))
        for node in nodes
    ]
    return _default_normalize(raw, reverse=False)


def taint_toleration(state: PodState, nodes: list[NodeInfo]) -> list[float] | None:
    """TaintToleration score: fewer untolerated PreferNoSchedule taints is better; None when no node has one."""
    if not any(node.soft_taints for node in nodes):
        return None
    preferring = [t for t in state.tolerations if (t.get("effect") or "PreferNoSchedule") == "PreferNoSchedule"]
    raw = [
        float(sum(1 for taint in node.soft_taints if not any(tolerates(t, taint) for t in preferring)))
        for node in nodes
    ]
    return _default_normalize(raw, reverse=True)
