"""Unknown fields: find them in an object against an OpenAPI v3 schema, and drop them.

ONE walker serves both kinds of resource:

* built-in kinds, against the component schemas of :mod:`skiff.registry.schemas`
  (``$ref``-linked).  Upstream decodes them into Go structs, which silently
  drops every field the struct lacks; with ``fieldValidation=Strict``/``Warn``
  the strict JSON decoder (sigs.k8s.io/json) also reports each one;
* custom resources, against their CRD version's structural schema (no
  ``$ref``), as apiextensions-apiserver's pruning/algorithm.go does, with
  ``resource=True`` for the root (:func:`skiff.registry.custom.structural.prune`).

(``SchemaFieldChecker`` runs this walker's steps on schemas it compiled once —
:func:`skiff.apiserver.field_validation._prune_value` — for speed; a rule
changed here changes there too, and tests/unit/test_field_validation.py checks
the two against each other.)

``prune_unknown`` removes unknown fields from the object *in place* and
returns their paths, in document order, in the decoder's format:
``spec.template.spec.containers[0].imagee`` (dots between keys, ``[i]`` for
list items, map keys as keys).

Schema rules (structural-schema semantics):

* ``$ref`` (or a one-element ``allOf`` around one) is followed into the
  components;
* a resource — the root when ``resource=True``, and every node marked
  ``x-kubernetes-embedded-resource`` — keeps ``apiVersion``, ``kind`` and
  ``metadata`` whatever its schema says about them (checked *before* the
  properties, as upstream does: a CRD's ``metadata: {type: object}`` must not
  wipe the object's metadata; ObjectMeta has rules of its own);
* an object with ``properties`` knows exactly those keys; ``additionalProperties``
  (a map) checks every other key against its schema; ``additionalProperties: true``
  accepts anything;
* ``x-kubernetes-preserve-unknown-fields: true`` keeps unknown keys at that
  level — in list items below it too — while declared properties are still
  checked inside;
* ``items`` checks every list element;
* a schema without properties, additionalProperties or items is a leaf
  (scalars, ``x-kubernetes-int-or-string``, free-form values) — except an
  object schema (``type: object``), which keeps no keys at all.

Values of the wrong type (a string where an object belongs, an object where a
string belongs) are left alone: type errors are validation's business, not
pruning's.  (Upstream's CR pruning would empty an object found where a scalar
is declared; the request fails validation either way.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

from skiff.registry.schemas import REF_PREFIX

Schema = Mapping[str, Any]

#: What every resource (a CR's root, embedded resources) keeps whatever its schema says.
TYPE_META_AND_METADATA = frozenset({"apiVersion", "kind", "metadata"})

_NO_COMPONENTS: Mapping[str, Schema] = {}


def _is_mapping(value: Any) -> TypeGuard[Schema]:
    """``isinstance(value, Mapping)``, without the ABC check for the common case (a dict)."""
    return type(value) is dict or isinstance(value, Mapping)


def resolve(schema: Schema, components: Mapping[str, Schema]) -> Schema:
    """Follow ``$ref``/``allOf`` chains to the schema that has the structure."""
    seen = 0
    while seen < 32:
        target = schema.get("$ref")
        if target is None:
            all_of = schema.get("allOf")
            if all_of is None:
                return schema
            if isinstance(all_of, list) and len(all_of) == 1 and _is_mapping(all_of[0]):
                target = all_of[0].get("$ref")
        if not isinstance(target, str) or not target.startswith(REF_PREFIX):
            return schema
        schema = components.get(target[len(REF_PREFIX) :], {})
        seen += 1
    return schema


def prune_unknown(
    obj: Any,
    schema: Schema,
    components: Mapping[str, Schema] = _NO_COMPONENTS,
    path: str = "",
    *,
    resource: bool = False,
) -> list[str]:
    """Remove the fields of ``obj`` that ``schema`` does not know; return their paths.

    ``resource``: ``obj`` is a resource's root (keeps apiVersion, kind, metadata).
    """
    found: list[str] = []
    _prune(obj, schema, components, path, found, resource=resource, preserve=False)
    return found


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(
    value: Any,
    schema: Schema,
    components: Mapping[str, Schema],
    path: str,
    found: list[str],
    *,
    resource: bool = False,
    preserve: bool,
) -> None:
    schema = resolve(schema, components)
    preserve = preserve or schema.get("x-kubernetes-preserve-unknown-fields") is True
    if isinstance(value, dict):
        resource = resource or schema.get("x-kubernetes-embedded-resource") is True
        _prune_object(value, schema, components, path, found, resource=resource, preserve=preserve)
    elif isinstance(value, list):
        items = schema.get("items")
        if _is_mapping(items):
            for i, item in enumerate(value):
                # Upstream's skipPrune: preserve-unknown-fields reaches through lists into their items.
                _prune(item, items, components, f"{path}[{i}]", found, preserve=preserve)


def _prune_object(
    value: dict[str, Any],
    schema: Schema,
    components: Mapping[str, Schema],
    path: str,
    found: list[str],
    *,
    resource: bool,
    preserve: bool,
) -> None:
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    extra = additional if _is_mapping(additional) else None
    if not _is_mapping(properties):
        if extra is None and (additional is True or schema.get("type") != "object"):
            return  # a leaf, free-form, or a value of the wrong type
        properties = {}
    for key in list(value):
        if resource and key in TYPE_META_AND_METADATA:
            continue
        child = properties.get(key)
        if extra is not None and not _is_mapping(child):
            child = extra
        if _is_mapping(child):
            _prune(value[key], child, components, _join(path, key), found, preserve=False)
        elif not preserve and additional is not True:
            found.append(_join(path, key))
            del value[key]
