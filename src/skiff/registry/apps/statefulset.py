"""StatefulSets (apps/v1): defaults, selector rules, what may change on update, scale, the table.

SetDefaults_StatefulSet: podManagementPolicy OrderedReady, RollingUpdate
with partition 0, replicas 1, revisionHistoryLimit 10,
persistentVolumeClaimRetentionPolicy Retain/Retain, claim template defaults.
ValidateStatefulSetUpdate: only replicas, ordinals, template, updateStrategy,
persistentVolumeClaimRetentionPolicy and minReadySeconds may change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.apps.deployment import SELECTOR_SCALE
from skiff.registry.core.persistentvolumeclaim import default_claim_spec
from skiff.registry.core.pod_spec import default_pod_template, validate_pod_template
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import SpecStatusStrategy
from skiff.registry.table_format import container_cells
from skiff.registry.workload import (
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    validate_replicas,
    validate_selector_and_template,
)

MUTABLE_SPEC = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)
POD_MANAGEMENT_POLICIES = ("OrderedReady", "Parallel")
UPDATE_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', "
    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)


class StatefulSetStrategy(SpecStatusStrategy):
    scale = SELECTOR_SCALE
    columns = (
        NAME_COLUMN,
        Column("Ready", description="Number of the pod with ready state"),
        AGE_COLUMN,
        CONTAINERS_COLUMN,
        IMAGES_COLUMN,
    )

    def initial_status(self, obj: Obj) -> Obj:
        return {"replicas": 0, "availableReplicas": 0}

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("podManagementPolicy", "OrderedReady")
        update = spec.setdefault("updateStrategy", {})
        update.setdefault("type", "RollingUpdate")
        if update["type"] == "RollingUpdate":
            update.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
        for claim in spec.get("volumeClaimTemplates") or []:
            if isinstance(claim, dict):
                default_claim_spec(claim.setdefault("spec", {}))
                claim.setdefault("status", {"phase": "Pending"})
        default_pod_template(spec.get("template"))

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [fe.required("spec")]
        causes = validate_replicas(spec.get("replicas"), "spec.replicas")
        causes += validate_selector_and_template(spec, "spec")
        causes += validate_pod_template(spec.get("template"), "spec.template")
        policy = spec.get("podManagementPolicy")
        if policy is not None and policy not in POD_MANAGEMENT_POLICIES:
            causes.append(fe.not_supported("spec.podManagementPolicy", policy, POD_MANAGEMENT_POLICIES))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        frozen_new = {k: v for k, v in new_spec.items() if k not in MUTABLE_SPEC}
        frozen_old = {k: v for k, v in old_spec.items() if k not in MUTABLE_SPEC}
        return [fe.forbidden("spec", UPDATE_FORBIDDEN)] if frozen_new != frozen_old else []

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        names, images = container_cells(((spec.get("template") or {}).get("spec") or {}).get("containers"))
        return [f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas') or 0)}", names, images]
