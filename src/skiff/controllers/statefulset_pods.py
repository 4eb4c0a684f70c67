"""StatefulSet pod identity, claims and the ordered plan, as pure functions.

Upstream: pkg/controller/statefulset/stateful_set_utils.go (``getPodName``,
``getPersistentVolumeClaimName``, ``initIdentity``, ``newVersionedStatefulSetPod``,
``getPersistentVolumeClaims``) and the ordering rules of
``updateStatefulSet``/``doUpdateStatefulSet`` (stateful_set_control.go):

* pod ``<sts>-<ordinal>``, hostname = pod name, subdomain = serviceName,
  labels ``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index``
  and ``controller-revision-hash`` (= the revision's *name*);
* claim ``<template>-<sts>-<ordinal>`` per volumeClaimTemplate, mounted as the
  pod volume of the template's name;
* OrderedReady: create in ascending ordinal, each only after all lower ones
  are Running and Ready; remove in descending ordinal, one at a time, only
  when the rest are healthy.  Parallel: all at once, no waiting;
* RollingUpdate: from the highest ordinal down to ``partition``, delete one pod
  whose revision is not the update revision, then wait for it to come back
  Running and Ready.  OnDelete: never delete for an update.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.controllers.controller_ref import new_controller_ref
from skiff.controllers.history import REVISION_HASH_LABEL
from skiff.controllers.pod_control import pod_from_template
from skiff.controllers.pod_status import is_pod_available, is_pod_ready, pod_phase

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-(\d+)$")


@dataclass(frozen=True)
class Create:
    ordinal: int
    revision: str  # "current" or "update"


@dataclass(frozen=True)
class Delete:
    pod: Obj
    reason: str  # "failed", "condemned", "update"


Action = Create | Delete


def pod_name(sts_name: str, ordinal: int) -> str:
    return f"{sts_name}-{ordinal}"


def ordinal_of(sts_name: str, name: str) -> int | None:
    """The ordinal of a pod named ``<sts>-<n>``, None for names that are not this set's."""
    match = _ORDINAL.match(name)
    if match is None or match.group(1) != sts_name:
        return None
    return int(match.group(2))


def claim_name(template_name: str, sts_name: str, ordinal: int) -> str:
    return f"{template_name}-{sts_name}-{ordinal}"


def replica_count(sts: Mapping[str, Any]) -> int:
    replicas = (sts.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def start_ordinal(sts: Mapping[str, Any]) -> int:
    return int(((sts.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def is_running_and_ready(pod: Mapping[str, Any]) -> bool:
    return pod_phase(pod) == "Running" and is_pod_ready(pod)


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_finished(pod: Mapping[str, Any]) -> bool:
    return pod_phase(pod) in ("Failed", "Succeeded")


def revision_of(pod: Mapping[str, Any]) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_HASH_LABEL)


def new_pod(sts: Mapping[str, Any], template: Mapping[str, Any], revision_name: str, ordinal: int) -> Obj:
    """newVersionedStatefulSetPod: the template of a revision, with this ordinal's identity and claims."""
    sts_name = str(sts["metadata"]["name"])
    name = pod_name(sts_name, ordinal)
    pod = pod_from_template(template, sts, new_controller_ref(sts, "apps/v1", "StatefulSet"), name=name)
    labels = pod["metadata"].setdefault("labels", {})
    labels[POD_NAME_LABEL] = name
    labels[POD_INDEX_LABEL] = str(ordinal)
    labels[REVISION_HASH_LABEL] = revision_name
    spec = pod["spec"]
    spec["hostname"] = name
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    claims = (sts.get("spec") or {}).get("volumeClaimTemplates") or []
    claim_volumes = {
        c["metadata"]["name"]: {
            "name": c["metadata"]["name"],
            "persistentVolumeClaim": {"claimName": claim_name(c["metadata"]["name"], sts_name, ordinal)},
        }
        for c in claims
    }
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in claim_volumes]
    if claim_volumes:
        spec["volumes"] = volumes + list(claim_volumes.values())
    return pod


def claims_for(sts: Mapping[str, Any], ordinal: int) -> list[Obj]:
    """getPersistentVolumeClaims: one claim per template, labelled with the set's selector labels."""
    spec = sts.get("spec") or {}
    meta = sts["metadata"]
    selector_labels = (spec.get("selector") or {}).get("matchLabels") or {}
    retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    claims: list[Obj] = []
    for template in spec.get("volumeClaimTemplates") or []:
        tmeta = template.get("metadata") or {}
        claim_meta: Obj = {
            "name": claim_name(tmeta["name"], meta["name"], ordinal),
            "namespace": meta.get("namespace"),
            "labels": {**(tmeta.get("labels") or {}), **selector_labels},
        }
        if tmeta.get("annotations"):
            claim_meta["annotations"] = dict(tmeta["annotations"])
        if retention.get("whenDeleted") == "Delete":
            ref = new_controller_ref(sts, "apps/v1", "StatefulSet")
            ref["controller"] = False
            claim_meta["ownerReferences"] = [ref]
        claims.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": claim_meta,
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
        )
    return claims


def revision_for_new_pod(sts: Mapping[str, Any], ordinal: int) -> str:
    """Which revision a re-created pod gets: ``current`` below the partition, ``update`` otherwise."""
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return "update"
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    return "current" if ordinal < partition else "update"


def plan(sts: Mapping[str, Any], pods: list[Obj], update_revision: str) -> list[Action]:
    """The actions of one sync, in order; OrderedReady stops at the first thing it must wait for."""
    spec = sts.get("spec") or {}
    name = str(sts["metadata"]["name"])
    ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    start, replicas = start_ordinal(sts), replica_count(sts)
    wanted = range(start, start + replicas)
    by_ordinal: dict[int, Obj] = {}
    for pod in pods:
        ordinal = ordinal_of(name, pod["metadata"]["name"])
        if ordinal is not None:
            by_ordinal[ordinal] = pod
    actions: list[Action] = []
    for ordinal in wanted:
        found = by_ordinal.get(ordinal)
        if found is None:
            actions.append(Create(ordinal, revision_for_new_pod(sts, ordinal)))
            if ordered:
                return actions
            continue
        if is_finished(found) and not is_terminating(found):
            actions.append(Delete(found, "failed"))
            if ordered:
                return actions
            continue
        if ordered and not (is_running_and_ready(found) and not is_terminating(found)):
            return actions
    condemned = sorted((o for o in by_ordinal if o not in wanted), reverse=True)
    for ordinal in condemned:
        victim = by_ordinal[ordinal]
        if is_terminating(victim):
            if ordered:
                return actions
            continue
        actions.append(Delete(victim, "condemned"))
        if ordered:
            return actions
    if actions or (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        return actions
    return _rolling_update(sts, by_ordinal, wanted, update_revision)


def _rolling_update(
    sts: Mapping[str, Any], by_ordinal: dict[int, Obj], wanted: range, update_revision: str
) -> list[Action]:
    partition = int(
        ((sts.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate", {}).get("partition") or 0
    )
    for ordinal in reversed(wanted):
        if ordinal < partition:
            break
        pod = by_ordinal.get(ordinal)
        if pod is None:
            return []
        if revision_of(pod) != update_revision and not is_terminating(pod):
            return [Delete(pod, "update")]
        if not is_running_and_ready(pod) or is_terminating(pod):
            return []  # wait for the updated pod to be healthy before the next one
    return []


def calculate_status(
    sts: Mapping[str, Any], pods: list[Obj], current_revision: str, update_revision: str, collision: int, now: float
) -> Obj:
    """Counters, revisions and completeRollingUpdate (current catches up once every pod is updated and ready)."""
    spec = sts.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    status: Obj = {
        "observedGeneration": sts["metadata"].get("generation"),
        "replicas": len(pods),
        "readyReplicas": sum(1 for p in pods if is_running_and_ready(p)),
        "availableReplicas": sum(
            1 for p in pods if is_running_and_ready(p) and is_pod_available(p, min_ready, now) and not is_terminating(p)
        ),
        "currentReplicas": sum(1 for p in pods if not is_terminating(p) and revision_of(p) == current_revision),
        "updatedReplicas": sum(1 for p in pods if not is_terminating(p) and revision_of(p) == update_revision),
        "currentRevision": current_revision,
        "updateRevision": update_revision,
        "collisionCount": collision,
    }
    replicas = replica_count(sts)
    rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and status["updatedReplicas"] == replicas and status["readyReplicas"] == replicas == status["replicas"]:
        status["currentReplicas"] = status["updatedReplicas"]
        status["currentRevision"] = update_revision
    return status
