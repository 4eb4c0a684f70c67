"""Everything about the pod being scheduled that the plugins read, computed once per attempt.

This is the PreFilter step of kube-scheduler's framework: the pod's spec is read
and parsed here so the per-node filter and score functions only compare numbers
and dict entries.  Cluster-wide state for inter-pod affinity and topology spread
is attached by those plugins' own prefilters (``interpod``, ``spread``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from skiff.scheduler.cache import PodInfo
from skiff.scheduler.resources import Obj


@dataclass(slots=True)
class PodState:
    pod: Obj
    info: PodInfo
    node_name: str
    node_selector: dict[str, str]
    #: Required node affinity terms (ORed); None when the pod has none.
    required_terms: list[Obj] | None
    #: (weight, NodeSelectorTerm) of preferred node affinity.
    preferred_terms: list[tuple[int, Obj]]
    tolerations: list[Obj]
    #: Per-plugin prefilter results (InterPodAffinity, PodTopologySpread), keyed by plugin name.
    plugin_state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, pod: Obj) -> PodState:
        spec = pod.get("spec") or {}
        node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        preferred = [
            (int(item.get("weight") or 0), item.get("preference") or {})
            for item in node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ]
        return cls(
            pod=pod,
            info=PodInfo.of(pod),
            node_name=spec.get("nodeName") or "",
            node_selector=spec.get("nodeSelector") or {},
            required_terms=(required.get("nodeSelectorTerms") or []) if required is not None else None,
            preferred_terms=preferred,
            tolerations=spec.get("tolerations") or [],
        )

    @property
    def has_node_constraints(self) -> bool:
        return bool(self.node_selector) or self.required_terms is not None
