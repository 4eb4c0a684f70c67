"""Label and field selectors: parsing, canonical strings, matching, upstream error texts."""

from __future__ import annotations

import pytest

from skiff.api.selectors import (
    FieldSelector,
    LabelSelector,
    escape_field_value,
    label_selector_from_structured,
    parse_field_selector,
    parse_label_selector,
)
from skiff.api.status import ApiError

# --- label selector strings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        pytest.param("", "", id="empty"),
        pytest.param("app=web", "app=web", id="equals"),
        pytest.param("app==web", "app==web", id="double-equals"),
        pytest.param("app!=web", "app!=web", id="not-equals"),
        pytest.param("app in (web,x),!foo", "app in (web,x),!foo", id="kubectl-observed"),
        pytest.param("tier notin (b, a)", "tier notin (a,b)", id="notin-sorted-values"),
        pytest.param("b,a", "a,b", id="exists-sorted-by-key"),
        pytest.param("!a", "!a", id="does-not-exist"),
        pytest.param("  a = b  ,  c  ", "a=b,c", id="blanks-around-tokens"),
        pytest.param("a\tin\t(x)", "a in (x)", id="tabs"),
        pytest.param("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()", id="upstream-doc-example"),
        pytest.param("x in (a,a,b)", "x in (a,b)", id="values-deduplicated"),
        pytest.param("x in (in,notin)", "x in (in,notin)", id="keywords-as-values"),
        pytest.param("a=", "a=", id="empty-value"),
        pytest.param("a=,b=c", "a=,b=c", id="empty-value-then-more"),
        pytest.param("n>5", "n>5", id="greater-than"),
        pytest.param("n<3", "n<3", id="less-than"),
        pytest.param("example.com/app=web", "example.com/app=web", id="prefixed-key"),
        pytest.param("a=B_1.x-y", "a=B_1.x-y", id="value-charset"),
    ],
)
def test_label_selector_parses_to_canonical_string(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            id="missing-operator",
        ),
        pytest.param("a=b=c", "found '=', expected: ',' or 'end of string'", id="second-operator"),
        pytest.param("a=b c", "found 'c', expected: ',' or 'end of string'", id="trailing-word"),
        pytest.param(",a", "found ',', expected: !, identifier, or 'end of string'", id="leading-comma"),
        pytest.param("a,", "found '', expected: identifier after ','", id="trailing-comma"),
        pytest.param("a in b", "unable to parse requirement: found 'b' expected: '('", id="in-without-paren"),
        pytest.param("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'", id="values-blank"),
        pytest.param("!", "unable to parse requirement: found '', expected: identifier", id="bang-alone"),
        pytest.param("a=(", "unable to parse requirement: found '(', expected: identifier", id="paren-as-value"),
        pytest.param(
            "n>x",
            'unable to parse requirement: values[0]: Invalid value: "x": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
            id="gt-not-integer",
        ),
        pytest.param(
            "a=-x",
            'unable to parse requirement: values[0][a]: Invalid value: "-x": a valid label must be an empty string '
            "or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
            "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            id="bad-value",
        ),
        pytest.param(
            "-a",
            'unable to parse requirement: <nil>: Invalid value: "-a": name part must consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
            "'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            id="bad-key",
        ),
    ],
)
def test_label_selector_errors_are_bad_requests_with_upstream_text(text: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_label_selector(text)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (400, "BadRequest", message)


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        pytest.param("", {}, True, id="empty-matches-all"),
        pytest.param("app=web", {"app": "web"}, True, id="equals-hit"),
        pytest.param("app=web", {"app": "db"}, False, id="equals-miss"),
        pytest.param("app=web", {}, False, id="equals-absent"),
        pytest.param("app!=web", {}, True, id="not-equals-absent-matches"),
        pytest.param("app!=web", {"app": "web"}, False, id="not-equals-same"),
        pytest.param("app in (a,b)", {"app": "b"}, True, id="in-hit"),
        pytest.param("app notin (a,b)", {}, True, id="notin-absent-matches"),
        pytest.param("app notin (a,b)", {"app": "a"}, False, id="notin-hit"),
        pytest.param("app", {"app": ""}, True, id="exists"),
        pytest.param("!app", {"app": ""}, False, id="does-not-exist"),
        pytest.param("a=", {"a": ""}, True, id="empty-value-matches-empty"),
        pytest.param("a=", {}, False, id="empty-value-needs-key"),
        pytest.param("n>5", {"n": "6"}, True, id="gt-hit"),
        pytest.param("n>5", {"n": "5"}, False, id="gt-equal"),
        pytest.param("n>5", {"n": "x"}, False, id="gt-not-a-number"),
        pytest.param("n>5", {}, False, id="gt-absent"),
        pytest.param("n<5", {"n": "-10"}, True, id="lt-negative"),
        pytest.param("a=1,b=2", {"a": "1", "b": "2"}, True, id="and-all"),
        pytest.param("a=1,b=2", {"a": "1"}, False, id="and-one-missing"),
    ],
)
def test_label_selector_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_label_selector_exposes_requirements_for_indexing() -> None:
    selector = parse_label_selector("tier in (fe),app=web,env!=prod")
    assert [(r.key, r.operator, r.values) for r in selector.requirements] == [
        ("app", "=", ("web",)),
        ("env", "!=", ("prod",)),
        ("tier", "in", ("fe",)),
    ]
    assert selector.exact_match("app") == "web"
    assert selector.exact_match("tier") == "fe"
    assert selector.exact_match("env") is None
    assert selector.exact_match("other") is None
    assert parse_label_selector("").empty
    assert not selector.empty


# --- structured label selectors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("structured", "labels", "expected"),
    [
        pytest.param(None, {"a": "b"}, False, id="nil-matches-nothing"),
        pytest.param({}, {"a": "b"}, True, id="empty-matches-everything"),
        pytest.param({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True, id="match-labels"),
        pytest.param({"matchLabels": {"app": "web"}}, {"app": "db"}, False, id="match-labels-miss"),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]},
            {"tier": "be"},
            True,
            id="in",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["fe"]}]}, {}, True, id="notin-absent"
        ),
        pytest.param({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True, id="exists"),
        pytest.param(
            {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": "x"}, False, id="not-exist"
        ),
        pytest.param(
            {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]},
            {"app": "web"},
            False,
            id="labels-and-expressions-are-anded",
        ),
    ],
)
def test_structured_label_selector(structured: dict | None, labels: dict[str, str], expected: bool) -> None:
    assert label_selector_from_structured(structured).matches(labels) is expected


def test_structured_selector_string_and_flags() -> None:
    selector = label_selector_from_structured(
        {"matchLabels": {"b": "1"}, "matchExpressions": [{"key": "a", "operator": "Exists"}]}
    )
    assert str(selector) == "a,b=1"
    assert label_selector_from_structured(None).nothing
    assert not label_selector_from_structured(None).empty
    assert label_selector_from_structured({}).empty


@pytest.mark.parametrize(
    ("structured", "message"),
    [
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
            '"Gt" is not a valid label selector operator',
            id="unknown-operator",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty",
            id="in-without-values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            'values: Invalid value: ["x"]: values set must be empty for exists and does not exist',
            id="exists-with-values",
        ),
    ],
)
def test_structured_selector_errors(structured: dict, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        label_selector_from_structured(structured)
    assert (caught.value.code, caught.value.message) == (400, message)


# --- field selectors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("metadata.name=web", [("metadata.name", "=", "web")], id="equals"),
        pytest.param("spec.nodeName==n1", [("spec.nodeName", "=", "n1")], id="double-equals-is-equals"),
        pytest.param("status.phase!=Running", [("status.phase", "!=", "Running")], id="not-equals"),
        pytest.param("b=2,a=1", [("a", "=", "1"), ("b", "=", "2")], id="terms-sorted-as-upstream"),
        pytest.param("a=x\\,y", [("a", "=", "x,y")], id="escaped-comma"),
        pytest.param("a=x\\=y", [("a", "=", "x=y")], id="escaped-equals"),
        pytest.param("a=x\\\\y", [("a", "=", "x\\y")], id="escaped-backslash"),
        pytest.param("a=", [("a", "=", "")], id="empty-value"),
        pytest.param("a=1,,b=2", [("a", "=", "1"), ("b", "=", "2")], id="empty-term-skipped"),
        pytest.param("a!=b\\=", [("a", "!=", "b=")], id="not-equals-with-escaped-equals"),
    ],
)
def test_field_selector_parses(text: str, terms: list[tuple[str, str, str]]) -> None:
    selector = parse_field_selector(text)
    assert [(r.field, r.operator, r.value) for r in selector.requirements] == terms


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("x", "invalid selector: 'x'; can't understand 'x'", id="no-operator"),
        pytest.param("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'", id="second-term-bare"),
        pytest.param("a=b=c", "invalid field selector: unescaped character in value: 61", id="bare-equals-in-value"),
        pytest.param("a=\\q", "invalid field selector: invalid escape sequence: \\q", id="unknown-escape"),
        pytest.param("a=b\\", "invalid field selector: invalid escape sequence: \\", id="dangling-backslash"),
    ],
)
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_field_selector(text)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (400, "BadRequest", message)


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        pytest.param("status.phase=Running", {"status.phase": "Running"}, True, id="equals-hit"),
        pytest.param("status.phase=Running", {"status.phase": "Pending"}, False, id="equals-miss"),
        pytest.param("spec.nodeName=", {}, True, id="missing-field-reads-empty"),
        pytest.param("spec.nodeName!=", {"spec.nodeName": "n1"}, True, id="scheduled"),
        pytest.param("a=1,b!=2", {"a": "1", "b": "3"}, True, id="and"),
        pytest.param("a=1,b!=2", {"a": "1", "b": "2"}, False, id="and-miss"),
    ],
)
def test_field_selector_matches(text: str, values: dict[str, str], expected: bool) -> None:
    assert parse_field_selector(text).matches(values) is expected


def test_field_selector_supported_fields_and_indexing() -> None:
    selector = parse_field_selector("metadata.namespace=default,spec.nodeName=n1,status.phase!=Failed")
    selector.check_supported({"spec.nodeName", "status.phase"})
    assert selector.exact_match("spec.nodeName") == "n1"
    assert selector.exact_match("status.phase") is None
    with pytest.raises(ApiError) as caught:
        parse_field_selector("spec.foo=bar").check_supported({"spec.nodeName"})
    assert (caught.value.code, caught.value.message) == (400, "field label not supported: spec.foo")
    assert FieldSelector().empty and LabelSelector().empty


@pytest.mark.parametrize("value", ["plain", "a,b", "a=b", "a\\b", "\\,=", ""])
def test_field_value_escaping_round_trips(value: str) -> None:
    selector = parse_field_selector(f"f={escape_field_value(value)}")
    assert selector.requirements[0].value == value
    assert parse_field_selector(str(selector)) == selector
