"""CustomResourceDefinitions (apiextensions.k8s.io/v1): names, versions, defaults.

Follows apiextensions-apiserver pkg/registry/customresourcedefinition/strategy.go
and pkg/apis/apiextensions/v1/defaults.go at the level this strategy owns:
the name is ``<plural>.<group>``, exactly one version is the storage version,
conversion defaults to None, singular and listKind default from plural and
kind, and status starts with the storage version as the only stored version.
Serving a CRD (Established, discovery) is the CRD controller's job.
"""

from __future__ import annotations

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.resource import Obj
from skiff.registry.strategies import SpecStatusStrategy, immutable

SCOPES = ("Cluster", "Namespaced")


class CustomResourceDefinitionStrategy(SpecStatusStrategy):
    def initial_status(self, obj: Obj) -> Obj:
        versions = (obj.get("spec") or {}).get("versions") or []
        stored = [v.get("name") for v in versions if isinstance(v, dict) and v.get("storage")]
        return {"conditions": [], "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": stored[:1]}

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("conversion", {"strategy": "None"})
        names = spec.get("names")
        if isinstance(names, dict):
            if not names.get("singular") and isinstance(names.get("kind"), str):
                names["singular"] = names["kind"].lower()
            if not names.get("listKind") and isinstance(names.get("kind"), str):
                names["listKind"] = names["kind"] + "List"

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [fe.required("spec")]
        causes: list[Cause] = []
        raw_names = spec.get("names")
        names: Obj = raw_names if isinstance(raw_names, dict) else {}
        group, plural = spec.get("group") or "", names.get("plural") or ""
        if not group:
            causes.append(fe.required("spec.group"))
        elif "." not in group:
            causes.append(fe.invalid("spec.group", group, "should be a domain with at least one dot"))
        if not plural:
            causes.append(fe.required("spec.names.plural"))
        if not names.get("kind"):
            causes.append(fe.required("spec.names.kind"))
        name = (obj.get("metadata") or {}).get("name") or ""
        if group and plural and name != f"{plural}.{group}":
            causes.append(fe.invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
        scope = spec.get("scope")
        if scope not in SCOPES:
            causes.append(fe.not_supported("spec.scope", scope, SCOPES))
        versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
        if not versions:
            causes.append(fe.required("spec.versions", "must have exactly one version marked as storage version"))
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(fe.invalid("spec.versions", None, "must have exactly one version marked as storage version"))
        seen: set[str] = set()
        for i, version in enumerate(versions):
            vname = version.get("name") or ""
            if not vname:
                causes.append(fe.required(f"spec.versions[{i}].name"))
            elif vname in seen:
                causes.append(fe.duplicate(f"spec.versions[{i}].name", vname))
            seen.add(vname)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        if new_spec.get("group") != old_spec.get("group"):
            return [immutable("spec.group", new_spec.get("group"))]
        return []
