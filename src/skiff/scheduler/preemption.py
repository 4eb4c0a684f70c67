"""DefaultPreemption (PostFilter), simplified: make room for a pod by evicting lower-priority pods.

After a FitError, for every node whose failure preemption could fix: remove
all pods of lower priority, check the pod fits, then give back ("reprieve")
as many of them as possible, highest priority first, so the victims are the
fewest needed.  The chosen node is upstream's pickOneNodeForPreemption order
without PodDisruptionBudgets: lowest highest-victim priority, then smallest
sum of victim priorities, then fewest victims, then the first found.

A pod with ``preemptionPolicy: Never`` never preempts; a pod whose nominated
node still has terminating lower-priority pods waits for them instead of
choosing more victims (upstream's PodEligibleToPreemptOthers).  Simplified:
inter-pod affinity and topology spread state are not recomputed without the
victims.  The framework keeps the room made for a nominated pod from pods of
lower priority (``Framework.nominated``).
"""

from __future__ import annotations

from dataclasses import dataclass

from skiff.scheduler.cache import NodeInfo, PodInfo, SchedulerCache
from skiff.scheduler.filters import Filter
from skiff.scheduler.framework import filters_for, run_chain
from skiff.scheduler.podstate import PodState

MIN_CANDIDATES = 100
MIN_CANDIDATES_PERCENTAGE = 10


@dataclass(frozen=True, slots=True)
class Candidate:
    node: str
    victims: list[PodInfo]

    def rank(self) -> tuple[int, int, int]:
        priorities = [v.priority for v in self.victims]
        return (max(priorities), sum(priorities), len(priorities))


def eligible(state: PodState, cache: SchedulerCache, nominated: str | None) -> bool:
    spec = state.pod.get("spec") or {}
    if spec.get("preemptionPolicy") == "Never":
        return False
    node = cache.nodes.get(nominated) if nominated else None
    if node is not None:
        return not any(p.terminating and p.priority < state.info.priority for p in node.pods.values())
    return True


def _without(node: NodeInfo, removed: set[str]) -> NodeInfo:
    trial = NodeInfo(node.name)
    if node.node is not None:
        trial.set_node(node.node)
    for key, info in node.pods.items():
        if key not in removed:
            trial.add_pod(info)
    return trial


def victims_on(state: PodState, node: NodeInfo, chain: list[Filter]) -> list[PodInfo] | None:
    """The fewest lower-priority pods whose removal lets the pod fit on ``node``, or None."""
    lower = [p for p in node.pods.values() if p.priority < state.info.priority and not p.terminating]
    if not lower:
        return None
    trial = _without(node, {p.key for p in lower})
    if run_chain(chain, state, trial) is not None:
        return None
    victims = []
    for pod in sorted(lower, key=lambda p: -p.priority):
        trial.add_pod(pod)
        if run_chain(chain, state, trial) is not None:
            trial.remove_pod(pod.key)
            victims.append(pod)
    return victims


def find_candidate(state: PodState, cache: SchedulerCache, unresolvable: set[str]) -> Candidate | None:
    """The node to preempt on and its victims, or None when preemption cannot help.

    Like upstream, the search stops after max(100, 10% of the nodes) candidates.
    """
    chain = filters_for(state)
    nodes = cache.node_list()
    enough = max(MIN_CANDIDATES, len(nodes) * MIN_CANDIDATES_PERCENTAGE // 100)
    best: Candidate | None = None
    found = 0
    for node in nodes:
        if node.name in unresolvable:
            continue
        victims = victims_on(state, node, chain)
        if not victims:
            continue
        candidate = Candidate(node.name, victims)
        if best is None or candidate.rank() < best.rank():
            best = candidate
        found += 1
        if found >= enough:
            break
    return best
