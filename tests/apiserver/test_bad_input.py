"""Bad input over raw HTTPS: the right Status for each, and nothing stored changes.

Every rejected write here targets objects that exist; after each one the test
reads the object back and compares the bytes with what was stored before.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from apiserver_harness import RunningApiServer, apiserver  # noqa: F401

NS = "bad-input"
CM = f"/api/v1/namespaces/{NS}/configmaps"
TARGET = f"{CM}/target"
JSON = "application/json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def configmap(name: str = "target", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}, **extra}


def encoded(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@pytest.fixture(scope="module")
def stored(apiserver: RunningApiServer) -> bytes:
    """The namespace and the target ConfigMap; the target's stored bytes."""
    namespace = encoded({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    assert apiserver.request("POST", "/api/v1/namespaces", namespace, {"Content-Type": JSON})[0] == 201
    status, _, _ = apiserver.request("POST", CM, encoded(configmap()), {"Content-Type": JSON})
    assert status == 201
    return read_target(apiserver)


def read_target(apiserver: RunningApiServer) -> bytes:
    status, _, body = apiserver.request("GET", TARGET)
    assert status == 200
    return body


def status_of(body: bytes) -> dict[str, Any]:
    decoded = json.loads(body)
    assert decoded["kind"] == "Status", decoded
    assert "Traceback" not in body.decode()
    return decoded


def stale_update() -> bytes:
    obj = configmap()
    obj["metadata"]["resourceVersion"] = "1"
    return encoded(obj)


# (method, path, content type, body, code, reason, message or None when only the code and reason are pinned)
REJECTED = [
    pytest.param(
        "PUT", TARGET, JSON, b'{"apiVersion":"v1","kind":"ConfigMap",', 400, "BadRequest", None, id="malformed-json"
    ),
    pytest.param("PUT", TARGET, "application/yaml", b"a: [", 400, "BadRequest", None, id="malformed-yaml"),
    pytest.param(
        "PUT",
        TARGET,
        "application/vnd.kubernetes.protobuf",
        b"k8s\x00\x0a\x03garbage",
        400,
        "BadRequest",
        None,
        id="malformed-protobuf",
    ),
    pytest.param("PUT", TARGET, JSON, b"[]", 400, "BadRequest", None, id="not-an-object"),
    pytest.param(
        "PUT",
        TARGET,
        JSON,
        encoded({**configmap(), "apiVersion": "apps/v1"}),
        400,
        "BadRequest",
        "the API version in the data (apps/v1) does not match the expected API version (v1)",
        id="wrong-api-version",
    ),
    pytest.param(
        "PUT",
        TARGET,
        JSON,
        encoded({**configmap(), "kind": "Secret"}),
        400,
        "BadRequest",
        None,
        id="wrong-kind",
    ),
    pytest.param(
        "PUT",
        TARGET,
        JSON,
        encoded(configmap(name="other")),
        400,
        "BadRequest",
        "the name of the object (other) does not match the name on the URL (target)",
        id="name-mismatch",
    ),
    pytest.param(
        "PUT",
        TARGET,
        JSON,
        stale_update(),
        409,
        "Conflict",
        'Operation cannot be fulfilled on configmaps "target": the object has been modified; '
        "please apply your changes to the latest version and try again",
        id="stale-resource-version",
    ),
    pytest.param(
        "PUT",
        TARGET,
        JSON,
        encoded({**configmap(), "metadata": {"name": "target", "labels": {"bad key!": "v"}}}),
        422,
        "Invalid",
        None,
        id="invalid-label-key",
    ),
    pytest.param("PATCH", TARGET, MERGE, b"{", 400, "BadRequest", None, id="malformed-merge-patch"),
    pytest.param(
        "PATCH",
        TARGET,
        JSON_PATCH,
        b'[{"op":"test","path":"/data/a","value":"2"}]',
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        id="failed-json-patch-test",
    ),
    pytest.param(
        "PATCH",
        TARGET,
        MERGE,
        b'{"metadata":{"labels":{"k":"bad value!"}}}',
        422,
        "Invalid",
        None,
        id="patch-to-invalid-label",
    ),
    pytest.param(
        "PATCH",
        TARGET,
        "text/plain",
        b"{}",
        415,
        "UnsupportedMediaType",
        None,
        id="unsupported-patch-type",
    ),
    pytest.param(
        "DELETE",
        TARGET,
        None,
        b'{"preconditions":{"uid":"not-the-uid"}}',
        409,
        "Conflict",
        None,
        id="delete-with-wrong-uid-precondition",
    ),
]


@pytest.mark.parametrize(("method", "path", "content_type", "body", "code", "reason", "message"), REJECTED)
def test_rejected_write_leaves_the_object_unchanged(
    apiserver: RunningApiServer,
    stored: bytes,
    method: str,
    path: str,
    content_type: str | None,
    body: bytes,
    code: int,
    reason: str,
    message: str | None,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {"Content-Type": JSON}
    got, _, answer = apiserver.request(method, path, body, headers)
    status = status_of(answer)
    assert (got, status["code"], status["reason"]) == (code, code, reason), status
    if message is not None:
        assert status["message"] == message
    assert read_target(apiserver) == stored


def test_invalid_names_and_labels_are_422_with_causes(apiserver: RunningApiServer, stored: bytes) -> None:
    bad = configmap(name="Bad_Name")
    bad["metadata"]["labels"] = {"k": "bad value!"}
    got, _, answer = apiserver.request("POST", CM, encoded(bad), {"Content-Type": JSON})
    status = status_of(answer)
    assert got == 422
    assert status["details"]["kind"] == "ConfigMap"
    assert status["details"]["name"] == "Bad_Name"
    fields = [cause["field"] for cause in status["details"]["causes"]]
    assert fields == ["metadata.name", "metadata.labels"]
    assert all(cause["reason"] == "FieldValueInvalid" for cause in status["details"]["causes"])
    assert status["message"].startswith('ConfigMap "Bad_Name" is invalid: [metadata.name: Invalid value: "Bad_Name": ')
    assert apiserver.request("GET", f"{CM}/Bad_Name")[0] == 404
    assert read_target(apiserver) == stored


def test_object_over_the_store_limit_is_413(apiserver: RunningApiServer, stored: bytes) -> None:
    # A Deployment has no size rule of its own, so 1.6 MiB of args reaches the Store's 1.5 MiB limit.
    args = ["x" * 1024] * 1600
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "huge"},
        "spec": {
            "selector": {"matchLabels": {"app": "huge"}},
            "template": {
                "metadata": {"labels": {"app": "huge"}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "args": args}]},
            },
        },
    }
    path = f"/apis/apps/v1/namespaces/{NS}/deployments"
    got, _, answer = apiserver.request("POST", path, encoded(deployment), {"Content-Type": JSON})
    status = status_of(answer)
    assert (got, status["reason"]) == (413, "RequestEntityTooLarge"), status
    assert status["message"] == "Request entity too large: etcdserver: request is too large"
    assert apiserver.request("GET", f"{path}/huge")[0] == 404


def test_configmap_and_secret_data_over_1_mib_is_422(apiserver: RunningApiServer, stored: bytes) -> None:
    # Growing the target past MaxSecretSize by a patch is refused by validation, and changes nothing.
    big = {"data": {f"k{i}": "y" * 1024 for i in range(1100)}}
    got, _, answer = apiserver.request("PATCH", TARGET, encoded(big), {"Content-Type": MERGE})
    status = status_of(answer)
    assert got == 422, answer
    assert status["details"]["causes"] == [
        {"reason": "FieldValueTooLong", "message": "Too long: may not be more than 1048576 bytes"}
    ]  # the whole object: Go omits the empty field
    assert read_target(apiserver) == stored
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "too-big"},
        "stringData": {"a": "s" * (1024 * 1024 + 1)},
    }
    path = f"/api/v1/namespaces/{NS}/secrets"
    got, _, answer = apiserver.request("POST", path, encoded(secret), {"Content-Type": JSON})
    assert got == 422, answer
    assert status_of(answer)["details"]["causes"][0]["field"] == "data"
    assert apiserver.request("GET", f"{path}/too-big")[0] == 404


def test_request_body_over_3_mib_is_413(apiserver: RunningApiServer, stored: bytes) -> None:
    body = encoded(configmap(name="body-too-big", data={"a": "z" * (3 * 1024 * 1024)}))
    got, _, answer = apiserver.request("PUT", TARGET, body, {"Content-Type": JSON})
    assert got == 413
    assert status_of(answer)["message"] == "Request entity too large: limit is 3145728"
    assert read_target(apiserver) == stored


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("DELETE", f"{CM}/missing", id="delete"),
        pytest.param("GET", f"{CM}/missing", id="get"),
        pytest.param("PUT", f"{CM}/missing-put", id="put-without-create-on-update"),
        pytest.param("PATCH", f"{CM}/missing", id="merge-patch"),
    ],
)
def test_missing_object_is_404(apiserver: RunningApiServer, stored: bytes, method: str, path: str) -> None:
    name = path.rsplit("/", 1)[1]
    body = encoded(configmap(name=name)) if method == "PUT" else b"{}" if method == "PATCH" else None
    content_type = MERGE if method == "PATCH" else JSON
    got, _, answer = apiserver.request(method, path, body, {"Content-Type": content_type} if body else {})
    status = status_of(answer)
    assert got == 404
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'configmaps "{name}" not found',
        "reason": "NotFound",
        "details": {"name": name, "kind": "configmaps"},
        "code": 404,
    }


def test_concurrent_conflicting_updates_one_wins(apiserver: RunningApiServer, stored: bytes) -> None:
    created, _, body = apiserver.request("POST", CM, encoded(configmap(name="raced")), {"Content-Type": JSON})
    assert created == 201
    version = json.loads(body)["metadata"]["resourceVersion"]

    def update(writer: int) -> tuple[int, bytes]:
        obj = configmap(name="raced", data={"writer": str(writer)})
        obj["metadata"]["resourceVersion"] = version
        status, _, answer = apiserver.request("PUT", f"{CM}/raced", encoded(obj), {"Content-Type": JSON})
        return status, answer

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(update, range(6)))
    codes = sorted(code for code, _ in results)
    assert codes == [200, 409, 409, 409, 409, 409]
    winner = next(json.loads(answer) for code, answer in results if code == 200)
    for code, answer in results:
        if code == 409:
            assert status_of(answer)["reason"] == "Conflict"
    _, _, now = apiserver.request("GET", f"{CM}/raced")
    assert json.loads(now)["data"] == winner["data"]
    assert json.loads(now)["metadata"]["resourceVersion"] == winner["metadata"]["resourceVersion"]
