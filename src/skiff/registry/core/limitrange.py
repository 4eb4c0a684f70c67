"""LimitRanges (core/v1): SetDefaults_LimitRangeItem; no printer upstream (default Name/Created At table).

For a Container item, ``default`` falls back to ``max`` and
``defaultRequest`` to ``default`` then ``min``.
"""

from __future__ import annotations

from skiff.registry.resource import Obj
from skiff.registry.strategies import ObjectStrategy


class LimitRangeStrategy(ObjectStrategy):
    allow_create_on_update = True

    def default(self, obj: Obj) -> None:
        for item in (obj.get("spec") or {}).get("limits") or []:
            if not isinstance(item, dict) or item.get("type") != "Container":
                continue
            defaults = item.setdefault("default", {})
            for name, value in (item.get("max") or {}).items():
                defaults.setdefault(name, value)
            requests = item.setdefault("defaultRequest", {})
            for name, value in defaults.items():
                requests.setdefault(name, value)
            for name, value in (item.get("min") or {}).items():
                requests.setdefault(name, value)
            if not defaults:
                item.pop("default")
            if not requests:
                item.pop("defaultRequest")
