"""CRD version checks beyond names: schemas, printer columns, the scale subresource.

From apiextensions-apiserver pkg/apis/apiextensions/validation (the parts a
v1 CRD most often gets wrong), with upstream's paths and messages:

* every version needs ``schema.openAPIV3Schema`` ("schemas are required");
* structural basics: the root is ``type: object``; every specified property,
  ``additionalProperties`` and ``items`` has a type (unless it is
  ``x-kubernetes-int-or-string`` or ``x-kubernetes-preserve-unknown-fields``);
  ``properties`` and ``additionalProperties`` exclude each other; patterns compile;
* printer columns: name, a supported type and format, a simple JSONPath;
* scale: the replica paths are JSON paths under ``.spec`` / ``.status``.

Paths name schema nodes as upstream does: ``...openAPIV3Schema.properties[spec].type``.
Pure.
"""

from __future__ import annotations

import re
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.custom import jsonpath

PRINTER_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
PRINTER_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
SCHEMA_TYPES = ("array", "boolean", "integer", "number", "object", "string")


def validate_version_rules(version: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    schema = (version.get("schema") or {}).get("openAPIV3Schema")
    schema_path = f"{path}.schema.openAPIV3Schema"
    if not isinstance(schema, dict):
        causes.append(fe.required(schema_path, "schemas are required"))
    else:
        causes += validate_structural_root(schema, schema_path)
    for i, column in enumerate(version.get("additionalPrinterColumns") or []):
        causes += validate_printer_column(column, f"{path}.additionalPrinterColumns[{i}]")
    scale = (version.get("subresources") or {}).get("scale")
    if isinstance(scale, dict):
        causes += validate_scale(scale, f"{path}.subresources.scale")
    return causes


def validate_structural_root(schema: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    kind = schema.get("type")
    if not kind:
        causes.append(fe.required(f"{path}.type", "must not be empty at the root"))
    elif kind != "object":
        causes.append(fe.invalid(f"{path}.type", kind, "must be object at the root"))
    _validate_node(schema, path, causes)
    return causes


def _typed(schema: dict[str, Any]) -> bool:
    return bool(
        schema.get("type")
        or schema.get("x-kubernetes-int-or-string")
        or schema.get("x-kubernetes-preserve-unknown-fields")
    )


def _validate_node(schema: dict[str, Any], path: str, causes: list[Cause]) -> None:
    kind = schema.get("type")
    if kind and kind not in SCHEMA_TYPES:
        causes.append(fe.not_supported(f"{path}.type", kind, SCHEMA_TYPES))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as err:
            causes.append(
                fe.invalid(f"{path}.pattern", pattern, f"must be a valid regular expression, but isn't: {err}")
            )
    properties = schema.get("properties")
    extra = schema.get("additionalProperties")
    if isinstance(properties, dict) and properties and isinstance(extra, dict):
        causes.append(
            fe.forbidden(f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive")
        )
    if isinstance(properties, dict):
        for name, sub in properties.items():
            sub_path = f"{path}.properties[{name}]"
            if not isinstance(sub, dict):
                continue
            if not _typed(sub):
                causes.append(fe.required(f"{sub_path}.type", "must not be empty for specified object fields"))
            _validate_node(sub, sub_path, causes)
    if isinstance(extra, dict):
        sub_path = f"{path}.additionalProperties"
        if not _typed(extra):
            causes.append(fe.required(f"{sub_path}.type", "must not be empty for specified object fields"))
        _validate_node(extra, sub_path, causes)
    items = schema.get("items")
    if isinstance(items, dict):
        sub_path = f"{path}.items"
        if not _typed(items):
            causes.append(fe.required(f"{sub_path}.type", "must not be empty for specified array items"))
        _validate_node(items, sub_path, causes)
    elif kind == "array":
        causes.append(fe.required(f"{path}.items", "must be specified"))


def validate_printer_column(column: Any, path: str) -> list[Cause]:
    if not isinstance(column, dict):
        return [fe.invalid(path, column, "must be an object")]
    causes: list[Cause] = []
    if not column.get("name"):
        causes.append(fe.required(f"{path}.name"))
    kind = column.get("type")
    if not kind:
        causes.append(fe.required(f"{path}.type", "must be one of " + ",".join(PRINTER_COLUMN_TYPES)))
    elif kind not in PRINTER_COLUMN_TYPES:
        causes.append(fe.not_supported(f"{path}.type", kind, PRINTER_COLUMN_TYPES))
    fmt = column.get("format")
    if fmt and fmt not in PRINTER_COLUMN_FORMATS:
        causes.append(fe.not_supported(f"{path}.format", fmt, PRINTER_COLUMN_FORMATS))
    json_path = column.get("jsonPath")
    if not json_path:
        causes.append(fe.required(f"{path}.jsonPath"))
    elif not str(json_path).startswith("."):
        causes.append(fe.invalid(f"{path}.jsonPath", json_path, "must be a simple json path starting with ."))
    else:
        try:
            jsonpath.parse(str(json_path))
        except ValueError as err:
            causes.append(fe.invalid(f"{path}.jsonPath", json_path, f"is an invalid JSONPath: {err}"))
    return causes


def _json_path_under(value: Any, roots: tuple[str, ...]) -> bool:
    text = str(value)
    return any(text.startswith(root + ".") for root in roots) and bool(re.fullmatch(r"(\.[A-Za-z0-9_\-]+)+", text))


def validate_scale(scale: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    spec_path = scale.get("specReplicasPath")
    if not spec_path:
        causes.append(fe.required(f"{path}.specReplicasPath"))
    elif not _json_path_under(spec_path, (".spec",)):
        causes.append(fe.invalid(f"{path}.specReplicasPath", spec_path, "should be a json path under .spec"))
    status_path = scale.get("statusReplicasPath")
    if not status_path:
        causes.append(fe.required(f"{path}.statusReplicasPath"))
    elif not _json_path_under(status_path, (".status",)):
        causes.append(fe.invalid(f"{path}.statusReplicasPath", status_path, "should be a json path under .status"))
    selector = scale.get("labelSelectorPath")
    if selector and not _json_path_under(selector, (".spec", ".status")):
        causes.append(
            fe.invalid(f"{path}.labelSelectorPath", selector, "should be a json path under either .spec or .status")
        )
    return causes
