"""Go decoder type errors for built-in kinds, found against their OpenAPI schemas (pure)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from skiff.registry.pruning import Schema, resolve
from skiff.registry.schemas import KindSchemas, builtin_schemas, ref
from skiff.registry.type_errors import JSON_TYPES, _accepts, accepted_json_types, first_type_error


@pytest.fixture(scope="module")
def schemas() -> KindSchemas:
    return builtin_schemas()


def _struct_field(value: str, field: str, go: str) -> str:
    return f"json: cannot unmarshal {value} into Go struct field {field} of type {go}"


@pytest.mark.parametrize(
    ("kind", "obj", "error"),
    [
        pytest.param("Secret", {"metadata": {"name": "a", "labels": {"k": "v"}}}, None, id="valid"),
        pytest.param("Secret", {"metadata": {"name": None, "finalizers": None}}, None, id="null-anywhere"),
        pytest.param(
            "Secret",
            {"metadata": {"finalizers": [False]}},
            _struct_field("bool", "ObjectMeta.metadata.finalizers", "string"),
            id="list-item",
        ),
        pytest.param(
            "Secret",
            {"metadata": {"labels": {"k": 1}}},
            _struct_field("number", "ObjectMeta.metadata.labels", "string"),
            id="map-value",
        ),
        pytest.param(
            "Secret",
            {"metadata": {"annotations": "x"}},
            _struct_field("string", "ObjectMeta.metadata.annotations", "map[string]string"),
            id="map",
        ),
        pytest.param(
            "Secret",
            {"metadata": {"ownerReferences": [1]}},
            _struct_field("number", "ObjectMeta.metadata.ownerReferences", "v1.OwnerReference"),
            id="struct-in-list",
        ),
        pytest.param(
            "Secret",
            {"metadata": {"managedFields": [{"operation": [None], "fieldsV1": {"f:x": {}}}]}},
            _struct_field("array", "ManagedFieldsEntry.metadata.managedFields.operation", "string"),
            id="innermost-struct-named",
        ),
        pytest.param(
            "Secret", {"data": {"a": 1}}, _struct_field("number", "Secret.data", "[]uint8"), id="top-level-field"
        ),
        pytest.param(
            "Deployment",
            {"spec": {"replicas": 1.5}},
            _struct_field("number 1.5", "DeploymentSpec.spec.replicas", "int64"),
            id="fraction-for-integer",
        ),
        pytest.param(
            "Deployment",
            {"spec": "x"},
            _struct_field("string", "Deployment.spec", "v1.DeploymentSpec"),
            id="struct",
        ),
        pytest.param(
            "Deployment",
            {"spec": {"strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}}},
            None,
            id="int-or-string",
        ),
        pytest.param(
            "Deployment",
            {"spec": {"template": {"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": 5}}}]}}}},
            None,
            id="quantities",
        ),
        pytest.param(
            "Deployment",
            {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": 3}]}}}},
            _struct_field("number", "Container.spec.template.spec.containers.image", "string"),
            id="deep",
        ),
        pytest.param(
            "Deployment",
            {"spec": {"paused": "yes"}},
            _struct_field("string", "DeploymentSpec.spec.paused", "bool"),
            id="bool",
        ),
        pytest.param("Deployment", {"spec": {"unknown": 1}}, None, id="unknown-fields-are-not-type-errors"),
    ],
)
def test_first_type_error(schemas: KindSchemas, kind: str, obj: dict[str, Any], error: str | None) -> None:
    group = "apps" if kind == "Deployment" else ""
    name = schemas.for_kind(group, "v1", kind)
    assert name is not None
    assert first_type_error(obj, ref(name), schemas.components) == error


def test_free_form_values_take_anything(schemas: KindSchemas) -> None:
    name = schemas.for_kind("apps", "v1", "ControllerRevision")
    assert name is not None
    assert first_type_error({"data": [1, "x", {"a": None}]}, ref(name), schemas.components) is None


def _schemas_in(schema: Any) -> Iterator[Schema]:
    if isinstance(schema, Mapping):
        yield schema
        for value in schema.values():
            yield from _schemas_in(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _schemas_in(value)


#: One value of each decoded JSON type (bool and int apart), and some the decoder never produces.
_SAMPLES: list[Any] = [{}, [], "s", 1, 1.5, True, False, 0]
_SYNTHETIC: list[Schema] = [
    {},
    {"type": ["string", "null"]},
    {"type": "object"},
    {"properties": {}},
    {"type": "string", "x-kubernetes-preserve-unknown-fields": True},
    {"type": "string", "x-kubernetes-int-or-string": True},
    {"type": "integer", "oneOf": []},
    {"type": "unknown"},
]


def test_accepted_json_types_match_accepts(schemas: KindSchemas) -> None:
    """The fast path's set lookup decides exactly as ``_accepts``, for every schema node there is."""
    targets = [resolve(s, schemas.components) for c in schemas.components.values() for s in _schemas_in(c)]
    for target in targets + _SYNTHETIC:
        accepted = accepted_json_types(target)
        assert accepted <= JSON_TYPES
        for value in _SAMPLES:
            assert (type(value) in accepted) == _accepts(value, target), (target, value)
