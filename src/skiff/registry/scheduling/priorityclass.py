"""PriorityClasses (scheduling.k8s.io/v1): PreemptLowerPriority by default, value rules, the table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import ObjectStrategy, immutable

#: scheduling.HighestUserDefinablePriority; the system classes sit above it.
HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_CLASSES = {"system-node-critical": 2_000_001_000, "system-cluster-critical": 2_000_000_000}
PREEMPTION_POLICIES = ("Never", "PreemptLowerPriority")


class PriorityClassStrategy(ObjectStrategy):
    columns = (
        NAME_COLUMN,
        Column("Value", type="integer", description="value represents the integer value of this priority class."),
        Column("Global-Default", type="boolean", description="globalDefault specifies whether this PriorityClass "
               "should be considered as the default priority for pods that do not have any priority class."),
        AGE_COLUMN,
        Column("PreemptionPolicy", description="preemptionPolicy is the Policy for preempting pods with "
                                       "lower priority."),
    )  # fmt: skip

    def default(self, obj: Obj) -> None:
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        name = (obj.get("metadata") or {}).get("name") or ""
        value = obj.get("value")
        if name in SYSTEM_CLASSES:
            if value != SYSTEM_CLASSES[name]:
                causes.append(fe.forbidden("metadata.name", f"{name} is a system priority class and cannot be changed"))
        elif name.startswith("system-"):
            causes.append(fe.forbidden("metadata.name", "priority class names with 'system-' prefix are reserved"))
        elif not isinstance(value, int) or isinstance(value, bool):
            causes.append(fe.required("value"))
        elif value > HIGHEST_USER_PRIORITY:
            causes.append(
                fe.forbidden("value", f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}")
            )
        policy = obj.get("preemptionPolicy")
        if policy is not None and policy not in PREEMPTION_POLICIES:
            causes.append(fe.not_supported("preemptionPolicy", policy, PREEMPTION_POLICIES))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        if new.get("value") != old.get("value"):
            causes.append(fe.forbidden("value", "may not be changed in an update."))
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            causes.append(immutable("preemptionPolicy", new.get("preemptionPolicy")))
        return causes

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return [int(obj.get("value") or 0), bool(obj.get("globalDefault")), obj.get("preemptionPolicy") or ""]
