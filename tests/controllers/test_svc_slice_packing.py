"""EndpointSlice endpoints, packing into slices of at most N, and reconciling existing slices."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.controllers.endpointslice import SliceTracker
from skiff.controllers.endpointslice_packing import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    desired_endpoints,
    pod_endpoint,
    reconcile,
)

OWNER = {"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid", "controller": True}


def pod(i: int, ready: bool = True, terminating: bool = False, port: int = 8080) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"p{i}", "namespace": "ns", "uid": f"u{i}", "labels": {"app": "web"}}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": port}]}]},
        "status": {
            "phase": "Running",
            "podIP": f"127.16.{i // 250}.{i % 250 + 1}",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def service(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}], **spec},
    }


@pytest.mark.parametrize(
    ("ready", "terminating", "publish", "expected"),
    [
        pytest.param(True, False, False, {"ready": True, "serving": True, "terminating": False}, id="ready"),
        pytest.param(False, False, False, {"ready": False, "serving": False, "terminating": False}, id="not-ready"),
        pytest.param(True, True, False, {"ready": False, "serving": True, "terminating": True}, id="terminating"),
        pytest.param(False, False, True, {"ready": True, "serving": True, "terminating": False}, id="publish"),
    ],
)
def test_endpoint_conditions(ready: bool, terminating: bool, publish: bool, expected: dict[str, bool]) -> None:
    endpoint = pod_endpoint(pod(0, ready, terminating), service(publishNotReadyAddresses=publish), {"n1": "z1"})
    assert endpoint is not None
    assert endpoint["conditions"] == expected
    assert endpoint["zone"] == "z1"
    assert endpoint["nodeName"] == "n1"
    assert endpoint["targetRef"] == {"kind": "Pod", "namespace": "ns", "name": "p0", "uid": "u0"}


def named(plan_slices: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    out = []
    for s, name in zip(plan_slices, names, strict=True):
        s = dict(s)
        s["metadata"] = dict(s["metadata"], name=name)
        out.append(s)
    return out


@pytest.mark.parametrize(
    ("count", "sizes"),
    [
        pytest.param(0, [0], id="placeholder"),
        pytest.param(5, [5], id="one"),
        pytest.param(250, [100, 100, 50], id="250"),
    ],
)
def test_packing_into_new_slices(count: int, sizes: list[int]) -> None:
    desired = desired_endpoints(service(), [pod(i) for i in range(count)], {})
    plan = reconcile(service(), OWNER, [], desired, 100)
    assert [len(s["endpoints"]) for s in plan.create] == sizes
    for s in plan.create:
        assert s["metadata"]["generateName"] == "web-"
        assert s["metadata"]["labels"][SERVICE_NAME_LABEL] == "web"
        assert s["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
        assert s["metadata"]["ownerReferences"] == [OWNER]
        assert s["addressType"] == "IPv4"
    assert not plan.update and not plan.delete


def test_reconcile_keeps_placement_and_fills_before_creating() -> None:
    svc = service()
    first = reconcile(svc, OWNER, [], desired_endpoints(svc, [pod(i) for i in range(150)], {}), 100)
    existing = named(first.create, ["web-a", "web-b"])
    # p0 goes away, p3 becomes unready, p150..p199 arrive: 50 new fit into web-b's free room and web-a's hole.
    pods = [pod(i, ready=(i != 3)) for i in range(1, 200)]
    plan = reconcile(svc, OWNER, existing, desired_endpoints(svc, pods, {}), 100)
    assert not plan.create and not plan.delete
    by_name = {s["metadata"]["name"]: s for s in plan.update}
    assert sum(len(s["endpoints"]) for s in by_name.values()) == 199
    a = by_name["web-a"]["endpoints"]
    assert [e["targetRef"]["name"] for e in a[:3]] == ["p1", "p2", "p3"]
    assert a[2]["conditions"]["ready"] is False


def test_reconcile_no_change_no_writes_and_cleanup() -> None:
    svc = service()
    desired = desired_endpoints(svc, [pod(i) for i in range(3)], {})
    existing = named(reconcile(svc, OWNER, [], desired, 100).create, ["web-a"])
    assert reconcile(svc, OWNER, existing, desired, 100).empty
    gone = reconcile(svc, OWNER, existing, {}, 100)
    assert gone.update and gone.update[0]["endpoints"] == [] and not gone.create
    moved = reconcile(svc, OWNER, existing, desired_endpoints(svc, [pod(1, port=9000)], {}), 100)
    assert moved.delete == ["web-a"] and len(moved.create) == 1
    assert moved.create[0]["ports"] == [{"name": "web", "port": 9000, "protocol": "TCP"}]


def test_slice_tracker_waits_for_own_writes_only() -> None:
    tracker = SliceTracker()
    tracker.wrote("ns/web", {"metadata": {"name": "web-a", "resourceVersion": "7"}})
    assert tracker.stale("ns/web", [])
    assert tracker.stale("ns/web", [{"metadata": {"name": "web-a", "resourceVersion": "6"}}])
    assert not tracker.stale("ns/web", [{"metadata": {"name": "web-a", "resourceVersion": "7"}}])
    tracker.wrote("ns/web", {"metadata": {"name": "web-b", "resourceVersion": "9"}})
    tracker.gone("ns/web", "web-b")  # deleted by someone else: never wait for it
    assert not tracker.stale("ns/web", [])
    tracker.deleted("ns/web", "web-c")
    assert tracker.stale("ns/web", [{"metadata": {"name": "web-c", "resourceVersion": "3"}}])
    assert not tracker.stale("ns/web", [])
