"""The Job controller's bookkeeping and decisions, as pure functions.

Upstream: pkg/controller/job (job_controller.go, indexed_job_utils.go,
tracking_utils.go).  Finished pods are counted exactly once through the
``batch.kubernetes.io/job-tracking`` finalizer: a finished pod that still has
it is first recorded in ``status.uncountedTerminatedPods``, then its
finalizer is removed, then it moves into ``succeeded``/``failed``.  A pod
being deleted before it finished counts as failed.  The job fails when the
failures exceed ``backoffLimit`` (BackoffLimitExceeded) or it ran past
``activeDeadlineSeconds`` (DeadlineExceeded); it completes when
``completions`` pods (or, Indexed, indexes) succeeded, or — without
completions — when one succeeded and none is active.  Since 1.31 the
decision is first recorded as a FailureTarget/SuccessCriteriaMet condition
and the terminal Failed/Complete condition follows once no pod is left
running; this module follows that order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skiff.controllers.pod_status import is_pod_active, is_pod_ready, pod_phase

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
#: DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff.
BACKOFF_BASE_S = 10.0
BACKOFF_MAX_S = 360.0


@dataclass(frozen=True)
class Finish:
    """A decided outcome: the interim condition (FailureTarget/SuccessCriteriaMet) and the terminal one."""

    interim: str
    terminal: str
    reason: str
    message: str


@dataclass
class Counting:
    """Which finished pods still need counting, and the status fields once they are counted."""

    uncounted_succeeded: list[str] = field(default_factory=list)
    uncounted_failed: list[str] = field(default_factory=list)
    new_indexes: set[int] = field(default_factory=set)


def int_or(value: Any, default: int) -> int:
    """An optional integer field with its default (the API defaults it, but a raw object may lack it)."""
    return default if value is None else int(value)


def has_finalizer(pod: Mapping[str, Any]) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or [])


def pod_index(pod: Mapping[str, Any]) -> int | None:
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def finished_as(pod: Mapping[str, Any]) -> str | None:
    """ "Succeeded" or "Failed" for a pod that is done (deleted before success counts as failed), else None."""
    phase = pod_phase(pod)
    if phase in ("Succeeded", "Failed"):
        return phase
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Failed"
    return None


def parse_indexes(text: str | None) -> set[int]:
    """``"1,3-5"`` → {1, 3, 4, 5} (status.completedIndexes)."""
    result: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        result.update(range(int(low), int(high or low) + 1))
    return result


def format_indexes(indexes: Iterable[int]) -> str:
    """{1, 3, 4, 5} → ``"1,3-5"``: ascending ranges."""
    parts: list[str] = []
    ordered = sorted(set(indexes))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def count_finished(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], skip_uids: set[str]) -> Counting:
    """Finished pods carrying the finalizer that are not yet recorded (and not already released by us)."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    uncounted = status.get("uncountedTerminatedPods") or {}
    counting = Counting(list(uncounted.get("succeeded") or []), list(uncounted.get("failed") or []))
    known = set(counting.uncounted_succeeded) | set(counting.uncounted_failed) | skip_uids
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    completed = parse_indexes(status.get("completedIndexes"))
    for pod in pods:
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        outcome = finished_as(pod)
        if outcome is None or not has_finalizer(pod) or uid in known:
            continue
        if outcome == "Succeeded":
            index = pod_index(pod)
            if indexed and (index is None or completions is None or not 0 <= index < completions):
                continue  # a succeeded pod with an invalid index does not count
            counting.uncounted_succeeded.append(uid)
            if indexed and index is not None and index not in completed:
                counting.new_indexes.add(index)
        else:
            counting.uncounted_failed.append(uid)
    return counting


def active_pods(pods: Sequence[Mapping[str, Any]]) -> list[Obj]:
    return [dict(p) for p in pods if is_pod_active(p)]


def restarts_exceed_limit(job: Mapping[str, Any], active: Sequence[Mapping[str, Any]]) -> bool:
    """pastBackoffLimitOnFailure: with restartPolicy OnFailure, container restarts count as failures."""
    spec = job.get("spec") or {}
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    limit = int_or(spec.get("backoffLimit"), 6)
    restarts = 0
    for pod in active:
        status = pod.get("status") or {}
        for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
    return restarts > 0 if limit == 0 else restarts >= limit


def decide_finish(
    job: Mapping[str, Any],
    succeeded: int,
    failed: int,
    completed: set[int],
    active: Sequence[Mapping[str, Any]],
    now: float,
    start: float | None,
) -> Finish | None:
    """Whether the job has failed or succeeded, given the counts after this sync's counting."""
    spec = job.get("spec") or {}
    limit = int_or(spec.get("backoffLimit"), 6)
    if failed > limit or restarts_exceed_limit(job, active):
        return Finish("FailureTarget", "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and start is not None and now - start >= int(deadline):
        return Finish("FailureTarget", "Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed":
        done = completions is not None and len(completed) >= int(completions)
    elif completions is None:
        done = succeeded > 0 and not active
    else:
        done = succeeded >= int(completions)
    if done:
        return Finish(
            "SuccessCriteriaMet", "Complete", "CompletionsReached", "Reached expected number of succeeded pods"
        )
    return None


def wanted_active(job: Mapping[str, Any], succeeded: int, active: int, completed: set[int]) -> int:
    """How many pods should be running now (parallelism bounded by the work left)."""
    spec = job.get("spec") or {}
    parallelism = int_or(spec.get("parallelism"), 1)
    completions = spec.get("completions")
    if spec.get("completionMode") == "Indexed" and completions is not None:
        return min(parallelism, int(completions) - len(completed))
    if completions is None:
        return active if succeeded > 0 else parallelism
    return max(0, min(parallelism, int(completions) - succeeded))


def pending_indexes(
    job: Mapping[str, Any], completed: set[int], active: Sequence[Mapping[str, Any]], count: int
) -> list[int]:
    """The lowest ``count`` indexes with neither a success nor an active pod."""
    completions = int((job.get("spec") or {}).get("completions") or 0)
    busy = {pod_index(p) for p in active}
    free = [i for i in range(completions) if i not in completed and i not in busy]
    return free[:count]


def backoff_delay(failures: int, base: float = BACKOFF_BASE_S) -> float:
    """Delay before replacing a failed pod: base doubling per failure, capped at 6 minutes."""
    if failures <= 0 or base <= 0:
        return 0.0
    return float(min(base * 2 ** (failures - 1), BACKOFF_MAX_S))


def ready_count(active: Sequence[Mapping[str, Any]]) -> int:
    return sum(1 for p in active if is_pod_ready(p))


def condition(kind: str, reason: str, message: str, now_text: str) -> Obj:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": now_text,
        "lastTransitionTime": now_text,
    }


def has_condition(job: Mapping[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or []
    )


def is_finished(job: Mapping[str, Any]) -> bool:
    return has_condition(job, "Complete") or has_condition(job, "Failed")


def set_suspended(status: Obj, suspended: bool, now_text: str) -> bool:
    """The Suspended condition: True (JobSuspended) while suspended, False (JobResumed) after; True if changed."""
    conditions = status.setdefault("conditions", [])
    current = next((c for c in conditions if c.get("type") == "Suspended"), None)
    if suspended:
        if current is not None and current.get("status") == "True":
            return False
        if current is not None:
            conditions.remove(current)
        conditions.append(condition("Suspended", "JobSuspended", "Job suspended", now_text))
        return True
    if current is None or current.get("status") != "True":
        if not conditions:
            status.pop("conditions")
        return False
    current.update(status="False", reason="JobResumed", message="Job resumed", lastTransitionTime=now_text)
    return True
