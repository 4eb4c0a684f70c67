"""Request paths → RequestInfo, and Accept/Content-Type negotiation (pure)."""

from __future__ import annotations

import pytest

from skiff.apiserver.negotiation import (
    Shape,
    aggregated_discovery_content_type,
    aggregated_discovery_version,
    body_media_type,
    resource_shape,
)
from skiff.apiserver.request_info import RequestInfo, parse_resource_path

TABLE_ACCEPT = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
)
DISCOVERY_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)


@pytest.mark.parametrize(
    ("method", "path", "watch", "expected"),
    [
        pytest.param(
            "GET",
            "/api/v1/namespaces/default/pods",
            None,
            RequestInfo("list", "", "v1", "pods", "default"),
            id="list-ns",
        ),
        pytest.param("GET", "/api/v1/pods", None, RequestInfo("list", "", "v1", "pods"), id="list-all-namespaces"),
        pytest.param(
            "GET",
            "/api/v1/namespaces/default/pods/web",
            None,
            RequestInfo("get", "", "v1", "pods", "default", "web"),
            id="get",
        ),
        pytest.param(
            "GET",
            "/api/v1/namespaces/default/pods",
            "true",
            RequestInfo("watch", "", "v1", "pods", "default"),
            id="watch-true",
        ),
        pytest.param(
            "GET",
            "/api/v1/namespaces/default/pods",
            "1",
            RequestInfo("watch", "", "v1", "pods", "default"),
            id="watch-1",
        ),
        pytest.param(
            "GET",
            "/api/v1/namespaces/default/pods",
            "false",
            RequestInfo("list", "", "v1", "pods", "default"),
            id="w-f",
        ),
        pytest.param(
            "GET",
            "/api/v1/watch/namespaces/default/pods/web",
            None,
            RequestInfo("watch", "", "v1", "pods", "default", "web", legacy_watch=True),
            id="legacy-watch-prefix",
        ),
        pytest.param("GET", "/api/v1/namespaces", None, RequestInfo("list", "", "v1", "namespaces"), id="namespaces"),
        pytest.param(
            "GET",
            "/api/v1/namespaces/kube-system",
            None,
            RequestInfo("get", "", "v1", "namespaces", "", "kube-system"),
            id="namespace-object",
        ),
        pytest.param(
            "PUT",
            "/api/v1/namespaces/x/finalize",
            None,
            RequestInfo("update", "", "v1", "namespaces", "", "x", "finalize"),
            id="namespace-subresource",
        ),
        pytest.param(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/nginx/scale",
            None,
            RequestInfo("patch", "apps", "v1", "deployments", "default", "nginx", "scale"),
            id="named-group-subresource",
        ),
        pytest.param(
            "POST",
            "/apis/apps/v1/namespaces/d/deployments",
            None,
            RequestInfo("create", "apps", "v1", "deployments", "d"),
            id="create",
        ),
        pytest.param(
            "DELETE",
            "/api/v1/namespaces/d/configmaps",
            None,
            RequestInfo("deletecollection", "", "v1", "configmaps", "d"),
            id="deletecollection",
        ),
        pytest.param("DELETE", "/api/v1/nodes/n1", None, RequestInfo("delete", "", "v1", "nodes", "", "n1"), id="del"),
        pytest.param(
            "GET",
            "/api/v1/namespaces/d/pods/p/proxy/a/b",
            None,
            RequestInfo("get", "", "v1", "pods", "d", "p", "proxy", ("a", "b")),
            id="extra-parts",
        ),
        pytest.param("GET", "/api/v1", None, None, id="discovery-core"),
        pytest.param("GET", "/apis/apps/v1", None, None, id="discovery-gv"),
        pytest.param("GET", "/apis/apps", None, None, id="discovery-group"),
        pytest.param("GET", "/version", None, None, id="version"),
        pytest.param("GET", "/", None, None, id="root"),
    ],
)
def test_parse_resource_path(method: str, path: str, watch: str | None, expected: RequestInfo | None) -> None:
    assert parse_resource_path(method, path, watch) == expected


@pytest.mark.parametrize(
    ("accept", "shape", "version"),
    [
        pytest.param(None, Shape.OBJECT, "v1", id="none"),
        pytest.param("application/json", Shape.OBJECT, "v1", id="json"),
        pytest.param("*/*", Shape.OBJECT, "v1", id="any"),
        pytest.param(TABLE_ACCEPT, Shape.TABLE, "v1", id="kubectl-table"),
        pytest.param("application/json;as=Table;v=v1beta1;g=meta.k8s.io", Shape.TABLE, "v1beta1", id="table-v1beta1"),
        pytest.param("application/json;as=Table;v=v2;g=meta.k8s.io,application/json", Shape.OBJECT, "v1", id="bad-v"),
        pytest.param(
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
            Shape.PARTIAL_METADATA,
            "v1",
            id="protobuf-partial-answered-as-json",
        ),
        pytest.param(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
            Shape.PARTIAL_METADATA,
            "v1",
            id="partial-list",
        ),
        pytest.param("application/vnd.kubernetes.protobuf,application/json", Shape.OBJECT, "v1", id="protobuf"),
        pytest.param("text/html", Shape.OBJECT, "v1", id="unservable-falls-back"),
    ],
)
def test_resource_shape(accept: str | None, shape: Shape, version: str) -> None:
    got = resource_shape(accept)
    assert (got.shape, got.meta_version) == (shape, version)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        pytest.param(DISCOVERY_ACCEPT, "v2", id="kubectl-1.32"),
        pytest.param(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
            "v2beta1",
            id="kubectl-1.27",
        ),
        pytest.param("application/json, */*", None, id="legacy"),
        pytest.param(None, None, id="none"),
        pytest.param("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", None, id="unknown-v"),
    ],
)
def test_aggregated_discovery_version(accept: str | None, expected: str | None) -> None:
    assert aggregated_discovery_version(accept) == expected


def test_aggregated_discovery_content_type_params() -> None:
    assert aggregated_discovery_content_type("v2") == (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        pytest.param(None, "application/json", id="missing-means-json"),
        pytest.param("", "application/json", id="empty"),
        pytest.param("application/json; charset=utf-8", "application/json", id="charset"),
        pytest.param("Application/YAML", "application/yaml", id="case"),
        pytest.param("application/strategic-merge-patch+json", "application/strategic-merge-patch+json", id="smp"),
    ],
)
def test_body_media_type(content_type: str | None, expected: str) -> None:
    assert body_media_type(content_type) == expected
