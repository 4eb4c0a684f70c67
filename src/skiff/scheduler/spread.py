"""PodTopologySpread: DoNotSchedule constraints filter, ScheduleAnyway constraints score.

As upstream: matching pods (same namespace, the constraint's selector plus
``matchLabelKeys`` taken from the incoming pod) are counted per domain over the
nodes that are eligible — nodes with every constraint's topology key and, under
the default ``nodeAffinityPolicy: Honor``, matching the pod's nodeSelector and
required node affinity (``nodeTaintsPolicy: Honor`` also drops nodes with
untolerated taints).  A node fits when ``count(domain) + self - min(domains) <=
maxSkew``; fewer domains than ``minDomains`` make the global minimum 0.  The
score is lower-is-better, weighted by log(domains + 2) and normalised to 0-100.
Upstream's system default constraints (applied to pods without any) are not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from skiff.api.node_affinity import any_term_matches, first_untolerated, selector_matches
from skiff.api.selectors import EQUALS, LabelSelector, Requirement, label_selector_from_structured
from skiff.api.status import ApiError
from skiff.scheduler.cache import NodeInfo, SchedulerCache
from skiff.scheduler.filters import Status
from skiff.scheduler.podstate import PodState

NAME = "PodTopologySpread"
ERR_CONSTRAINTS = Status(("node(s) didn't match pod topology spread constraints",))
ERR_MISSING_LABEL = Status(("node(s) didn't match pod topology spread constraints (missing required label)",), True)


@dataclass(frozen=True, slots=True)
class Constraint:
    max_skew: int
    topology_key: str
    selector: LabelSelector
    hard: bool
    min_domains: int
    honor_affinity: bool
    honor_taints: bool


def constraints(state: PodState) -> list[Constraint]:
    pod = state.info
    result = []
    for item in (state.pod.get("spec") or {}).get("topologySpreadConstraints") or []:
        try:
            selector = label_selector_from_structured(item.get("labelSelector"))
        except ApiError:
            selector = LabelSelector.match_nothing()
        extra = [Requirement(k, EQUALS, (pod.labels[k],)) for k in item.get("matchLabelKeys") or [] if k in pod.labels]
        if extra and not selector.nothing:
            selector = LabelSelector((*selector.requirements, *extra))
        result.append(
            Constraint(
                max_skew=int(item.get("maxSkew") or 1),
                topology_key=item.get("topologyKey") or "",
                selector=selector,
                hard=(item.get("whenUnsatisfiable") or "DoNotSchedule") == "DoNotSchedule",
                min_domains=int(item.get("minDomains") or 1),
                honor_affinity=(item.get("nodeAffinityPolicy") or "Honor") == "Honor",
                honor_taints=(item.get("nodeTaintsPolicy") or "Ignore") == "Honor",
            )
        )
    return result


@dataclass(slots=True)
class SpreadState:
    constraints: list[Constraint]
    #: Per constraint: matching pods per domain value (every eligible domain present, possibly 0).
    counts: list[dict[str, int]]
    minimums: list[int]
    self_match: list[int]


def _eligible(state: PodState, node: NodeInfo, c: Constraint) -> bool:
    if c.honor_affinity:
        if state.node_selector and not selector_matches(state.node_selector, node.labels):
            return False
        if state.required_terms is not None and not any_term_matches(state.required_terms, node.name, node.labels):
            return False
    if c.honor_taints and first_untolerated(node.taints, state.tolerations, ("NoSchedule", "NoExecute")):
        return False
    return True


def _count(cache: SchedulerCache, state: PodState, chosen: list[Constraint]) -> SpreadState:
    counts: list[dict[str, int]] = [{} for _ in chosen]
    namespace = state.info.namespace
    for node in cache.node_list():
        if any(c.topology_key not in node.labels for c in chosen):
            continue
        for index, c in enumerate(chosen):
            if not _eligible(state, node, c):
                continue
            matching = sum(
                1
                for p in node.pods.values()
                if p.namespace == namespace
                and not (p.pod.get("metadata") or {}).get("deletionTimestamp")
                and c.selector.matches(p.labels)
            )
            value = node.labels[c.topology_key]
            counts[index][value] = counts[index].get(value, 0) + matching
    minimums = []
    for c, domains in zip(chosen, counts, strict=True):
        minimums.append(0 if not domains or len(domains) < c.min_domains else min(domains.values()))
    self_match = [1 if c.selector.matches(state.info.labels) else 0 for c in chosen]
    return SpreadState(chosen, counts, minimums, self_match)


def prefilter(state: PodState, cache: SchedulerCache) -> SpreadState | None:
    hard = [c for c in constraints(state) if c.hard]
    return _count(cache, state, hard) if hard else None


def filter_node(state: PodState, node: NodeInfo) -> Status | None:
    spread: SpreadState | None = state.plugin_state.get(NAME)
    if spread is None:
        return None
    for index, c in enumerate(spread.constraints):
        value = node.labels.get(c.topology_key)
        if value is None:
            return ERR_MISSING_LABEL
        skew = spread.counts[index].get(value, 0) + spread.self_match[index] - spread.minimums[index]
        if skew > c.max_skew:
            return ERR_CONSTRAINTS
    return None


def score_nodes(state: PodState, nodes: list[NodeInfo], cache: SchedulerCache) -> list[float] | None:
    soft = [c for c in constraints(state) if not c.hard]
    if not soft:
        return None
    spread = _count(cache, state, soft)
    weights = [math.log(len(domains) + 2) for domains in spread.counts]
    raw: list[float | None] = []
    for node in nodes:
        if any(c.topology_key not in node.labels for c in soft):
            raw.append(None)
            continue
        total = 0.0
        for index, c in enumerate(soft):
            total += spread.counts[index].get(node.labels[c.topology_key], 0) * weights[index] + (c.max_skew - 1)
        raw.append(total)
    present = [r for r in raw if r is not None]
    if not present:
        return [0.0] * len(nodes)
    low, high = min(present), max(present)
    return [0.0 if r is None else (100.0 if high == 0 else 100.0 * (high + low - r) / high) for r in raw]
