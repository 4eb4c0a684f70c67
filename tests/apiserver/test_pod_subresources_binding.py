"""pods/binding, the legacy bindings resource and pods/eviction against a real ``skiff apiserver``."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from apiserver_harness import KUBECTL, RunningApiServer, apiserver  # noqa: F401  (fixture)

JSON = {"Content-Type": "application/json"}
SUCCESS_201 = b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}'


def call(server: RunningApiServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    status, _, raw = server.request(method, path, data, JSON)
    return status, json.loads(raw) if raw.strip() else None


def make_pod(server: RunningApiServer, name: str, labels: dict[str, str] | None = None, phase: str = "") -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    status, body = call(server, "POST", "/api/v1/namespaces/default/pods", pod)
    assert status == 201, body
    if phase:
        body["status"]["phase"] = phase
        status, body = call(server, "PUT", f"/api/v1/namespaces/default/pods/{name}/status", body)
        assert status == 200, body


def make_pdb(server: RunningApiServer, name: str, labels: dict[str, str], allowed: int) -> None:
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": labels}, "minAvailable": 1},
    }
    status, body = call(server, "POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets", pdb)
    assert status == 201, body
    body["status"] = {
        "observedGeneration": body["metadata"]["generation"],
        "disruptionsAllowed": allowed,
        "currentHealthy": 1 + allowed,
        "desiredHealthy": 1,
        "expectedPods": 1 + allowed,
    }
    path = f"/apis/policy/v1/namespaces/default/poddisruptionbudgets/{name}/status"
    status, body = call(server, "PUT", path, body)
    assert status == 200, body


def binding(pod: str, node: str, kind: str = "Node") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod}, "target": {"kind": kind, "name": node}}


def test_binding_sets_node_then_conflicts(apiserver: RunningApiServer) -> None:  # noqa: F811
    make_pod(apiserver, "bind-me")
    status, _, raw = apiserver.request(
        "POST", "/api/v1/namespaces/default/pods/bind-me/binding", json.dumps(binding("bind-me", "node-1")).encode(),
        JSON,
    )  # fmt: skip
    assert (status, raw) == (201, SUCCESS_201)
    _, pod = call(apiserver, "GET", "/api/v1/namespaces/default/pods/bind-me")
    assert pod["spec"]["nodeName"] == "node-1"
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled[0]["status"] == "True"
    status, _, raw = apiserver.request(
        "POST", "/api/v1/namespaces/default/pods/bind-me/binding", json.dumps(binding("bind-me", "node-2")).encode(),
        JSON,
    )  # fmt: skip
    assert status == 409
    assert raw == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be '
        b'fulfilled on pods \\"bind-me\\": pod bind-me is already assigned to node \\"node-1\\"","reason":"Conflict",'
        b'"details":{"name":"bind-me","kind":"pods"},"code":409}\n'
    )


def test_legacy_bindings_resource(apiserver: RunningApiServer) -> None:  # noqa: F811
    make_pod(apiserver, "legacy-bind")
    status, body = call(apiserver, "POST", "/api/v1/namespaces/default/bindings", binding("legacy-bind", "node-9"))
    assert (status, body["status"]) == (201, "Success")
    _, pod = call(apiserver, "GET", "/api/v1/namespaces/default/pods/legacy-bind")
    assert pod["spec"]["nodeName"] == "node-9"


def test_spec_node_name_stays_immutable_for_plain_updates(apiserver: RunningApiServer) -> None:  # noqa: F811
    make_pod(apiserver, "no-sneaking")
    _, pod = call(apiserver, "GET", "/api/v1/namespaces/default/pods/no-sneaking")
    pod["spec"]["nodeName"] = "node-1"
    status, body = call(apiserver, "PUT", "/api/v1/namespaces/default/pods/no-sneaking", pod)
    assert (status, body["reason"]) == (422, "Invalid")


@pytest.mark.parametrize(
    ("path_pod", "body", "code", "message"),
    [
        pytest.param(
            "missing-pod", binding("missing-pod", "n"), 404, 'pods "missing-pod" not found', id="missing-pod"
        ),
        pytest.param("bad-bind", binding("other", "n"), 400, "name in URL does not match name in Binding object",
                     id="name-mismatch"),
        pytest.param("bad-bind", binding("bad-bind", "n", kind="Pod"), 422,
                     "Binding \"bad-bind\" is invalid: target.kind: Unsupported value: must be empty or 'Node'",
                     id="bad-kind"),
        pytest.param("bad-bind", {"kind": "Binding", "metadata": {"name": "bad-bind"}, "target": {}}, 422,
                     'Binding "bad-bind" is invalid: target.name: Required value', id="no-target"),
    ],
)  # fmt: skip
def test_binding_errors(
    apiserver: RunningApiServer,  # noqa: F811
    path_pod: str,
    body: dict[str, Any],
    code: int,
    message: str,
) -> None:
    status, _ = call(apiserver, "GET", "/api/v1/namespaces/default/pods/bad-bind")
    if status == 404:
        make_pod(apiserver, "bad-bind")
    status, answer = call(apiserver, "POST", f"/api/v1/namespaces/default/pods/{path_pod}/binding", body)
    assert (status, answer["message"]) == (code, message)


def test_binding_get_is_not_allowed(apiserver: RunningApiServer) -> None:  # noqa: F811
    status, body = call(apiserver, "GET", "/api/v1/namespaces/default/pods/whatever/binding")
    assert (status, body["reason"]) == (405, "MethodNotAllowed")


def eviction(pod: str, grace: int | None = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}}
    if grace is not None:
        body["deleteOptions"] = {"gracePeriodSeconds": grace}
    return body


def test_eviction_without_budget_deletes(apiserver: RunningApiServer) -> None:  # noqa: F811
    make_pod(apiserver, "evict-free", {"app": "free"}, phase="Running")
    status, body = call(
        apiserver, "POST", "/api/v1/namespaces/default/pods/evict-free/eviction", eviction("evict-free")
    )
    assert (status, body["status"]) == (201, "Success")
    assert call(apiserver, "GET", "/api/v1/namespaces/default/pods/evict-free")[0] == 404


def test_eviction_blocked_by_budget_is_429(apiserver: RunningApiServer) -> None:  # noqa: F811
    make_pod(apiserver, "evict-guarded", {"app": "guarded"}, phase="Running")
    make_pdb(apiserver, "guard", {"app": "guarded"}, allowed=0)
    path = "/api/v1/namespaces/default/pods/evict-guarded/eviction"
    status, _, raw = apiserver.request("POST", path, json.dumps(eviction("evict-guarded")).encode(), JSON)
    assert status == 429
    assert raw == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Cannot evict pod as it '
        b'would violate the pod\'s disruption budget.","reason":"TooManyRequests","details":{"causes":'
        b'[{"reason":"DisruptionBudget","message":"The disruption budget guard needs 1 healthy pods and has 1 '
        b'currently"}]},"code":429}\n'
    )
    assert call(apiserver, "GET", "/api/v1/namespaces/default/pods/evict-guarded")[0] == 200


def test_eviction_spends_the_budget(apiserver: RunningApiServer) -> None:  # noqa: F811
    for name in ("spend-a", "spend-b"):
        make_pod(apiserver, name, {"app": "spend"}, phase="Running")
    make_pdb(apiserver, "spend", {"app": "spend"}, allowed=1)
    status, _ = call(apiserver, "POST", "/api/v1/namespaces/default/pods/spend-a/eviction", eviction("spend-a"))
    assert status == 201
    assert call(apiserver, "GET", "/api/v1/namespaces/default/pods/spend-a")[0] == 404
    _, pdb = call(apiserver, "GET", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/spend")
    assert pdb["status"]["disruptionsAllowed"] == 0
    assert list(pdb["status"]["disruptedPods"]) == ["spend-a"]
    status, body = call(apiserver, "POST", "/api/v1/namespaces/default/pods/spend-b/eviction", eviction("spend-b"))
    assert (status, body["reason"]) == (429, "TooManyRequests")


def test_pending_pods_ignore_budgets(apiserver: RunningApiServer) -> None:  # noqa: F811
    make_pod(apiserver, "pending-one", {"app": "pending"})
    make_pdb(apiserver, "pending", {"app": "pending"}, allowed=0)
    status, _ = call(apiserver, "POST", "/api/v1/namespaces/default/pods/pending-one/eviction", eviction("pending-one"))
    assert status == 201


def test_two_budgets_is_an_error(apiserver: RunningApiServer) -> None:  # noqa: F811
    make_pod(apiserver, "doubly", {"app": "doubly", "tier": "x"}, phase="Running")
    make_pdb(apiserver, "doubly-1", {"app": "doubly"}, allowed=1)
    make_pdb(apiserver, "doubly-2", {"tier": "x"}, allowed=1)
    status, body = call(apiserver, "POST", "/api/v1/namespaces/default/pods/doubly/eviction", eviction("doubly"))
    assert status == 500
    assert body["message"] == (
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    )


def test_eviction_of_a_missing_pod(apiserver: RunningApiServer) -> None:  # noqa: F811
    status, body = call(apiserver, "POST", "/api/v1/namespaces/default/pods/ghost/eviction", eviction("ghost"))
    assert (status, body["message"]) == (404, 'pods "ghost" not found')


def test_kubectl_drain_evicts_through_the_eviction_api(apiserver: RunningApiServer) -> None:  # noqa: F811
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "drained-node"}}
    assert call(apiserver, "POST", "/api/v1/nodes", node)[0] == 201
    for name in ("drain-a", "drain-b"):
        make_pod(apiserver, name, {"app": "drain"})
        status, _ = call(
            apiserver, "POST", f"/api/v1/namespaces/default/pods/{name}/binding", binding(name, "drained-node")
        )
        assert status == 201
        _, pod = call(apiserver, "GET", f"/api/v1/namespaces/default/pods/{name}")
        pod["status"]["phase"] = "Running"
        assert call(apiserver, "PUT", f"/api/v1/namespaces/default/pods/{name}/status", pod)[0] == 200
    make_pdb(apiserver, "drain", {"app": "drain"}, allowed=2)
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", str(apiserver.kubeconfig), "drain", "drained-node", "--force", "--grace-period=0",
         "--timeout=60s"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pod/drain-a evicted" in done.stdout
    assert "node/drained-node drained" in done.stdout
    assert call(apiserver, "GET", "/api/v1/namespaces/default/pods/drain-a")[0] == 404
    _, node_now = call(apiserver, "GET", "/api/v1/nodes/drained-node")
    assert node_now["spec"]["unschedulable"] is True


def test_dry_run_eviction_and_binding_write_nothing(apiserver: RunningApiServer) -> None:  # noqa: F811
    make_pod(apiserver, "dry-evict", {"app": "dry"}, phase="Running")
    make_pdb(apiserver, "dry", {"app": "dry"}, allowed=1)
    path = "/api/v1/namespaces/default/pods/dry-evict"
    assert call(apiserver, "POST", f"{path}/eviction?dryRun=All", eviction("dry-evict"))[0] == 201
    body = eviction("dry-evict")
    body["deleteOptions"]["dryRun"] = ["All"]
    assert call(apiserver, "POST", f"{path}/eviction", body)[0] == 201
    assert call(apiserver, "GET", path)[0] == 200
    _, pdb = call(apiserver, "GET", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/dry")
    assert (pdb["status"]["disruptionsAllowed"], pdb["status"].get("disruptedPods")) == (1, None)
    assert call(apiserver, "POST", f"{path}/binding?dryRun=All", binding("dry-evict", "node-1"))[0] == 201
    assert "nodeName" not in call(apiserver, "GET", path)[1]["spec"]
