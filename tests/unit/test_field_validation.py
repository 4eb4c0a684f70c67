"""``SchemaFieldChecker``'s compiled fast path against the reference walkers (pure).

The checker must answer exactly what ``check_types`` (``first_type_error``)
followed by ``prune_unknown`` answer — the same findings in the same order, the
same 400, the same object afterwards — on clean bodies, bodies with unknown
fields, values of the wrong type and shapes the fast path hands back to the
reference walkers.
"""

from __future__ import annotations

import copy
import random
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import pytest

from skiff.api.status import ApiError
from skiff.apiserver import field_validation
from skiff.apiserver.field_validation import SchemaFieldChecker
from skiff.registry.builtin import BUILTIN, find
from skiff.registry.pruning import Schema, prune_unknown, resolve
from skiff.registry.resource import ResourceInfo
from skiff.registry.schemas import META, REF_PREFIX, KindSchemas, builtin_schemas, ref

WIDGET = ResourceInfo("example.com", "v1", "widgets", "widget", "Widget", True)


@pytest.fixture(scope="module")
def schemas() -> KindSchemas:
    return builtin_schemas()


def _reference(checker: SchemaFieldChecker, info: ResourceInfo, obj: dict[str, Any]) -> list[str]:
    """What ``unknown_fields`` did before it had a fast path: check_types, then prune_unknown."""
    group, version, kind = field_validation._type_of(info, obj)
    components = checker.schemas.components
    name = checker.schemas.for_kind(group, version, kind)
    checker.check_types(version, kind, name, obj)
    if name is not None:
        return prune_unknown(obj, ref(name), components)
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return []
    return prune_unknown(meta, ref(f"{META}.ObjectMeta"), components, "metadata")


def _outcome(call: Any, obj: dict[str, Any]) -> tuple[Any, ...]:
    try:
        return ("found", call(obj), repr(obj))
    except ApiError as err:
        return ("error", err.code, err.message, repr(obj))


def _same(checker: SchemaFieldChecker, info: ResourceInfo, obj: dict[str, Any]) -> tuple[Any, ...]:
    fast = _outcome(lambda o: checker.unknown_fields(info, o), copy.deepcopy(obj))
    slow = _outcome(lambda o: _reference(checker, info, o), copy.deepcopy(obj))
    assert fast == slow, obj
    return fast


# -- random bodies against the built-in schemas ---------------------------------------------------


def _generate(rng: random.Random, schema: Schema, components: Mapping[str, Schema], depth: int) -> Any:
    """A random value for ``schema``: mostly well typed, sometimes a wrong type or an unknown field."""
    roll = rng.random()
    if roll < 0.02:
        return rng.choice(["x", 1, 1.5, True, None, [], {}, {"a": 1}, [1, "a"]])
    if roll < 0.025:
        return rng.choice([(1, 2), b"x"])  # not what a JSON decoder produces
    target = resolve(schema, components)
    if depth > 6:
        return None
    props, extra, items = target.get("properties"), target.get("additionalProperties"), target.get("items")
    if target.get("x-kubernetes-preserve-unknown-fields") is True:
        return rng.choice([{"f:a": {"f:b": {}}, ".": {}}, {"any": [1, {"x": None}]}, "s", 3, [1]])
    if "oneOf" in target or target.get("x-kubernetes-int-or-string"):
        return rng.choice(["25%", 3, "10m", 1.5])
    if isinstance(props, Mapping):
        out: dict[str, Any] = {}
        for key in rng.sample(list(props), min(len(props), rng.randint(0, 6))):
            out[key] = _generate(rng, props[key], components, depth + 1)
        if rng.random() < 0.06:
            out[rng.choice(["bogus", "imagee", "x"])] = _generate(rng, {}, components, depth + 1)
        return out
    if isinstance(extra, Mapping):
        return {f"k{i}": _generate(rng, extra, components, depth + 1) for i in range(rng.randint(0, 3))}
    if target.get("type") == "array" and isinstance(items, Mapping):
        return [_generate(rng, items, components, depth + 1) for _ in range(rng.randint(0, 3))]
    if target.get("type") == "object":
        return {} if rng.random() < 0.7 else {"z": 1}
    return {"string": "s", "integer": 3, "number": 2.5, "boolean": True}.get(str(target.get("type")), "free")


def test_random_builtin_bodies_match_the_reference_walkers(schemas: KindSchemas) -> None:
    rng = random.Random(20240501)
    checker = SchemaFieldChecker(schemas)
    infos = [*BUILTIN, WIDGET]
    seen = {"found": 0, "error": 0, "clean": 0}
    for _ in range(600):
        info = rng.choice(infos)
        name = schemas.for_kind(info.group, info.version, info.kind)
        schema = ref(name) if name else {"properties": {"metadata": ref(f"{META}.ObjectMeta"), "spec": {}}}
        obj = _generate(rng, schema, schemas.components, 0)
        if not isinstance(obj, dict):
            continue
        outcome = _same(checker, info, obj)
        seen["error" if outcome[0] == "error" else "found" if outcome[1] else "clean"] += 1
    assert min(seen.values()) >= 20, seen  # every path was taken


# -- random schemas: structural extensions, refs, both properties and additionalProperties ---------------


def _random_schema(rng: random.Random, names: list[str], depth: int) -> Schema:
    if depth > 3 or rng.random() < 0.25:
        return rng.choice(
            [
                {"type": "string"},
                {"type": "integer"},
                {"type": "number"},
                {"type": "boolean"},
                {},
                {"x-kubernetes-int-or-string": True},
                {"type": ["string", "null"]},
                {"type": "object"},
                {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                {"$ref": REF_PREFIX + rng.choice(names)},
                {"allOf": [{"$ref": REF_PREFIX + rng.choice(names)}]},
                {"$ref": REF_PREFIX + "missing"},
                {"type": "array"},
            ]
        )
    schema: dict[str, Any] = {}
    kind = rng.choice(["object", "object", "array", None, "string"])
    if kind is not None and rng.random() < 0.8:
        schema["type"] = kind
    if rng.random() < 0.7:
        keys = rng.sample(["a", "b", "c", "metadata", "kind", "apiVersion"], rng.randint(0, 4))
        schema["properties"] = {k: _random_schema(rng, names, depth + 1) for k in keys}
        if rng.random() < 0.1:
            schema["properties"]["d"] = "not a schema"
    if rng.random() < 0.3:
        schema["additionalProperties"] = rng.choice([True, False, _random_schema(rng, names, depth + 1)])
    if rng.random() < 0.3 or kind == "array":
        schema["items"] = _random_schema(rng, names, depth + 1)
    if rng.random() < 0.15:
        schema["x-kubernetes-preserve-unknown-fields"] = True
    if rng.random() < 0.1:
        schema["x-kubernetes-embedded-resource"] = True
    return schema


def _random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.3:
        return rng.choice(["x", 1, 2.5, True, None, (1,), 0])
    if roll < 0.75:
        keys = rng.sample(["a", "b", "c", "d", "e", "metadata", "kind", "apiVersion"], rng.randint(0, 5))
        return {k: _random_value(rng, depth + 1) for k in keys}
    return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def test_random_schemas_match_the_reference_walkers(schemas: KindSchemas) -> None:
    rng = random.Random(7)
    names = [f"example.v1.T{i}" for i in range(4)]
    for _ in range(60):
        components = dict(schemas.components)
        for name in names:
            components[name] = _random_schema(rng, names, 0)
        kinds = {("example.com", "v1", "T0"): names[0], ("example.com", "v1", "T1"): names[1]}
        checker = SchemaFieldChecker(KindSchemas(components, kinds))
        for _ in range(25):
            kind = rng.choice(["T0", "T1", "Other"])
            info = ResourceInfo("example.com", "v1", kind.lower() + "s", kind.lower(), kind, True)
            value = _random_value(rng, 0)
            obj = value if isinstance(value, dict) else {"a": value}
            if rng.random() < 0.5:
                obj["metadata"] = rng.choice([{"name": "n", "bogus": 1}, {"labels": {"a": 1}}, "text", None])
            _same(checker, info, obj)


# -- structural rules, through the checker ----------------------------------------------------------------

_OBJECT_ITEMS = {"type": "object", "properties": {"k": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize(
    ("schema", "value", "unknown"),
    [
        pytest.param({"type": "object"}, {"a": 1}, ["v.a"], id="object-without-properties-keeps-nothing"),
        pytest.param({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, {"a": 1}, [], id="preserve"),
        pytest.param(
            {"type": "object", "properties": {"a": {}}, "x-kubernetes-preserve-unknown-fields": True},
            {"a": 1, "b": 2},
            [],
            id="preserve-with-properties",
        ),
        pytest.param(
            {"type": "array", "x-kubernetes-preserve-unknown-fields": True, "items": _OBJECT_ITEMS},
            [{"k": {"gone": 1}, "kept": 2}],
            ["v[0].k.gone"],
            id="preserve-reaches-list-items-not-their-properties",
        ),
        pytest.param(
            {"type": "array", "items": _OBJECT_ITEMS},
            [{"k": {"gone": 1}, "also": 2}],
            ["v[0].k.gone", "v[0].also"],
            id="list-items",
        ),
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}},
            {"a": "x", "b": 1, "c": "not an integer"},
            [],
            id="properties-and-additional-type-checks-properties-only",
        ),
        pytest.param({"type": "object", "additionalProperties": True}, {"a": {"b": 1}}, [], id="additional-true"),
        pytest.param({"type": "string"}, {"a": 1}, None, id="object-where-a-string-belongs"),
        pytest.param(
            {"type": "object", "x-kubernetes-embedded-resource": True, "properties": {"metadata": {"type": "object"}}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}},
            ["v.spec"],
            id="embedded-resource-keeps-type-meta",
        ),
    ],
)
def test_structural_rules(schemas: KindSchemas, schema: Schema, value: Any, unknown: list[str] | None) -> None:
    components = {**schemas.components, "example.v1.T": {"type": "object", "properties": {"v": schema}}}
    checker = SchemaFieldChecker(KindSchemas(components, {("example.com", "v1", "T"): "example.v1.T"}))
    info = ResourceInfo("example.com", "v1", "ts", "t", "T", True)
    outcome = _same(checker, info, {"v": value})
    assert outcome[:2] == (("found", unknown) if unknown is not None else ("error", 400))


# -- cases the fast path hands over ---------------------------------------------------------------------


def _pod(**extra: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "x"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [container]}, **extra}


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(_pod(), id="clean"),
        pytest.param({**_pod(), "metadata": OrderedDict(name="p", bogus=1)}, id="dict-subclass"),
        pytest.param(_pod(status={"conditions": ({"type": "Ready"},)}), id="tuple-for-list"),
        pytest.param(_pod(status={"phase": b"Running"}), id="bytes"),
        pytest.param(_pod(status={"phase": 1, "bogus": 2}), id="type-error-and-unknown-field"),
        pytest.param({**_pod(), "metadata": "p"}, id="metadata-not-an-object"),
    ],
)
def test_unusual_values(schemas: KindSchemas, obj: dict[str, Any]) -> None:
    pods = find("", "v1", "pods")
    assert pods is not None
    _same(SchemaFieldChecker(schemas), pods, obj)


def test_shared_objects_are_pruned_once(schemas: KindSchemas) -> None:
    """One container dict in two places (YAML anchors): the first visit removes the field, as upstream."""
    pods = find("", "v1", "pods")
    assert pods is not None
    container = {"name": "c", "image": "x", "imagee": "y"}
    obj = _pod(spec={"containers": [container, container], "initContainers": [container]})
    found = SchemaFieldChecker(schemas).unknown_fields(pods, obj)
    assert found == ["spec.containers[0].imagee"]
    assert obj["spec"]["initContainers"][0] == {"name": "c", "image": "x"}


def test_clean_bodies_never_reach_the_reference_walkers(schemas: KindSchemas, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the reference walker ran")

    monkeypatch.setattr(field_validation, "first_type_error", fail)
    checker = SchemaFieldChecker(schemas)
    pods = find("", "v1", "pods")
    assert pods is not None
    obj = _pod(status={"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})
    before = copy.deepcopy(obj)
    assert checker.unknown_fields(pods, obj) == []
    assert obj == before
    assert checker.unknown_fields(WIDGET, {"metadata": {"name": "w"}, "spec": {"free": 1}}) == []


def test_public_prune_matches_prune_unknown(schemas: KindSchemas) -> None:
    checker = SchemaFieldChecker(schemas)
    obj = _pod(spec={"containers": [{"name": "c", "ports": [{"containerPort": 1, "x": 2}]}], "y": 3})
    expected = copy.deepcopy(obj)
    name = schemas.for_kind("", "v1", "Pod")
    assert name is not None
    paths = prune_unknown(expected, ref(name), schemas.components)
    assert checker.prune("", "v1", "Pod", obj) == paths == ["spec.containers[0].ports[0].x", "spec.y"]
    assert obj == expected
