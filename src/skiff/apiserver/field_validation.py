"""Schema-driven field validation: unknown fields against the OpenAPI schemas, as kube-apiserver.

Upstream decodes built-in kinds into Go structs, so a stored object never
holds a field its kind lacks; ``fieldValidation`` only decides whether the
client hears about them:

* ``Strict`` — 400.  Create and update (create.go / update.go
  ``transformDecodeError``) say
  ``Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replica"``;
  JSON, merge and strategic-merge patches (patch.go) say just
  ``strict decoding error: unknown field "spec.replica"``.  Several findings are
  joined with ``", "``.
* ``Warn`` (and no parameter: the server default) — one
  ``Warning: 299 - "unknown field \\"spec.replica\\""`` header per finding; the
  fields are dropped.
* ``Ignore`` — dropped silently.

Patches are checked on their *result* (the stored object has no unknown
fields, so whatever unknown field the result holds came from the patch), plus
duplicate fields in JSON merge/strategic patch bodies.  Server-side apply
rejects unknown fields whatever ``fieldValidation`` says, with
structured-merge-diff's wording
``failed to create typed patch object (ns/name; apps/v1, Kind=Deployment): .spec.foo: field not declared in schema``
(upstream answers that 500 today, a known bug — kubernetes#122480; we answer 400).

Values of the wrong JSON type fail first, whatever ``fieldValidation`` says,
with Go's decoder wording (:mod:`skiff.registry.type_errors`): 400
``Secret in version "v1" cannot be handled as a Secret: json: cannot unmarshal
bool into Go struct field ObjectMeta.metadata.finalizers of type string``;
custom resources get that check on ``metadata`` only (their schema validation
reports the rest, 422).

Protobuf bodies cannot carry unknown fields (the decoder skips unknown field
numbers), so they pass unchanged.  Custom resources are checked on
``metadata`` and against their CRD version's structural schema
(``CustomResourceStrategy.prune_unknown_fields``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from skiff.api.status import ApiError, bad_request
from skiff.apiserver import bodies
from skiff.apiserver.negotiation import APPLY_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from skiff.registry.custom.strategy import CustomResourceStrategy
from skiff.registry.pruning import prune_unknown
from skiff.registry.resource import Obj, ResourceInfo
from skiff.registry.schemas import META, KindSchemas, builtin_schemas, ref
from skiff.registry.type_errors import first_type_error

Mutate = Callable[[Obj | None], Obj]


class SchemaFieldChecker:
    """``bodies.FieldChecker`` over OpenAPI schemas: reports unknown fields *and removes them* from the object."""

    def __init__(self, schemas: KindSchemas | None = None) -> None:
        self._schemas = schemas

    @property
    def schemas(self) -> KindSchemas:
        if self._schemas is None:
            self._schemas = builtin_schemas()
        return self._schemas

    def unknown_fields(self, info: ResourceInfo, obj: Obj) -> list[str]:
        group, version, kind = _type_of(info, obj)
        self.check_types(version, kind, self.schemas.for_kind(group, version, kind), obj)
        found = self.prune(group, version, kind, obj)
        strategy = info.strategy
        own_kind = (group, version, kind) == (info.group, info.version, info.kind)
        if isinstance(strategy, CustomResourceStrategy) and own_kind:
            found += strategy.prune_unknown_fields(obj)  # a CR: its CRD version's structural schema
        return found

    def check_types(self, version: str, kind: str, name: str | None, obj: Obj) -> None:
        """400 for a value of the wrong JSON type, as Go's decoder (whole kind, or ObjectMeta without a schema)."""
        components = self.schemas.components
        if name is not None:
            error = first_type_error(obj, ref(name), components)
        else:
            error = first_type_error(
                {"metadata": obj.get("metadata")},
                {"properties": {"metadata": ref(f"{META}.ObjectMeta")}},
                components,
                kind,
            )
        if error is not None:
            raise bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {error}')

    def prune(self, group: str, version: str, kind: str, obj: Obj) -> list[str]:
        """Remove the fields ``kind`` lacks from ``obj``; their paths in document order."""
        schemas = self.schemas
        name = schemas.for_kind(group, version, kind)
        if name is not None:
            return prune_unknown(obj, ref(name), schemas.components)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return []
        return prune_unknown(meta, ref(f"{META}.ObjectMeta"), schemas.components, "metadata")


def _type_of(info: ResourceInfo, obj: Obj) -> tuple[str, str, str]:
    """The body's own apiVersion/kind when it names them (a Scale sent to /scale), else the endpoint's."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if isinstance(api_version, str) and isinstance(kind, str) and api_version and kind:
        group, _, version = api_version.rpartition("/")
        return group, version, kind
    return info.group, info.version, info.kind


def strict_decoding_error(findings: list[str]) -> str:
    return "strict decoding error: " + ", ".join(findings)


def enforce_on_decode(directive: str, findings: list[str], warnings: list[str], version: str, kind: str) -> None:
    """Create/update bodies: Strict is 400 ``<Kind> in version "<v>" cannot be handled as a <Kind>: ...``."""
    if not findings or directive == bodies.IGNORE:
        return
    if directive == bodies.STRICT:
        raise bad_request(
            f'{kind} in version "{version}" cannot be handled as a {kind}: {strict_decoding_error(findings)}'
        )
    warnings.extend(findings)


def patch_body_duplicates(directive: str, patch_type: str, body: bytes) -> list[str]:
    """Duplicate fields of a merge or strategic-merge patch body (checked only under Strict and Warn)."""
    if directive not in (bodies.STRICT, bodies.WARN) or patch_type not in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        return []
    _, duplicates = bodies.decode_json(body, find_duplicates=True)
    return [f'duplicate field "{p}"' for p in duplicates]


@dataclass
class CheckedPatch:
    """Wraps a patch's mutate: checks (and prunes) each result; ``findings`` holds the last attempt's."""

    mutate: Mutate
    checker: bodies.FieldChecker
    info: ResourceInfo
    directive: str
    patch_type: str
    duplicates: list[str] = field(default_factory=list)
    namespace: str = ""
    name: str = ""
    findings: list[str] = field(default_factory=list)

    def __call__(self, current: Obj | None) -> Obj:
        result = self.mutate(current)
        unknown = self.checker.unknown_fields(self.info, result)
        if unknown and self.patch_type == APPLY_PATCH:
            raise self._apply_error(*_type_of(self.info, result), unknown)
        self.findings = bodies.field_findings(unknown, []) + self.duplicates
        if self.findings and self.directive == bodies.STRICT:
            raise bad_request(strict_decoding_error(self.findings))
        return result

    def _apply_error(self, group: str, version: str, kind: str, unknown: list[str]) -> ApiError:
        gv = f"{group}/{version}" if group else f"/{version}"
        errors = [f".{p}: field not declared in schema" for p in unknown]
        text = errors[0] if len(errors) == 1 else "errors:\n  " + "\n  ".join(errors)
        return bad_request(
            f"failed to create typed patch object ({self.namespace}/{self.name}; {gv}, Kind={kind}): {text}"
        )

    def warnings(self) -> list[str]:
        """What to send as Warning headers once the write succeeded (Warn and the default)."""
        return [] if self.directive == bodies.IGNORE else list(self.findings)
