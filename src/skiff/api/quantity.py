"""Kubernetes resource quantities (k8s.io/apimachinery/pkg/api/resource.Quantity).

``parse_quantity`` reads ``100m``, ``1Gi``, ``1e3``, ``0.5`` …; ``str()``
prints Kubernetes' canonical form: the suffix family of the input is kept
(binary ``Ki…Ei``, decimal ``n u m k M G T P E``, or an ``e<N>`` exponent),
the exponent is as large as possible without fractional digits, and values
are exact to 1n (anything finer is rounded away from zero, as upstream).
Like upstream, an input that is already canonical is printed back verbatim.

A Quantity is an immutable exact number: ``nanos`` is the value times 10⁹.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

#: Binary quantities are capped at the int64 maximum, as upstream.
MAX_BINARY = 2**63 - 1
#: Exponents beyond this are refused rather than expanded (upstream keeps them symbolic).
MAX_EXPONENT = 1000

_NANO = 10**9
_SPLIT_RE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT = f"quantities must match the regular expression '{_SPLIT_RE}'"
ERR_NUMERIC = "unable to parse numeric part of quantity"
ERR_SUFFIX = "unable to parse quantity's suffix"

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {exp: suffix for suffix, exp in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = {power // 10: suffix for suffix, power in _BINARY_SUFFIXES.items()}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")


class QuantityError(ValueError):
    """A string that is not a quantity; the message is upstream's."""


@functools.total_ordering
@dataclass(frozen=True, slots=True, eq=False)
class Quantity:
    """An exact quantity; compare and add with the usual operators."""

    nanos: int
    format: str = DECIMAL_SI
    #: The input text, kept when upstream would print it back unchanged.
    text: str | None = field(default=None, compare=False)

    @classmethod
    def from_int(cls, value: int, fmt: str = DECIMAL_SI) -> Quantity:
        return cls(value * _NANO, fmt)

    @classmethod
    def from_milli(cls, value: int, fmt: str = DECIMAL_SI) -> Quantity:
        return cls(value * 10**6, fmt)

    @property
    def is_zero(self) -> bool:
        return self.nanos == 0

    def value(self) -> int:
        """The value in whole units, rounded away from zero (Quantity.Value)."""
        return _div_away(self.nanos, _NANO)

    def milli_value(self) -> int:
        """The value in thousandths, rounded away from zero (Quantity.MilliValue)."""
        return _div_away(self.nanos, 10**6)

    def as_fraction(self) -> Fraction:
        return Fraction(self.nanos, _NANO)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Quantity):
            return NotImplemented
        return self.nanos == other.nanos

    def __lt__(self, other: Quantity) -> bool:
        return self.nanos < other.nanos

    def __hash__(self) -> int:
        return hash(self.nanos)

    def __add__(self, other: Quantity) -> Quantity:
        # Quantity.Add keeps the receiver's format unless the receiver is zero.
        return Quantity(self.nanos + other.nanos, other.format if self.is_zero else self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.nanos - other.nanos, other.format if self.is_zero else self.format)

    def __neg__(self) -> Quantity:
        return Quantity(-self.nanos, self.format)

    def __str__(self) -> str:
        if self.text is not None:
            return self.text
        return canonical(self.nanos, self.format)

    def __repr__(self) -> str:
        return f"Quantity({str(self)!r})"


def _div_away(value: int, divisor: int) -> int:
    quotient, remainder = divmod(abs(value), divisor)
    if remainder:
        quotient += 1
    return quotient if value >= 0 else -quotient


def canonical(nanos: int, fmt: str) -> str:
    """CanonicalizeBytes: the shortest exact spelling in the quantity's suffix family."""
    if nanos == 0:
        return "0"
    if fmt == BINARY_SI:
        if -1024 * _NANO < nanos < 1024 * _NANO or nanos % _NANO:
            fmt = DECIMAL_SI  # small or fractional binary values print as decimal, losing nothing
        else:
            return _binary(nanos // _NANO)
    mantissa, exponent = nanos, -9
    while abs(mantissa) >= 10 and mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    while exponent % 3:
        mantissa *= 10
        exponent -= 1
    if fmt == DECIMAL_EXPONENT:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    if exponent > 18:
        # Upstream has no suffix past E and would print a wrong number; spell it with E instead.
        mantissa *= 10 ** (exponent - 18)
        exponent = 18
    return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"


def _binary(value: int) -> str:
    times = 0
    while abs(value) >= 1024 and value % 1024 == 0 and times < 6:
        value //= 1024
        times += 1
    return f"{value}{_BINARY_BY_POWER.get(times, '')}"


def _scan(text: str) -> tuple[bool, str, str, str, str]:
    """parseQuantityString: (positive, numeric text, integer digits, fraction digits, suffix)."""
    positive, pos, end = True, 0, len(text)
    if text[:1] == "-":
        positive, pos = False, 1
    elif text[:1] == "+":
        pos = 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "0", "", ""
    start = pos
    while pos < end and text[pos].isascii() and text[pos].isdigit():
        pos += 1
    num = text[start:pos] or "0"
    if pos >= end:
        return positive, text, num, "", ""
    denom = ""
    if text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos].isascii() and text[pos].isdigit():
            pos += 1
        denom = text[start:pos]
        if pos >= end:
            return positive, text, num, denom, ""
    value = text[:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos].isascii() and text[pos].isdigit():
        pos += 1
    if pos < end:
        raise QuantityError(ERR_FORMAT)
    return positive, value, num, denom, text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) of a suffix."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        digits = suffix[1:]
        body = digits[1:] if digits[0] in "+-" else digits
        if body.isascii() and body.isdigit():
            exponent = int(digits)
            if abs(exponent) > MAX_EXPONENT:
                raise QuantityError(ERR_NUMERIC)
            return 10, exponent, DECIMAL_EXPONENT
    raise QuantityError(ERR_SUFFIX)


def parse_quantity(text: str | int | float) -> Quantity:
    """ParseQuantity; a JSON number is read through its decimal text. Raises QuantityError."""
    if isinstance(text, bool):
        raise QuantityError(ERR_FORMAT)
    if isinstance(text, int | float):
        text = str(text)
    if not text:
        raise QuantityError(ERR_FORMAT)
    if text == "0":
        return Quantity(0, DECIMAL_SI, "0")
    positive, _value, num, denom, suffix = _scan(text)
    base, exponent, fmt = _interpret(suffix)
    digits = int(num + denom)
    magnitude = Fraction(digits, 10 ** len(denom)) * Fraction(base) ** exponent
    exact_nanos = magnitude * _NANO
    nanos = exact_nanos.numerator // exact_nanos.denominator
    if nanos * exact_nanos.denominator != exact_nanos.numerator:
        nanos += 1  # round up to the next nano: a request for "some" resource gets some
    if fmt == BINARY_SI:
        nanos = min(nanos, MAX_BINARY * _NANO)
        if 0 < nanos < _NANO:
            fmt = DECIMAL_SI
    if not positive:
        nanos = -nanos
    return Quantity(nanos, fmt, text if _kept_verbatim(num, denom, base, exponent, fmt, digits) else None)


def _kept_verbatim(num: str, denom: str, base: int, exponent: int, fmt: str, digits: int) -> bool:
    """Upstream's fast path reuses the input string when it is already canonical."""
    if base == 2:
        fast = not denom and len(num) + exponent * 3 // 10 + 1 <= 15 and digits << exponent < 2**63
        return fast and fmt == BINARY_SI and digits & 7 != 0
    scale = exponent - len(denom)
    shifted = num + denom
    fast = len(num) + len(denom) <= 18 and scale >= -9
    return fast and scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0"
