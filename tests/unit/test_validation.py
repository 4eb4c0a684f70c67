"""Name and ObjectMeta rules: upstream reasons, field paths and messages, byte for byte."""

from __future__ import annotations

import random
from typing import Any

import pytest

from skiff.api import field_errors
from skiff.api.status import Cause, invalid
from skiff.registry.validation import (
    generate_name,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    is_valid_path_segment_name,
    name_is_dns1035_label,
    name_is_dns_label,
    name_is_dns_subdomain,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
)

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    "is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
KEY_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


@pytest.mark.parametrize(
    ("rule", "value", "problems"),
    [
        pytest.param(is_dns1123_subdomain, "my-app.example.com", [], id="subdomain-ok"),
        pytest.param(is_dns1123_subdomain, "Bad_Name", [SUBDOMAIN_MSG], id="subdomain-bad"),
        pytest.param(is_dns1123_subdomain, "a" * 253, [], id="subdomain-max"),
        pytest.param(is_dns1123_subdomain, "a" * 254, ["must be no more than 253 characters"], id="subdomain-too-long"),
        pytest.param(is_dns1123_label, "web-1", [], id="label-ok"),
        pytest.param(is_dns1123_label, "1abc", [], id="label-may-start-with-digit"),
        pytest.param(is_dns1123_label, "a.b", ["must not contain dots"], id="label-dots"),
        pytest.param(is_dns1123_label, "-a", [LABEL_MSG], id="label-bad"),
        pytest.param(is_dns1123_label, "a" * 64, ["must be no more than 63 characters"], id="label-too-long"),
        pytest.param(is_dns1035_label, "svc-1", [], id="1035-ok"),
        pytest.param(is_dns1035_label, "1svc", [DNS1035_MSG], id="1035-leading-digit"),
        pytest.param(is_qualified_name, "app.kubernetes.io/name", [], id="qualified-prefixed"),
        pytest.param(is_qualified_name, "My_Key.1", [], id="qualified-mixed-case"),
        pytest.param(is_qualified_name, "a b", [KEY_NAME_MSG], id="qualified-space"),
        pytest.param(is_qualified_name, "/a", ["prefix part must be non-empty"], id="qualified-empty-prefix"),
        pytest.param(
            is_qualified_name,
            "a/",
            ["name part must be non-empty", KEY_NAME_MSG],
            id="qualified-empty-name",
        ),
        pytest.param(is_qualified_name, "Bad/x", ["prefix part " + SUBDOMAIN_MSG], id="qualified-bad-prefix"),
        pytest.param(
            is_qualified_name,
            "x" * 64,
            ["name part must be no more than 63 characters"],
            id="qualified-name-too-long",
        ),
        pytest.param(is_valid_label_value, "", [], id="value-empty-ok"),
        pytest.param(is_valid_label_value, "v1.2_x-y", [], id="value-ok"),
        pytest.param(is_valid_label_value, "-x", [VALUE_MSG], id="value-bad"),
        pytest.param(is_valid_path_segment_name, "..", ["may not be '..'"], id="segment-dotdot"),
        pytest.param(
            is_valid_path_segment_name, "a/b%c", ["may not contain '/'", "may not contain '%'"], id="segment-chars"
        ),
    ],
)
def test_string_rules(rule: Any, value: str, problems: list[str]) -> None:
    assert rule(value) == problems


def test_qualified_name_with_two_slashes() -> None:
    (message,) = is_qualified_name("a/b/c")
    assert message.startswith("a valid label key must consist of alphanumeric characters")
    assert message.endswith("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")


@pytest.mark.parametrize(
    ("rule", "generate", "ok"),
    [
        pytest.param(name_is_dns_subdomain, "web-", True, id="trailing-dash-allowed"),
        pytest.param(name_is_dns_label, "web-", True, id="label-trailing-dash"),
        pytest.param(name_is_dns1035_label, "svc-", True, id="1035-trailing-dash"),
        pytest.param(name_is_dns_subdomain, "Web-", False, id="uppercase-still-bad"),
    ],
)
def test_generate_name_prefix_rule(rule: Any, generate: str, ok: bool) -> None:
    assert (rule(generate, True) == []) is ok
    assert rule(generate, False) != []


def test_generate_name_appends_five_characters_to_a_truncated_base() -> None:
    name = generate_name("web-", random.Random(1))
    assert name.startswith("web-") and len(name) == 9
    assert all(c in "bcdfghjklmnpqrstvwxz2456789" for c in name[4:])
    assert len(generate_name("x" * 80, random.Random(1))) == 63


def _meta(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "namespace": "default", **fields}


@pytest.mark.parametrize(
    ("meta", "namespaced", "causes"),
    [
        pytest.param(_meta(), True, [], id="valid"),
        pytest.param(
            _meta(name="Bad_Name"),
            True,
            [Cause("FieldValueInvalid", f'Invalid value: "Bad_Name": {SUBDOMAIN_MSG}', "metadata.name")],
            id="bad-name",
        ),
        pytest.param(
            _meta(name=""),
            True,
            [Cause("FieldValueRequired", "Required value: name or generateName is required", "metadata.name")],
            id="missing-name",
        ),
        pytest.param(
            _meta(namespace=""),
            True,
            [Cause("FieldValueRequired", "Required value", "metadata.namespace")],
            id="namespace-required",
        ),
        pytest.param(
            _meta(namespace="Bad.NS"),
            True,
            [Cause("FieldValueInvalid", f'Invalid value: "Bad.NS": {LABEL_MSG}', "metadata.namespace")],
            id="namespace-invalid",
        ),
        pytest.param(
            _meta(),
            False,
            [Cause("FieldValueForbidden", "Forbidden: not allowed on this type", "metadata.namespace")],
            id="namespace-forbidden-cluster-scope",
        ),
        pytest.param(
            _meta(generateName="Bad-"),
            True,
            [Cause("FieldValueInvalid", f'Invalid value: "Bad-": {SUBDOMAIN_MSG}', "metadata.generateName")],
            id="bad-generate-name",
        ),
        pytest.param(
            _meta(labels={"ok": "-bad"}),
            True,
            [Cause("FieldValueInvalid", f'Invalid value: "-bad": {VALUE_MSG}', "metadata.labels")],
            id="bad-label-value",
        ),
        pytest.param(
            _meta(annotations={"a b": "x"}),
            True,
            [Cause("FieldValueInvalid", f'Invalid value: "a b": {KEY_NAME_MSG}', "metadata.annotations")],
            id="bad-annotation-key",
        ),
        pytest.param(
            _meta(annotations={"Upper.Case/OK": "x"}),
            True,
            [],
            id="annotation-keys-case-insensitive",
        ),
        pytest.param(
            _meta(annotations={"big": "x" * (256 * 1024)}),
            True,
            [Cause("FieldValueTooLong", "Too long: may not be more than 262144 bytes", "metadata.annotations")],
            id="annotations-too-large",
        ),
        pytest.param(
            _meta(generation=-1),
            True,
            [
                Cause(
                    "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0", "metadata.generation"
                )
            ],
            id="negative-generation",
        ),
        pytest.param(
            _meta(finalizers=["example.com/x", "bad finalizer"]),
            True,
            [
                Cause(
                    "FieldValueInvalid",
                    f'Invalid value: "bad finalizer": {KEY_NAME_MSG}',
                    "metadata.finalizers",
                )
            ],
            id="bad-finalizer",
        ),
        pytest.param(
            _meta(finalizers=["orphan", "foregroundDeletion"]),
            True,
            [
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: ["orphan","foregroundDeletion"]: '
                    "finalizer orphan and foregroundDeletion cannot be both set",
                    "metadata.finalizers",
                )
            ],
            id="conflicting-finalizers",
        ),
        pytest.param(
            _meta(ownerReferences=[{"apiVersion": "", "kind": "", "name": "", "uid": ""}]),
            True,
            [
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: "": version must not be empty',
                    "metadata.ownerReferences.apiVersion",
                ),
                Cause("FieldValueInvalid", 'Invalid value: "": must not be empty', "metadata.ownerReferences.kind"),
                Cause("FieldValueInvalid", 'Invalid value: "": must not be empty', "metadata.ownerReferences.name"),
                Cause("FieldValueInvalid", 'Invalid value: "": must not be empty', "metadata.ownerReferences.uid"),
            ],
            id="empty-owner-reference",
        ),
        pytest.param(
            _meta(ownerReferences=[{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "1"}]),
            True,
            [
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: {"apiVersion":"v1","kind":"Event","name":"e","uid":"1"}: '
                    "/v1, Kind=Event is disallowed from being an owner",
                    "metadata.ownerReferences",
                )
            ],
            id="event-owner-banned",
        ),
        pytest.param(
            _meta(
                ownerReferences=[
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "a", "uid": "1", "controller": True},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "b", "uid": "2", "controller": True},
                ]
            ),
            True,
            [
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: [{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"a","uid":"1",'
                    '"controller":true},'
                    '{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"b","uid":"2","controller":true}]: '
                    'Only one reference can have Controller set to true. Found "true" in references for '
                    "ReplicaSet/a and ReplicaSet/b",
                    "metadata.ownerReferences",
                )
            ],
            id="two-controllers",
        ),
        pytest.param(
            _meta(managedFields=[{"manager": "m", "operation": "Patch", "fieldsType": "FieldsV2"}]),
            True,
            [
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: "Patch": must be `Apply` or `Update`',
                    "metadata.managedFields[0].operation",
                ),
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: "FieldsV2": must be `FieldsV1`',
                    "metadata.managedFields[0].fieldsType",
                ),
            ],
            id="bad-managed-fields",
        ),
    ],
)
def test_validate_object_meta(meta: dict[str, Any], namespaced: bool, causes: list[Cause]) -> None:
    assert validate_object_meta(meta, namespaced, name_is_dns_subdomain) == causes


def test_invalid_status_reads_like_the_apiserver() -> None:
    causes = validate_object_meta(_meta(name="Bad_Name"), True, name_is_dns_subdomain)
    assert invalid("Pod", "", "Bad_Name", causes).message == (
        f'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}'
    )


def test_service_names_use_dns1035() -> None:
    causes = validate_object_meta(_meta(name="1svc"), True, name_is_dns1035_label)
    assert causes == [Cause("FieldValueInvalid", f'Invalid value: "1svc": {DNS1035_MSG}', "metadata.name")]


OLD = {
    "name": "web",
    "namespace": "default",
    "uid": "u1",
    "resourceVersion": "5",
    "generation": 2,
    "creationTimestamp": "2024-01-01T00:00:00Z",
    "finalizers": ["a.io/x"],
}


@pytest.mark.parametrize(
    ("changes", "old_changes", "causes"),
    [
        pytest.param({}, {}, [], id="unchanged"),
        pytest.param({"generateName": "other-"}, {}, [], id="generate-name-ignored"),
        pytest.param(
            {"name": "other"},
            {},
            [Cause("FieldValueInvalid", 'Invalid value: "other": field is immutable', "metadata.name")],
            id="name-immutable",
        ),
        pytest.param(
            {"namespace": "kube-system"},
            {},
            [Cause("FieldValueInvalid", 'Invalid value: "kube-system": field is immutable', "metadata.namespace")],
            id="namespace-immutable",
        ),
        pytest.param(
            {"uid": "u2"},
            {},
            [Cause("FieldValueInvalid", 'Invalid value: "u2": field is immutable', "metadata.uid")],
            id="uid-immutable",
        ),
        pytest.param(
            {"creationTimestamp": "2025-01-01T00:00:00Z"},
            {},
            [
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: "2025-01-01T00:00:00Z": field is immutable',
                    "metadata.creationTimestamp",
                )
            ],
            id="creation-timestamp-immutable",
        ),
        pytest.param(
            {"resourceVersion": ""},
            {},
            [
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: "": must be specified for an update',
                    "metadata.resourceVersion",
                )
            ],
            id="resource-version-required",
        ),
        pytest.param(
            {"generation": 1},
            {},
            [Cause("FieldValueInvalid", "Invalid value: 1: must not be decremented", "metadata.generation")],
            id="generation-decrement",
        ),
        pytest.param(
            {"finalizers": ["a.io/x", "b.io/y"], "deletionTimestamp": "2024-02-02T00:00:00Z"},
            {"deletionTimestamp": "2024-02-02T00:00:00Z"},
            [
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: no new finalizers can be added if the object is being deleted, "
                    'found new finalizers []string{"b.io/y"}',
                    "metadata.finalizers",
                )
            ],
            id="no-new-finalizers-while-deleting",
        ),
        pytest.param(
            {"finalizers": [], "deletionTimestamp": "2024-02-02T00:00:00Z"},
            {"deletionTimestamp": "2024-02-02T00:00:00Z"},
            [],
            id="removing-finalizers-while-deleting",
        ),
        pytest.param(
            {"labels": {"a": "-"}},
            {},
            [Cause("FieldValueInvalid", f'Invalid value: "-": {VALUE_MSG}', "metadata.labels")],
            id="labels-revalidated",
        ),
    ],
)
def test_validate_object_meta_update(changes: dict[str, Any], old_changes: dict[str, Any], causes: list[Cause]) -> None:
    assert validate_object_meta_update({**OLD, **changes}, {**OLD, **old_changes}) == causes


@pytest.mark.parametrize(
    ("selector", "causes"),
    [
        pytest.param({"matchLabels": {"app": "web"}}, [], id="ok"),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            [
                Cause(
                    "FieldValueRequired",
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                    "spec.selector.matchExpressions[0].values",
                )
            ],
            id="in-needs-values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            [
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    "spec.selector.matchExpressions[0].values",
                )
            ],
            id="exists-forbids-values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Gt"}]},
            [
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: "Gt": not a valid selector operator',
                    "spec.selector.matchExpressions[0].operator",
                )
            ],
            id="bad-operator",
        ),
    ],
)
def test_validate_label_selector(selector: dict[str, Any], causes: list[Cause]) -> None:
    assert validate_label_selector(selector, "spec.selector") == causes


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param("plain", '"plain"', id="string"),
        pytest.param('a"b\\c', '"a\\"b\\\\c"', id="escapes"),
        pytest.param("tab\there", '"tab\\there"', id="control"),
        pytest.param("\x01", '"\\x01"', id="hex"),
        pytest.param("héllo", '"héllo"', id="unicode-kept"),
        pytest.param(3, "3", id="int"),
        pytest.param(True, "true", id="bool"),
        pytest.param(None, "null", id="null"),
        pytest.param(["a<b"], '["a\\u003cb"]', id="json-html-escaped"),
    ],
)
def test_bad_values_print_like_go(value: Any, text: str) -> None:
    assert field_errors.go_value(value) == text
