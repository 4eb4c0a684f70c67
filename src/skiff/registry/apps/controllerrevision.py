"""ControllerRevisions (apps/v1): immutable data, the Controller/Revision table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import ObjectStrategy, immutable


class ControllerRevisionStrategy(ObjectStrategy):
    columns = (
        NAME_COLUMN,
        Column("Controller", description="Controller of the object"),
        Column("Revision", description="Revision indicates the revision of the state represented by Data."),
        AGE_COLUMN,
    )

    def validate_spec(self, obj: Obj) -> list[Cause]:
        revision = obj.get("revision")
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            return [fe.invalid("revision", revision, "must be greater than or equal to 0")]
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        if new.get("data") != old.get("data"):
            return [immutable("data", None)]
        return []

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return [controller_name(obj), obj.get("revision", 0)]


def controller_name(obj: Obj) -> str:
    """The controlling owner as "kind.group/name" in lower case, "<none>" without one."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            api_version = str(ref.get("apiVersion") or "")
            group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
            kind = str(ref.get("kind") or "")
            qualified = f"{kind}.{group}" if group else kind
            return f"{qualified.lower()}/{ref.get('name', '')}" if kind else str(ref.get("name", ""))
    return "<none>"
