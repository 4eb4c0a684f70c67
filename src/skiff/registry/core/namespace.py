"""Namespaces (core/v1): Active on create, the ``kubernetes`` finalizer, the name label.

pkg/registry/core/namespace/strategy.go: create sets ``status.phase:
Active`` and makes sure ``spec.finalizers`` holds ``kubernetes``; updates
keep both spec.finalizers (changed only through ``/finalize``) and status.
SetDefaults_Namespace labels every namespace with
``kubernetes.io/metadata.name: <name>``.  Names are DNS-1123 labels.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import name_rules
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import NameRule, SpecStatusStrategy, carry

FINALIZER = "kubernetes"
NAME_LABEL = "kubernetes.io/metadata.name"


class NamespaceStrategy(SpecStatusStrategy):
    name_rule: NameRule = staticmethod(name_rules.name_is_dns_label)
    tracks_generation = False
    columns = (NAME_COLUMN, Column("Status", description="The status of the namespace"), AGE_COLUMN)
    field_selectors = ("status.phase",)

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Active"}

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        spec = obj.setdefault("spec", {})
        finalizers = spec.setdefault("finalizers", [])
        if FINALIZER not in finalizers:
            finalizers.append(FINALIZER)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        old_finalizers = (old.get("spec") or {}).get("finalizers")
        spec = new.setdefault("spec", {})
        if old_finalizers is None:
            spec.pop("finalizers", None)
        else:
            spec["finalizers"] = list(old_finalizers)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        carry(new, old, "spec")

    def default(self, obj: Obj) -> None:
        meta = obj.setdefault("metadata", {})
        if meta.get("name"):
            meta.setdefault("labels", {})[NAME_LABEL] = meta["name"]

    def field_values(self, obj: Obj) -> dict[str, str]:
        return {"status.phase": str((obj.get("status") or {}).get("phase") or "")}

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return [(obj.get("status") or {}).get("phase") or ""]
