"""ReplicaSets (apps/v1): replicas 1 by default, selector rules, scale, the kubectl table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.apps.deployment import SELECTOR_SCALE, validate_selector_unchanged
from skiff.registry.core.pod_spec import default_pod_template, validate_pod_template
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import SpecStatusStrategy
from skiff.registry.table_format import container_cells, format_label_selector
from skiff.registry.workload import (
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    validate_replicas,
    validate_selector_and_template,
)


class ReplicaSetStrategy(SpecStatusStrategy):
    scale = SELECTOR_SCALE
    columns = (
        NAME_COLUMN,
        Column("Desired", type="integer", description="Replicas is the number of desired pods."),
        Column("Current", type="integer", description="Replicas is the most recently observed number of "
                                              "non-terminating pods."),
        Column("Ready", type="integer", description="The number of non-terminating pods targeted by this ReplicaSet "
               "with a Ready Condition."),
        AGE_COLUMN,
        CONTAINERS_COLUMN,
        IMAGES_COLUMN,
        Column("Selector", priority=1, description="Selector is a label query over pods that should "
                                           "match the replica count."),
    )  # fmt: skip
    field_selectors = ("status.replicas",)

    def initial_status(self, obj: Obj) -> Obj:
        return {"replicas": 0}

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            default_pod_template(spec.get("template"))

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [fe.required("spec")]
        causes = validate_replicas(spec.get("replicas"), "spec.replicas")
        causes += validate_selector_and_template(spec, "spec")
        return causes + validate_pod_template(spec.get("template"), "spec.template")

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_selector_unchanged(new, old)

    def field_values(self, obj: Obj) -> dict[str, str]:
        return {"status.replicas": str((obj.get("status") or {}).get("replicas") or 0)}

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        names, images = container_cells(((spec.get("template") or {}).get("spec") or {}).get("containers"))
        return [
            int(spec.get("replicas") or 0),
            int(status.get("replicas") or 0),
            int(status.get("readyReplicas") or 0),
            names,
            images,
            format_label_selector(spec.get("selector")),
        ]
