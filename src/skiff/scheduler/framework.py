"""One scheduling attempt: prefilter, filter nodes until enough fit, score them, pick the best.

Like kube-scheduler, the search stops after ``num_feasible_nodes_to_find``
feasible nodes (adaptive percentage: 50% minus 1% per 125 nodes, at least 5%,
never fewer than 100 nodes) and starts each attempt where the previous one
stopped, so every node gets its turn.  Filters run in upstream's order and a
node's first failing filter gives its reasons; a FitError turns those counts
into upstream's FailedScheduling message.  Ties between equal top scores are
broken uniformly at random (reservoir sampling, as upstream's selectHost).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from skiff.scheduler import filters, interpod, scores, spread
from skiff.scheduler.cache import NodeInfo, PodInfo, SchedulerCache
from skiff.scheduler.filters import Filter, Status
from skiff.scheduler.podstate import PodState
from skiff.scheduler.resources import CPU, MEMORY

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
NO_NODES_AVAILABLE = "no nodes available to schedule pods"
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_PREEMPTION_VICTIMS = "No preemption victims found for incoming pod"

#: kube-scheduler's default score plugin weights.
SCORE_WEIGHTS = {
    "NodeResourcesFit": 1,
    "NodeResourcesBalancedAllocation": 1,
    "NodeAffinity": 2,
    "InterPodAffinity": 2,
    "TaintToleration": 3,
    "PodTopologySpread": 2,
}

ScoreFn = Callable[[PodState, list[NodeInfo], SchedulerCache], "list[float] | None"]


def num_feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """schedulingPercentageOfNodesToScore: 0 means adaptive."""
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_nodes
    adaptive = percentage or max(50 - num_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE)
    if adaptive >= 100:
        return num_nodes
    return max(num_nodes * adaptive // 100, MIN_FEASIBLE_NODES_TO_FIND)


@dataclass
class FitError(Exception):
    """No node fits: per-reason node counts, rendered like upstream's FitError.Error()."""

    pod_key: str
    num_nodes: int
    reasons: Counter[str] = field(default_factory=Counter)
    unresolvable_nodes: int = 0
    #: Names of nodes whose failure preemption cannot fix.
    unresolvable: set[str] = field(default_factory=set)
    #: Set when preemption found victims: upstream then reports no "preemption:" part.
    preempting: bool = False

    def message(self) -> str:
        if self.num_nodes == 0:
            return NO_NODES_AVAILABLE
        histogram = sorted(f"{count} {reason}" for reason, count in self.reasons.items())
        text = f"0/{self.num_nodes} nodes are available: {', '.join(histogram)}."
        if self.preempting:
            return text
        resolvable = self.num_nodes - self.unresolvable_nodes
        preemption = []
        if resolvable:
            preemption.append(f"{resolvable} {NO_PREEMPTION_VICTIMS}")
        if self.unresolvable_nodes:
            preemption.append(f"{self.unresolvable_nodes} {PREEMPTION_NOT_HELPFUL}")
        preemption.sort()
        return f"{text} preemption: 0/{self.num_nodes} nodes are available: {', '.join(preemption)}."

    def __str__(self) -> str:
        return self.message()


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    node: str
    evaluated: int
    feasible: int


def filters_for(state: PodState) -> list[Filter]:
    """The filter chain for this pod, in upstream order, without plugins that cannot reject it."""
    chain: list[Filter] = [filters.node_unschedulable, filters.node_ready]
    if state.node_name:
        chain.append(filters.node_name)
    chain.append(filters.taint_toleration)
    if state.has_node_constraints:
        chain.append(filters.node_affinity)
    if state.info.ports:
        chain.append(filters.node_ports)
    chain.append(filters.node_resources_fit)
    if spread.NAME in state.plugin_state:
        chain.append(spread.filter_node)
    if interpod.NAME in state.plugin_state:
        chain.append(interpod.filter_node)
    return chain


def _optional_scores(fn: Callable[[PodState, list[NodeInfo]], list[float] | None]) -> ScoreFn:
    return lambda state, nodes, _cache: fn(state, nodes)


#: The two resource scores (weight 1 each) run fused as ``scores.resource_scores``.
SCORERS: dict[str, ScoreFn] = {
    "NodeAffinity": _optional_scores(scores.node_affinity),
    "TaintToleration": _optional_scores(scores.taint_toleration),
    "InterPodAffinity": interpod.score_nodes,
    "PodTopologySpread": spread.score_nodes,
}


class Framework:
    """Runs attempts against a SchedulerCache; keeps the round-robin start index between attempts."""

    def __init__(self, cache: SchedulerCache, percentage_of_nodes_to_score: int = 0, rng: random.Random | None = None):
        self.cache = cache
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self._next_start = 0
        #: Pods that preempted and the node they wait for: the room they made is theirs (key → (pod, node)).
        self.nominated: dict[str, tuple[PodInfo, str]] = {}

    def prepare(self, state: PodState) -> None:
        """PreFilter: attach the cluster-wide state of the inter-pod affinity and spread plugins."""
        ipa = interpod.prefilter(state, self.cache)
        if ipa is not None:
            state.plugin_state[interpod.NAME] = ipa
        pts = spread.prefilter(state, self.cache)
        if pts is not None:
            state.plugin_state[spread.NAME] = pts

    def schedule(self, state: PodState) -> ScheduleResult:
        """Pick a node for ``state``'s pod or raise FitError."""
        nodes = self.cache.node_list()
        if not nodes:
            raise FitError(state.info.key, 0)
        self.prepare(state)
        feasible, evaluated = self.find_feasible(state, nodes)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, evaluated, 1)
        totals = self.score(state, feasible)
        return ScheduleResult(self._select(feasible, totals), evaluated, len(feasible))

    def find_feasible(self, state: PodState, nodes: list[NodeInfo]) -> tuple[list[NodeInfo], int]:
        """Filter from the round-robin start until enough nodes fit; FitError when none does.

        A pod that only plain nodes' resources can reject (no node constraints,
        host ports, inter-pod or spread state, only cpu/memory requests) takes a
        fused check on plain nodes; any node it rejects gets the full chain, so
        reasons are always the plugins' own.
        """
        chain = filters_for(state)
        total = len(nodes)
        wanted = num_feasible_nodes_to_find(total, self.percentage)
        start = self._next_start % total
        feasible: list[NodeInfo] = []
        error = FitError(state.info.key, total)
        evaluated = 0
        fast = _fast_path(state)
        cpu, memory = state.info.requests.get(CPU, 0), state.info.requests.get(MEMORY, 0)
        reserved = self._reserved_for_others(state)
        for offset in range(total):
            node = nodes[(start + offset) % total]
            evaluated += 1
            if node.name in reserved:
                status = run_chain(chain, state, with_pods(node, reserved[node.name]))
            elif (
                fast
                and node.plain
                and len(node.pods) < node.alloc_pods
                and node.alloc_cpu - node.requested_cpu >= cpu
                and node.alloc_memory - node.requested_memory >= memory
            ):
                status = None
            else:
                status = run_chain(chain, state, node)
            if status is None:
                feasible.append(node)
                if len(feasible) >= wanted:
                    break
                continue
            error.reasons.update(status.reasons)
            if status.unresolvable:
                error.unresolvable_nodes += 1
                error.unresolvable.add(node.name)
        self._next_start = (start + evaluated) % total
        if not feasible:
            raise error
        return feasible, evaluated

    def _reserved_for_others(self, state: PodState) -> dict[str, list[PodInfo]]:
        """Nominated pods of at least this pod's priority, by node (upstream adds them before filtering)."""
        reserved: dict[str, list[PodInfo]] = {}
        for key, (info, node) in self.nominated.items():
            if key != state.info.key and info.priority >= state.info.priority and self.cache.node_of(key) is None:
                reserved.setdefault(node, []).append(info)
        return reserved

    def score(self, state: PodState, nodes: list[NodeInfo]) -> list[float]:
        totals = scores.resource_scores(state, nodes)
        for name, fn in SCORERS.items():
            values = fn(state, nodes, self.cache)
            if values is None:
                continue
            weight = SCORE_WEIGHTS[name]
            for index, value in enumerate(values):
                totals[index] += weight * value
        return totals

    def _select(self, nodes: list[NodeInfo], totals: list[float]) -> str:
        best = -1.0
        chosen = nodes[0].name
        ties = 0
        for node, total in zip(nodes, totals, strict=True):
            if total > best:
                best, chosen, ties = total, node.name, 1
            elif total == best:
                ties += 1
                if self.rng.random() * ties < 1.0:
                    chosen = node.name
        return chosen


def with_pods(node: NodeInfo, extra: list[PodInfo]) -> NodeInfo:
    """A copy of ``node`` that also counts ``extra`` pods."""
    copy = NodeInfo(node.name)
    if node.node is not None:
        copy.set_node(node.node)
    for info in [*node.pods.values(), *extra]:
        copy.add_pod(info)
    return copy


def _fast_path(state: PodState) -> bool:
    return (
        not state.node_name
        and not state.has_node_constraints
        and not state.info.ports
        and not state.plugin_state
        and all(name in (CPU, MEMORY) for name in state.info.requests)
    )


def run_chain(chain: list[Filter], state: PodState, node: NodeInfo) -> Status | None:
    for check in chain:
        status = check(state, node)
        if status is not None:
            return status
    return None
