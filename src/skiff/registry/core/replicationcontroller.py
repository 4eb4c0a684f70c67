"""ReplicationControllers (core/v1): selector and labels from the template, scale, the table.

SetDefaults_ReplicationController: a missing selector (and missing labels)
come from the template's labels; replicas default to 1.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.core.pod_spec import default_pod_template, validate_pod_template
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj, ScaleSpec
from skiff.registry.strategies import SpecStatusStrategy
from skiff.registry.table_format import container_cells, format_labels
from skiff.registry.workload import CONTAINERS_COLUMN, IMAGES_COLUMN, validate_replicas


class ReplicationControllerStrategy(SpecStatusStrategy):
    #: /scale reports spec.selector, a plain label map for RCs (rcStrategy's scale REST).
    scale = ScaleSpec(label_selector="spec.selector")
    columns = (
        NAME_COLUMN,
        Column("Desired", type="integer", description="Replicas is the number of desired replicas."),
        Column("Current", type="integer", description="Replicas is the most recently observed number of replicas."),
        Column("Ready", type="integer", description="The number of ready replicas for this replication controller."),
        AGE_COLUMN,
        CONTAINERS_COLUMN,
        IMAGES_COLUMN,
        Column("Selector", priority=1, description="Selector is a label query over pods that should match the "
               "Replicas count."),
    )  # fmt: skip
    field_selectors = ("status.replicas",)

    def initial_status(self, obj: Obj) -> Obj:
        return {"replicas": 0}

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        template = spec.get("template")
        template_labels = (template or {}).get("metadata", {}).get("labels") if isinstance(template, dict) else None
        if template_labels:
            if not spec.get("selector"):
                spec["selector"] = copy.deepcopy(template_labels)
            meta = obj.setdefault("metadata", {})
            if not meta.get("labels"):
                meta["labels"] = copy.deepcopy(template_labels)
        spec.setdefault("replicas", 1)
        default_pod_template(template)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = validate_replicas(spec.get("replicas"), "spec.replicas")
        selector = spec.get("selector") or {}
        if not selector:
            causes.append(fe.required("spec.selector"))
        template = spec.get("template")
        if template is None:
            causes.append(fe.required("spec.template"))
            return causes
        labels = (template.get("metadata") or {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            causes.append(
                fe.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
            )
        return causes + validate_pod_template(template, "spec.template")

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
            format_labels(spec.get("selector")),
        ]
