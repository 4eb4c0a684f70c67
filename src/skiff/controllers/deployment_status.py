"""Deployment status and conditions, computed by pure functions (pkg/controller/deployment/progress.go).

``calculate_status`` sums the ReplicaSets (replicas, updatedReplicas,
readyReplicas, availableReplicas, unavailableReplicas) and sets ``Available``
(MinimumReplicasAvailable / MinimumReplicasUnavailable against
replicas - maxUnavailable).  ``rollout_status`` adds the ``Progressing``
condition when the Deployment has a progress deadline:

* NewReplicaSetAvailable once complete (all updated, all available);
* ReplicaSetUpdated while pods move forward (lastUpdateTime refreshed);
* ProgressDeadlineExceeded (status False) when nothing moved for
  progressDeadlineSeconds since that lastUpdateTime.

Creation-time reasons (NewReplicaSetCreated, FoundNewReplicaSet) and
pause/resume (DeploymentPaused / DeploymentResumed, status Unknown) are set
by the controller through ``set_condition``.  Conditions follow
SetDeploymentCondition: same status and reason → unchanged; same status →
lastTransitionTime kept.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from skiff.client.timefmt import parse_rfc3339, rfc3339
from skiff.controllers.deployment_rollout import max_unavailable, replicas_of, total_replicas, total_status

Obj = Mapping[str, Any]
MAX_INT32 = 2**31 - 1

PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


def new_condition(kind: str, status: str, reason: str, message: str, now: float) -> dict[str, Any]:
    stamp = rfc3339(now)
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def get_condition(status: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def set_condition(status: dict[str, Any], condition: dict[str, Any]) -> None:
    """SetDeploymentCondition (mutates ``status``)."""
    current = get_condition(status, condition["type"])
    same_status = current is not None and current["status"] == condition["status"]
    if current is not None and same_status and current.get("reason") == condition["reason"]:
        return
    if current is not None and same_status:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def remove_condition(status: dict[str, Any], kind: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def has_progress_deadline(deployment: Obj) -> bool:
    deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != MAX_INT32


def calculate_status(deployment: Obj, all_rss: Sequence[Obj], new_rs: Obj | None, now: float) -> dict[str, Any]:
    """calculateStatus: counts from the ReplicaSets, the Available condition, other conditions kept."""
    old = deployment.get("status") or {}
    available = total_status(all_rss, "availableReplicas")
    status: dict[str, Any] = {
        "observedGeneration": int((deployment.get("metadata") or {}).get("generation") or 0),
        "replicas": total_status(all_rss, "replicas"),
        "updatedReplicas": total_status([new_rs], "replicas") if new_rs is not None else 0,
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total_replicas(all_rss) - available),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= replicas_of(deployment) - max_unavailable(deployment):
        cond = new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.", now)
    else:
        cond = new_condition(AVAILABLE, "False", MIN_UNAVAILABLE, "Deployment does not have minimum availability.", now)
    set_condition(status, cond)
    return status


def is_complete(deployment: Obj, status: Mapping[str, Any]) -> bool:
    """DeploymentComplete: every replica updated and available, and this generation observed."""
    want = replicas_of(deployment)
    generation = int((deployment.get("metadata") or {}).get("generation") or 0)
    return (
        int(status.get("updatedReplicas") or 0) == want
        and int(status.get("replicas") or 0) == want
        and int(status.get("availableReplicas") or 0) == want
        and int(status.get("observedGeneration") or 0) >= generation
    )


def is_progressing(deployment: Obj, status: Mapping[str, Any]) -> bool:
    """DeploymentProgressing: more updated/ready/available pods or fewer old ones than last time."""
    old = deployment.get("status") or {}

    def n(s: Mapping[str, Any], f: str) -> int:
        return int(s.get(f) or 0)

    old_old = n(old, "replicas") - n(old, "updatedReplicas")
    new_old = n(status, "replicas") - n(status, "updatedReplicas")
    return (
        n(status, "updatedReplicas") > n(old, "updatedReplicas")
        or new_old < old_old
        or n(status, "readyReplicas") > n(old, "readyReplicas")
        or n(status, "availableReplicas") > n(old, "availableReplicas")
    )


def is_timed_out(deployment: Obj, status: Mapping[str, Any], now: float) -> bool:
    """DeploymentTimedOut: the Progressing condition has not been refreshed within the deadline."""
    if not has_progress_deadline(deployment):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    deadline = int((deployment.get("spec") or {}).get("progressDeadlineSeconds") or 0)
    updated = cond.get("lastUpdateTime")
    return updated is not None and parse_rfc3339(str(updated)) + deadline < now


def _subject(deployment: Obj, new_rs: Obj | None) -> str:
    if new_rs is not None:
        return f'ReplicaSet "{new_rs["metadata"]["name"]}"'
    return f'Deployment "{deployment["metadata"]["name"]}"'


def rollout_status(deployment: Obj, all_rss: Sequence[Obj], new_rs: Obj | None, now: float) -> dict[str, Any]:
    """syncRolloutStatus's new status: calculate_status plus Progressing and ReplicaFailure."""
    status = calculate_status(deployment, all_rss, new_rs, now)
    if not has_progress_deadline(deployment):
        remove_condition(status, PROGRESSING)
    current = get_condition(deployment.get("status") or {}, PROGRESSING)
    already_complete = (
        status["replicas"] == status["updatedReplicas"]
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE
    )
    if has_progress_deadline(deployment) and not already_complete:
        subject = _subject(deployment, new_rs)
        if is_complete(deployment, status):
            msg = f"{subject} has successfully progressed."
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now))
        elif is_progressing(deployment, status):
            cond = new_condition(PROGRESSING, "True", RS_UPDATED, f"{subject} is progressing.", now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif is_timed_out(deployment, status, now):
            msg = f"{subject} has timed out progressing."
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, msg, now))
    failure = _replica_failure(all_rss, new_rs)
    if failure is not None:
        set_condition(status, failure)
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def _replica_failure(all_rss: Sequence[Obj], new_rs: Obj | None) -> dict[str, Any] | None:
    """getReplicaFailures: the new RS's ReplicaFailure condition first, else any RS's."""
    ordered = ([new_rs] if new_rs is not None else []) + [rs for rs in all_rss if rs is not new_rs]
    for rs in ordered:
        cond = get_condition(rs.get("status") or {}, REPLICA_FAILURE)
        if cond is not None:
            return {
                "type": REPLICA_FAILURE,
                "status": cond.get("status", "True"),
                "lastUpdateTime": cond.get("lastTransitionTime"),
                "lastTransitionTime": cond.get("lastTransitionTime"),
                "reason": cond.get("reason", ""),
                "message": cond.get("message", ""),
            }
    return None


def requeue_after(deployment: Obj, status: Mapping[str, Any], now: float) -> float | None:
    """requeueStuckDeployment: when to look again so a stalled rollout times out on time (None: no need)."""
    cond = get_condition(status, PROGRESSING)
    if not has_progress_deadline(deployment) or cond is None:
        return None
    if cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT) or is_complete(deployment, status):
        return None
    deadline = int((deployment.get("spec") or {}).get("progressDeadlineSeconds") or 0)
    updated = cond.get("lastUpdateTime")
    if updated is None:
        return None
    after = parse_rfc3339(str(updated)) + deadline - now
    return max(after, 1.0)
