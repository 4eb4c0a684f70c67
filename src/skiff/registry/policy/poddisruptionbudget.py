"""PodDisruptionBudgets (policy/v1): one of minAvailable/maxUnavailable, status, the table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import SpecStatusStrategy
from skiff.registry.validation import validate_label_selector


class PodDisruptionBudgetStrategy(SpecStatusStrategy):
    columns = (
        NAME_COLUMN,
        Column("Min Available", description="The minimum number of pods that must be available."),
        Column("Max Unavailable", description="The maximum number of pods that may be unavailable."),
        Column("Allowed Disruptions", type="integer", description="Calculated number of pods that may be "
                                                          "disrupted at this time."),
        AGE_COLUMN,
    )  # fmt: skip

    def initial_status(self, obj: Obj) -> Obj:
        return {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            causes.append(fe.invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
        if spec.get("selector") is not None:
            causes += validate_label_selector(spec["selector"], "spec.selector")
        return causes

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        low, high = spec.get("minAvailable"), spec.get("maxUnavailable")
        return [
            "N/A" if low is None else str(low),
            "N/A" if high is None else str(high),
            int(status.get("disruptionsAllowed") or 0),
        ]
