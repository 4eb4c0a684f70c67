"""ServiceAccounts (core/v1): nothing special but the table (the count of referenced secrets)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import ObjectStrategy


class ServiceAccountStrategy(ObjectStrategy):
    allow_create_on_update = True
    columns = (
        NAME_COLUMN,
        Column("Secrets", description="Secrets is a list of the secrets in the same namespace that pods running "
               "using this ServiceAccount are allowed to use."),
        AGE_COLUMN,
    )  # fmt: skip

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return [len(obj.get("secrets") or [])]
