"""Field errors as Kubernetes words them (k8s.io/apimachinery/pkg/util/validation/field).

Validation returns ``Cause`` objects (the Status ``details.causes`` entries).
Each constructor here mirrors one of ``field.Required``, ``field.Invalid``,
... and yields the same ``reason`` (CauseType) and ``message`` (what Go calls
``ErrorBody()``) byte for byte, so an ``invalid()`` Status built from them
reads exactly like the real apiserver's.  ``error_text`` and
``aggregate_text`` reproduce ``Error.Error()`` and ``utilerrors.Aggregate``
for the places (selector parsing) where Go prints errors as plain text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from skiff.api.status import Cause

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
DUPLICATE = "FieldValueDuplicate"
NOT_SUPPORTED = "FieldValueNotSupported"
NOT_FOUND = "FieldValueNotFound"
TYPE_INVALID = "FieldValueTypeInvalid"

_TYPE_WORDS = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    FORBIDDEN: "Forbidden",
    TOO_LONG: "Too long",
    DUPLICATE: "Duplicate value",
    NOT_SUPPORTED: "Unsupported value",
    NOT_FOUND: "Not found",
    TYPE_INVALID: "Invalid value",
}


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (what ``%q`` prints): printable runes kept, the rest escaped."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _GO_SHORT_ESCAPES:
            out.append(_GO_SHORT_ESCAPES[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_value(value: Any) -> str:
    """How ``ErrorBody`` renders a bad value: ``%q`` for strings, ``%v`` for numbers, JSON otherwise."""
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    # Go marshals composite values with encoding/json, which escapes <, > and &.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_float(value: float) -> str:
    """Go's ``%v`` for a float64 (strconv 'g' with the shortest repr, exponent at 21 digits)."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        return f"{mantissa}e{sign}{digits}"
    return text


def body(reason: str, value: Any = None, detail: str = "", *, with_value: bool = True) -> str:
    """``ErrorBody()``: the type's words, the bad value where the type shows one, then the detail."""
    words = _TYPE_WORDS.get(reason, reason)
    text = f"{words}: {go_value(value)}" if with_value else words
    if detail:
        text += f": {detail}"
    return text


def required(path: str, detail: str = "") -> Cause:
    return Cause(REQUIRED, body(REQUIRED, detail=detail, with_value=False), path)


def invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(INVALID, body(INVALID, value, detail), path)


def forbidden(path: str, detail: str) -> Cause:
    return Cause(FORBIDDEN, body(FORBIDDEN, detail=detail, with_value=False), path)


def too_long(path: str, max_length: int) -> Cause:
    """``field.TooLong``: the value itself is never shown."""
    detail = f"may not be more than {max_length} {'byte' if max_length == 1 else 'bytes'}"
    if max_length < 0:
        detail = "value is too long"
    return Cause(TOO_LONG, body(TOO_LONG, detail=detail, with_value=False), path)


def duplicate(path: str, value: Any) -> Cause:
    return Cause(DUPLICATE, body(DUPLICATE, value), path)


def not_supported(path: str, value: Any, valid: Sequence[str]) -> Cause:
    detail = "supported values: " + ", ".join(go_quote(v) for v in valid) if valid else ""
    return Cause(NOT_SUPPORTED, body(NOT_SUPPORTED, value, detail), path)


def error_text(cause: Cause) -> str:
    """``field.Error.Error()``: ``<field>: <body>``; a nil path prints as ``<nil>`` in Go."""
    return f"{cause.field or '<nil>'}: {cause.message}"


def aggregate_text(messages: Iterable[str]) -> str:
    """``utilerrors.NewAggregate(...).Error()``: one message bare, several deduplicated in brackets."""
    seen: list[str] = []
    for message in messages:
        if message not in seen:
            seen.append(message)
    if len(seen) == 1:
        return seen[0]
    return "[" + ", ".join(seen) + "]"


def go_format(value: Any) -> str:
    """Go's ``%v`` for decoded JSON: ``map[k:v]`` with sorted keys, ``[a b]``, ``<nil>``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    return str(value)
