"""CustomResourceDefinitions (apiextensions.k8s.io/v1): names, versions, defaults.

Follows apiextensions-apiserver pkg/registry/customresourcedefinition/strategy.go
and pkg/apis/apiextensions/v1/defaults.go at the level this strategy owns:
the name is ``<plural>.<group>``, exactly one version is the storage version,
conversion defaults to None, singular and listKind default from plural and
kind, and status starts with the storage version as the only stored version;
an update that changes the storage version adds it to ``storedVersions``,
and a stored version may not leave ``spec.versions``.  Per version: a schema
is required and must be structural at a basic level, printer columns and
scale paths must make sense (``crd_schema_rules``).  ``group`` and ``scope``
are immutable.  Serving a CRD (Established, discovery) is the establisher's
job (skiff.apiserver.crds).
"""

from __future__ import annotations

from skiff.api import field_errors as fe
from skiff.api import name_rules
from skiff.api.status import Cause
from skiff.registry.apiextensions.crd_schema_rules import validate_version_rules
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
            else:
                causes += [fe.invalid(f"spec.versions[{i}].name", vname, m) for m in name_rules.is_dns1035_label(vname)]
            seen.add(vname)
            causes += validate_version_rules(version, f"spec.versions[{i}]")
        if versions and not any(v.get("served") for v in versions):
            causes.append(fe.invalid("spec.versions", None, "must have at least one version marked as served"))
        if plural:
            causes += [fe.invalid("spec.names.plural", plural, m) for m in name_rules.is_dns1123_label(plural)]
        if spec.get("preserveUnknownFields") is True:
            causes.append(
                fe.invalid(
                    "spec.preserveUnknownFields",
                    True,
                    "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                    "spec.versions[*].schema instead",
                )
            )
        return causes

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Status is carried over; a new storage version joins ``storedVersions`` (strategy.go)."""
        super().prepare_for_update(new, old)
        versions = (new.get("spec") or {}).get("versions") or []
        storage = next((v.get("name") for v in versions if isinstance(v, dict) and v.get("storage")), None)
        status = new.get("status")
        if storage and isinstance(status, dict):
            stored = list(status.get("storedVersions") or [])
            if storage not in stored:
                status["storedVersions"] = [*stored, storage]

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        causes: list[Cause] = []
        if new_spec.get("group") != old_spec.get("group"):
            causes.append(immutable("spec.group", new_spec.get("group")))
        if new_spec.get("scope") != old_spec.get("scope"):
            causes.append(immutable("spec.scope", new_spec.get("scope")))
        names = {v.get("name") for v in new_spec.get("versions") or [] if isinstance(v, dict)}
        for i, stored in enumerate((new.get("status") or {}).get("storedVersions") or []):
            if stored not in names:
                causes.append(fe.invalid(f"status.storedVersions[{i}]", stored, "must appear in spec.versions"))
        return causes
