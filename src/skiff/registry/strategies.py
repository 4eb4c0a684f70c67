"""The two strategy shapes most built-in kinds share.

``ObjectStrategy``: a resource with no spec/status split (ConfigMap, Role, ...):
metadata validated with the kind's name rule, nothing else special.

``SpecStatusStrategy``: a resource with a ``status`` subresource
(Deployment, Job, ...), following the rules every such upstream strategy.go
spells out:

* create: status is reset to the kind's empty status;
* main-resource update: status is carried over from the stored object;
* status update: spec is carried over, and the metadata fields
  ``metav1.ResetObjectMetaForStatus`` protects (deletionTimestamp, generation,
  labels, annotations, finalizers, ownerReferences) keep their stored values.

Strategies are stateless apart from ``namespaced`` (the one fact from the
resource table that validation needs), mutate only the object given, and do
no I/O.  ``generation`` (1 on create, +1 when anything outside metadata and
status changes) is the generic registry's job (skiff.registry.metadata); a
strategy only declares ``tracks_generation``.
"""

from __future__ import annotations

import copy

from skiff.api import field_errors as fe
from skiff.api import name_rules
from skiff.api.name_rules import NameRule
from skiff.api.status import Cause
from skiff.registry.resource import Obj, Strategy
from skiff.registry.validation import validate_object_meta

__all__ = ["NameRule", "ObjectStrategy", "SpecStatusStrategy", "carry", "immutable", "reset_metadata_for_status"]

#: apimachinery's FieldImmutableErrorMsg.
FIELD_IMMUTABLE = "field is immutable"

#: The metadata fields a status update may not change (metav1.ResetObjectMetaForStatus).
STATUS_PROTECTED_METADATA = (
    "deletionTimestamp",
    "generation",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
)


class ObjectStrategy(Strategy):
    """Metadata validation with the kind's name rule; subclasses add ``validate_spec``."""

    #: How names of this kind are checked (most kinds: a DNS-1123 subdomain).
    name_rule: NameRule = staticmethod(name_rules.name_is_dns_subdomain)

    def __init__(self, namespaced: bool = True) -> None:
        self.namespaced = namespaced

    def validate(self, obj: Obj) -> list[Cause]:
        meta = obj.get("metadata")
        causes = validate_object_meta(meta if isinstance(meta, dict) else {}, self.namespaced, self.name_rule)
        return causes + self.validate_spec(obj)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        """Kind-specific rules beyond metadata (create and update)."""
        return []


class SpecStatusStrategy(ObjectStrategy):
    """A kind with a status subresource and (by default) a spec-tracking generation."""

    has_status = True
    tracks_generation = True

    def initial_status(self, obj: Obj) -> Obj:
        """The status a freshly created object has (Go's zero value of the kind's status struct)."""
        return {}

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = self.initial_status(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        carry(new, old, "status")

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        carry(new, old, "spec")
        reset_metadata_for_status(new, old)


def carry(new: Obj, old: Obj, key: str) -> None:
    """Make ``new[key]`` the stored ``old[key]`` (absent when the stored object has none)."""
    if key in old:
        new[key] = copy.deepcopy(old[key])
    else:
        new.pop(key, None)


def reset_metadata_for_status(new: Obj, old: Obj) -> None:
    """Keep the stored values of STATUS_PROTECTED_METADATA on a status write."""
    new_meta = new.setdefault("metadata", {})
    old_meta = old.get("metadata") or {}
    for key in STATUS_PROTECTED_METADATA:
        if key in old_meta:
            new_meta[key] = copy.deepcopy(old_meta[key])
        else:
            new_meta.pop(key, None)


def immutable(path: str, value: object) -> Cause:
    """ValidateImmutableField's error (apimachinery FieldImmutableErrorMsg)."""
    return fe.invalid(path, value, FIELD_IMMUTABLE)
