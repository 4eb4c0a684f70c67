"""Custom resources' pure parts: schema validation, pruning, defaulting, JSONPath, printer columns, names."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.api.status import Cause
from skiff.apiserver.crds.naming import calculate_names, established_status
from skiff.registry.apiextensions.customresourcedefinition import CustomResourceDefinitionStrategy
from skiff.registry.custom import jsonpath, printer, schema_validation, structural
from skiff.registry.custom.definition import AcceptedNames, crd_resources, version_priority
from skiff.registry.custom.strategy import CustomResourceStrategy, version_rules

NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string", "pattern": "^[0-9*/ ]+$"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
                "image": {"type": "string", "default": "busybox"},
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "port": {"x-kubernetes-int-or-string": True},
                "name": {"type": "string", "minLength": 2, "maxLength": 4},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
                "when": {"type": "string", "format": "date-time"},
                "ratio": {"type": "number", "nullable": True},
                "labels": {"type": "object", "additionalProperties": {"type": "integer"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {"type": "object", "x-kubernetes-embedded-resource": True},
            },
        },
    },
}


def _spec(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "g.io/v1", "kind": "T", "metadata": {"name": "x"}, "spec": {"cronSpec": "* *", **fields}}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({}, [], id="valid"),
        pytest.param(
            {"replicas": "3"},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
                    "spec.replicas",
                )
            ],
            id="type",
        ),
        pytest.param({"replicas": 3.0}, [], id="float-that-is-an-integer"),
        pytest.param(
            {"replicas": 0},
            [
                Cause(
                    "FieldValueInvalid",
                    "Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
                    "spec.replicas",
                )
            ],
            id="minimum",
        ),
        pytest.param(
            {"replicas": 11},
            [
                Cause(
                    "FieldValueInvalid",
                    "Invalid value: 11: spec.replicas in body should be less than or equal to 10",
                    "spec.replicas",
                )
            ],
            id="maximum",
        ),
        pytest.param(
            {"cronSpec": "abc"},
            [
                Cause(
                    "FieldValueInvalid",
                    "Invalid value: \"abc\": spec.cronSpec in body should match '^[0-9*/ ]+$'",
                    "spec.cronSpec",
                )
            ],
            id="pattern",
        ),
        pytest.param(
            {"mode": "medium"},
            [
                Cause(
                    "FieldValueNotSupported",
                    'Unsupported value: "medium": supported values: "fast", "slow"',
                    "spec.mode",
                )
            ],
            id="enum",
        ),
        pytest.param({"port": 80}, [], id="int-or-string-int"),
        pytest.param({"port": "http"}, [], id="int-or-string-string"),
        pytest.param(
            {"port": True},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"',
                    "spec.port",
                )
            ],
            id="int-or-string-bool",
        ),
        pytest.param(
            {"name": "a"},
            [
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: "a": spec.name in body should be at least 2 chars long',
                    "spec.name",
                )
            ],
            id="min-length",
        ),
        pytest.param(
            {"name": "abcde"},
            [Cause("FieldValueTooLong", "Too long: may not be more than 4 bytes", "spec.name")],
            id="max-length",
        ),
        pytest.param(
            {"tags": []},
            [
                Cause(
                    "FieldValueInvalid", "Invalid value: 0: spec.tags in body should have at least 1 items", "spec.tags"
                )
            ],
            id="min-items",
        ),
        pytest.param(
            {"tags": ["a", "b", "c"]},
            [Cause("FieldValueTooMany", "Too many: 3: must have at most 2 items", "spec.tags")],
            id="max-items",
        ),
        pytest.param(
            {"tags": ["a", 1]},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    'Invalid value: "integer": spec.tags[1] in body must be of type string: "integer"',
                    "spec.tags[1]",
                )
            ],
            id="array-item-path",
        ),
        pytest.param({"when": "2024-01-02T03:04:05Z"}, [], id="date-time"),
        pytest.param(
            {"when": "yesterday"},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    'Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"',
                    "spec.when",
                )
            ],
            id="date-time-bad",
        ),
        pytest.param({"ratio": None}, [], id="nullable"),
        pytest.param(
            {"labels": {"a": "x"}},
            [
                Cause(
                    "FieldValueTypeInvalid",
                    'Invalid value: "string": spec.labels.a in body must be of type integer: "string"',
                    "spec.labels.a",
                )
            ],
            id="additional-properties",
        ),
        pytest.param(
            {"template": {"kind": "Pod"}},
            [Cause("FieldValueRequired", "Required value: must not be empty", "spec.template.apiVersion")],
            id="embedded-resource",
        ),
    ],
)
def test_schema_validation(fields: dict[str, Any], expected: list[Cause]) -> None:
    assert schema_validation.validate(SPEC_SCHEMA, _spec(**fields)) == expected


def test_schema_validation_required() -> None:
    obj = _spec()
    del obj["spec"]["cronSpec"]
    assert schema_validation.validate(SPEC_SCHEMA, obj) == [
        Cause("FieldValueRequired", "Required value", "spec.cronSpec")
    ]


@pytest.mark.parametrize(
    ("spec", "pruned_spec", "paths"),
    [
        pytest.param({"cronSpec": "*", "bogus": 1}, {"cronSpec": "*"}, ["spec.bogus"], id="unknown-field"),
        pytest.param(
            {"free": {"anything": {"goes": 1}}},
            {"free": {"anything": {"goes": 1}}},
            [],
            id="preserve-unknown-fields",
        ),
        pytest.param(
            {"tags": ["a"], "labels": {"k": 1}},
            {"tags": ["a"], "labels": {"k": 1}},
            [],
            id="arrays-and-maps-kept",
        ),
        pytest.param(
            {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}}},
            {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}},
            ["spec.template.spec"],
            id="embedded-resource-keeps-type-meta",
        ),
    ],
)
def test_pruning(spec: dict[str, Any], pruned_spec: dict[str, Any], paths: list[str]) -> None:
    obj = {"apiVersion": "g.io/v1", "kind": "T", "metadata": {"name": "x"}, "spec": spec, "extra": True}
    found = structural.prune(SPEC_SCHEMA, obj)
    assert obj == {"apiVersion": "g.io/v1", "kind": "T", "metadata": {"name": "x"}, "spec": pruned_spec}
    assert found == [*paths, "extra"]


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        pytest.param(
            {"properties": {"a": {"type": "string", "default": "x"}}}, {}, {"a": "x"}, id="missing-gets-default"
        ),
        pytest.param({"properties": {"a": {"type": "string", "default": "x"}}}, {"a": "y"}, {"a": "y"}, id="kept"),
        pytest.param(
            {"properties": {"a": {"type": "string", "default": "x"}}}, {"a": None}, {"a": "x"}, id="null-gets-default"
        ),
        pytest.param(
            {
                "properties": {
                    "o": {"type": "object", "default": {}, "properties": {"n": {"type": "integer", "default": 1}}}
                }
            },
            {},
            {"o": {"n": 1}},
            id="defaults-inside-defaults",
        ),
        pytest.param(
            {
                "properties": {
                    "l": {"type": "array", "items": {"properties": {"k": {"type": "string", "default": "d"}}}}
                }
            },
            {"l": [{}, {"k": "v"}]},
            {"l": [{"k": "d"}, {"k": "v"}]},
            id="array-items",
        ),
    ],
)
def test_defaulting(schema: dict[str, Any], value: dict[str, Any], expected: dict[str, Any]) -> None:
    structural.apply_defaults(schema, value)
    assert value == expected


def test_null_pruning_keeps_nullable_and_defaulted_fields() -> None:
    schema = {
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "string", "nullable": True},
            "c": {"type": "string", "default": "x"},
        }
    }
    value: dict[str, Any] = {"a": None, "b": None, "c": None}
    structural.prune_nulls(schema, value)
    assert value == {"b": None, "c": None}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param(".spec.cronSpec", ["* *"], id="field"),
        pytest.param(".spec.missing", [], id="missing"),
        pytest.param(".status.conditions[0].type", ["Ready"], id="index"),
        pytest.param(".status.conditions[-1].type", ["Synced"], id="negative-index"),
        pytest.param(".status.conditions[*].status", ["True", "False"], id="wildcard"),
        pytest.param('.status.conditions[?(@.type=="Synced")].status', ["False"], id="filter"),
        pytest.param(".status.conditions[?(@.reason)].type", ["Synced"], id="filter-exists"),
        pytest.param(".metadata.labels['app.kubernetes.io/name']", ["web"], id="quoted-key"),
        pytest.param("{.spec.replicas}", [3], id="braces"),
    ],
)
def test_jsonpath(path: str, expected: list[Any]) -> None:
    obj = {
        "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
        "spec": {"cronSpec": "* *", "replicas": 3},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False", "reason": "x"}]
        },
    }
    assert jsonpath.find(obj, jsonpath.parse(path)) == expected


@pytest.mark.parametrize("path", [".a..b", ".a[", ".a[?(@.x ~ 1)]", "a b"])
def test_jsonpath_rejects(path: str) -> None:
    with pytest.raises(ValueError):
        jsonpath.parse(path)


@pytest.mark.parametrize(
    ("column_type", "value", "expected"),
    [
        pytest.param("string", "abc", "abc", id="string"),
        pytest.param("string", 3, "3", id="string-of-int"),
        pytest.param("string", {"b": 1, "a": [1, 2]}, "map[a:[1 2] b:1]", id="string-of-map"),
        pytest.param("integer", 3, 3, id="integer"),
        pytest.param("integer", 3.7, 3, id="integer-of-float"),
        pytest.param("integer", "3", None, id="integer-of-string"),
        pytest.param("number", 2, 2.0, id="number"),
        pytest.param("boolean", True, True, id="boolean"),
        pytest.param("boolean", "true", None, id="boolean-of-string"),
        pytest.param("date", "2024-01-02T03:02:05Z", "2m", id="date-age"),
        pytest.param("date", "2024-01-01T03:04:05Z", "24h", id="date-hours"),
        pytest.param("date", "soon", "<invalid>", id="date-invalid"),
        pytest.param("date", "", "<unknown>", id="date-zero"),
        pytest.param("string", None, None, id="null"),
    ],
)
def test_printer_cells(column_type: str, value: Any, expected: Any) -> None:
    assert printer.cell(column_type, value, NOW) == expected


def _version(**extra: Any) -> dict[str, Any]:
    schema = {"openAPIV3Schema": copy.deepcopy(SPEC_SCHEMA)}
    return {"name": "v1", "served": True, "storage": True, "schema": schema, **extra}


def test_strategy_columns_and_rows() -> None:
    version = _version(
        additionalPrinterColumns=[
            {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ]
    )
    strategy = CustomResourceStrategy(version_rules(version), namespaced=True)
    assert [(c.name, c.type, c.priority) for c in strategy.columns] == [
        ("Name", "string", 0),
        ("Spec", "string", 0),
        ("Replicas", "integer", 1),
        ("Age", "date", 0),
    ]
    obj = _spec(replicas=2)
    obj["metadata"]["creationTimestamp"] = "2024-01-02T03:04:00Z"
    assert strategy.row(obj, NOW) == ["* *", 2, "5s"]


def test_default_columns_are_name_and_age() -> None:
    strategy = CustomResourceStrategy(version_rules(_version()), namespaced=True)
    assert [(c.name, c.type) for c in strategy.columns] == [("Name", "string"), ("Age", "date")]


def test_status_subresource_rules() -> None:
    strategy = CustomResourceStrategy(version_rules(_version(subresources={"status": {}})), namespaced=True)
    created = _spec(replicas=1) | {"status": {"phase": "x"}}
    strategy.prepare_for_create(created)
    assert "status" not in created
    old = _spec(replicas=1) | {"status": {"phase": "old"}}
    new = _spec(replicas=2) | {"status": {"phase": "new"}}
    strategy.prepare_for_update(new, old)
    assert new["status"] == {"phase": "old"} and new["spec"]["replicas"] == 2
    status_write = _spec(replicas=9) | {"status": {"phase": "new"}}
    strategy.prepare_for_status_update(status_write, old)
    assert status_write["status"] == {"phase": "new"} and status_write["spec"]["replicas"] == 1


def test_strategy_default_prunes_and_defaults() -> None:
    strategy = CustomResourceStrategy(version_rules(_version()), namespaced=True)
    obj = _spec(bogus=1)
    assert strategy.prune_unknown_fields(copy.deepcopy(obj)) == ["spec.bogus"]
    strategy.default(obj)
    assert obj["spec"] == {"cronSpec": "* *", "image": "busybox"}


def test_scale_replicas_validation() -> None:
    scale = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}
    strategy = CustomResourceStrategy(version_rules(_version(subresources={"scale": scale})), namespaced=False)
    obj = _spec() | {"status": {"replicas": -1}}
    assert [c.message for c in strategy.validate(obj)] == ["Invalid value: -1: should be a non-negative integer"]
    assert strategy.scale is not None and strategy.scale.spec_replicas == "spec.replicas"


def _crd(group: str = "g.io", plural: str = "things", kind: str = "Thing", **names: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "uid": "u1", "generation": 1},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind, **names},
            "versions": [
                {**_version(), "name": "v1beta1", "storage": False},
                _version(),
                {**_version(), "name": "v2alpha1", "storage": False},
                {**_version(), "name": "v0", "storage": False, "served": False},
            ],
        },
    }


def test_versions_sorted_by_priority_and_written_as_storage() -> None:
    resources = crd_resources(_crd(), AcceptedNames.from_dict({"plural": "things", "kind": "Thing"}))
    assert [info.version for info in resources.served] == ["v1", "v1beta1", "v2alpha1"]
    assert resources.storage.version == "v1"
    assert {v: w.group_version for v, w in resources.writers.items()} == {
        "v1": "g.io/v1",
        "v1beta1": "g.io/v1",
        "v2alpha1": "g.io/v1",
    }
    assert resources.served[0].singular == "thing" and resources.served[0].kind == "Thing"
    assert sorted(["v1", "v11alpha2", "foo", "v2", "v10beta3", "v12alpha1"], key=version_priority) == [
        "v2",
        "v1",
        "v10beta3",
        "v12alpha1",
        "v11alpha2",
        "foo",
    ]


def test_names_accepted_then_established() -> None:
    crd = _crd(shortNames=["th"])
    naming = calculate_names(crd, [crd])
    assert naming.accepted and naming.reason == "NoConflicts"
    status = established_status(crd, naming, NOW)
    assert status["acceptedNames"] == {
        "plural": "things",
        "singular": "thing",
        "shortNames": ["th"],
        "kind": "Thing",
        "listKind": "ThingList",
    }
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("NamesAccepted", "True", "NoConflicts"),
        ("Established", "True", "InitialNamesAccepted"),
    ]
    assert status["storedVersions"] == ["v1"]
    # Unchanged conditions keep their transition time.
    later = established_status(crd | {"status": status}, naming, datetime(2030, 1, 1, tzinfo=UTC))
    assert later == status


def test_names_conflicting_with_another_crd_of_the_group() -> None:
    other = _crd(plural="others", kind="Other", shortNames=["th"])
    other["status"] = {"acceptedNames": {"plural": "others", "kind": "Other", "shortNames": ["th"]}}
    crd = _crd(shortNames=["th"])
    naming = calculate_names(crd, [other, crd])
    assert not naming.accepted
    assert (naming.reason, naming.message) == ("ShortNamesConflict", '"th" is already in use')
    status = established_status(crd, naming, NOW)
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("NamesAccepted", "False", "ShortNamesConflict"),
        ("Established", "False", "NotAccepted"),
    ]
    # Another group may use the same names.
    assert calculate_names(crd, [other | {"spec": {**other["spec"], "group": "h.io"}}]).accepted


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(lambda crd: None, [], id="valid"),
        pytest.param(
            lambda crd: crd["spec"]["versions"][1].pop("schema"),
            [("spec.versions[1].schema.openAPIV3Schema", "Required value: schemas are required")],
            id="schema-required",
        ),
        pytest.param(
            lambda crd: crd["spec"]["versions"][0].update(storage=True),
            [("spec.versions", "Invalid value: null: must have exactly one version marked as storage version")],
            id="two-storage-versions",
        ),
        pytest.param(
            lambda crd: crd["metadata"].update(name="wrong.g.io"),
            [("metadata.name", 'Invalid value: "wrong.g.io": must be spec.names.plural+"."+spec.group')],
            id="name",
        ),
        pytest.param(
            lambda crd: crd["spec"]["versions"][1]["schema"]["openAPIV3Schema"]["properties"]["spec"].pop("type"),
            [
                (
                    "spec.versions[1].schema.openAPIV3Schema.properties[spec].type",
                    "Required value: must not be empty for specified object fields",
                )
            ],
            id="structural-property-type",
        ),
        pytest.param(
            lambda crd: crd["spec"]["versions"][1].update(
                additionalPrinterColumns=[{"name": "X", "type": "text", "jsonPath": "spec.x"}]
            ),
            [
                (
                    "spec.versions[1].additionalPrinterColumns[0].type",
                    'Unsupported value: "text": supported values: "boolean", "date", "integer", "number", "string"',
                ),
                (
                    "spec.versions[1].additionalPrinterColumns[0].jsonPath",
                    'Invalid value: "spec.x": must be a simple json path starting with .',
                ),
            ],
            id="printer-column",
        ),
        pytest.param(
            lambda crd: crd["spec"]["versions"][1].update(
                subresources={"scale": {"specReplicasPath": ".status.r", "statusReplicasPath": ".status.r"}}
            ),
            [
                (
                    "spec.versions[1].subresources.scale.specReplicasPath",
                    'Invalid value: ".status.r": should be a json path under .spec',
                )
            ],
            id="scale-paths",
        ),
    ],
)
def test_crd_validation(change: Any, expected: list[tuple[str, str]]) -> None:
    crd = copy.deepcopy(_crd())
    crd["spec"]["versions"] = crd["spec"]["versions"][:2]
    change(crd)
    strategy = CustomResourceDefinitionStrategy(namespaced=False)
    strategy.default(crd)
    assert [(c.field, c.message) for c in strategy.validate(crd)] == expected


def test_crd_update_adds_storage_version_to_stored_versions() -> None:
    strategy = CustomResourceDefinitionStrategy(namespaced=False)
    old = _crd() | {"status": {"storedVersions": ["v1"]}}
    new = copy.deepcopy(old)
    for version in new["spec"]["versions"]:
        version["storage"] = version["name"] == "v1beta1"
    strategy.prepare_for_update(new, old)
    assert new["status"]["storedVersions"] == ["v1", "v1beta1"]
    gone = copy.deepcopy(new)
    gone["spec"]["versions"] = [v for v in gone["spec"]["versions"] if v["name"] != "v1"]
    assert [(c.field, c.message) for c in strategy.validate_update(gone, old)] == [
        ("status.storedVersions[0]", 'Invalid value: "v1": must appear in spec.versions')
    ]
