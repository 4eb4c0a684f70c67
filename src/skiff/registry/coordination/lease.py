"""Leases (coordination.k8s.io/v1): leader election's lock object; PUT may create; the Holder table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import ObjectStrategy


class LeaseStrategy(ObjectStrategy):
    allow_create_on_update = True
    columns = (
        NAME_COLUMN,
        Column("Holder", description="holderIdentity contains the identity of the holder of a current lease."),
        AGE_COLUMN,
    )

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        for key in ("leaseDurationSeconds", "leaseTransitions"):
            value = spec.get(key)
            if value is None:
                continue
            floor = 1 if key == "leaseDurationSeconds" else 0
            if not isinstance(value, int) or isinstance(value, bool) or value < floor:
                message = "must be greater than 0" if floor else "must be greater than or equal to 0"
                causes.append(fe.invalid(f"spec.{key}", value, message))
        return causes

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return [(obj.get("spec") or {}).get("holderIdentity") or ""]
