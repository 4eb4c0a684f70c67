"""The JSONPath subset CRD printer columns use (k8s.io/client-go util/jsonpath, read-only).

A column's ``jsonPath`` (``.spec.cronSpec``) is evaluated as the template
``{.spec.cronSpec}`` with missing keys allowed.  Supported steps:

* ``.name`` and ``['name']`` / ``["name"]`` (names with dots or dashes);
* ``[N]`` (negative counts from the end), ``[*]`` and ``.*``;
* ``[?(@.path OP literal)]`` with OP one of ``== != < <= > >=`` and a quoted
  string, number, ``true``/``false`` literal, and ``[?(@.path)]`` (exists).

``find`` returns every match in document order; a missing key or index
yields no match, never an error (AllowMissingKeys).  ``parse`` raises
``ValueError`` for what it does not understand, so CRD validation can reject
a column up front.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"[A-Za-z0-9_\-$@]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">")


@dataclass(frozen=True, slots=True)
class Field:
    name: str


@dataclass(frozen=True, slots=True)
class Index:
    index: int


@dataclass(frozen=True, slots=True)
class Wildcard:
    pass


@dataclass(frozen=True, slots=True)
class Filter:
    path: tuple[Step, ...]
    operator: str  # "" means "exists"
    literal: Any = None


Step = Field | Index | Wildcard | Filter


def parse(path: str) -> tuple[Step, ...]:
    """Steps of a relative JSONPath (``.a.b[0]``); an optional ``{...}`` wrapper is accepted."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    steps, rest = _steps(text, allow_at=False)
    if rest:
        raise ValueError(f"unexpected {rest!r} in JSONPath {path!r}")
    return steps


def _steps(text: str, *, allow_at: bool) -> tuple[tuple[Step, ...], str]:
    """Parse steps from the start of ``text``; return them and what could not be parsed."""
    if allow_at:
        if not text.startswith("@"):
            raise ValueError(f"filter path must start with @: {text!r}")
        text = text[1:]
    steps: list[Step] = []
    while text:
        if text.startswith(".."):
            raise ValueError("recursive descent (..) is not supported")
        if text.startswith(".*"):
            steps.append(Wildcard())
            text = text[2:]
        elif text.startswith("."):
            match = _NAME.match(text, 1)
            if match is None:
                if text == ".":  # "{.}" is the whole object
                    text = ""
                    break
                raise ValueError(f"bad field name in {text!r}")
            steps.append(Field(match.group(0)))
            text = text[match.end() :]
        elif text.startswith("["):
            step, text = _bracket(text)
            steps.append(step)
        else:
            break
    return tuple(steps), text


def _bracket(text: str) -> tuple[Step, str]:
    if text.startswith("[?("):
        end = _filter_end(text)
        return _filter(text[3:end]), text[end + 2 :]
    close = text.find("]")
    if close < 0:
        raise ValueError(f"unclosed [ in {text!r}")
    inner = text[1:close].strip()
    rest = text[close + 1 :]
    if inner == "*":
        return Wildcard(), rest
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return Field(inner[1:-1]), rest
    try:
        return Index(int(inner)), rest
    except ValueError:
        raise ValueError(f"unsupported subscript [{inner}]") from None


def _filter_end(text: str) -> int:
    """Index of the ``)`` closing a ``[?(`` (quotes respected); it must be followed by ``]``."""
    quote = ""
    for i in range(3, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == ")" and text[i + 1 : i + 2] == "]":
            return i
    raise ValueError(f"unclosed filter in {text!r}")


def _filter(expr: str) -> Filter:
    path, rest = _steps(expr.strip(), allow_at=True)
    rest = rest.strip()
    if not rest:
        return Filter(path, "")
    for op in _OPERATORS:
        if rest.startswith(op):
            return Filter(path, op, _literal(rest[len(op) :].strip()))
    raise ValueError(f"unsupported filter {expr!r}")


def _literal(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if _NUMBER.fullmatch(text):
        return float(text) if "." in text else int(text)
    raise ValueError(f"unsupported literal {text!r}")


def find(obj: Any, steps: tuple[Step, ...]) -> list[Any]:
    """Every value ``steps`` reach in ``obj``, in document order."""
    nodes = [obj]
    for step in steps:
        nodes = [out for node in nodes for out in _apply(node, step)]
    return nodes


def _apply(node: Any, step: Step) -> list[Any]:
    if isinstance(step, Field):
        return [node[step.name]] if isinstance(node, dict) and step.name in node else []
    if isinstance(step, Index):
        if isinstance(node, list) and -len(node) <= step.index < len(node):
            return [node[step.index]]
        return []
    if isinstance(step, Wildcard):
        if isinstance(node, dict):
            return list(node.values())
        return list(node) if isinstance(node, list) else []
    items = node if isinstance(node, list) else list(node.values()) if isinstance(node, dict) else []
    return [item for item in items if _matches(item, step)]


def _matches(item: Any, step: Filter) -> bool:
    found = find(item, step.path)
    if not step.operator:
        return bool(found)
    return any(_compare(value, step.operator, step.literal) for value in found)


def _compare(value: Any, op: str, literal: Any) -> bool:
    numeric = (int, float)
    if isinstance(literal, numeric) and not isinstance(literal, bool):
        if not isinstance(value, numeric) or isinstance(value, bool):
            return op == "!="
    elif type(value) is not type(literal):
        return op == "!="
    if op == "==":
        return bool(value == literal)
    if op == "!=":
        return bool(value != literal)
    try:
        if op == "<":
            return bool(value < literal)
        if op == "<=":
            return bool(value <= literal)
        if op == ">":
            return bool(value > literal)
        return bool(value >= literal)
    except TypeError:
        return False
