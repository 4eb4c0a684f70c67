"""``skiff apiserver`` over raw HTTPS: auth, exact Status bytes, negotiation, limits, watch lines."""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import http.client
import json

import pytest
from apiserver_harness import TOKEN, RunningApiServer, apiserver  # noqa: F401

CM_PATH = "/api/v1/namespaces/default/configmaps"
JSON = {"Content-Type": "application/json"}


def configmap(name: str, **data: str) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}).encode()


def test_no_credentials_is_forbidden_except_public_info(apiserver: RunningApiServer) -> None:
    # As kube-apiserver with RBAC: anonymous is a user, and RBAC grants it only the public-info paths.
    status, headers, body = apiserver.request("GET", "/api", client_cert=False)
    assert status == 403
    assert headers["Content-Type"] == "application/json"
    assert body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"forbidden: User \\"system:anonymous\\" cannot get path \\"/api\\"",'
        b'"reason":"Forbidden","details":{},"code":403}\n'
    )
    status, _, body = apiserver.request("GET", "/api/v1/namespaces/default/pods", client_cert=False)
    assert status == 403
    assert b'User \\"system:anonymous\\" cannot list resource \\"pods\\"' in body
    for path in ("/version", "/healthz", "/livez", "/readyz"):
        assert apiserver.request("GET", path, client_cert=False)[0] == 200, path


@pytest.mark.parametrize(
    ("token", "status"),
    [pytest.param(TOKEN, 200, id="known-token"), pytest.param("nope", 401, id="unknown-token")],
)
def test_bearer_tokens(apiserver: RunningApiServer, token: str, status: int) -> None:
    got, _, _ = apiserver.request("GET", CM_PATH, headers={"Authorization": f"Bearer {token}"}, client_cert=False)
    assert got == status


def test_token_user_is_who_it_says(apiserver: RunningApiServer) -> None:
    status, _, body = apiserver.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        b'{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}',
        {**JSON, "Authorization": f"Bearer {TOKEN}"},
        client_cert=False,
    )
    assert status == 201
    assert json.loads(body)["status"]["userInfo"] == {
        "username": "token-user",
        "uid": "42",
        "groups": ["team-a", "team-b", "system:authenticated"],
    }


def test_not_found_and_already_exists_bytes(apiserver: RunningApiServer) -> None:
    status, _, body = apiserver.request("GET", f"{CM_PATH}/missing")
    assert (status, body) == (
        404,
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \\"missing\\" '
        b'not found","reason":"NotFound","details":{"name":"missing","kind":"configmaps"},"code":404}\n',
    )
    assert apiserver.request("POST", CM_PATH, configmap("twice"), JSON)[0] == 201
    status, _, body = apiserver.request("POST", CM_PATH, configmap("twice"), JSON)
    assert (status, body) == (
        409,
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \\"twice\\" '
        b'already exists","reason":"AlreadyExists","details":{"name":"twice","kind":"configmaps"},"code":409}\n',
    )


def test_unknown_path_is_404(apiserver: RunningApiServer) -> None:
    status, _, body = apiserver.request("GET", "/apis/nope.example.com/v1/widgets")
    assert status == 404
    assert json.loads(body)["message"] == "the server could not find the requested resource"


def test_missing_content_type_means_json_and_yaml_is_accepted(apiserver: RunningApiServer) -> None:
    assert apiserver.request("POST", CM_PATH, configmap("no-ctype"))[0] == 201
    yaml_body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n"
    status, _, body = apiserver.request("POST", CM_PATH, yaml_body, {"Content-Type": "application/yaml"})
    assert status == 201
    assert json.loads(body)["data"] == {"k": "v"}


def test_body_over_3_mib_is_413(apiserver: RunningApiServer) -> None:
    status, _, body = apiserver.request("POST", CM_PATH, configmap("huge", v="x" * (3 * 1024 * 1024)), JSON)
    assert status == 413
    assert json.loads(body)["reason"] == "RequestEntityTooLarge"


def test_field_validation(apiserver: RunningApiServer) -> None:
    bad = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fv","nmae":"x"}}'
    status, _, body = apiserver.request("POST", f"{CM_PATH}?fieldValidation=Strict", bad, JSON)
    prefix = 'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
    assert (status, json.loads(body)["message"]) == (400, prefix + 'unknown field "metadata.nmae"')
    dup = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fv"},"data":{"a":"1","a":"2"}}'
    status, _, body = apiserver.request("POST", f"{CM_PATH}?fieldValidation=Strict", dup, JSON)
    assert (status, json.loads(body)["message"]) == (400, prefix + 'duplicate field "data.a"')
    status, headers, _ = apiserver.request("POST", f"{CM_PATH}?fieldValidation=Warn", bad, JSON)
    assert status == 201
    assert headers["Warning"] == '299 - "unknown field \\"metadata.nmae\\""'


def test_dry_run_does_not_persist(apiserver: RunningApiServer) -> None:
    status, _, body = apiserver.request("POST", f"{CM_PATH}?dryRun=All", configmap("dry"), JSON)
    assert status == 201 and json.loads(body)["metadata"]["name"] == "dry"
    assert apiserver.request("GET", f"{CM_PATH}/dry")[0] == 404


def test_apply_patch_needs_a_field_manager_and_creates(apiserver: RunningApiServer) -> None:
    apply = {"Content-Type": "application/apply-patch+yaml"}
    status, _, body = apiserver.request("PATCH", f"{CM_PATH}/ssa", configmap("ssa", a="1"), apply)
    assert status == 422
    assert json.loads(body)["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    status, _, _ = apiserver.request("PATCH", f"{CM_PATH}/ssa?fieldManager=t", configmap("ssa", a="1"), apply)
    assert status == 201
    status, _, body = apiserver.request("PATCH", f"{CM_PATH}/ssa?fieldManager=t", configmap("ssa", b="2"), apply)
    assert status == 200
    assert json.loads(body)["data"] == {"b": "2"}  # the manager no longer applies "a": removed


def test_patch_without_a_patch_content_type_is_415(apiserver: RunningApiServer) -> None:
    apiserver.request("POST", CM_PATH, configmap("p415"), JSON)
    status, _, body = apiserver.request("PATCH", f"{CM_PATH}/p415", b"{}", JSON)
    assert status == 415
    assert json.loads(body)["reason"] == "UnsupportedMediaType"


def test_table_list_and_partial_metadata(apiserver: RunningApiServer) -> None:
    apiserver.request("POST", CM_PATH, configmap("tab", a="1"), JSON)
    accept = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    status, _, body = apiserver.request("GET", f"{CM_PATH}?fieldSelector=metadata.name%3Dtab", headers=accept)
    table = json.loads(body)
    assert status == 200 and table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert int(table["metadata"]["resourceVersion"]) > 0
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    (row,) = table["rows"]
    assert row["cells"][:2] == ["tab", 1]
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["name"] == "tab"
    partial = {"Accept": "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"}
    _, _, body = apiserver.request("GET", f"{CM_PATH}/tab", headers=partial)
    assert json.loads(body)["kind"] == "PartialObjectMetadata"


def test_discovery_and_openapi_content_types(apiserver: RunningApiServer) -> None:
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    _, headers, body = apiserver.request("GET", "/apis", headers={"Accept": aggregated})
    assert headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    assert "apps" in [item["metadata"]["name"] for item in json.loads(body)["items"]]
    _, headers, body = apiserver.request("GET", "/apis", headers={"Accept": "application/json"})
    assert json.loads(body)["kind"] == "APIGroupList"
    accept = {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}
    _, headers, body = apiserver.request("GET", "/openapi/v2", headers=accept)
    assert headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert body.startswith(b"\x0a\x032.0")
    _, _, body = apiserver.request("GET", "/openapi/v3")
    url = json.loads(body)["paths"]["apis/apps/v1"]["serverRelativeURL"]
    status, _, _ = apiserver.request("GET", url)
    assert status == 200


def test_pods_proxy_is_501(apiserver: RunningApiServer) -> None:
    status, _, body = apiserver.request("GET", "/api/v1/namespaces/default/pods/p/proxy")
    assert status == 501
    assert "proxy" in json.loads(body)["message"]


def test_watch_from_a_resource_version_replays_changes_and_times_out(apiserver: RunningApiServer) -> None:
    _, _, body = apiserver.request("GET", f"{CM_PATH}?labelSelector=w%3D1")
    start = json.loads(body)["metadata"]["resourceVersion"]
    labelled = json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "wch", "labels": {"w": "1"}}}
    ).encode()
    assert apiserver.request("POST", CM_PATH, labelled, JSON)[0] == 201
    patch = {"Content-Type": "application/merge-patch+json"}
    assert apiserver.request("PATCH", f"{CM_PATH}/wch", b'{"data":{"x":"y"}}', patch)[0] == 200
    assert apiserver.request("DELETE", f"{CM_PATH}/wch")[0] == 200
    conn = http.client.HTTPSConnection(apiserver.host, apiserver.port, context=apiserver.ssl_context(), timeout=30)
    try:
        conn.request("GET", f"{CM_PATH}?watch=true&labelSelector=w%3D1&resourceVersion={start}&timeoutSeconds=2")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Transfer-Encoding") == "chunked"
        lines = response.read().splitlines()  # returns once the server ends the stream at timeoutSeconds
    finally:
        conn.close()
    events = [json.loads(line) for line in lines]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "wch"),
        ("MODIFIED", "wch"),
        ("DELETED", "wch"),
    ]


def test_metrics_count_requests(apiserver: RunningApiServer) -> None:
    apiserver.request("GET", f"{CM_PATH}/metric-probe")
    _, _, body = apiserver.request("GET", "/metrics")
    assert b'apiserver_request_total{code="404",component="apiserver",group=""' in body


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        pytest.param(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            {
                "spec": {
                    "user": "alice",
                    "groups": ["system:authenticated"],
                    "resourceAttributes": {
                        "verb": "create",
                        "group": "authorization.k8s.io",
                        "resource": "selfsubjectaccessreviews",
                    },
                }
            },
            {
                "allowed": True,
                "reason": 'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole "system:basic-user" '
                'to Group "system:authenticated"',
            },
            id="subject-access-review",
        ),
        pytest.param(
            "/apis/authorization.k8s.io/v1/namespaces/ns1/localsubjectaccessreviews",
            {"spec": {"user": "anon", "resourceAttributes": {"verb": "get", "resource": "pods"}}},
            {"allowed": False},
            id="local-subject-access-review-without-groups",
        ),
        pytest.param(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            {"spec": {"token": TOKEN}},
            {
                "user": {"username": "token-user", "uid": "42", "groups": ["team-a", "team-b", "system:authenticated"]},
                "authenticated": True,
                # A static token knows no audiences: it counts for the API server's own (upstream's implicit ones).
                "audiences": ["https://kubernetes.default.svc.cluster.local"],
            },
            id="token-review",
        ),
        pytest.param(
            "/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": "nope"}}, {"user": {}}, id="bad-token"
        ),
    ],
)
def test_reviews_are_answered_not_stored(
    apiserver: RunningApiServer, path: str, body: dict[str, object], status: dict[str, object]
) -> None:
    got, _, answer = apiserver.request("POST", path, json.dumps(body).encode(), JSON)
    assert got == 201
    assert json.loads(answer)["status"] == status
    assert apiserver.request("GET", path)[0] == 405  # create-only: nothing to list
