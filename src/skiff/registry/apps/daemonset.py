"""DaemonSets (apps/v1): RollingUpdate 1/0 and revisionHistoryLimit 10 by default, the table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.apps.deployment import validate_selector_unchanged
from skiff.registry.core.pod_spec import default_pod_template, validate_pod_template
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import SpecStatusStrategy
from skiff.registry.table_format import container_cells, format_label_selector, format_labels
from skiff.registry.workload import CONTAINERS_COLUMN, IMAGES_COLUMN, validate_selector_and_template


class DaemonSetStrategy(SpecStatusStrategy):
    columns = (
        NAME_COLUMN,
        Column("Desired", type="integer", description="The total number of nodes that should be running "
                                              "the daemon pod."),
        Column("Current", type="integer", description="The number of nodes that are running at least 1 daemon pod."),
        Column("Ready", type="integer", description="The number of nodes that should be running the daemon pod "
               "and have one or more of the daemon pod running and ready."),
        Column("Up-to-date", type="integer", description="The total number of nodes that are running "
                                                 "updated daemon pod"),
        Column("Available", type="integer", description="The number of nodes that should be running the daemon "
               "pod and have one or more of the daemon pod running and available."),
        Column("Node Selector", description="NodeSelector is a selector which must be true for the pod "
                                    "to fit on a node."),
        AGE_COLUMN,
        CONTAINERS_COLUMN,
        IMAGES_COLUMN,
        Column("Selector", priority=1, description="A label query over pods that are managed by the daemon set."),
    )  # fmt: skip

    def initial_status(self, obj: Obj) -> Obj:
        return {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        update = spec.setdefault("updateStrategy", {})
        update.setdefault("type", "RollingUpdate")
        if update["type"] == "RollingUpdate":
            rolling = update.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        default_pod_template(spec.get("template"))

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [fe.required("spec")]
        causes = validate_selector_and_template(spec, "spec")
        causes += validate_pod_template(spec.get("template"), "spec.template")
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if policy not in (None, "Always"):
            causes.append(fe.not_supported("spec.template.spec.restartPolicy", policy, ("Always",)))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_selector_unchanged(new, old)

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        names, images = container_cells(pod_spec.get("containers"))
        return [
            int(status.get("desiredNumberScheduled") or 0),
            int(status.get("currentNumberScheduled") or 0),
            int(status.get("numberReady") or 0),
            int(status.get("updatedNumberScheduled") or 0),
            int(status.get("numberAvailable") or 0),
            format_labels(pod_spec.get("nodeSelector")),
            names,
            images,
            format_label_selector(spec.get("selector")),
        ]
