"""Discovery, OpenAPI and Table documents built from resource rows (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from skiff.apiserver import discovery, tables
from skiff.apiserver.openapi import OpenApiV3, v2_protobuf
from skiff.registry.resource import ResourceInfo, ScaleSpec, Strategy


class _Scaled(Strategy):
    scale = ScaleSpec()


CONFIGMAPS = ResourceInfo("", "v1", "configmaps", "configmap", "ConfigMap", True, short_names=("cm",))
NODES = ResourceInfo("", "v1", "nodes", "node", "Node", False, short_names=("no",), subresources=("status",))
DEPLOYMENTS = ResourceInfo(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    True,
    _Scaled(),
    short_names=("deploy",),
    categories=("all",),
    subresources=("scale", "status"),
)
ROWS = (CONFIGMAPS, NODES, DEPLOYMENTS)


def test_api_resource_list_rows_and_subresources() -> None:
    doc = discovery.api_resource_list("apps/v1", [DEPLOYMENTS])
    names = [r["name"] for r in doc["resources"]]
    assert names == ["deployments", "deployments/scale", "deployments/status"]
    main, scale, status = doc["resources"]
    assert main["shortNames"] == ["deploy"] and main["categories"] == ["all"] and main["namespaced"] is True
    assert main["storageVersionHash"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert scale["verbs"] == ["get", "patch", "update"]
    assert status["kind"] == "Deployment" and "group" not in status


def test_api_group_list_prefers_first_version() -> None:
    doc = discovery.api_group_list(ROWS)
    assert doc["groups"] == [
        {
            "name": "apps",
            "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
        }
    ]


@pytest.mark.parametrize("version", ["v2", "v2beta1"])
def test_aggregated_discovery(version: str) -> None:
    core = discovery.aggregated_discovery(ROWS, core=True, version=version)
    assert core["apiVersion"] == f"apidiscovery.k8s.io/{version}"
    assert [i["metadata"] for i in core["items"]] == [{"creationTimestamp": None}]
    resources = core["items"][0]["versions"][0]["resources"]
    assert [(r["resource"], r["scope"]) for r in resources] == [("configmaps", "Namespaced"), ("nodes", "Cluster")]
    named = discovery.aggregated_discovery(ROWS, core=False, version=version)
    deploy = named["items"][0]["versions"][0]["resources"][0]
    assert deploy["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert [s["subresource"] for s in deploy["subresources"]] == ["scale", "status"]
    assert all("responseKind" in s for s in deploy["subresources"])


def test_openapi_v2_minimal_protobuf_bytes() -> None:
    # Document{swagger:"2.0", info:{title:"Kubernetes", version:"v1.32.0"}} (compat doc §2.5).
    assert v2_protobuf("Kubernetes", "v1.32.0") == bytes.fromhex(
        "0a03322e3012150a0a4b756265726e65746573120776312e33322e30"
    )


def test_openapi_v3_patch_operation_declares_field_validation() -> None:
    v3 = OpenApiV3("Kubernetes", "v1.32.0", ROWS)
    index = orjson.loads(v3.index)["paths"]
    assert set(index) == {"api/v1", "apis/apps/v1"}
    assert index["apis/apps/v1"]["serverRelativeURL"] == f"/openapi/v3/apis/apps/v1?hash={v3.hashes['apis/apps/v1']}"
    doc = orjson.loads(v3.documents["apis/apps/v1"])
    op = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in op["parameters"])
    # No strategic-merge content without schemas: kubectl then uses its compiled-in patch metadata.
    assert "application/strategic-merge-patch+json" not in op["requestBody"]["content"]
    core = orjson.loads(v3.documents["api/v1"])
    assert "/api/v1/nodes/{name}" in core["paths"]


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CM: dict[str, Any] = {
    "kind": "ConfigMap",
    "apiVersion": "v1",
    "metadata": {"name": "c1", "namespace": "default", "resourceVersion": "7", "labels": {"a": "b"}},
}


@pytest.mark.parametrize(
    ("include", "row_object"),
    [
        pytest.param(
            None,
            {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": CM["metadata"]},
            id="default-metadata",
        ),
        pytest.param("Object", CM, id="object"),
        pytest.param("None", None, id="none"),
    ],
)
def test_table_rows_carry_the_object_policy(include: str | None, row_object: Any) -> None:
    table = tables.table(CONFIGMAPS, [CM], {"resourceVersion": "9"}, NOW, include=tables.include_policy(include))
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "9"}
    assert table["columnDefinitions"][0]["name"] == "Name"
    (row,) = table["rows"]
    assert row["cells"][0] == "c1"
    assert row.get("object") == row_object


def test_table_without_headers_for_later_watch_events() -> None:
    assert tables.table(CONFIGMAPS, [CM], {}, NOW, headers=False)["columnDefinitions"] == []
