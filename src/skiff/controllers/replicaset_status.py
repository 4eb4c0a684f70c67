"""ReplicaSet / ReplicationController status from the pods it owns (replica_set_utils.go calculateStatus).

* ``replicas``: active pods the controller owns;
* ``fullyLabeledReplicas``: of those, pods carrying every label of the template;
* ``readyReplicas`` / ``availableReplicas``: Ready, and Ready for minReadySeconds;
* ``observedGeneration``: set by the controller when it writes the status;
* the ``ReplicaFailure`` condition (FailedCreate / FailedDelete with the
  error's message) while creating or deleting pods fails, removed on success.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from skiff.client.timefmt import rfc3339
from skiff.controllers.pod_status import is_pod_available, is_pod_ready

Obj = Mapping[str, Any]
REPLICA_FAILURE = "ReplicaFailure"


def _labels_superset(labels: Mapping[str, str], required: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in required.items())


def calculate_status(
    rs: Obj,
    pods: Sequence[Obj],
    now: float,
    failure: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The status ``rs`` should have; ``failure`` is (reason, message) of a failed create/delete, if any."""
    old = rs.get("status") or {}
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    fully_labeled = ready = available = 0
    for pod in pods:
        if _labels_superset((pod.get("metadata") or {}).get("labels") or {}, template_labels):
            fully_labeled += 1
        if is_pod_ready(pod):
            ready += 1
            if is_pod_available(pod, min_ready, now):
                available += 1
    status: dict[str, Any] = {
        "replicas": len(pods),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
    }
    if old.get("observedGeneration") is not None:
        status["observedGeneration"] = old["observedGeneration"]
    conditions = [copy.deepcopy(c) for c in old.get("conditions") or [] if c.get("type") != REPLICA_FAILURE]
    current = next((c for c in old.get("conditions") or [] if c.get("type") == REPLICA_FAILURE), None)
    if failure is not None:
        if current is not None:
            conditions.append(copy.deepcopy(current))  # kept as first reported, like upstream
        else:
            reason, message = failure
            conditions.append(
                {
                    "type": REPLICA_FAILURE,
                    "status": "True",
                    "lastTransitionTime": rfc3339(now),
                    "reason": reason,
                    "message": message,
                }
            )
    if conditions:
        status["conditions"] = conditions
    return status


def status_changed(rs: Obj, status: Mapping[str, Any]) -> bool:
    """Whether a status write is needed: any field differs or the generation is not yet observed."""
    old = dict(rs.get("status") or {})
    generation = int((rs.get("metadata") or {}).get("generation") or 0)
    if int(old.get("observedGeneration") or 0) != generation:
        return True
    fields = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")
    if any(int(old.get(f) or 0) != int(status.get(f) or 0) for f in fields):
        return True
    return (old.get("conditions") or []) != (status.get("conditions") or [])
