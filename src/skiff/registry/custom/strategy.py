"""The Strategy of one served version of a CustomResourceDefinition.

As apiextensions-apiserver pkg/registry/customresource (strategy.go,
status_strategy.go, validator.go) with the decoder's structural steps folded
into ``default`` (the registry runs it after ``prepare_*``):

* ``default``: prune unknown fields, drop non-nullable nulls, apply defaults;
* ``validate``: ObjectMeta (names are DNS subdomains), the schema, and the
  scale subresource's replica fields (integers ≥ 0);
* with the status subresource, create drops ``status``, a main-resource
  update keeps the stored ``status``, and a status update keeps everything
  but ``status`` from the stored object;
* ``generation`` tracks every change outside metadata (and status, with the
  status subresource);
* ``prune_unknown_fields`` prunes and lists what it dropped, for ``fieldValidation``.

Pure: the schema and columns are fixed at construction; no I/O.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.custom import printer, schema_validation, structural
from skiff.registry.resource import Column, Obj, ScaleSpec
from skiff.registry.strategies import ObjectStrategy, carry
from skiff.registry.table_format import dig

#: int32's upper bound: scale replicas beyond it are invalid (validator.go).
MAX_INT32 = 2**31 - 1


@dataclass(frozen=True, slots=True)
class VersionRules:
    """What a CRD version says about its objects (parsed once from the CRD)."""

    schema: dict[str, Any] | None = None
    status: bool = False
    scale: ScaleSpec | None = None
    columns: tuple[printer.PrinterColumn, ...] = ()


def _dotted(json_path: Any) -> str:
    """``.spec.replicas`` → ``spec.replicas`` (scale paths are simple JSON paths)."""
    return str(json_path or "").removeprefix(".")


def version_rules(version: dict[str, Any]) -> VersionRules:
    """The rules of one entry of ``spec.versions``."""
    raw_schema = (version.get("schema") or {}).get("openAPIV3Schema")
    subresources = version.get("subresources") or {}
    scale: ScaleSpec | None = None
    raw_scale = subresources.get("scale")
    if isinstance(raw_scale, dict):
        scale = ScaleSpec(
            spec_replicas=_dotted(raw_scale.get("specReplicasPath")),
            status_replicas=_dotted(raw_scale.get("statusReplicasPath")),
            label_selector=_dotted(raw_scale.get("labelSelectorPath")),
        )
    return VersionRules(
        schema=raw_schema if isinstance(raw_schema, dict) else None,
        status=isinstance(subresources.get("status"), dict),
        scale=scale,
        columns=printer.printer_columns(version.get("additionalPrinterColumns")),
    )


class CustomResourceStrategy(ObjectStrategy):
    """ObjectStrategy's default name rule (DNS subdomain) is the one CR names follow."""

    tracks_generation = True

    def __init__(self, rules: VersionRules, namespaced: bool) -> None:
        super().__init__(namespaced)
        self.rules = rules
        self.has_status = rules.status
        self.scale = rules.scale
        self.columns: tuple[Column, ...] = printer.table_columns(rules.columns)
        #: Reads must default too (upstream defaults in the storage decoder).
        self.defaults_on_read = structural.has_defaults(rules.schema)

    # -- preparation ---------------------------------------------------------------------
    def prepare_for_create(self, obj: Obj) -> None:
        if self.has_status:
            obj.pop("status", None)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        if self.has_status:
            carry(new, old, "status")

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """Only status changes: everything else (managedFields aside) is the stored object's."""
        status_given = "status" in new
        status = new.get("status")
        managed = (new.get("metadata") or {}).get("managedFields")
        resource_version = (new.get("metadata") or {}).get("resourceVersion")
        new.clear()
        new.update(copy.deepcopy(old))
        meta = new.setdefault("metadata", {})
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        if managed is not None:
            meta["managedFields"] = managed
        else:
            meta.pop("managedFields", None)
        if status_given:
            new["status"] = status
        else:
            new.pop("status", None)

    # -- structural steps ------------------------------------------------------------------
    def default(self, obj: Obj) -> None:
        schema = self.rules.schema
        if schema is None:
            return
        structural.prune(schema, obj)
        structural.prune_nulls(schema, obj)
        structural.apply_defaults(schema, obj)

    def read(self, obj: Obj) -> None:
        """What the storage decoder does to a stored object on read (pruning and defaulting)."""
        self.default(obj)

    def prune_unknown_fields(self, obj: Obj) -> list[str]:
        """Drop what the schema does not specify (as ``default`` would); their paths, for fieldValidation."""
        schema = self.rules.schema
        return [] if schema is None else structural.prune(schema, obj)

    # -- validation ----------------------------------------------------------------------
    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        if self.rules.schema is not None:
            causes += schema_validation.validate(self.rules.schema, obj)
        if self.scale is not None:
            causes += _replicas_causes(obj, self.scale.spec_replicas)
            causes += _replicas_causes(obj, self.scale.status_replicas)
        return causes

    # -- tables -------------------------------------------------------------------------
    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return printer.cells(self.rules.columns, obj, now)


def _replicas_causes(obj: Obj, dotted: str) -> list[Cause]:
    """validator.go's ValidateScaleSpec/Status: a replica count present must be an int32 ≥ 0."""
    if not dotted:
        return []
    *parents, last = dotted.split(".")
    holder = dig(obj, *parents) if parents else obj
    if not isinstance(holder, dict) or last not in holder:
        return []
    value = holder[last]
    if isinstance(value, bool) or not isinstance(value, int):
        return [fe.invalid(dotted, value, "should be an integer")]
    if value < 0:
        return [fe.invalid(dotted, value, "should be a non-negative integer")]
    if value > MAX_INT32:
        return [fe.invalid(dotted, value, f"should be less than or equal to {MAX_INT32}")]
    return []
