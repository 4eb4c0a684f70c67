"""Structural schema operations on a custom resource: pruning, null pruning, defaulting.

As apiextensions-apiserver pkg/apiserver/schema (pruning/algorithm.go,
defaulting/algorithm.go, defaulting/prunenulls.go), on decoded JSON:

* ``prune(schema, obj)`` removes every field the schema does not specify and
  returns their paths (``spec.foo``, ``spec.items[0].bar``) — the "unknown
  field" findings ``fieldValidation`` reports.  It is
  :func:`skiff.registry.pruning.prune_unknown` (the one walker built-in kinds
  use too) with the object as a resource root: the root and every
  ``x-kubernetes-embedded-resource`` keep ``apiVersion``, ``kind`` and
  ``metadata``; ``x-kubernetes-preserve-unknown-fields`` keeps unknown fields
  at that level; ``additionalProperties`` describes every key of a map.
* ``prune_nulls(schema, obj)`` drops ``null`` values of fields that are not
  nullable and have no default (PruneNonNullableNullsWithoutDefaults).
* ``apply_defaults(schema, obj)`` sets each missing (or non-nullable null)
  property that has a ``default`` to a copy of it, top down, so defaults
  inside defaults apply too.

All three mutate ``obj`` in place; none validates.
"""

from __future__ import annotations

import copy
from typing import Any

from skiff.registry.pruning import prune_unknown

Schema = dict[str, Any]


def _properties(schema: Schema) -> dict[str, Schema]:
    props = schema.get("properties")
    return props if isinstance(props, dict) else {}


def _additional(schema: Schema) -> Schema | None:
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _items(schema: Schema) -> Schema | None:
    items = schema.get("items")
    return items if isinstance(items, dict) else None


def prune(schema: Schema, obj: Any) -> list[str]:
    """Drop unspecified fields of ``obj`` (the root of a resource); return their paths."""
    return prune_unknown(obj, schema, resource=True)


def prune_nulls(schema: Schema | None, value: Any) -> None:
    if schema is None:
        return
    if isinstance(value, list):
        items = _items(schema)
        for item in value:
            prune_nulls(items, item)
        return
    if not isinstance(value, dict):
        return
    properties = _properties(schema)
    extra = _additional(schema)
    for key in list(value):
        sub = properties.get(key, extra)
        if sub is None:
            continue
        if value[key] is None:
            if not sub.get("nullable") and "default" not in sub:
                del value[key]
            continue
        prune_nulls(sub, value[key])


def apply_defaults(schema: Schema | None, value: Any) -> None:
    if schema is None:
        return
    if isinstance(value, list):
        items = _items(schema)
        for item in value:
            apply_defaults(items, item)
        return
    if not isinstance(value, dict):
        return
    properties = _properties(schema)
    for key, sub in properties.items():
        if not isinstance(sub, dict) or "default" not in sub:
            continue
        if key not in value or (value[key] is None and not sub.get("nullable")):
            default = sub["default"]
            if default is None and not sub.get("nullable"):
                value.pop(key, None)
            else:
                value[key] = copy.deepcopy(default)
    extra = _additional(schema)
    for key, item in value.items():
        if key in properties:
            apply_defaults(properties[key], item)
        elif extra is not None:
            apply_defaults(extra, item)


def has_defaults(schema: Any) -> bool:
    """True when any node of ``schema`` declares a ``default`` (then reads need defaulting too)."""
    if not isinstance(schema, dict):
        return False
    if "default" in schema:
        return True
    children = list(_properties(schema).values())
    children += [s for s in (_items(schema), _additional(schema)) if s is not None]
    return any(has_defaults(child) for child in children)
