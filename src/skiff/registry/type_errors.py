"""Type errors Go's JSON decoder reports for a built-in kind's body, found against its OpenAPI schemas.

kube-apiserver decodes built-in kinds into Go structs; a value of the wrong
JSON type fails the decode with encoding/json's ``UnmarshalTypeError``
(sigs.k8s.io/json keeps the wording), which the handlers turn into 400
``<Kind> in version "<v>" cannot be handled as a <Kind>: <error>``.  The error
reads

    json: cannot unmarshal <value> into Go struct field <Struct>.<path> of type <type>

* ``<value>``: the JSON kind found — ``string``, ``number`` (``number 1.5``
  for a fraction where an integer belongs), ``bool``, ``array``, ``object``;
* ``<Struct>``: the innermost Go struct holding the field (the component's
  type name: ``ObjectMeta``, ``PodSpec``, the kind itself at the top);
* ``<path>``: the JSON keys from the root, without list indexes or map keys
  (``metadata.finalizers`` for ``metadata.finalizers[0]``);
* ``<type>``: the Go type expected there: ``string``, ``bool``, ``float64``,
  ``int64`` (our schemas carry no int32/int64 formats, so integers read
  ``int64`` unless the schema says ``int32``), ``[]T``, ``map[string]T``,
  ``v1.PodSpec``-style names for components (package's last label + type).

``null`` is accepted anywhere (Go leaves the zero value); free-form values
(``x-kubernetes-preserve-unknown-fields``: RawExtension, FieldsV1, JSON) take
anything; int-or-string and quantities take strings and numbers.  Only the
first error in document order is reported, as the decoder returns its first.
Unknown fields are not this module's business (:mod:`skiff.registry.pruning`).

``SchemaFieldChecker`` finds *whether* there is a type error with a compiled
twin of ``_check`` (:func:`accepted_json_types` stands for ``_accepts``) and
calls :func:`first_type_error` only then, for the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.registry.pruning import Schema, resolve
from skiff.registry.schemas import ref_name


def first_type_error(value: Any, schema: Schema, components: Mapping[str, Schema], struct: str = "") -> str | None:
    """The decoder's message for the first value of the wrong type, or None.

    ``struct``: the Go struct name to report for top-level fields (defaults to
    the component ``schema`` refers to).
    """
    name = ref_name(schema)
    struct = struct or (name.rsplit(".", 1)[-1] if name else "")
    return _check(value, schema, components, struct, "")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def go_type(schema: Schema, components: Mapping[str, Schema]) -> str:
    """The Go type a schema stands for, as ``reflect.Type.String()`` prints it."""
    name = ref_name(schema)
    if name is not None:
        package, _, type_name = name.rpartition(".")
        return f"{package.rsplit('.', 1)[-1]}.{type_name}"
    kind = schema.get("type")
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return "[]" + go_type(schema["items"], components)
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        return "map[string]" + go_type(schema["additionalProperties"], components)
    if kind == "integer":
        return "int32" if schema.get("format") == "int32" else "int64"
    if kind == "string" and schema.get("format") == "byte":
        return "[]uint8"
    return {"string": "string", "boolean": "bool", "number": "float64"}.get(str(kind), "map[string]interface {}")


def _mismatch(value: Any, schema: Schema, components: Mapping[str, Schema], struct: str, path: str) -> str:
    found = _json_kind(value)
    if found == "number" and isinstance(value, float) and schema.get("type") == "integer":
        found = f"number {value!r}"
    where = f"Go struct field {struct}.{path}" if path else "Go value"
    return f"json: cannot unmarshal {found} into {where} of type {go_type(schema, components)}"


def _accepts(value: Any, target: Schema) -> bool:
    """Whether a scalar-or-container ``value`` has the JSON kind ``target`` (resolved) asks for."""
    if target.get("x-kubernetes-preserve-unknown-fields") is True:
        return True
    if target.get("x-kubernetes-int-or-string") is True or "oneOf" in target:  # IntOrString, Quantity
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    kind = target.get("type")
    if kind == "object" or isinstance(target.get("properties"), Mapping):
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True  # no type: anything


#: The Python types ``json.loads`` produces for a non-null value.
JSON_TYPES: frozenset[type] = frozenset({dict, list, str, int, float, bool})
_INT_OR_STRING: frozenset[type] = frozenset({str, int, float})
_BY_TYPE: Mapping[str, frozenset[type]] = {
    "array": frozenset({list}),
    "string": frozenset({str}),
    "boolean": frozenset({bool}),
    "integer": frozenset({int}),
    "number": frozenset({int, float}),
}


def accepted_json_types(target: Schema) -> frozenset[type]:
    """The exact types of the decoded JSON values ``_accepts(value, target)`` takes (``target`` resolved).

    For a value whose ``type()`` is one of :data:`JSON_TYPES` (``bool`` is not an
    ``int`` here), ``type(value) in accepted_json_types(target)`` equals
    ``_accepts(value, target)``: one set lookup per value instead of ABC checks.
    """
    if target.get("x-kubernetes-preserve-unknown-fields") is True:
        return JSON_TYPES
    if target.get("x-kubernetes-int-or-string") is True or "oneOf" in target:
        return _INT_OR_STRING
    kind = target.get("type")
    if kind == "object" or isinstance(target.get("properties"), Mapping):
        return frozenset({dict})
    if isinstance(kind, str):
        return _BY_TYPE.get(kind, JSON_TYPES)
    return JSON_TYPES


def _check(value: Any, schema: Schema, components: Mapping[str, Schema], struct: str, path: str) -> str | None:
    if value is None:
        return None
    target = resolve(schema, components)
    if not _accepts(value, target):
        return _mismatch(value, schema if ref_name(schema) else target, components, struct, path)
    if target.get("x-kubernetes-preserve-unknown-fields") is True:
        return None
    if isinstance(value, list):
        items = target.get("items")
        if isinstance(items, Mapping):
            for item in value:
                if (error := _check(item, items, components, struct, path)) is not None:
                    return error
        return None
    if not isinstance(value, dict):
        return None
    properties = target.get("properties")
    if isinstance(properties, Mapping):
        name = ref_name(schema)
        inner = name.rsplit(".", 1)[-1] if name else struct
        for key, item in value.items():
            child = properties.get(key)
            if isinstance(child, Mapping):
                child_path = f"{path}.{key}" if path else key
                if (error := _check(item, child, components, inner, child_path)) is not None:
                    return error
        return None
    additional = target.get("additionalProperties")
    if isinstance(additional, Mapping):
        for item in value.values():
            if (error := _check(item, additional, components, struct, path)) is not None:
                return error
    return None
