"""InterPodAffinity: required pod affinity and anti-affinity (filter) and the preferred terms (score).

Counts are kept per topology pair (topologyKey, the node's value for it), as
upstream's interpodaffinity plugin does:

* existing pods' required anti-affinity terms that match the incoming pod block
  every node in the same topology domain as that existing pod;
* the incoming pod's required anti-affinity terms block domains holding a
  matching pod; its required affinity terms need a matching pod in the node's
  domain for every term, except that the first pod of a group that matches its
  own terms may go anywhere (no matching pod exists yet).

A term's namespaces are its ``namespaces`` list, or the pod's own namespace when
the list is empty; an empty ``namespaceSelector`` ({}) means every namespace.  A
non-empty namespaceSelector needs namespace labels, which the scheduler does not
watch: such a term counts only its listed namespaces (a documented gap).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from skiff.api.selectors import LabelSelector, label_selector_from_structured
from skiff.api.status import ApiError
from skiff.scheduler.cache import NodeInfo, PodInfo, SchedulerCache
from skiff.scheduler.filters import Status
from skiff.scheduler.podstate import PodState

NAME = "InterPodAffinity"
#: Weight of existing pods' *required* affinity terms in the score (hardPodAffinityWeight default).
HARD_POD_AFFINITY_WEIGHT = 1

ERR_AFFINITY = Status(("node(s) didn't match pod affinity rules",), unresolvable=True)
ERR_ANTI_AFFINITY = Status(("node(s) didn't match pod anti-affinity rules",))
ERR_EXISTING_ANTI_AFFINITY = Status(("node(s) didn't satisfy existing pods anti-affinity rules",))

Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Term:
    selector: LabelSelector
    namespaces: frozenset[str] | None  # None: every namespace
    topology_key: str
    weight: int = 0

    def matches(self, pod: PodInfo) -> bool:
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            return False
        return self.selector.matches(pod.labels)


def parse_term(term: dict[str, Any], namespace: str, weight: int = 0) -> Term:
    try:
        selector = label_selector_from_structured(term.get("labelSelector"))
    except ApiError:
        selector = LabelSelector.match_nothing()
    names = frozenset(term.get("namespaces") or [])
    ns_selector = term.get("namespaceSelector")
    namespaces: frozenset[str] | None
    if ns_selector is not None and not ns_selector.get("matchLabels") and not ns_selector.get("matchExpressions"):
        namespaces = None
    else:
        namespaces = names or (frozenset((namespace,)) if ns_selector is None else frozenset())
    return Term(selector, namespaces, term.get("topologyKey") or "", weight)


def pod_terms(pod: PodInfo, kind: str, required: bool) -> list[Term]:
    """The pod's ``podAffinity``/``podAntiAffinity`` terms, required or preferred (with weights)."""
    section = (((pod.pod.get("spec") or {}).get("affinity") or {}).get(kind)) or {}
    if required:
        required_terms = section.get("requiredDuringSchedulingIgnoredDuringExecution") or []
        return [parse_term(t, pod.namespace) for t in required_terms]
    return [
        parse_term(w.get("podAffinityTerm") or {}, pod.namespace, int(w.get("weight") or 0))
        for w in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []
    ]


@dataclass(slots=True)
class InterPodState:
    affinity: list[Term]
    anti_affinity: list[Term]
    existing_anti: Counter[Pair]
    affinity_counts: Counter[Pair]
    anti_counts: Counter[Pair]
    matches_own_affinity: bool


def _all_pods(cache: SchedulerCache) -> Iterable[tuple[PodInfo, NodeInfo]]:
    for node in cache.nodes.values():
        if node.node is not None:
            for info in node.pods.values():
                yield info, node


def prefilter(state: PodState, cache: SchedulerCache) -> InterPodState | None:
    """Counts for the filter, or None when neither the pod nor any existing pod has required terms."""
    incoming = state.info
    affinity = pod_terms(incoming, "podAffinity", True) if incoming.has_affinity else []
    anti = pod_terms(incoming, "podAntiAffinity", True) if incoming.has_affinity else []
    existing_anti: Counter[Pair] = Counter()
    for info, node_name in cache.affinity_pods.values():
        if not info.has_required_anti_affinity or info.key == incoming.key:
            continue
        node = cache.nodes.get(node_name)
        if node is None or node.node is None:
            continue
        for term in pod_terms(info, "podAntiAffinity", True):
            value = node.labels.get(term.topology_key)
            if value is not None and term.matches(incoming):
                existing_anti[(term.topology_key, value)] += 1
    if not affinity and not anti and not existing_anti:
        return None
    affinity_counts: Counter[Pair] = Counter()
    anti_counts: Counter[Pair] = Counter()
    if affinity or anti:
        for info, node in _all_pods(cache):
            if info.key == incoming.key:
                continue
            if affinity and all(term.matches(info) for term in affinity):
                for term in affinity:
                    value = node.labels.get(term.topology_key)
                    if value is not None:
                        affinity_counts[(term.topology_key, value)] += 1
            for term in anti:
                value = node.labels.get(term.topology_key)
                if value is not None and term.matches(info):
                    anti_counts[(term.topology_key, value)] += 1
    own = bool(affinity) and all(term.matches(incoming) for term in affinity)
    return InterPodState(affinity, anti, existing_anti, affinity_counts, anti_counts, own)


def filter_node(state: PodState, node: NodeInfo) -> Status | None:
    """Upstream's order: the pod's affinity, its anti-affinity, then existing pods' anti-affinity."""
    ipa: InterPodState | None = state.plugin_state.get(NAME)
    if ipa is None:
        return None
    labels = node.labels
    if ipa.affinity and not _satisfies_affinity(ipa, labels):
        return ERR_AFFINITY
    for term in ipa.anti_affinity:
        value = labels.get(term.topology_key)
        if value is not None and ipa.anti_counts[(term.topology_key, value)] > 0:
            return ERR_ANTI_AFFINITY
    for (key, domain), count in ipa.existing_anti.items():
        if count > 0 and labels.get(key) == domain:
            return ERR_EXISTING_ANTI_AFFINITY
    return None


def _satisfies_affinity(ipa: InterPodState, labels: dict[str, str]) -> bool:
    for term in ipa.affinity:
        value = labels.get(term.topology_key)
        if value is None:
            return False  # every topology key must be on the node
        if ipa.affinity_counts[(term.topology_key, value)] <= 0:
            # No matching pod anywhere yet: the first pod of a self-matching group may go anywhere.
            return not ipa.affinity_counts and ipa.matches_own_affinity
    return True


def topology_scores(state: PodState, cache: SchedulerCache) -> Counter[Pair] | None:
    """PreScore: weight per topology pair from preferred terms in both directions; None when nothing applies."""
    incoming = state.info
    preferred = pod_terms(incoming, "podAffinity", False) if incoming.has_affinity else []
    preferred_anti = pod_terms(incoming, "podAntiAffinity", False) if incoming.has_affinity else []
    scores: Counter[Pair] = Counter()
    if preferred or preferred_anti:
        for info, node in _all_pods(cache):
            for term, sign in [*((t, 1) for t in preferred), *((t, -1) for t in preferred_anti)]:
                value = node.labels.get(term.topology_key)
                if value is not None and term.matches(info):
                    scores[(term.topology_key, value)] += sign * term.weight
    for info, node_name in cache.affinity_pods.values():
        holder = cache.nodes.get(node_name)
        if holder is None or info.key == incoming.key:
            continue
        weighted = [
            *((t, t.weight) for t in pod_terms(info, "podAffinity", False)),
            *((t, -t.weight) for t in pod_terms(info, "podAntiAffinity", False)),
            *((t, HARD_POD_AFFINITY_WEIGHT) for t in pod_terms(info, "podAffinity", True)),
        ]
        for term, weight in weighted:
            value = holder.labels.get(term.topology_key)
            if value is not None and term.matches(incoming):
                scores[(term.topology_key, value)] += weight
    return scores if any(scores.values()) else None


def score_nodes(state: PodState, nodes: list[NodeInfo], cache: SchedulerCache) -> list[float] | None:
    """Scores 0-100 by min-max normalisation of each node's topology weight sum."""
    scores = topology_scores(state, cache)
    if scores is None:
        return None
    raw = [sum(w for (key, value), w in scores.items() if node.labels.get(key) == value) for node in nodes]
    low, high = min(raw), max(raw)
    if high == low:
        return [0.0] * len(nodes)
    return [100.0 * (r - low) / (high - low) for r in raw]
