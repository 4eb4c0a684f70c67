"""Label and field selectors: parse the wire forms, match objects.

Label selectors follow k8s.io/apimachinery/pkg/labels: the string grammar
(``=``, ``==``, ``!=``, ``in (…)``, ``notin (…)``, ``key``, ``!key``,
``key>N``, ``key<N``; comma is AND; blanks separate tokens) and the
structured ``metav1.LabelSelector`` (matchLabels + matchExpressions, as
LabelSelectorAsSelector converts it) both become one ``LabelSelector``.
Requirements are sorted by key and values are sorted and deduplicated, as
upstream does, so ``str()`` gives the canonical string.

Field selectors follow k8s.io/apimachinery/pkg/fields: only ``=``, ``==``
and ``!=``, comma is AND, and ``\\,`` ``\\=`` ``\\\\`` escape a value.  A
missing field reads as the empty string.  Which fields a resource supports
is the caller's (the Strategy's) list; ``check_supported`` rejects others
with upstream's ``field label not supported: <f>``.

Every parse failure is an ``ApiError`` 400 BadRequest carrying upstream's text.
Nothing here does I/O or mutates its input.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from skiff.api import field_errors
from skiff.api.name_rules import is_qualified_name, is_valid_label_value
from skiff.api.status import ApiError, bad_request

# selection.Operator values, spelled as upstream spells them.
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_EQUALITY = (EQUALS, DOUBLE_EQUALS, IN)


@dataclass(frozen=True, slots=True)
class Requirement:
    """One label requirement: ``key <operator> values``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def exact_value(self) -> str | None:
        """The one value this requirement pins its key to, if any (for indexing)."""
        if self.operator in _EQUALITY and len(self.values) == 1:
            return self.values[0]
        return None

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        joined = ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({joined})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{joined}"


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """An AND of requirements; ``nothing`` is the selector that matches no object (a nil selector)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def match_nothing(cls) -> LabelSelector:
        return cls(nothing=True)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (Selector.Empty)."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        have = labels or {}
        return all(r.matches(have) for r in self.requirements)

    def exact_match(self, key: str) -> str | None:
        """The value ``key`` must have, when the selector pins it (RequiresExactMatch)."""
        for requirement in self.requirements:
            if requirement.key == key:
                return requirement.exact_value()
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# --- label selector string parsing (labels.Parse) ---------------------------------------------

_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_SYMBOL_TOKENS = {")": ")", ",": ",", "!": "!", "==": "==", "=": "=", ">": ">", "<": "<", "!=": "!=", "(": "("}
_KEYWORDS = {"in": "in", "notin": "notin"}
_IDENT = "ident"
_END = "end"
_OPERATOR_TOKENS = {
    IN: IN,
    NOT_IN: NOT_IN,
    "=": EQUALS,
    "==": DOUBLE_EQUALS,
    "!=": NOT_EQUALS,
    ">": GREATER_THAN,
    "<": LESS_THAN,
}


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens as (kind, literal); kind is the symbol itself, a keyword, ``ident`` or ``end``.

    Like upstream's lexer, a NUL character ends the input.
    """
    tokens: list[tuple[str, str]] = []
    pos, end = 0, len(text)
    if "\x00" in text:
        end = text.index("\x00")
    while True:
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= end:
            tokens.append((_END, ""))
            return tokens
        if text[pos] in _SPECIAL:
            # Longest run of special characters that still spells a token ("!=" over "!").
            buffer, best = "", ""
            scan = pos
            while scan < end and text[scan] in _SPECIAL:
                buffer += text[scan]
                if buffer in _SYMBOL_TOKENS:
                    best = buffer
                    scan += 1
                elif best:
                    break
                else:
                    scan += 1
            tokens.append((_SYMBOL_TOKENS[best], best))
            pos += len(best)
            continue
        start = pos
        while pos < end and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
            pos += 1
        literal = text[start:pos]
        tokens.append((_KEYWORDS.get(literal, _IDENT), literal))


class _LabelParser:
    """Recursive descent over the token list, as labels.Parser does; raises ``_ParseError``."""

    def __init__(self, text: str) -> None:
        self.items = _lex(text)
        self.position = 0

    def _peek(self, values: bool) -> tuple[str, str]:
        kind, literal = self.items[self.position]
        if values and kind in (IN, NOT_IN):
            kind = _IDENT  # "in" and "notin" are plain words where a value is expected
        return kind, literal

    def _take(self, values: bool) -> tuple[str, str]:
        token = self._peek(values)
        self.position += 1
        return token

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self._peek(values=True)
            if kind in (_IDENT, "!"):
                try:
                    requirements.append(self._requirement())
                except _ParseError as err:
                    raise _ParseError(f"unable to parse requirement: {err}") from None
                kind, literal = self._take(values=True)
                if kind == _END:
                    return requirements
                if kind == ",":
                    next_kind, next_literal = self._peek(values=True)
                    if next_kind not in (_IDENT, "!"):
                        raise _ParseError(f"found '{next_literal}', expected: identifier after ','")
                    continue
                raise _ParseError(f"found '{literal}', expected: ',' or 'end of string'")
            if kind == _END:
                return requirements
            raise _ParseError(f"found '{literal}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Requirement:
        key, operator = self._key_and_inferred_operator()
        if operator in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, operator, [])
        operator = self._operator()
        if operator in (IN, NOT_IN):
            values = self._value_set()
        else:
            values = self._exact_value()
        return new_requirement(key, operator, sorted(values))

    def _key_and_inferred_operator(self) -> tuple[str, str]:
        operator = ""
        kind, literal = self._take(values=True)
        if kind == "!":
            operator = DOES_NOT_EXIST
            kind, literal = self._take(values=True)
        if kind != _IDENT:
            raise _ParseError(f"found '{literal}', expected: identifier")
        problems = is_qualified_name(literal)
        if problems:
            # validateLabelKey with the parser's nil path: Go prints the field as "<nil>".
            raise _ParseError(field_errors.error_text(field_errors.invalid("", literal, "; ".join(problems))))
        if self._peek(values=True)[0] in (_END, ",") and operator != DOES_NOT_EXIST:
            operator = EXISTS
        return literal, operator

    def _operator(self) -> str:
        kind, literal = self._take(values=False)
        if kind not in _OPERATOR_TOKENS:
            raise _ParseError(f"found '{literal}', expected: {', '.join(_BINARY_OPERATORS)}")
        return _OPERATOR_TOKENS[kind]

    def _value_set(self) -> set[str]:
        kind, literal = self._take(values=True)
        if kind != "(":
            raise _ParseError(f"found '{literal}' expected: '('")
        kind, literal = self._peek(values=True)
        if kind in (_IDENT, ","):
            values = self._identifier_list()
            if self._take(values=True)[0] != ")":
                raise _ParseError(f"found '{literal}', expected: ')'")
            return values
        if kind == ")":
            self._take(values=True)
            return {""}
        raise _ParseError(f"found '{literal}', expected: ',', ')' or identifier")

    def _identifier_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            kind, literal = self._take(values=True)
            if kind == _IDENT:
                values.add(literal)
                next_kind, next_literal = self._peek(values=True)
                if next_kind == ",":
                    continue
                if next_kind == ")":
                    return values
                raise _ParseError(f"found '{next_literal}', expected: ',' or ')'")
            if kind == ",":
                # "(," ",," and ",)" each stand for an empty value.
                if not values:
                    values.add("")
                next_kind = self._peek(values=True)[0]
                if next_kind == ")":
                    values.add("")
                    return values
                if next_kind == ",":
                    self._take(values=True)
                    values.add("")
                continue
            raise _ParseError(f"found '{literal}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        if self._peek(values=True)[0] in (_END, ","):
            return {""}
        kind, literal = self._take(values=True)
        if kind == _IDENT:
            return {literal}
        raise _ParseError(f"found '{literal}', expected: identifier")


class _ParseError(Exception):
    pass


def new_requirement(key: str, operator: str, values: Iterable[str], path: str = "") -> Requirement:
    """labels.NewRequirement: check the key, the operator's arity and every value.

    ``path`` prefixes field paths in the messages (``key``, ``values[0]``), as
    field.WithPath does; the string parser passes none.
    """
    vals = list(values)
    causes = []
    key_path = f"{path}.key" if path else "key"
    values_path = f"{path}.values" if path else "values"
    key_problems = is_qualified_name(key)
    if key_problems:
        causes.append(field_errors.invalid(key_path, key, "; ".join(key_problems)))
    if operator in (IN, NOT_IN):
        if not vals:
            causes.append(
                field_errors.invalid(values_path, vals, "for 'in', 'notin' operators, values set can't be empty")
            )
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            causes.append(
                field_errors.invalid(values_path, vals, "exact-match compatibility requires one single value")
            )
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if vals:
            causes.append(
                field_errors.invalid(values_path, vals, "values set must be empty for exists and does not exist")
            )
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            causes.append(
                field_errors.invalid(values_path, vals, "for 'Gt', 'Lt' operators, exactly one value is required")
            )
        for i, value in enumerate(vals):
            if _parse_int64(value) is None:
                causes.append(
                    field_errors.invalid(
                        f"{values_path}[{i}]", value, "for 'Gt', 'Lt' operators, the value must be an integer"
                    )
                )
    else:
        valid = [*_BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST]
        causes.append(field_errors.not_supported(f"{path}.operator" if path else "operator", operator, valid))
    for i, value in enumerate(vals):
        problems = is_valid_label_value(value)
        if problems:
            causes.append(field_errors.invalid(f"{values_path}[{i}][{key}]", value, "; ".join(problems)))
    if causes:
        raise _ParseError(field_errors.aggregate_text(field_errors.error_text(c) for c in causes))
    return Requirement(key, operator, tuple(vals))


def _parse_int64(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64): optional sign, ASCII digits, in int64 range."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    value = int(text)
    if not -(2**63) <= value < 2**63:
        return None
    return value


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the ``labelSelector`` query string form (labels.Parse); raises ApiError 400."""
    try:
        requirements = _LabelParser(text).parse()
    except _ParseError as err:
        raise bad_request(str(err)) from None
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


_STRUCTURED_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_structured(selector: Mapping[str, Any] | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: None matches nothing, ``{}`` matches everything.

    Raises ApiError 400 for an unknown operator or invalid keys and values.
    """
    if selector is None:
        return LabelSelector.match_nothing()
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return LabelSelector.everything()
    requirements: list[Requirement] = []
    try:
        for key, value in match_labels.items():
            requirements.append(new_requirement(key, EQUALS, [value]))
        for expression in expressions:
            operator = expression.get("operator", "")
            if operator not in _STRUCTURED_OPERATORS:
                raise _ParseError(f"{field_errors.go_quote(operator)} is not a valid label selector operator")
            values = expression.get("values") or []
            requirements.append(new_requirement(expression.get("key", ""), _STRUCTURED_OPERATORS[operator], values))
    except _ParseError as err:
        raise bad_request(str(err)) from None
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


# --- field selectors (fields.ParseSelector) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """``field = value`` (operator ``=``) or ``field != value``; ``==`` parses as ``=``."""

    field: str
    operator: str
    value: str

    def matches(self, values: Mapping[str, str]) -> bool:
        have = values.get(self.field, "")
        return have == self.value if self.operator == EQUALS else have != self.value

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """An AND of field requirements, in upstream's order (terms sorted as strings)."""

    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, values: Mapping[str, str]) -> bool:
        return all(r.matches(values) for r in self.requirements)

    def exact_match(self, field: str) -> str | None:
        """The value ``field`` must equal, when an ``=`` term pins it (RequiresExactMatch)."""
        for requirement in self.requirements:
            if requirement.field == field and requirement.operator == EQUALS:
                return requirement.value
        return None

    def check_supported(self, supported: Collection[str]) -> None:
        """Reject a field the resource cannot select on; metadata.name/namespace always work."""
        for requirement in self.requirements:
            if requirement.field not in supported and requirement.field not in _ALWAYS_SELECTABLE:
                raise bad_request(f"field label not supported: {requirement.field}")

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_ALWAYS_SELECTABLE = frozenset({"metadata.name", "metadata.namespace"})


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped; the escapes stay in the terms."""
    if not text:
        return []
    terms, start, in_slash = [], 0, False
    for i, ch in enumerate(text):
        if in_slash:
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """The first operator occurrence splits the term; ``!=`` and ``==`` win over ``=``."""
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def unescape_field_value(text: str) -> str:
    """fields.UnescapeValue: ``\\\\`` ``\\,`` ``\\=`` are literal; bare ``,`` or ``=`` are errors."""
    if not any(ch in text for ch in "\\,="):
        return text
    out: list[str] = []
    in_slash = False
    for ch in text:
        if in_slash:
            if ch not in "\\,=":
                raise bad_request(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            # Go formats the rune with %v, which prints its code point.
            raise bad_request(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if in_slash:
        raise bad_request("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def escape_field_value(text: str) -> str:
    """fields.EscapeValue, the inverse of ``unescape_field_value``."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def parse_field_selector(text: str) -> FieldSelector:
    """Parse the ``fieldSelector`` query string form; raises ApiError 400."""
    requirements: list[FieldRequirement] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, raw = split
        value = unescape_field_value(raw)
        requirements.append(FieldRequirement(field, NOT_EQUALS if op == "!=" else EQUALS, value))
    return FieldSelector(tuple(requirements))


__all__ = [
    "ApiError",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "escape_field_value",
    "label_selector_from_structured",
    "new_requirement",
    "parse_field_selector",
    "parse_label_selector",
    "unescape_field_value",
]
