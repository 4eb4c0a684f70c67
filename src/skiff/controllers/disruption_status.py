"""PodDisruptionBudget status arithmetic: pure functions.

Upstream (pkg/controller/disruption/disruption.go, getExpectedPodCount,
countHealthyPods, updatePdbStatus):

* ``maxUnavailable`` (int or %) and percentage ``minAvailable`` count
  against the scale of the pods' controllers (Deployment, ReplicaSet,
  StatefulSet, ReplicationController), each controller counted once; a pod
  without a controller, or whose controller is unknown, is an error;
* integer ``minAvailable`` counts against the number of matching pods;
* percentages round up; ``desiredHealthy`` never goes below 0;
* a pod is healthy when Ready and not being deleted;
* ``disruptionsAllowed = max(0, currentHealthy - desiredHealthy)`` and the
  ``DisruptionAllowed`` condition is True (SufficientPods) only when it is
  above 0, False (InsufficientPods) otherwise, False (SyncFailed) on error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skiff.controllers.endpoints_pods import is_pod_ready, is_terminating

Obj = dict[str, Any]
#: Looks up a pod's controller: (ownerReference, namespace) → (uid of the scaled object, replicas) or None.
ScaleFinder = Callable[[Mapping[str, Any], str], tuple[str, int] | None]


class PdbError(Exception):
    """The budget cannot be computed (the message goes into the SyncFailed condition)."""


@dataclass(frozen=True)
class PdbCounts:
    expected: int
    desired_healthy: int
    current_healthy: int

    @property
    def disruptions_allowed(self) -> int:
        return max(0, self.current_healthy - self.desired_healthy)


def scaled_value(value: int | str, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent with roundUp=true."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.endswith("%"):
        try:
            percent = int(text[:-1])
        except ValueError as exc:
            raise PdbError(f"invalid value for IntOrString: invalid value {text!r}") from exc
        return math.ceil(percent * total / 100)
    try:
        return int(text)
    except ValueError as exc:
        raise PdbError(f"invalid value for IntOrString: invalid type: string is not a percentage: {text!r}") from exc


def is_percent(value: Any) -> bool:
    return isinstance(value, str) and value.strip().endswith("%")


def expected_scale(pods: Iterable[Mapping[str, Any]], find: ScaleFinder) -> int:
    """Sum of the replicas of the pods' controllers, each counted once."""
    seen: dict[str, int] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        ref = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
        if ref is None:
            raise PdbError(f"found no controller ref for pod {meta.get('name')!r}")
        found = find(ref, str(meta.get("namespace", "")))
        if found is None:
            raise PdbError(f"found no controllers for pod {meta.get('name')!r}")
        uid, replicas = found
        seen[uid] = replicas
    return sum(seen.values())


def count_healthy(pods: Iterable[Mapping[str, Any]]) -> int:
    return sum(1 for pod in pods if not is_terminating(pod) and is_pod_ready(pod))


def compute_counts(pdb: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], find: ScaleFinder) -> PdbCounts:
    spec = pdb.get("spec") or {}
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    expected, desired = 0, 0
    if max_unavailable is not None:
        expected = expected_scale(pods, find)
        desired = max(0, expected - scaled_value(max_unavailable, expected))
    elif min_available is not None:
        if is_percent(min_available):
            expected = expected_scale(pods, find)
            desired = scaled_value(min_available, expected)
        else:
            expected = len(pods)
            desired = scaled_value(min_available, expected)
    return PdbCounts(expected, desired, count_healthy(pods))


def disruption_condition(allowed: int, error: str | None, previous: Mapping[str, Any] | None, now: str) -> Obj:
    """The DisruptionAllowed condition, keeping lastTransitionTime when the status is unchanged."""
    if error is not None:
        status, reason, message = "False", "SyncFailed", error
    elif allowed > 0:
        status, reason, message = "True", "SufficientPods", ""
    else:
        status, reason, message = "False", "InsufficientPods", ""
    since = now
    if previous and previous.get("status") == status and previous.get("lastTransitionTime"):
        since = str(previous["lastTransitionTime"])
    return {
        "type": "DisruptionAllowed",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }


def pdb_status(pdb: Mapping[str, Any], counts: PdbCounts | None, error: str | None, now: str) -> Obj:
    """The whole status; ``counts`` None (with ``error``) gives upstream's failsafe all-zero status."""
    old = pdb.get("status") or {}
    previous = next((c for c in old.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
    counts = counts or PdbCounts(0, 0, 0)
    allowed = counts.disruptions_allowed if error is None else 0
    others = [c for c in old.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
    status: Obj = {
        "observedGeneration": (pdb.get("metadata") or {}).get("generation", 0),
        "disruptionsAllowed": allowed,
        "currentHealthy": counts.current_healthy,
        "desiredHealthy": counts.desired_healthy,
        "expectedPods": counts.expected,
        "conditions": [*others, disruption_condition(allowed, error, previous, now)],
    }
    if old.get("disruptedPods"):
        status["disruptedPods"] = old["disruptedPods"]
    return status
