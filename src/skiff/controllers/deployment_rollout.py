"""Deployment rollout arithmetic: pure functions over Deployment and ReplicaSet dicts.

Follows pkg/controller/deployment/util and rolling.go / sync.go upstream:

* ``scaled_value``: GetScaledValueFromIntOrPercent (``"25%"`` of 10 is 3
  rounding up for maxSurge, 2 rounding down for maxUnavailable);
* ``resolve_fenceposts``: both zero → maxUnavailable 1;
* ``new_rs_replicas``: NewRSNewReplicas (how far the new RS may grow);
* ``max_scaled_down`` / ``cleanup_unhealthy`` / ``scale_down_old``: the
  three steps of reconcileOldReplicaSets;
* ``proportional_sizes``: scaling a Deployment in the middle of a rollout
  spreads the change over the active ReplicaSets by their share
  (getReplicaSetFraction / GetProportion, leftovers to the largest).

The functions return *plans* (name → replicas); the controller writes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from skiff.client.timefmt import parse_rfc3339

Obj = Mapping[str, Any]
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """An IntOrString as a count of ``total``; raises ValueError for a malformed string."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text.endswith("%") or not text[:-1].isdigit():
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}")
    percent = int(text[:-1])
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def replicas_of(obj: Obj) -> int:
    """spec.replicas (a missing value means 1 for Deployments/ReplicaSets, as defaulted)."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_int(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def is_rolling_update(deployment: Obj) -> bool:
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    return bool(strategy.get("type", "RollingUpdate") == "RollingUpdate")


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None, desired: int) -> tuple[int, int]:
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _rolling(deployment: Obj) -> Mapping[str, Any]:
    return ((deployment.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(deployment: Obj) -> int:
    if not is_rolling_update(deployment):
        return 0
    rolling = _rolling(deployment)
    surge, _ = resolve_fenceposts(
        rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%"), replicas_of(deployment)
    )
    return surge


def max_unavailable(deployment: Obj) -> int:
    replicas = replicas_of(deployment)
    if not is_rolling_update(deployment) or replicas == 0:
        return 0
    rolling = _rolling(deployment)
    _, unavailable = resolve_fenceposts(rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%"), replicas)
    return min(unavailable, replicas)


def total_replicas(rss: Sequence[Obj | None]) -> int:
    """GetReplicaCountForReplicaSets: the sum of spec.replicas."""
    return sum(replicas_of(rs) for rs in rss if rs is not None)


def total_status(rss: Sequence[Obj | None], field: str) -> int:
    return sum(status_int(rs, field) for rs in rss if rs is not None)


def annotation_int(obj: Obj, name: str) -> int | None:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def revision_of(obj: Obj) -> int:
    return annotation_int(obj, REVISION_ANNOTATION) or 0


def creation_order_key(rs: Obj) -> tuple[float, str]:
    """ReplicaSetsByCreationTimestamp: oldest first, ties by name."""
    meta = rs.get("metadata") or {}
    stamp = meta.get("creationTimestamp")
    return (parse_rfc3339(str(stamp)) if stamp else 0.0, str(meta.get("name", "")))


def new_rs_replicas(deployment: Obj, all_rss: Sequence[Obj], new_rs: Obj) -> int:
    """NewRSNewReplicas: the new RS's size this step (bounded by maxSurge over all pods)."""
    desired = replicas_of(deployment)
    if not is_rolling_update(deployment):
        return desired
    current = total_replicas(all_rss)
    max_total = desired + max_surge(deployment)
    if current >= max_total:
        return replicas_of(new_rs)
    scale_up = min(max_total - current, desired - replicas_of(new_rs))
    return replicas_of(new_rs) + scale_up


def max_scaled_down(deployment: Obj, all_rss: Sequence[Obj], new_rs: Obj) -> int:
    """How many old replicas may go now without dropping below minAvailable (reconcileOldReplicaSets)."""
    min_available = replicas_of(deployment) - max_unavailable(deployment)
    new_unavailable = replicas_of(new_rs) - status_int(new_rs, "availableReplicas")
    return total_replicas(all_rss) - min_available - new_unavailable


def cleanup_unhealthy(old_rss: Sequence[Obj], max_cleanup: int) -> dict[str, int]:
    """cleanupUnhealthyReplicas: shrink old RSs by their unavailable replicas first, oldest first."""
    plan: dict[str, int] = {}
    done = 0
    for rs in sorted(old_rss, key=creation_order_key):
        if done >= max_cleanup:
            break
        replicas, available = replicas_of(rs), status_int(rs, "availableReplicas")
        if replicas == 0 or replicas <= available:
            continue
        count = min(max_cleanup - done, replicas - available)
        plan[rs["metadata"]["name"]] = replicas - count
        done += count
    return plan


def scale_down_old(deployment: Obj, all_rss: Sequence[Obj], old_rss: Sequence[Obj]) -> dict[str, int]:
    """scaleDownOldReplicaSetsForRollingUpdate: remove available old replicas above minAvailable, oldest first."""
    min_available = replicas_of(deployment) - max_unavailable(deployment)
    available = total_status(all_rss, "availableReplicas")
    if available <= min_available:
        return {}
    budget = available - min_available
    plan: dict[str, int] = {}
    done = 0
    for rs in sorted(old_rss, key=creation_order_key):
        if done >= budget:
            break
        replicas = replicas_of(rs)
        if replicas == 0:
            continue
        count = min(replicas, budget - done)
        plan[rs["metadata"]["name"]] = replicas - count
        done += count
    return plan


def _fraction(rs: Obj, deployment: Obj) -> int:
    """getReplicaSetFraction: the RS's proportional change when the Deployment is resized."""
    desired = replicas_of(deployment)
    if desired == 0:
        return -replicas_of(rs)
    deployment_replicas = desired + max_surge(deployment)
    annotated = annotation_int(rs, MAX_REPLICAS_ANNOTATION)
    if annotated is None:
        annotated = status_int(deployment, "replicas")
    if annotated == 0:
        return 0
    exact = replicas_of(rs) * deployment_replicas / annotated
    return math.floor(exact + 0.5) - replicas_of(rs)  # round half away from zero (non-negative here)


def _proportion(rs: Obj, deployment: Obj, to_add: int, added: int) -> int:
    if replicas_of(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, deployment)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_sizes(deployment: Obj, active_rss: Sequence[Obj]) -> dict[str, int]:
    """The sizes a scaled Deployment's active RSs get during a rolling update (DeploymentController.scale)."""
    desired = replicas_of(deployment)
    allowed = desired + max_surge(deployment) if desired > 0 else 0
    to_add = allowed - total_replicas(active_rss)
    if to_add > 0:  # ReplicaSetsBySizeNewer: larger first, newer first on ties
        ordered = sorted(active_rss, key=lambda rs: (-replicas_of(rs), _neg_key(creation_order_key(rs))))
    elif to_add < 0:  # ReplicaSetsBySizeOlder: larger first, older first on ties
        ordered = sorted(active_rss, key=lambda rs: (-replicas_of(rs), creation_order_key(rs)))
    else:
        ordered = list(active_rss)
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        proportion = _proportion(rs, deployment, to_add, added) if to_add else 0
        sizes[rs["metadata"]["name"]] = replicas_of(rs) + proportion
        added += proportion
    if to_add and to_add != added and ordered:
        first = ordered[0]["metadata"]["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


def _neg_key(key: tuple[float, str]) -> tuple[float, str]:
    # Newer first; names only break exact-timestamp ties, reversed like the time.
    return (-key[0], "".join(chr(0x10FFFF - ord(c)) for c in key[1]))
