"""A Deployment's ReplicaSets: which is new, which are old, their annotations and history cleanup.

Pure functions after pkg/controller/deployment/util/deployment_util.go:

* ``find_new_rs``: the oldest RS whose template equals the Deployment's,
  ignoring the pod-template-hash label (FindNewReplicaSet);
* ``new_rs_body``: the RS a rollout creates, ``<deployment>-<hash>`` with the
  hash label on its template, labels and selector;
* ``set_new_rs_annotations``: Deployment annotations copied to the RS (except
  the ones the controller owns), ``deployment.kubernetes.io/revision`` raised
  to the new revision, and desired/max replicas on a fresh RS;
* ``history_to_delete``: revisionHistoryLimit cleanup, lowest revision first,
  never an RS that still has replicas or an unobserved generation.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from skiff.controllers.controller_ref import new_controller_ref
from skiff.controllers.deployment_rollout import (
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    REVISION_ANNOTATION,
    creation_order_key,
    max_surge,
    replicas_of,
    revision_of,
    status_int,
)
from skiff.controllers.pod_template_hash import POD_TEMPLATE_HASH_LABEL, compute_hash, equal_ignore_hash

Obj = dict[str, Any]
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
#: Annotations the controller manages itself; never copied from the Deployment to its RSs.
SKIPPED_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        "deprecated.deployment.rollback.to",
    }
)


def template_of(obj: Mapping[str, Any]) -> Obj:
    return dict((obj.get("spec") or {}).get("template") or {})


def find_new_rs(deployment: Mapping[str, Any], rss: Sequence[Obj]) -> Obj | None:
    template = template_of(deployment)
    for rs in sorted(rss, key=creation_order_key):
        if equal_ignore_hash(template_of(rs), template):
            return rs
    return None


def old_rss(rss: Sequence[Obj], new_rs: Obj | None) -> list[Obj]:
    """Every RS but the new one (FindOldReplicaSets' allOldRSs)."""
    new_uid = (new_rs or {}).get("metadata", {}).get("uid")
    return [rs for rs in rss if new_rs is None or rs["metadata"].get("uid") != new_uid]


def active_rss(rss: Sequence[Obj | None]) -> list[Obj]:
    """FilterActiveReplicaSets: RSs with a non-zero size."""
    return [rs for rs in rss if rs is not None and replicas_of(rs) > 0]


def max_revision(rss: Sequence[Mapping[str, Any]]) -> int:
    return max((revision_of(rs) for rs in rss), default=0)


def new_rs_body(deployment: Mapping[str, Any]) -> Obj:
    """The new ReplicaSet for the Deployment's current template (replicas 0; the caller sizes it)."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    collision = (deployment.get("status") or {}).get("collisionCount")
    template = copy.deepcopy(template_of(deployment))
    pod_hash = compute_hash(template, None if collision is None else int(collision))
    template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH_LABEL] = pod_hash
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH_LABEL] = pod_hash
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta.get('name')}-{pod_hash}",
            "namespace": meta.get("namespace"),
            "labels": dict(template["metadata"]["labels"]),
            "ownerReferences": [new_controller_ref(deployment, "apps/v1", "Deployment")],
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": int(spec.get("minReadySeconds") or 0),
            "selector": selector,
            "template": template,
        },
    }


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    annotations = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for name, value in ((DESIRED_REPLICAS_ANNOTATION, str(desired)), (MAX_REPLICAS_ANNOTATION, str(maximum))):
        if annotations.get(name) != value:
            annotations[name] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Mapping[str, Any], desired: int, maximum: int) -> bool:
    annotations = (rs.get("metadata") or {}).get("annotations") or {}
    return bool(
        annotations.get(DESIRED_REPLICAS_ANNOTATION) != str(desired)
        or annotations.get(MAX_REPLICAS_ANNOTATION) != str(maximum)
    )


def set_new_rs_annotations(deployment: Mapping[str, Any], rs: Obj, new_revision: int, exists: bool) -> bool:
    """SetNewReplicaSetAnnotations: returns whether ``rs``'s annotations changed."""
    annotations = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for name, value in ((deployment.get("metadata") or {}).get("annotations") or {}).items():
        if name in SKIPPED_ANNOTATIONS or annotations.get(name) == value:
            continue
        annotations[name] = value
        changed = True
    old = revision_of(rs)
    if old < new_revision:
        annotations[REVISION_ANNOTATION] = str(new_revision)
        changed = True
    if not exists:
        desired = replicas_of(deployment)
        changed = set_replicas_annotations(rs, desired, desired + max_surge(deployment)) or changed
    return changed


def history_to_delete(deployment: Mapping[str, Any], old: Sequence[Obj]) -> list[Obj]:
    """cleanupDeployment: the old RSs beyond revisionHistoryLimit that may be deleted now."""
    limit = (deployment.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old if not rs["metadata"].get("deletionTimestamp")]
    surplus = len(alive) - int(limit)
    if surplus <= 0:
        return []
    ordered = sorted(alive, key=lambda rs: (revision_of(rs), creation_order_key(rs)))
    doomed = []
    for rs in ordered[:surplus]:
        generation = int(rs["metadata"].get("generation") or 0)
        if status_int(rs, "replicas") or replicas_of(rs) or generation > status_int(rs, "observedGeneration"):
            continue
        doomed.append(rs)
    return doomed
