"""When a pod on a NoExecute-tainted node must go: pure rules of taint-based eviction.

Upstream (pkg/controller/tainteviction, v1helper.TolerationsTolerateTaint):
for each NoExecute taint the first toleration that tolerates it is "used";
a taint no toleration tolerates means immediate eviction; otherwise the pod
may stay for the smallest ``tolerationSeconds`` among the used tolerations
(negative counts as 0), and forever when none of them sets it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from skiff.api.node_affinity import tolerates

FOREVER = -1.0


def no_execute_taints(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]


def toleration_time(tolerations: Sequence[Mapping[str, Any]], taints: Sequence[Mapping[str, Any]]) -> float | None:
    """Seconds the pod may stay: None = no NoExecute taint, 0 = evict now, FOREVER = never evict."""
    if not taints:
        return None
    used = []
    for taint in taints:
        match = next((t for t in tolerations if tolerates(t, taint)), None)
        if match is None:
            return 0.0
        used.append(match)
    seconds = [max(0.0, float(t["tolerationSeconds"])) for t in used if t.get("tolerationSeconds") is not None]
    return min(seconds) if seconds else FOREVER
