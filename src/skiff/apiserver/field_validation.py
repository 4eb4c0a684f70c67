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

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.api.status import ApiError, bad_request
from skiff.apiserver import bodies
from skiff.apiserver.negotiation import APPLY_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from skiff.registry.custom.strategy import CustomResourceStrategy
from skiff.registry.pruning import TYPE_META_AND_METADATA, Schema, resolve
from skiff.registry.resource import Obj, ResourceInfo
from skiff.registry.schemas import META, KindSchemas, builtin_schemas, ref
from skiff.registry.type_errors import accepted_json_types, first_type_error

Mutate = Callable[[Obj | None], Obj]


class SchemaFieldChecker:
    """``bodies.FieldChecker`` over OpenAPI schemas: reports unknown fields *and removes them* from the object.

    Every write runs this, so it works on the kind's schemas compiled once
    into :class:`_Node` trees (``$ref``s resolved, declared children in a dict,
    the accepted JSON types as a set), and takes a fast path for the common
    case, a clean body: ONE walk (:func:`_scan_dict`) that does
    :func:`first_type_error`'s and :func:`prune_unknown`'s checks together,
    builds no paths and changes nothing.  Only when it finds something does
    the exact work run: an unknown field — the prune walk on the compiled nodes
    (:func:`_prune_value`, :func:`prune_unknown` step for step), which builds
    the paths and removes the fields; a value of the wrong type, or anything
    the scan does not model (a subclass of dict, a tuple) — the reference
    :func:`first_type_error` for the message, then the prune walk.
    Results are those of ``check_types`` followed by ``prune``, always.
    """

    def __init__(self, schemas: KindSchemas | None = None) -> None:
        self._schemas = schemas
        self._nodes: dict[str | None, _Node] = {}
        self._compiled: dict[int, _Node] = {}
        self._lock = threading.Lock()

    @property
    def schemas(self) -> KindSchemas:
        if self._schemas is None:
            self._schemas = builtin_schemas()
        return self._schemas

    def unknown_fields(self, info: ResourceInfo, obj: Obj) -> list[str]:
        group, version, kind = _type_of(info, obj)
        name = self.schemas.for_kind(group, version, kind)
        try:
            dirty = self._scan(name, obj)
        except _Fallback:
            self.check_types(version, kind, name, obj)
            dirty = True
        found = self._prune_named(name, obj) if dirty else []
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
        return self._prune_named(self.schemas.for_kind(group, version, kind), obj)

    def _prune_named(self, name: str | None, obj: Obj) -> list[str]:
        """:func:`prune_unknown` against ``name`` (or ObjectMeta under "metadata"), on the compiled nodes."""
        node = self._nodes.get(name)
        if node is None:
            node = self._root(name)
        found: list[str] = []
        if name is not None:
            _prune_value(obj, node, "", found, False)
            return found
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return []
        _prune_value(meta, node, "metadata", found, False)
        return found

    # -- the fast path -------------------------------------------------------------------------
    def _scan(self, name: str | None, obj: Obj) -> bool:
        """Whether ``obj`` may hold unknown fields, once ``check_types`` is known to pass; else ``_Fallback``.

        ``False`` is exact: ``check_types`` finds nothing and ``_prune_named``
        would find (and remove) nothing.  ``True`` may be conservative: the
        prune walk that follows decides.
        """
        node = self._nodes.get(name)
        if node is None:
            node = self._root(name)
        if name is None:  # no schema: ObjectMeta only, under the name "metadata"
            value: Any = obj.get("metadata")
            if value is None:
                return False
        else:
            value = obj
        if type(value) is not dict or dict not in node.accepts:
            raise _Fallback
        return _scan_dict(value, node, True, False)

    def _root(self, name: str | None) -> _Node:
        with self._lock:
            node = self._nodes.get(name)
            if node is None:
                components = self.schemas.components
                node = _compile(ref(name if name is not None else f"{META}.ObjectMeta"), components, self._compiled)
                self._nodes[name] = node
            return node


class _Fallback(Exception):
    """The fast path found a type error or something it does not model: the reference walkers decide."""


class _Node:
    """A resolved schema, compiled for the walkers below (one per schema, shared by every kind using it)."""

    __slots__ = (
        "accepts",
        "additional",
        "bare",
        "embedded",
        "items",
        "leaf",
        "open",
        "preserve",
        "props",
        "schema",
        "typed_props",
    )

    def __init__(self, schema: Schema) -> None:
        self.schema = schema  # keeps the schema (and so its id, the memo key) alive
        self.accepts: frozenset[type] = accepted_json_types(schema)
        self.preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        self.embedded = schema.get("x-kubernetes-embedded-resource") is True
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        #: ``_check`` walks declared properties only when there are any, else ``additionalProperties``.
        self.typed_props = isinstance(properties, Mapping)
        #: ``_prune_object``'s early return: a leaf, free-form, or an object where a scalar belongs.
        self.leaf = (
            not isinstance(properties, Mapping)
            and not isinstance(additional, Mapping)
            and (additional is True or schema.get("type") != "object")
        )
        self.open = additional is True
        #: The properties whose schema is a mapping (``_prune_object``/``_check`` skip the others).
        self.props: dict[Any, _Node] = {}
        self.additional: _Node | None = None
        self.items: _Node | None = None
        self.bare = True


def _compile(schema: Schema, components: Mapping[str, Schema], memo: dict[int, _Node]) -> _Node:
    target = resolve(schema, components)
    node = memo.get(id(target))
    if node is not None:
        return node
    node = memo[id(target)] = _Node(target)
    properties = target.get("properties")
    if isinstance(properties, Mapping):
        node.props = {k: _compile(v, components, memo) for k, v in properties.items() if isinstance(v, Mapping)}
    additional = target.get("additionalProperties")
    if isinstance(additional, Mapping):
        node.additional = _compile(additional, components, memo)
    items = target.get("items")
    if isinstance(items, Mapping):
        node.items = _compile(items, components, memo)
    node.bare = not node.props and node.additional is None
    return node


_SCALARS: frozenset[type] = frozenset({str, int, float, bool})


def _scan_dict(value: dict[Any, Any], node: _Node, typing: bool, preserve: bool) -> bool:
    """``_check`` and ``_prune`` on a dict at once: ``_Fallback`` for a type error (or a value no JSON
    decoder makes), else whether ``_prune`` may find an unknown field (``False`` is exact).

    ``typing``: ``_check`` reaches this value (it stops below preserve-unknown-fields);
    ``preserve``: ``_prune``'s flag.  The caller checked ``type(value) in node.accepts`` when typing.
    """
    if node.leaf:
        return False
    # An embedded resource's apiVersion/kind/metadata are scanned like any key: that ``_prune_object``
    # skips them can only make it find less, so "clean" here stays exact.
    if node.preserve:
        typing = False
        preserve = True
    if node.bare:  # no child has a schema: every key is unknown, or all are kept
        return bool(value) and not preserve and not node.open
    props = node.props
    extra = node.additional
    extra_typing = typing and not node.typed_props
    dirty = False
    for key, item in value.items():
        child = props.get(key)
        if child is None:
            if extra is None:
                if not preserve and not node.open:
                    dirty = True
                continue
            child = extra
            child_typing = extra_typing
        else:
            child_typing = typing
        if item is None:
            continue
        kind = type(item)
        if child_typing and kind not in child.accepts:
            raise _Fallback
        if kind is dict:
            if _scan_dict(item, child, child_typing, False):
                dirty = True
        elif kind is list:
            if _scan_list(item, child, child_typing, False):
                dirty = True
        elif kind not in _SCALARS:
            raise _Fallback
    return dirty


def _scan_list(value: list[Any], node: _Node, typing: bool, preserve: bool) -> bool:
    """:func:`_scan_dict` for a list: items are checked against ``items``; preserve reaches through."""
    items = node.items
    if items is None:
        return False
    if node.preserve:
        typing = False
        preserve = True
    accepts = items.accepts
    dirty = False
    for item in value:
        if item is None:
            continue
        kind = type(item)
        if typing and kind not in accepts:
            raise _Fallback
        if kind is dict:
            if _scan_dict(item, items, typing, preserve):
                dirty = True
        elif kind is list:
            if _scan_list(item, items, typing, preserve):
                dirty = True
        elif kind not in _SCALARS:
            raise _Fallback
    return dirty


def _prune_value(value: Any, node: _Node, path: str, found: list[str], preserve: bool, resource: bool = False) -> None:
    """``pruning._prune`` on compiled nodes: the same steps in the same order, deleting as it goes."""
    preserve = preserve or node.preserve
    if isinstance(value, dict):
        if node.leaf:
            return  # a leaf, free-form, or a value of the wrong type
        resource = resource or node.embedded
        props = node.props
        extra = node.additional
        for key in list(value):
            if resource and key in TYPE_META_AND_METADATA:
                continue
            child = props.get(key)
            if child is None:
                child = extra
            if child is not None:
                _prune_value(value[key], child, f"{path}.{key}" if path else key, found, False)
            elif not preserve and not node.open:
                found.append(f"{path}.{key}" if path else key)
                del value[key]
    elif isinstance(value, list):
        items = node.items
        if items is not None:
            for i, item in enumerate(value):
                # Upstream's skipPrune: preserve-unknown-fields reaches through lists into their items.
                _prune_value(item, items, f"{path}[{i}]", found, preserve)


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
