"""Schemas derived from the client models, unknown-field pruning, and the OpenAPI v3/v2 documents (pure)."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from skiff.api.status import ApiError
from skiff.apiserver import bodies
from skiff.apiserver.field_validation import CheckedPatch, SchemaFieldChecker, enforce_on_decode
from skiff.apiserver.negotiation import APPLY_PATCH, MERGE_PATCH
from skiff.apiserver.openapi import (
    OpenApiV3,
    crd_definition_name,
    openapi_v3_response,
    v2_protobuf,
    v3_group_version,
)
from skiff.registry.builtin import find
from skiff.registry.custom.definition import AcceptedNames, crd_resources
from skiff.registry.pruning import prune_unknown
from skiff.registry.resource import ResourceInfo
from skiff.registry.schemas import (
    INT_OR_STRING_FIELDS,
    KindSchemas,
    builtin_schemas,
    model_name,
    ref,
)

CORE = "io.k8s.api.core.v1"
APPS = "io.k8s.api.apps.v1"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"


@pytest.fixture(scope="module")
def schemas() -> KindSchemas:
    return builtin_schemas()


def _info(group: str, plural: str) -> ResourceInfo:
    info = find(group, "v1", plural)
    assert info is not None
    return info


# -- schemas -------------------------------------------------------------------------------------


def test_kind_schemas_carry_upstream_names_and_gvk(schemas: KindSchemas) -> None:
    assert schemas.for_kind("", "v1", "Pod") == f"{CORE}.Pod"
    assert schemas.for_kind("apps", "v1", "DeploymentList") == f"{APPS}.DeploymentList"
    pod = schemas.components[f"{CORE}.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["description"].startswith("Pod is a collection of containers")
    assert pod["properties"]["spec"]["$ref"] == f"#/components/schemas/{CORE}.PodSpec"
    assert pod["properties"]["metadata"]["$ref"] == f"#/components/schemas/{META}.ObjectMeta"
    assert pod["properties"]["metadata"]["description"].startswith("Standard object's metadata.")


@pytest.mark.parametrize(
    ("group", "version", "kind", "model"),
    [
        pytest.param("", "v1", "Pod", "V1Pod", id="short-name"),
        pytest.param("", "v1", "Event", "CoreV1Event", id="core-event-prefixed"),
        pytest.param("events.k8s.io", "v1", "Event", "EventsV1Event", id="events-event-prefixed"),
        pytest.param("apps", "v1", "NoSuchKind", None, id="unknown"),
    ],
)
def test_model_name(group: str, version: str, kind: str, model: str | None) -> None:
    assert model_name(group, version, kind) == model


@pytest.mark.parametrize(
    ("component", "field", "expected"),
    [
        pytest.param(f"{CORE}.ServicePort", "targetPort", {"$ref": "intstr.IntOrString"}, id="int-or-string"),
        pytest.param(f"{APPS}.RollingUpdateDeployment", "maxSurge", {"$ref": "intstr.IntOrString"}, id="max-surge"),
        pytest.param(f"{META}.ObjectMeta", "creationTimestamp", {"$ref": "meta.v1.Time"}, id="time"),
        pytest.param("io.k8s.api.coordination.v1.LeaseSpec", "renewTime", {"$ref": "meta.v1.MicroTime"}, id="micro"),
        pytest.param(f"{APPS}.ControllerRevision", "data", {"$ref": "runtime.RawExtension"}, id="raw-extension"),
        pytest.param(f"{META}.ManagedFieldsEntry", "fieldsV1", {"$ref": "meta.v1.FieldsV1"}, id="fields-v1"),
        pytest.param(f"{CORE}.PodSpec", "containers", {"type": "array"}, id="list"),
        pytest.param(f"{META}.ObjectMeta", "labels", {"type": "object"}, id="map"),
        pytest.param(f"{APPS}.DeploymentSpec", "replicas", {"type": "integer"}, id="integer"),
        pytest.param(f"{CORE}.ConfigMap", "binaryData", {"type": "object"}, id="bytes-map"),
    ],
)
def test_field_types(schemas: KindSchemas, component: str, field: str, expected: dict[str, str]) -> None:
    prop = schemas.components[component]["properties"][field]
    for key, value in expected.items():
        assert prop[key].endswith(value) if key == "$ref" else prop[key] == value


def test_quantity_maps_and_special_types(schemas: KindSchemas) -> None:
    limits = schemas.components[f"{CORE}.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"]["$ref"].endswith("resource.Quantity")
    int_or_string = schemas.components["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert int_or_string["x-kubernetes-int-or-string"] is True
    assert schemas.components[f"{META}.Time"] == {**schemas.components[f"{META}.Time"], "format": "date-time"}
    assert schemas.components["io.k8s.apimachinery.pkg.runtime.RawExtension"]["x-kubernetes-preserve-unknown-fields"]


def test_shared_types_land_in_their_own_group(schemas: KindSchemas) -> None:
    spec = schemas.components[f"{APPS}.DeploymentSpec"]["properties"]
    assert spec["template"]["$ref"].endswith(f"{CORE}.PodTemplateSpec")
    assert spec["selector"]["$ref"].endswith(f"{META}.LabelSelector")
    subject = schemas.components["io.k8s.api.rbac.v1.RoleBinding"]["properties"]["subjects"]["items"]["$ref"]
    assert subject.endswith("io.k8s.api.rbac.v1.Subject")
    crd = schemas.for_kind("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
    assert crd == "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"


def _model_fields(schemas: KindSchemas) -> Iterator[tuple[str, str, Any]]:
    import kubernetes.client.models as models

    for name in dir(models):
        cls = getattr(models, name)
        if isinstance(cls, type) and hasattr(cls, "model_fields") and hasattr(cls, "openapi_types"):
            for attr, type_text in cls.openapi_types.items():
                yield name, cls.attribute_map[attr], (type_text, cls.model_fields.get(attr))


def test_int_or_string_table_covers_the_models_we_serve(schemas: KindSchemas) -> None:
    """Every ``object`` field the (pydantic) models type as int|str, among served kinds, is in the table."""
    served_types = {name.rsplit(".", 1)[-1] for name in schemas.components}
    missing = []
    for model, json_name, (type_text, info) in _model_fields(schemas):
        annotation = str(info.annotation) if info is not None else ""
        if type_text == "object" and "int" in annotation and "str" in annotation:
            type_name = model.split("V1", 1)[-1]
            if type_name in served_types and (type_name, json_name) not in INT_OR_STRING_FIELDS:
                missing.append((type_name, json_name))
    assert missing == []


# -- pruning -------------------------------------------------------------------------------------

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"any-key": "ok"}},
    "spec": {
        "replicas": 2,
        "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
        "template": {
            "metadata": {"annotations": {"a": "b"}},
            "spec": {
                "containers": [
                    {"name": "a", "image": "x", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}},
                    {"name": "b", "image": "y", "ports": [{"containerPort": 80}]},
                ]
            },
        },
    },
}


def _with(path: list[Any], key: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(DEPLOYMENT)
    target: Any = obj
    for step in path:
        target = target[step]
    target[key] = value
    return obj


@pytest.mark.parametrize(
    ("obj", "unknown"),
    [
        pytest.param(DEPLOYMENT, [], id="clean"),
        pytest.param(_with([], "foo", 1), ["foo"], id="top-level"),
        pytest.param(_with(["spec"], "replica", 2), ["spec.replica"], id="spec"),
        pytest.param(_with(["metadata"], "nam", "x"), ["metadata.nam"], id="metadata"),
        pytest.param(
            _with(["spec", "template", "spec", "containers", 1], "imagee", "z"),
            ["spec.template.spec.containers[1].imagee"],
            id="list-item",
        ),
        pytest.param(
            _with(["spec", "template", "spec", "containers", 1, "ports", 0], "bad", 1),
            ["spec.template.spec.containers[1].ports[0].bad"],
            id="nested-list",
        ),
        pytest.param(_with(["spec"], "selector", "not-an-object"), [], id="wrong-type-left-to-validation"),
        pytest.param(_with(["spec"], "strategy", None), [], id="null"),
    ],
)
def test_prune_unknown(schemas: KindSchemas, obj: dict[str, Any], unknown: list[str]) -> None:
    obj = copy.deepcopy(obj)
    found = prune_unknown(obj, ref(f"{APPS}.Deployment"), schemas.components)
    assert found == unknown
    assert prune_unknown(obj, ref(f"{APPS}.Deployment"), schemas.components) == []  # pruned in place


def test_prune_keeps_free_form_and_reports_several_in_document_order(schemas: KindSchemas) -> None:
    revision = {"data": {"anything": {"goes": [1, 2]}}, "revision": 1, "x": 1, "metadata": {"y": 2}}
    assert prune_unknown(revision, ref(f"{APPS}.ControllerRevision"), schemas.components) == ["x", "metadata.y"]
    assert revision == {"data": {"anything": {"goes": [1, 2]}}, "revision": 1, "metadata": {}}


@pytest.mark.parametrize(
    ("schema", "value", "unknown"),
    [
        pytest.param({"type": "object"}, {"a": 1}, ["a"], id="object-without-properties-keeps-nothing"),
        pytest.param(
            {"type": "object", "x-kubernetes-preserve-unknown-fields": True}, {"a": 1}, [], id="preserve-unknown"
        ),
        pytest.param(
            {
                "type": "object",
                "properties": {"a": {"type": "object", "properties": {}}},
                "additionalProperties": False,
            },
            {"a": {"b": 1}},
            ["a.b"],
            id="nested-empty",
        ),
        pytest.param(
            {"type": "object", "additionalProperties": {"type": "object", "properties": {"k": {}}}},
            {"m1": {"k": 1, "z": 2}},
            ["m1.z"],
            id="map-of-objects",
        ),
        pytest.param(
            {"type": "object", "properties": {"a": {}}, "x-kubernetes-preserve-unknown-fields": True},
            {"a": 1, "b": 2},
            [],
            id="preserve-with-properties",
        ),
        pytest.param({"type": "string"}, "text", [], id="scalar"),
        pytest.param({"type": "string"}, {"a": 1}, [], id="object-where-a-scalar-belongs-left-to-validation"),
        pytest.param({"type": "object", "additionalProperties": True}, {"a": {"b": 1}}, [], id="additional-true"),
        pytest.param(
            {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
            {"a": 1, "b": 2},
            ["b"],
            id="additional-false",
        ),
        pytest.param(
            {
                "type": "array",
                "x-kubernetes-preserve-unknown-fields": True,
                "items": {"type": "object", "properties": {"k": {"type": "object", "properties": {}}}},
            },
            [{"k": {"gone": 1}, "kept": 2}],
            ["[0].k.gone"],
            id="preserve-reaches-list-items-not-their-properties",
        ),
        pytest.param(
            {
                "type": "object",
                "properties": {"t": {"type": "object", "x-kubernetes-embedded-resource": True, "properties": {}}},
            },
            {"t": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}},
            ["t.spec"],
            id="embedded-resource-keeps-type-meta",
        ),
    ],
)
def test_structural_rules(schema: dict[str, Any], value: Any, unknown: list[str]) -> None:
    assert prune_unknown(value, schema, {}) == unknown


@pytest.mark.parametrize(
    ("resource", "unknown"),
    [
        pytest.param(True, ["x"], id="resource-root-keeps-metadata-its-schema-calls-an-empty-object"),
        pytest.param(False, ["metadata.name", "x"], id="plain-object"),
    ],
)
def test_resource_root(resource: bool, unknown: list[str]) -> None:
    """kubebuilder CRDs declare ``metadata: {type: object}``: a CR's own metadata must survive it."""
    schema = {"type": "object", "properties": {"metadata": {"type": "object"}}}
    assert prune_unknown({"metadata": {"name": "n"}, "x": 1}, schema, resource=resource) == unknown


# -- field validation ----------------------------------------------------------------------------


def test_checker_prunes_and_falls_back_to_metadata_for_kinds_without_schema(schemas: KindSchemas) -> None:
    checker = SchemaFieldChecker(schemas)
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "bogus": 1}, "spec": {"x": 1}}
    custom = ResourceInfo("example.com", "v1", "widgets", "widget", "Widget", True)
    assert checker.unknown_fields(custom, obj) == ["metadata.bogus"]
    assert obj == {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"x": 1}}
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 2}, "status": {"selector": "a=b"}}
    assert checker.unknown_fields(_info("apps", "deployments"), scale) == []


@pytest.mark.parametrize(
    ("directive", "error", "warnings"),
    [
        pytest.param(
            bodies.STRICT,
            'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
            'unknown field "spec.foo", duplicate field "metadata.name"',
            [],
            id="strict",
        ),
        pytest.param(bodies.WARN, None, ['unknown field "spec.foo"', 'duplicate field "metadata.name"'], id="warn"),
        pytest.param("", None, ['unknown field "spec.foo"', 'duplicate field "metadata.name"'], id="default-warn"),
        pytest.param(bodies.IGNORE, None, [], id="ignore"),
    ],
)
def test_enforce_on_decode(directive: str, error: str | None, warnings: list[str]) -> None:
    findings = bodies.field_findings(["spec.foo"], ["metadata.name"])
    got: list[str] = []
    if error is None:
        enforce_on_decode(directive, findings, got, "v1", "Deployment")
        assert got == warnings
        return
    with pytest.raises(ApiError) as caught:
        enforce_on_decode(directive, findings, got, "v1", "Deployment")
    assert (caught.value.code, caught.value.reason, caught.value.message) == (400, "BadRequest", error)


def _patch(directive: str, patch_type: str = MERGE_PATCH) -> CheckedPatch:
    def mutate(current: dict[str, Any] | None) -> dict[str, Any]:
        return {**(current or {}), "spec": {"replicas": 1, "foo": True}}

    checker = SchemaFieldChecker(builtin_schemas())
    return CheckedPatch(mutate, checker, _info("apps", "deployments"), directive, patch_type, [], "ns", "web")


def test_checked_patch_strict_warn_ignore() -> None:
    current = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    with pytest.raises(ApiError) as caught:
        _patch(bodies.STRICT)(current)
    assert caught.value.message == 'strict decoding error: unknown field "spec.foo"'
    warn = _patch(bodies.WARN)
    assert warn(current)["spec"] == {"replicas": 1}
    assert warn.warnings() == ['unknown field "spec.foo"']
    ignore = _patch(bodies.IGNORE)
    assert ignore(current)["spec"] == {"replicas": 1}
    assert ignore.warnings() == []


def test_checked_apply_rejects_unknown_fields_whatever_the_directive() -> None:
    current = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    with pytest.raises(ApiError) as caught:
        _patch(bodies.IGNORE, APPLY_PATCH)(current)
    assert caught.value.message == (
        "failed to create typed patch object (ns/web; apps/v1, Kind=Deployment): "
        ".spec.foo: field not declared in schema"
    )


# -- documents -----------------------------------------------------------------------------------


def test_v3_document_operations_and_components(schemas: KindSchemas) -> None:
    doc = v3_group_version("Kubernetes", "v1.32.0", [_info("apps", "deployments")], schemas)
    item = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert {m: item[m]["x-kubernetes-action"] for m in ("get", "put", "patch", "delete")} == {
        "get": "get",
        "put": "put",
        "patch": "patch",
        "delete": "delete",
    }
    patch_params = {p["name"] for p in item["patch"]["parameters"]}
    assert {"dryRun", "fieldManager", "fieldValidation", "force"} <= patch_params
    assert item["patch"]["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "application/strategic-merge-patch+json" not in item["patch"]["requestBody"]["content"]
    assert item["put"]["requestBody"]["content"]["application/json"]["schema"] == ref(f"{APPS}.Deployment")
    collection = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert collection["get"]["x-kubernetes-action"] == "list"
    assert collection["post"]["operationId"] == "createAppsV1NamespacedDeployment"
    assert "/apis/apps/v1/deployments" in doc["paths"]
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["put"]["requestBody"]["content"]["application/json"]["schema"] == ref(
        "io.k8s.api.autoscaling.v1.Scale"
    )
    components = doc["components"]["schemas"]
    assert {f"{APPS}.Deployment", f"{CORE}.PodSpec", f"{META}.Status", "io.k8s.api.autoscaling.v1.Scale"} <= set(
        components
    )
    assert f"{CORE}.Node" not in components


def test_v3_index_hashes_are_sha512_of_the_documents(schemas: KindSchemas) -> None:
    v3 = OpenApiV3("Kubernetes", "v1.32.0", [_info("", "configmaps"), _info("apps", "deployments")], schemas)
    index = orjson.loads(v3.index)["paths"]
    digest = hashlib.sha512(v3.documents["api/v1"]).hexdigest().upper()
    assert index["api/v1"] == {"serverRelativeURL": f"/openapi/v3/api/v1?hash={digest}"}


def test_v3_response_caching() -> None:
    fresh = openapi_v3_response("/openapi/v3/api/v1", b"{}", "ABC", "ABC")
    assert fresh.headers["Cache-Control"] == "public, immutable"
    assert fresh.headers["Etag"] == '"ABC"'
    assert openapi_v3_response("/openapi/v3/api/v1", b"{}", "ABC", None).headers["Cache-Control"] == "no-cache, private"
    with pytest.raises(web.HTTPMovedPermanently) as moved:
        openapi_v3_response("/openapi/v3/api/v1", b"{}", "ABC", "OLD")
    assert moved.value.location == "/openapi/v3/api/v1?hash=ABC"


def _proto_fields(buf: bytes) -> list[tuple[int, bytes | int]]:
    """A tiny protobuf reader for the test: (field number, payload) for varint and length-delimited fields."""
    out: list[tuple[int, bytes | int]] = []
    pos = 0

    def varint() -> int:
        nonlocal pos
        shift = value = 0
        while True:
            byte = buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while pos < len(buf):
        key = varint()
        if key & 7 == 2:
            size = varint()
            out.append((key >> 3, buf[pos : pos + size]))
            pos += size
        else:
            out.append((key >> 3, varint()))
    return out


def _one(buf: bytes, number: int) -> bytes:
    values = [v for n, v in _proto_fields(buf) if n == number]
    assert len(values) == 1 and isinstance(values[0], bytes)
    return values[0]


def test_v2_protobuf_patch_operations_declare_field_validation() -> None:
    doc = v2_protobuf("Kubernetes", "v1.32.0", [_info("apps", "deployments")])
    assert _one(doc, 1) == b"2.0"
    named = _one(_one(doc, 8), 2)  # Paths.path → NamedPathItem
    assert _one(named, 1) == b"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    operation = _one(_one(named, 2), 8)  # PathItem.patch
    extension = _one(operation, 13)
    assert _one(extension, 1) == b"x-kubernetes-group-version-kind"
    assert _one(_one(extension, 2), 2) == b"group: apps\nkind: Deployment\nversion: v1\n"
    names = [
        _one(_one(_one(_one(v, 1), 2), 3), 4)  # ParametersItem.parameter.non_body.query.name
        for n, v in _proto_fields(operation)
        if n == 8 and isinstance(v, bytes)
    ]
    assert b"fieldValidation" in names


# -- custom resources -----------------------------------------------------------------------------


def _crd_rows(schema: dict[str, Any] | None) -> tuple[ResourceInfo, ...]:
    version: dict[str, Any] = {"name": "v1", "served": True, "storage": True}
    if schema is not None:
        version["schema"] = {"openAPIV3Schema": schema}
    crd = {"spec": {"group": "stable.example.com", "scope": "Namespaced", "versions": [version]}}
    names = AcceptedNames(plural="crontabs", singular="crontab", kind="CronTab", list_kind="CronTabList")
    return crd_resources(crd, names).served


@pytest.mark.parametrize(
    ("group", "name"),
    [
        pytest.param("stable.example.com", "com.example.stable.v1.CronTab", id="dotted-group-reversed"),
        pytest.param("example", "example.v1.CronTab", id="single-label"),
    ],
)
def test_crd_definition_name(group: str, name: str) -> None:
    assert crd_definition_name(group, "v1", "CronTab") == name


def test_custom_resource_component(schemas: KindSchemas) -> None:
    embedded = {"type": "object", "x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True}
    spec = {
        "type": "object",
        "description": "The spec.",
        "properties": {"n": {"x-kubernetes-int-or-string": True}, "pod": embedded},
    }
    raw = {"type": "object", "properties": {"metadata": {"type": "object"}, "spec": spec}}
    (info,) = _crd_rows(raw)
    document = v3_group_version("Kubernetes", "v1.30.0", [info], schemas)
    components = document["components"]["schemas"]
    crontab = components["com.example.stable.v1.CronTab"]
    props = crontab["properties"]
    assert crontab["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "kind": "CronTab", "version": "v1"}
    ]
    assert props["metadata"]["$ref"] == f"#/components/schemas/{META}.ObjectMeta"
    assert props["apiVersion"]["type"] == props["kind"]["type"] == "string"
    assert props["apiVersion"]["description"].startswith("APIVersion defines the versioned schema")
    assert props["spec"]["properties"]["n"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    pod = props["spec"]["properties"]["pod"]
    assert set(pod["properties"]) == {"apiVersion", "kind", "metadata"} and pod["required"] == ["kind", "apiVersion"]
    assert raw["properties"]["metadata"] == {"type": "object"}  # the CRD's own schema is untouched
    listed = components["com.example.stable.v1.CronTabList"]
    assert listed["properties"]["items"]["items"] == ref("com.example.stable.v1.CronTab")
    assert listed["properties"]["metadata"]["$ref"] == f"#/components/schemas/{META}.ListMeta"
    assert listed["x-kubernetes-group-version-kind"][0]["kind"] == "CronTabList"
    assert f"{META}.ObjectMeta" in components and f"{META}.ListMeta" in components
    item = document["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
    assert item["get"]["responses"]["200"]["content"] == {
        t: {"schema": ref("com.example.stable.v1.CronTab")} for t in ("application/json", "application/yaml")
    }
    assert item["patch"]["parameters"][2]["name"] == "fieldValidation"


def test_custom_resource_without_schema_is_a_bare_object(schemas: KindSchemas) -> None:
    (info,) = _crd_rows(None)
    components = v3_group_version("Kubernetes", "v1.30.0", [info], schemas)["components"]["schemas"]
    assert components["com.example.stable.v1.CronTab"] == {
        "type": "object",
        "x-kubernetes-group-version-kind": [{"group": "stable.example.com", "kind": "CronTab", "version": "v1"}],
    }
