"""Resource quantities: parsing, Kubernetes' canonical form, arithmetic and comparison."""

from __future__ import annotations

import pytest

from skiff.api.quantity import (
    BINARY_SI,
    DECIMAL_EXPONENT,
    DECIMAL_SI,
    ERR_FORMAT,
    ERR_SUFFIX,
    Quantity,
    QuantityError,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "canonical", "fmt"),
    [
        pytest.param("0", "0", DECIMAL_SI, id="zero"),
        pytest.param("100m", "100m", DECIMAL_SI, id="milli"),
        pytest.param("1000m", "1", DECIMAL_SI, id="milli-to-unit"),
        pytest.param("0.5", "500m", DECIMAL_SI, id="fraction"),
        pytest.param("1.5", "1500m", DECIMAL_SI, id="fraction-above-one"),
        pytest.param("0.1m", "100u", DECIMAL_SI, id="micro"),
        pytest.param("0.0000000001", "1n", DECIMAL_SI, id="below-nano-rounds-up"),
        pytest.param("-0.1", "-100m", DECIMAL_SI, id="negative"),
        pytest.param("1000k", "1M", DECIMAL_SI, id="kilo-to-mega"),
        pytest.param("1000000", "1M", DECIMAL_SI, id="plain-to-mega"),
        pytest.param("1024", "1024", DECIMAL_SI, id="kept"),
        pytest.param("1E", "1E", DECIMAL_SI, id="exa"),
        pytest.param("1Ki", "1Ki", BINARY_SI, id="kibi"),
        pytest.param("1Gi", "1Gi", BINARY_SI, id="gibi"),
        pytest.param("1024Mi", "1Gi", BINARY_SI, id="mebi-to-gibi"),
        pytest.param("2048Ki", "2Mi", BINARY_SI, id="kibi-to-mebi"),
        pytest.param("1.5Gi", "1536Mi", BINARY_SI, id="fractional-binary"),
        pytest.param("0.5Ki", "512", BINARY_SI, id="small-binary-prints-decimal"),
        pytest.param("1.1Ki", "1126400m", BINARY_SI, id="inexact-binary-prints-decimal"),
        pytest.param("8Ei", "9223372036854775807", BINARY_SI, id="binary-capped-at-int64"),
        pytest.param("-1.5Gi", "-1536Mi", BINARY_SI, id="negative-binary"),
        pytest.param("1e3", "1e3", DECIMAL_EXPONENT, id="exponent-kept"),
        pytest.param("1000e0", "1e3", DECIMAL_EXPONENT, id="exponent-normalised"),
        pytest.param("129e-2", "1290e-3", DECIMAL_EXPONENT, id="exponent-multiple-of-three"),
        pytest.param("12E6", "12E6", DECIMAL_EXPONENT, id="capital-exponent-kept"),
        pytest.param("+5", "+5", DECIMAL_SI, id="canonical-input-printed-verbatim"),
    ],
)
def test_parse_and_canonical_form(text: str, canonical: str, fmt: str) -> None:
    quantity = parse_quantity(text)
    assert str(quantity) == canonical
    assert quantity.format == fmt
    assert parse_quantity(str(quantity)) == quantity


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", ERR_FORMAT, id="empty"),
        pytest.param("abc", ERR_FORMAT, id="letters"),
        pytest.param("1.2.3", ERR_FORMAT, id="two-dots"),
        pytest.param("1Kb", ERR_FORMAT, id="unknown-trailer"),
        pytest.param("1 Gi", ERR_FORMAT, id="space"),
        pytest.param("1e", ERR_SUFFIX, id="bare-e"),
        pytest.param("1ki", ERR_SUFFIX, id="lowercase-binary"),
        pytest.param("1iM", ERR_SUFFIX, id="scrambled-suffix"),
        pytest.param("1e+", ERR_SUFFIX, id="exponent-without-digits"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(QuantityError) as caught:
        parse_quantity(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        pytest.param(0.5, "500m", id="float"),
        pytest.param(3, "3", id="int"),
        pytest.param(2.0, "2", id="integral-float"),
    ],
)
def test_json_numbers_parse(value: float, canonical: str) -> None:
    assert str(parse_quantity(value)) == canonical


@pytest.mark.parametrize(
    ("text", "value", "milli"),
    [
        pytest.param("100m", 1, 100, id="rounds-up"),
        pytest.param("1.5", 2, 1500, id="half"),
        pytest.param("2", 2, 2000, id="whole"),
        pytest.param("1n", 1, 1, id="nano"),
        pytest.param("-1.5", -2, -1500, id="negative-away-from-zero"),
        pytest.param("1Ki", 1024, 1024000, id="binary"),
    ],
)
def test_value_and_milli_value(text: str, value: int, milli: int) -> None:
    quantity = parse_quantity(text)
    assert (quantity.value(), quantity.milli_value()) == (value, milli)


@pytest.mark.parametrize(
    ("a", "b", "total"),
    [
        pytest.param("1Gi", "512Mi", "1536Mi", id="binary"),
        pytest.param("1", "500m", "1500m", id="decimal"),
        pytest.param("0", "1Ki", "1Ki", id="zero-takes-other-format"),
        pytest.param("100m", "1Ki", "1024100m", id="keeps-receiver-format"),
        pytest.param("1", "-1", "0", id="to-zero"),
    ],
)
def test_add(a: str, b: str, total: str) -> None:
    assert str(parse_quantity(a) + parse_quantity(b)) == total


@pytest.mark.parametrize(
    ("a", "b", "relation"),
    [
        pytest.param("1", "1000m", 0, id="equal-across-suffixes"),
        pytest.param("1k", "1000", 0, id="kilo"),
        pytest.param("1Ki", "1k", 1, id="kibi-above-kilo"),
        pytest.param("999m", "1", -1, id="below"),
        pytest.param("-1", "0", -1, id="negative"),
    ],
)
def test_compare(a: str, b: str, relation: int) -> None:
    x, y = parse_quantity(a), parse_quantity(b)
    assert ((x > y) - (x < y)) == relation
    assert (x == y) is (relation == 0)


def test_constructors_subtraction_and_hash() -> None:
    assert str(Quantity.from_int(2)) == "2"
    assert str(Quantity.from_milli(250)) == "250m"
    assert str(Quantity.from_int(1024, BINARY_SI)) == "1Ki"
    assert str(parse_quantity("1") - parse_quantity("250m")) == "750m"
    assert str(-parse_quantity("1Gi")) == "-1Gi"
    assert len({parse_quantity("1"), parse_quantity("1000m")}) == 1
