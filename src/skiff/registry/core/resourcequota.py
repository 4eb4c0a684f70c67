"""ResourceQuotas (core/v1): status owned by the quota controller; the Request/Limit table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import SpecStatusStrategy


class ResourceQuotaStrategy(SpecStatusStrategy):
    tracks_generation = False
    columns = (
        NAME_COLUMN,
        Column("Request", description="Request represents a minimum amount of cpu/memory that a "
                              "container may consume."),
        Column("Limit", description="Limits control the maximum amount of cpu/memory that a container may use "
               "independent of contention on the node."),
        AGE_COLUMN,
    )  # fmt: skip

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        status = obj.get("status") or {}
        hard, used = status.get("hard") or {}, status.get("used") or {}
        requests: list[str] = []
        limits: list[str] = []
        for name in sorted(hard):
            target = limits if name.split(".")[0] == "limits" and "." in name else requests
            target.append(f"{name}: {used.get(name, '0')}/{hard[name]}")
        return [", ".join(requests), ", ".join(limits)]
