"""The shape of an object as server-side apply sees it: structs, maps, lists of three kinds, scalars.

Upstream converts each kind's OpenAPI schema into a structured-merge-diff
schema (k8s.io/kube-openapi pkg/schemaconv) and tracks field ownership over
it.  ``FieldType`` is one node of that view, read lazily from an OpenAPI v3
schema:

* ``KIND_SCALAR`` — strings, numbers, booleans, IntOrString, Quantity;
* ``KIND_MAP`` — an object: declared ``properties`` are *named fields*
  (upstream's struct fields), other keys take ``additionalProperties``;
  atomic when ``x-kubernetes-map-type: atomic`` (or a built-in
  ``+structType=atomic`` type, ``ATOMIC_TYPES``);
* ``KIND_LIST`` — ``x-kubernetes-list-type`` ``atomic`` (the default),
  ``set`` (items are scalars, identified by value) or ``map`` (items are
  objects, identified by ``x-kubernetes-list-map-keys``);
* ``KIND_UNTYPED`` — free-form (RawExtension, preserve-unknown-fields, no
  schema): upstream's "deduced" type — objects are granular maps of
  untyped values, lists are atomic.

The built-in schemas come from the official client's models (``schemas.py``),
which know neither list types nor atomic structs.  As upstream's converter
falls back to ``patchStrategy``/``patchMergeKey`` where a list has no
``listType``, a built-in list is associative when ``api.patch_schema`` says
``merge`` (keyed by its merge key, or a set without one); ``LIST_TYPES``
holds the lists whose ``+listMapKey`` tags name more keys than the patch
merge key (container ports are keyed by port *and* protocol) and
ObjectMeta's, which custom resources share.  Custom
resources carry the ``x-kubernetes-*`` extensions in their CRD schema.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.api.patch_schema import KINDS, KindSchema
from skiff.registry.custom.strategy import CustomResourceStrategy
from skiff.registry.resource import ResourceInfo
from skiff.registry.schemas import META, REF_PREFIX, builtin_schemas

Schema = Mapping[str, Any]

KIND_SCALAR = "scalar"
KIND_MAP = "map"
KIND_LIST = "list"
KIND_UNTYPED = "untyped"

LIST_ATOMIC = "atomic"
LIST_SET = "set"
LIST_MAP = "map"

#: Built-in types tagged ``+structType=atomic`` / ``+mapType=atomic`` upstream: owned as a whole.
ATOMIC_TYPES = frozenset(
    {
        "LabelSelector",
        "NodeSelector",
        "NodeSelectorTerm",
        "TopologySelectorTerm",
        "ObjectReference",
        "LocalObjectReference",
        "TypedLocalObjectReference",
        "ConfigMapKeySelector",
        "SecretKeySelector",
        "ObjectFieldSelector",
        "ResourceFieldSelector",
        "SecretReference",
    }
)


@dataclass(frozen=True, slots=True)
class ListKeys:
    """An associative list's keys and the defaults of keys an item may omit (``+default`` upstream)."""

    keys: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)


_TCP = {"protocol": "TCP"}

#: (type, field) → upstream's ``+listType`` where the patch metadata does not say it (more
#: ``+listMapKey`` keys than the merge key; ObjectMeta's lists, which custom resources share).
LIST_TYPES: Mapping[tuple[str, str], tuple[str, ListKeys]] = {
    ("Container", "ports"): (LIST_MAP, ListKeys(("containerPort", "protocol"), _TCP)),
    ("EphemeralContainer", "ports"): (LIST_MAP, ListKeys(("containerPort", "protocol"), _TCP)),
    ("ServiceSpec", "ports"): (LIST_MAP, ListKeys(("port", "protocol"), _TCP)),
    ("PodSpec", "topologySpreadConstraints"): (LIST_MAP, ListKeys(("topologyKey", "whenUnsatisfiable"))),
    ("ObjectMeta", "ownerReferences"): (LIST_MAP, ListKeys(("uid",))),
    ("ObjectMeta", "finalizers"): (LIST_SET, ListKeys(())),
}

#: Non-pointer struct fields: present (as ``{}``) in the zero value of their parent.  Upstream diffs a
#: create against the kind's zero Go struct, so these never count as "added" containers.
ZERO_STRUCT_FIELDS = frozenset({"metadata", "spec", "status", "template", "strategy", "updateStrategy", "resources"})


class FieldType:
    """One node of a schema; children are built on demand (schemas are recursive).

    A node never changes once built, so it memoises what it computes: its
    resolution, kind and list type, its declared (named) fields and its list
    item type — built-in roots are shared (``_builtin_root``), so every request
    after the first walks cached nodes — and the zero value (returned as a fresh
    copy).  Children through ``additionalProperties`` or of free-form values are
    not kept (their paths hold data: map keys), but reuse the parent's
    resolution of their schema.
    """

    __slots__ = (
        "_extra",
        "_fields",
        "_item",
        "_kind",
        "_list_type",
        "_resolved",
        "_zero",
        "components",
        "name",
        "owner",
        "patch",
        "path",
        "schema",
    )

    def __init__(
        self,
        schema: Schema,
        components: Mapping[str, Schema],
        patch: KindSchema | None = None,
        path: str = "",
        owner: str = "",
        name: str = "",
    ) -> None:
        self.schema = schema
        self.components = components
        #: The kind's strategic-merge metadata (built-ins) and this node's dotted path in it.
        self.patch = patch
        self.path = path
        #: The type holding this field and the field's name (for ``LIST_TYPES``).
        self.owner = owner
        self.name = name
        self._resolved: tuple[Schema, str] | None = None
        self._kind: str | None = None
        self._fields: dict[str, tuple[FieldType, bool]] | None = None
        self._extra: tuple[Schema, tuple[Schema, str], str] | None = None
        self._item: FieldType | None = None
        self._list_type: tuple[str, ListKeys] | None = None
        self._zero: dict[str, Any] | None = None

    # -- resolution ----------------------------------------------------------------------------
    def resolved(self) -> tuple[Schema, str]:
        """The schema behind ``$ref``/``allOf`` and the short name of the component it is ("" inline)."""
        if self._resolved is None:
            self._resolved = _resolve(self.schema, self.components)
        return self._resolved

    @property
    def kind(self) -> str:
        if self._kind is None:
            self._kind = _kind_of(self.resolved()[0], self.schema)
        return self._kind

    @property
    def atomic(self) -> bool:
        """An atomic map (struct) or list: owned and replaced as a whole."""
        schema, type_name = self.resolved()
        if self.kind == KIND_MAP:
            marker = self.schema.get("x-kubernetes-map-type") or schema.get("x-kubernetes-map-type")
            return marker == "atomic" or type_name in ATOMIC_TYPES
        if self.kind == KIND_LIST:
            return self.list_type()[0] == LIST_ATOMIC
        return self.kind == KIND_SCALAR

    # -- children ------------------------------------------------------------------------------
    def field(self, key: str) -> tuple[FieldType, bool]:
        """The type of ``key`` in this object and whether it is a declared (named) field."""
        fields = self._fields
        if fields is not None:
            known = fields.get(key)
            if known is not None:
                return known
        schema, type_name = self.resolved()
        child_path = f"{self.path}.{key}" if self.path else key
        props = schema.get("properties")
        if isinstance(props, Mapping) and isinstance(props.get(key), Mapping):
            named = self._child(props[key], child_path, type_name, key), True
            if fields is None:
                fields = self._fields = {}
            fields[key] = named
            return named
        extra = self._extra
        if extra is None:
            value = schema.get("additionalProperties")
            child_schema: Schema = value if isinstance(value, Mapping) else {}
            resolved = _resolve(child_schema, self.components)
            extra = self._extra = (child_schema, resolved, _kind_of(resolved[0], child_schema))
        child = self._child(extra[0], child_path, type_name, key)
        child._resolved = extra[1]
        child._kind = extra[2]
        return child, False

    def item(self) -> FieldType:
        """The type of this list's items."""
        item = self._item
        if item is None:
            schema, _ = self.resolved()
            items = schema.get("items")
            item = self._child(items if isinstance(items, Mapping) else {}, self.path + "[]", self.owner, self.name)
            self._item = item
        return item

    def _child(self, schema: Schema, path: str, owner: str, name: str) -> FieldType:
        return FieldType(schema, self.components, self.patch, path, owner, name)

    def list_type(self) -> tuple[str, ListKeys]:
        """``(atomic|set|map, keys)`` for a list node."""
        if self._list_type is None:
            self._list_type = self._compute_list_type()
        return self._list_type

    def _compute_list_type(self) -> tuple[str, ListKeys]:
        schema, _ = self.resolved()
        declared = self.schema.get("x-kubernetes-list-type") or schema.get("x-kubernetes-list-type")
        if declared in (LIST_ATOMIC, LIST_SET, LIST_MAP):
            keys = self.schema.get("x-kubernetes-list-map-keys") or schema.get("x-kubernetes-list-map-keys") or ()
            return str(declared), ListKeys(tuple(str(k) for k in keys))
        override = LIST_TYPES.get((self.owner, self.name))
        if override is not None:
            return override
        if self.patch is not None:
            strategy = self.patch.lookup(self.path)
            if "merge" in strategy.strategies:
                if strategy.merge_key:
                    return LIST_MAP, ListKeys((strategy.merge_key,))
                return LIST_SET, ListKeys(())
        return LIST_ATOMIC, ListKeys(())

    def zero(self) -> dict[str, Any]:
        """The zero value of a struct as upstream's diff sees it: non-pointer structs empty, required lists null."""
        if self._zero is None:
            self._zero = self._compute_zero()
        return _copy_zero(self._zero)

    def _compute_zero(self) -> dict[str, Any]:
        schema, _ = self.resolved()
        out: dict[str, Any] = {}
        props = schema.get("properties")
        if not isinstance(props, Mapping):
            return out
        required = schema.get("required") or ()
        for name in props:
            child, _ = self.field(name)
            if name in ZERO_STRUCT_FIELDS:
                if child.kind == KIND_MAP and isinstance(child.resolved()[0].get("properties"), Mapping):
                    out[name] = child.zero()
            elif name in required and child.kind == KIND_LIST:
                out[name] = None  # a required slice has no omitempty: the zero struct says null
        return out


def _copy_zero(value: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy of a zero value (nested dicts and ``None`` only)."""
    return {k: None if v is None else _copy_zero(v) for k, v in value.items()}


def _resolve(schema: Schema, components: Mapping[str, Schema]) -> tuple[Schema, str]:
    """:meth:`FieldType.resolved` of a node with ``schema``."""
    type_name = ""
    for _ in range(8):
        target = _ref_of(schema)
        if target is None or target not in components:
            break
        type_name = target.rsplit(".", 1)[-1]
        schema = components[target]
    return schema, type_name


def _ref_of(schema: Schema) -> str | None:
    target = schema.get("$ref")
    if target is None:
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], Mapping):
            target = all_of[0].get("$ref")
    if isinstance(target, str) and target.startswith(REF_PREFIX):
        return target[len(REF_PREFIX) :]
    return None


def _kind_of(schema: Schema, outer: Schema) -> str:
    if schema.get("x-kubernetes-int-or-string") or outer.get("x-kubernetes-int-or-string") or "oneOf" in schema:
        return KIND_SCALAR
    declared = schema.get("type")
    if declared == "array":
        return KIND_LIST
    if declared in ("string", "integer", "number", "boolean"):
        return KIND_SCALAR
    if isinstance(schema.get("properties"), Mapping) and schema["properties"]:
        return KIND_MAP
    if isinstance(schema.get("additionalProperties"), Mapping):
        return KIND_MAP
    return KIND_UNTYPED


def untyped() -> FieldType:
    return FieldType({}, {})


def _object_meta() -> dict[str, Any]:
    return {"$ref": f"{REF_PREFIX}{META}.ObjectMeta"}


@functools.cache
def _builtin_root(group: str, version: str, kind: str) -> FieldType:
    schemas = builtin_schemas()
    name = schemas.for_kind(group, version, kind)
    patch = KINDS.get(kind)
    if patch is not None and patch.group != group:
        patch = None
    if name is None:
        return FieldType({"type": "object", "properties": {"metadata": _object_meta()}}, schemas.components, patch)
    return FieldType({"$ref": REF_PREFIX + name}, schemas.components, patch)


def root_type(info: ResourceInfo) -> FieldType:
    """The type of ``info``'s objects: the CRD version's schema for custom resources, else the built-in's."""
    strategy = info.strategy
    if not isinstance(strategy, CustomResourceStrategy):
        return _builtin_root(info.group, info.version, info.kind)
    schema: dict[str, Any] = dict(strategy.rules.schema or {"type": "object"})
    props = dict(schema.get("properties") or {})
    # A CR's metadata is always ObjectMeta, whatever its CRD schema says (upstream embeds it).
    props["metadata"] = _object_meta()
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    schema["properties"] = props
    if "type" not in schema:
        schema["type"] = "object"
    return FieldType(schema, builtin_schemas().components)


def zero_object(info: ResourceInfo, root: FieldType) -> dict[str, Any]:
    """What a create is diffed against: the zero Go struct for built-ins, ``{}`` for custom resources."""
    if isinstance(info.strategy, CustomResourceStrategy):
        return {}
    return root.zero()
