"""Reading a pod's state the way controllers count it (k8s.io/kubernetes/pkg/api/v1/pod).

* active: not Succeeded, not Failed, no deletionTimestamp (controller.IsPodActive);
* ready: the ``Ready`` condition is ``True`` (podutil.IsPodReady);
* available: ready, and ready for at least ``minReadySeconds`` by the Ready
  condition's lastTransitionTime (podutil.IsPodAvailable).

Pure functions over pod dicts; ``now`` is passed in (epoch seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.client.timefmt import parse_rfc3339


def pod_phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_pod_active(pod: Mapping[str, Any]) -> bool:
    if pod_phase(pod) in ("Succeeded", "Failed"):
        return False
    return not (pod.get("metadata") or {}).get("deletionTimestamp")


def is_pod_terminating(pod: Mapping[str, Any]) -> bool:
    """Being deleted but not yet in a terminal phase (counted as terminating, not active)."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) and pod_phase(pod) not in (
        "Succeeded",
        "Failed",
    )


def pod_condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    cond = pod_condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def pod_ready_time(pod: Mapping[str, Any]) -> float | None:
    """When the pod last became Ready (epoch seconds), None when not ready or unknown."""
    cond = pod_condition(pod, "Ready")
    if cond is None or cond.get("status") != "True" or not cond.get("lastTransitionTime"):
        return None
    return parse_rfc3339(str(cond["lastTransitionTime"]))


def is_pod_available(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds`` (always true for 0 once ready)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    ready_at = pod_ready_time(pod)
    return ready_at is not None and ready_at + min_ready_seconds <= now


def creation_time(obj: Mapping[str, Any]) -> float | None:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    return parse_rfc3339(str(stamp)) if stamp else None


def max_container_restarts(pod: Mapping[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)
