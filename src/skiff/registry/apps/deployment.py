"""Deployments (apps/v1): defaults, selector rules, scale, the kubectl table.

SetDefaults_Deployment (pkg/apis/apps/v1/defaults.go): replicas 1,
RollingUpdate with 25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds
600, and the pod template's defaults.  The selector is required, must select
the template's labels and never changes (apps/v1 ValidateDeploymentUpdate).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.core.pod_spec import default_pod_template, validate_pod_template
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj, ScaleSpec
from skiff.registry.strategies import SpecStatusStrategy, immutable
from skiff.registry.table_format import container_cells, selector_string
from skiff.registry.workload import (
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    validate_replicas,
    validate_selector_and_template,
)

STRATEGY_TYPES = ("Recreate", "RollingUpdate")
#: Built-in workloads expose their spec.selector (a LabelSelector) through /scale.
SELECTOR_SCALE = ScaleSpec(label_selector="spec.selector")


class DeploymentStrategy(SpecStatusStrategy):
    scale = SELECTOR_SCALE
    columns = (
        NAME_COLUMN,
        Column("Ready", description="Number of the pod with ready state"),
        Column("Up-to-date", description="Total number of non-terminated pods targeted by this deployment that "
               "have the desired template spec."),
        Column("Available", description="Total number of available pods (ready for at least minReadySeconds) "
               "targeted by this deployment."),
        AGE_COLUMN,
        CONTAINERS_COLUMN,
        IMAGES_COLUMN,
        Column("Selector", priority=1, description="Label selector for pods."),
    )  # fmt: skip

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        default_pod_template(spec.get("template"))

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [fe.required("spec")]
        causes = validate_replicas(spec.get("replicas"), "spec.replicas")
        causes += validate_selector_and_template(spec, "spec")
        causes += validate_pod_template(spec.get("template"), "spec.template")
        kind = (spec.get("strategy") or {}).get("type")
        if kind is not None and kind not in STRATEGY_TYPES:
            causes.append(fe.not_supported("spec.strategy.type", kind, STRATEGY_TYPES))
        if kind == "Recreate" and (spec.get("strategy") or {}).get("rollingUpdate") is not None:
            causes.append(
                fe.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
            )
        policy = (
            (spec.get("template") or {}).get("spec", {}).get("restartPolicy")
            if isinstance(spec.get("template"), dict)
            else None
        )
        if policy not in (None, "Always"):
            causes.append(fe.not_supported("spec.template.spec.restartPolicy", policy, ("Always",)))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_selector_unchanged(new, old)

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        names, images = container_cells(((spec.get("template") or {}).get("spec") or {}).get("containers"))
        return [
            f"{int(status.get('readyReplicas') or 0)}/{int(spec.get('replicas') or 0)}",
            int(status.get("updatedReplicas") or 0),
            int(status.get("availableReplicas") or 0),
            names,
            images,
            selector_string(spec.get("selector")),
        ]


def validate_selector_unchanged(new: Obj, old: Obj) -> list[Cause]:
    """apps/v1: spec.selector is immutable."""
    before, after = (old.get("spec") or {}).get("selector"), (new.get("spec") or {}).get("selector")
    if before != after:
        return [immutable("spec.selector", after)]
    return []
