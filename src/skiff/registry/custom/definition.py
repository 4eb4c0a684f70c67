"""A CustomResourceDefinition object → the ResourceInfo rows it serves.

``crd_resources(crd, names)`` reads the CRD's spec with the names the naming
step accepted (``status.acceptedNames``) and returns:

* ``storage``: the row objects are stored under (the version with
  ``storage: true``; stored objects carry its apiVersion), served or not;
* ``served``: one row per ``served: true`` version, highest version
  priority first (kube-aware order: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 >
  other names alphabetically), which makes the first the group's preferred
  version in discovery as upstream sorts it.

Every row's strategy is built from its own version's schema, subresources
and printer columns.  Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from skiff.registry.custom.strategy import CustomResourceStrategy, version_rules
from skiff.registry.resource import ALL_VERBS, Obj, ResourceInfo

_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")
_STABILITY = {None: 2, "beta": 1, "alpha": 0}


def version_priority(name: str) -> tuple[int, int, int, int, str]:
    """A sort key, smallest first = highest priority (apimachinery version.CompareKubeAwareVersionStrings)."""
    match = _KUBE_VERSION.match(name)
    if match is None:
        return (1, 0, 0, 0, name)
    major, stability, minor = match.group(1), match.group(2), match.group(3)
    return (0, -_STABILITY[stability], -int(major), -int(minor or 0), "")


@dataclass(frozen=True, slots=True)
class AcceptedNames:
    plural: str
    singular: str
    kind: str
    list_kind: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, names: dict[str, Any]) -> AcceptedNames:
        kind = str(names.get("kind") or "")
        return cls(
            plural=str(names.get("plural") or ""),
            singular=str(names.get("singular") or kind.lower()),
            kind=kind,
            list_kind=str(names.get("listKind") or (kind + "List" if kind else "")),
            short_names=tuple(str(n) for n in names.get("shortNames") or ()),
            categories=tuple(str(c) for c in names.get("categories") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"plural": self.plural, "singular": self.singular}
        if self.short_names:
            out["shortNames"] = list(self.short_names)
        out["kind"] = self.kind
        out["listKind"] = self.list_kind
        if self.categories:
            out["categories"] = list(self.categories)
        return out


@dataclass(frozen=True, slots=True)
class CrdResources:
    storage: ResourceInfo
    served: tuple[ResourceInfo, ...]
    #: Served version → the same row with the storage version's group/version (what its registry writes as).
    writers: dict[str, ResourceInfo]


def storage_version(crd: Obj) -> str:
    for version in (crd.get("spec") or {}).get("versions") or []:
        if isinstance(version, dict) and version.get("storage"):
            return str(version.get("name", ""))
    return ""


def crd_resources(crd: Obj, names: AcceptedNames) -> CrdResources:
    spec = crd.get("spec") or {}
    group = str(spec.get("group", ""))
    namespaced = spec.get("scope") == "Namespaced"
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    stored = storage_version(crd)

    def row(version: dict[str, Any]) -> ResourceInfo:
        rules = version_rules(version)
        subresources = tuple(s for s, on in (("status", rules.status), ("scale", rules.scale is not None)) if on)
        return ResourceInfo(
            group=group,
            version=str(version.get("name", "")),
            plural=names.plural,
            singular=names.singular,
            kind=names.kind,
            namespaced=namespaced,
            strategy=CustomResourceStrategy(rules, namespaced),
            short_names=names.short_names,
            categories=names.categories,
            verbs=ALL_VERBS,
            subresources=subresources,
        )

    rows = {str(v.get("name", "")): row(v) for v in versions}
    served = tuple(
        rows[name]
        for name in sorted(
            (str(v.get("name", "")) for v in versions if v.get("served")),
            key=version_priority,
        )
    )
    storage = rows[stored]
    writers = {info.version: replace(info, version=stored) for info in served}
    return CrdResources(storage=storage, served=served, writers=writers)
