"""A CRD version's additionalPrinterColumns as Table columns and cells.

As apiextensions-apiserver pkg/registry/customresource/tableconvertor:

* the columns are Name, then the version's ``additionalPrinterColumns`` in
  order; a version without any gets the default ``Age`` column
  (``.metadata.creationTimestamp``, type ``date``);
* a cell is the first JSONPath match (client-go jsonpath, missing keys
  allowed; no match → null).  ``string`` cells are the match printed as
  jsonpath prints it (Go's ``%v``: ``map[k:v]``, ``[a b]``); ``integer``,
  ``number`` and ``boolean`` cells are typed values (null on a mismatch);
  ``date`` cells are ages, rendered on the server with ``human_duration``
  (``<invalid>`` when unparsable) — kubectl never converts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from skiff.api.field_errors import go_format
from skiff.registry.custom import jsonpath
from skiff.registry.resource import NAME_COLUMN, Column, Obj
from skiff.registry.table_format import since

#: ObjectMeta's creationTimestamp documentation, the default Age column's description.
CREATION_TIMESTAMP_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. "
    "It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. "
    "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
DEFAULT_COLUMNS: tuple[dict[str, Any], ...] = (
    {
        "name": "Age",
        "type": "date",
        "jsonPath": ".metadata.creationTimestamp",
        "description": CREATION_TIMESTAMP_DESCRIPTION,
    },
)


@dataclass(frozen=True, slots=True)
class PrinterColumn:
    column: Column
    steps: tuple[jsonpath.Step, ...]


def printer_columns(definitions: list[dict[str, Any]] | None) -> tuple[PrinterColumn, ...]:
    """Parsed columns of a version (the default Age column when there are none)."""
    out: list[PrinterColumn] = []
    for spec in definitions or list(DEFAULT_COLUMNS):
        column = Column(
            str(spec.get("name", "")),
            type=str(spec.get("type", "string")),
            format=str(spec.get("format", "")),
            description=str(spec.get("description", "")),
            priority=int(spec.get("priority") or 0),
        )
        try:
            steps = jsonpath.parse(str(spec.get("jsonPath", "")))
        except ValueError:
            steps = ()  # CRD validation rejects these; a stored one renders empty cells
        out.append(PrinterColumn(column, steps))
    return tuple(out)


def table_columns(columns: tuple[PrinterColumn, ...]) -> tuple[Column, ...]:
    return (NAME_COLUMN, *(c.column for c in columns))


def cells(columns: tuple[PrinterColumn, ...], obj: Obj, now: datetime) -> list[Any]:
    """The cells after Name, one per column."""
    out: list[Any] = []
    for printer in columns:
        found = jsonpath.find(obj, printer.steps) if printer.steps else []
        out.append(cell(printer.column.type, found[0], now) if found else None)
    return out


def cell(column_type: str, value: Any, now: datetime) -> Any:
    """cellForJSONValue, with string columns printed as client-go jsonpath prints a value."""
    if value is None:
        return None
    if column_type == "string":
        return value if isinstance(value, str) else go_format(value)
    if column_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        return int(value) if isinstance(value, float) else None
    if column_type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        if not isinstance(value, str):
            return None
        if not value:
            return "<unknown>"  # a zero metav1.Time
        age = since(value, now)
        return "<invalid>" if age == "<unknown>" else age
    return None
