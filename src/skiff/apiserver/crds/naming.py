"""Accepted names and status conditions of a CRD: pure functions of the CRD and its group's other CRDs.

Follows apiextensions-apiserver's naming controller (``calculateNamesAndConditions``)
and establishing controller, collapsed into one step because one process
serves the CRD as soon as its names are accepted:

* a requested name is accepted unless another CRD of the same group already
  accepted it (plural, singular and short names share one namespace, kind and
  list kind another); a name this CRD had accepted stays its own.  A conflict
  keeps the previously accepted name and sets NamesAccepted=False with the
  reason ``PluralConflict``, ``SingularConflict``, ``ShortNamesConflict``,
  ``KindConflict`` or ``ListKindConflict`` and the message ``"x" is already in use``;
* NamesAccepted=True (``NoConflicts``, "no conflicts found") makes the CRD
  Established=True (``InitialNamesAccepted``, "the initial names have been
  accepted"); until then Established=False (``NotAccepted``, "not all names are accepted");
* ``storedVersions`` always includes the current storage version;
* a condition keeps its ``lastTransitionTime`` unless its status changes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from skiff.registry.custom.definition import AcceptedNames, storage_version
from skiff.registry.metadata import format_time
from skiff.registry.resource import Obj

NAMES_ACCEPTED = "NamesAccepted"
ESTABLISHED = "Established"
TERMINATING = "Terminating"
CONDITION_ORDER = (NAMES_ACCEPTED, ESTABLISHED, TERMINATING)


@dataclass(frozen=True, slots=True)
class Naming:
    names: AcceptedNames
    accepted: bool
    reason: str
    message: str


def _names_of(crd: Obj) -> tuple[set[str], set[str]]:
    """(resource names, kind names) a CRD holds through its accepted names."""
    accepted = (crd.get("status") or {}).get("acceptedNames") or {}
    resources = {accepted.get("plural"), accepted.get("singular"), *(accepted.get("shortNames") or [])}
    kinds = {accepted.get("kind"), accepted.get("listKind")}
    return {str(r) for r in resources if r}, {str(k) for k in kinds if k}


def calculate_names(crd: Obj, others: Iterable[Obj]) -> Naming:
    """The names ``crd`` may serve under, given the other CRDs of the cluster."""
    spec = crd.get("spec") or {}
    group = spec.get("group")
    requested = AcceptedNames.from_dict(spec.get("names") or {})
    previous = AcceptedNames.from_dict((crd.get("status") or {}).get("acceptedNames") or {})
    used_resources: set[str] = set()
    used_kinds: set[str] = set()
    name = (crd.get("metadata") or {}).get("name")
    for other in others:
        if (other.get("metadata") or {}).get("name") == name or (other.get("spec") or {}).get("group") != group:
            continue
        resources, kinds = _names_of(other)
        used_resources |= resources
        used_kinds |= kinds
    reason = message = ""

    def conflict(value: str, previous_value: str, used: set[str], why: str) -> bool:
        nonlocal reason, message
        if value != previous_value and value in used:
            if not reason:
                reason, message = why, f'"{value}" is already in use'
            return True
        return False

    plural = previous.plural if conflict(requested.plural, previous.plural, used_resources, "PluralConflict") else ""
    singular = (
        previous.singular if conflict(requested.singular, previous.singular, used_resources, "SingularConflict") else ""
    )
    short_conflict = any(
        conflict(s, s if s in previous.short_names else "", used_resources, "ShortNamesConflict")
        for s in requested.short_names
    )
    kind = previous.kind if conflict(requested.kind, previous.kind, used_kinds, "KindConflict") else ""
    list_kind = (
        previous.list_kind if conflict(requested.list_kind, previous.list_kind, used_kinds, "ListKindConflict") else ""
    )
    names = AcceptedNames(
        plural=plural or requested.plural,
        singular=singular or requested.singular,
        kind=kind or requested.kind,
        list_kind=list_kind or requested.list_kind,
        short_names=previous.short_names if short_conflict else requested.short_names,
        categories=requested.categories,
    )
    if reason:
        return Naming(names, False, reason, message)
    return Naming(names, True, "NoConflicts", "no conflicts found")


def find_condition(crd: Obj, kind: str) -> dict[str, Any] | None:
    for condition in (crd.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition
    return None


def set_condition(status: dict[str, Any], kind: str, value: str, reason: str, message: str, now: datetime) -> None:
    """apiextensions.SetCRDCondition: replace or add, lastTransitionTime kept while the status holds."""
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    old = next((c for c in conditions if c.get("type") == kind), None)
    stamp = old.get("lastTransitionTime") if old is not None and old.get("status") == value else None
    new = {
        "type": kind,
        "status": value,
        "lastTransitionTime": stamp or format_time(now),
        "reason": reason,
        "message": message,
    }
    rest = [c for c in conditions if c.get("type") != kind]
    rank = {name: i for i, name in enumerate(CONDITION_ORDER)}
    merged = [*rest, new]
    merged.sort(key=lambda c: rank.get(str(c.get("type")), len(rank)))
    status["conditions"] = merged


def established_status(crd: Obj, naming: Naming, now: datetime) -> dict[str, Any]:
    """The status the CRD should have once ``naming`` is applied (and served, when accepted)."""
    status: dict[str, Any] = copy.deepcopy(crd.get("status") or {})
    status["acceptedNames"] = naming.names.to_dict()
    if naming.accepted:
        set_condition(status, NAMES_ACCEPTED, "True", naming.reason, naming.message, now)
        set_condition(status, ESTABLISHED, "True", "InitialNamesAccepted", "the initial names have been accepted", now)
    else:
        set_condition(status, NAMES_ACCEPTED, "False", naming.reason, naming.message, now)
        established = find_condition(crd, ESTABLISHED)
        if established is None or established.get("status") != "True":
            set_condition(status, ESTABLISHED, "False", "NotAccepted", "not all names are accepted", now)
    stored = [str(v) for v in status.get("storedVersions") or []]
    current = storage_version(crd)
    if current and current not in stored:
        stored.append(current)
    status["storedVersions"] = stored
    return status
