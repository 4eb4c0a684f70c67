"""One row of the resource table, and the Strategy that holds a resource's rules.

As Kubernetes keeps everything about a resource in one ``strategy.go``, a
Skiff resource is a ``ResourceInfo`` (how it is named and served) plus a
``Strategy`` (what the generic registry does differently for it).  Strategies
are pure: no I/O, no clock (``now`` is passed in), they mutate only the
object handed to them.  The generic registry runs the same sequence for every
resource: system metadata → strategy.prepare → strategy.default → admission →
strategy.validate → key → compare-and-swap write → error translation.

Objects are plain JSON dicts, as on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from skiff.api.status import Cause

Obj = dict[str, Any]

#: The verbs a normal read-write resource supports (APIResource.verbs).
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Column:
    """A Table column (metav1.TableColumnDefinition)."""

    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


NAME_COLUMN = Column("Name", format="name", description="Name must be unique within a namespace.")
AGE_COLUMN = Column("Age", description="CreationTimestamp is a timestamp representing the server time ...")


@dataclass(frozen=True, slots=True)
class ScaleSpec:
    """Where a resource keeps what its ``scale`` subresource reads and writes (dotted paths)."""

    spec_replicas: str = "spec.replicas"
    status_replicas: str = "status.replicas"
    label_selector: str = "status.labelSelector"


class Strategy:
    """Defaults for a resource with no special rules; subclass and override per resource."""

    #: The complete ordered Table columns (kubectl get), Name and Age included where the
    #: upstream printer puts them; empty means Kubernetes' default Name + "Created At".
    #: See skiff.registry.table_format for the contract.
    columns: tuple[Column, ...] = ()
    #: Field-selector fields beyond metadata.name / metadata.namespace.
    field_selectors: tuple[str, ...] = ()
    #: True when PUT/PATCH on the main resource must keep .status (it has a status subresource).
    has_status: bool = False
    #: Set when the resource has a ``scale`` subresource.
    scale: ScaleSpec | None = None
    #: True when updates may create (PUT on a missing object), as for most core kinds.
    allow_create_on_update: bool = False
    #: Generation tracks spec changes (metadata.generation bumps on spec change).
    tracks_generation: bool = False

    def prepare_for_create(self, obj: Obj) -> None:
        """Clear what a client may not set on create (e.g. status for kinds with a status subresource)."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Carry over what a main-resource update may not change (e.g. status)."""

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """A status update changes only status: carry spec and metadata (but labels/annotations) over."""

    def default(self, obj: Obj) -> None:
        """Apply the defaults Kubernetes applies to this kind."""

    def validate(self, obj: Obj) -> list[Cause]:
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        """Update-only rules (immutable fields); ``validate`` runs too."""
        return []

    def field_values(self, obj: Obj) -> dict[str, str]:
        """Values of ``field_selectors`` for ``obj`` (metadata fields are added by the registry)."""
        return {}

    def display_name(self, obj: Obj) -> str:
        """The Name cell of the Table (StorageClass appends " (default)")."""
        return str((obj.get("metadata") or {}).get("name", ""))

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        """Table cells for ``columns`` other than Name and Age (table_format.build_row adds those)."""
        return []


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """How a resource is named and served (one APIResource of discovery)."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    strategy: Strategy = field(default_factory=Strategy)
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    #: Subresources served besides the main resource: "status", "scale", "binding", "log", ...
    subresources: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"
