"""Validating a custom resource against its structural schema, with kube-openapi's messages.

Follows k8s.io/kube-openapi pkg/validation/validate (the validators a
SchemaValidator runs, in its order: type, string, format, number, slice,
enum, object) and apiextensions-apiserver's ``kubeOpenAPIResultToFieldErrors``,
which turns each finding into a field error:

* type and format mismatches → ``FieldValueTypeInvalid``,
  ``<path> in body must be of type <t>: "<actual>"``;
* required → ``Required value``; enum → ``Unsupported value: ... supported values: ...``;
* maxLength → ``Too long: may not be more than N bytes``; maxItems →
  ``Too many: <n>: must have at most N items``;
* everything else → ``Invalid value: <v>: <path> in body should ...``.

Paths are kube-openapi's: ``spec.replicas``, ``spec.items[0].name``.
``x-kubernetes-int-or-string`` is the type ``integer,string`` (upstream's
ConvertJSONSchemaProps); ``nullable`` admits null.  Object properties are
visited in schema order (Go visits a map, so upstream's order varies).
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import date, datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause

Schema = dict[str, Any]

TOO_MANY = "FieldValueTooMany"
IN = "body"


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value (what kube-openapi's schemaInfoForType reports)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def schema_types(schema: Schema) -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        return ["integer", "string"]
    declared = schema.get("type")
    return [declared] if isinstance(declared, str) and declared else []


def validate(schema: Schema, value: Any, path: str = "") -> list[Cause]:
    """Every finding for ``value`` under ``schema`` at ``path`` ("" for the root object)."""
    causes: list[Cause] = []
    _validate(schema, value, path, causes)
    return causes


def _field(path: str) -> str:
    return path.removeprefix(".")


def _name(path: str) -> str:
    """The name kube-openapi prints in messages (the path as built, leading dot kept off)."""
    return path.removeprefix(".")


def _type_invalid(path: str, expected: str, actual: str) -> Cause:
    detail = f"{_name(path)} in {IN} must be of type {expected}: {fe.go_quote(actual)}"
    return Cause(fe.TYPE_INVALID, fe.body(fe.TYPE_INVALID, actual, detail), _field(path))


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return fe.invalid(_field(path), value, f"{_name(path)} in {IN} {detail}")


def _validate(schema: Schema, value: Any, path: str, out: list[Cause]) -> None:
    types = schema_types(schema)
    if value is None:
        if types and "null" not in types and not schema.get("nullable"):
            out.append(_type_invalid(path, ",".join(types), "null"))
        _validate_enum(schema, value, path, out)
        return
    actual = json_type(value)
    if types and not _type_matches(types, actual, value):
        out.append(_type_invalid(path, ",".join(types), actual))
    if isinstance(value, str):
        _validate_string(schema, value, path, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(schema, value, path, out)
    elif isinstance(value, list):
        _validate_array(schema, value, path, out)
    _validate_enum(schema, value, path, out)
    if isinstance(value, dict):
        _validate_object(schema, value, path, out)


def _type_matches(types: list[str], actual: str, value: Any) -> bool:
    if actual in types:
        return True
    if actual == "number" and "integer" in types and float(value).is_integer():
        return True  # isFloatInt: 2.0 is an integer
    return actual == "integer" and "number" in types


def _validate_string(schema: Schema, value: str, path: str, out: list[Cause]) -> None:
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and len(value) > max_length:
        out.append(fe.too_long(_field(path), max_length))
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(value) < min_length:
        out.append(_invalid(path, value, f"should be at least {min_length} chars long"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not _pattern_matches(pattern, value):
        out.append(_invalid(path, value, f"should match '{pattern}'"))
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt and not format_matches(fmt, value):
        detail = f"{_name(path)} in {IN} must be of type {fmt}: {fe.go_quote(value)}"
        out.append(Cause(fe.TYPE_INVALID, fe.body(fe.TYPE_INVALID, value, detail), _field(path)))


def _pattern_matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True  # an unusable pattern is the CRD's problem, reported when it is validated


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def format_matches(fmt: str, value: str) -> bool:
    """The string formats checked here; unknown formats (and int32/int64 on strings) pass, as upstream."""
    if fmt == "date-time":
        if not _DATE_TIME.match(value):
            return False
        try:
            datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
        except ValueError:
            return False
        return True
    if fmt == "date":
        if not _DATE.match(value):
            return False
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return True
    if fmt == "byte":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        return True
    if fmt == "uuid":
        try:
            uuid.UUID(value)
        except ValueError:
            return False
        return True
    return True


def _validate_number(schema: Schema, value: float, path: str, out: list[Cause]) -> None:
    multiple = schema.get("multipleOf")
    if isinstance(multiple, (int, float)) and multiple > 0 and (value / multiple) != int(value / multiple):
        out.append(_invalid(path, value, f"should be a multiple of {fe.go_format(multiple)}"))
    maximum = schema.get("maximum")
    if isinstance(maximum, (int, float)):
        exclusive = bool(schema.get("exclusiveMaximum"))
        if value > maximum or (exclusive and value == maximum):
            word = "less than" if exclusive else "less than or equal to"
            out.append(_invalid(path, value, f"should be {word} {fe.go_format(maximum)}"))
    minimum = schema.get("minimum")
    if isinstance(minimum, (int, float)):
        exclusive = bool(schema.get("exclusiveMinimum"))
        if value < minimum or (exclusive and value == minimum):
            word = "greater than" if exclusive else "greater than or equal to"
            out.append(_invalid(path, value, f"should be {word} {fe.go_format(minimum)}"))


def _validate_array(schema: Schema, value: list[Any], path: str, out: list[Cause]) -> None:
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(items, item, f"{path}[{i}]", out)
    min_items = schema.get("minItems")
    if isinstance(min_items, int) and len(value) < min_items:
        out.append(_invalid(path, len(value), f"should have at least {min_items} items"))
    max_items = schema.get("maxItems")
    if isinstance(max_items, int) and len(value) > max_items:
        noun = "item" if max_items == 1 else "items"
        message = f"Too many: {len(value)}: must have at most {max_items} {noun}"
        out.append(Cause(TOO_MANY, message, _field(path)))
    if schema.get("uniqueItems") and _has_duplicates(value):
        out.append(_invalid(path, "", "shouldn't contain duplicates"))


def _has_duplicates(values: list[Any]) -> bool:
    seen: list[Any] = []
    for v in values:
        if any(v == s and json_type(v) == json_type(s) for s in seen):
            return True
        seen.append(v)
    return False


def _validate_enum(schema: Schema, value: Any, path: str, out: list[Cause]) -> None:
    allowed = schema.get("enum")
    if not isinstance(allowed, list) or not allowed:
        return
    if any(value == a and json_type(value) == json_type(a) for a in allowed):
        return
    if isinstance(value, (int, float)) and any(isinstance(a, (int, float)) and a == value for a in allowed):
        return
    names = [a if isinstance(a, str) else fe.go_value(a) for a in allowed]
    out.append(fe.not_supported(_field(path), value, names))


def _validate_object(schema: Schema, value: dict[str, Any], path: str, out: list[Cause]) -> None:
    props = schema.get("properties")
    properties: dict[str, Schema] = props if isinstance(props, dict) else {}
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, item in value.items():
            if key not in properties:
                _validate(extra, item, f"{path}.{key}", out)
    for name, sub in properties.items():
        if name in value and isinstance(sub, dict):
            _validate(sub, value[name], f"{path}.{name}" if path else name, out)
    required = schema.get("required")
    if isinstance(required, list):
        for name in required:
            if name not in value:
                out.append(fe.required(_field(f"{path}.{name}")))
    if schema.get("x-kubernetes-embedded-resource"):
        for name in ("apiVersion", "kind"):
            if not value.get(name):
                out.append(fe.required(_field(f"{path}.{name}"), "must not be empty"))
    min_props = schema.get("minProperties")
    if isinstance(min_props, int) and len(value) < min_props:
        out.append(_invalid(path, len(value), f"should have at least {min_props} properties"))
    max_props = schema.get("maxProperties")
    if isinstance(max_props, int) and len(value) > max_props:
        noun = "item" if max_props == 1 else "items"
        out.append(Cause(TOO_MANY, f"Too many: {len(value)}: must have at most {max_props} {noun}", _field(path)))
