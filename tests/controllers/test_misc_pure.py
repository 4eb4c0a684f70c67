"""Pure parts of the disruption, resource quota and pod GC controllers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from skiff.controllers.disruption_status import PdbError, compute_counts, pdb_status
from skiff.controllers.podgc import excess_terminated, orphaned, unscheduled_terminating
from skiff.controllers.resourcequota_usage import compute_used, lists_needed, same_amounts


def pod(
    name: str,
    ready: bool = True,
    owner: str | None = "rs1",
    phase: str = "Running",
    resources: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "creationTimestamp": f"2026-01-01T00:00:{name[-2:]}Z"}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": owner, "controller": True}]
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "resources": resources or {}}], **spec},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def find(ref: Mapping[str, Any], namespace: str) -> tuple[str, int] | None:
    scales = {"rs1": ("dep-uid", 4), "rs2": ("rs2", 2)}
    return scales.get(str(ref.get("uid")))


def pdb(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "b", "generation": 3}, "spec": spec}


FOUR = [pod("p01"), pod("p02"), pod("p03"), pod("p04", ready=False)]


@pytest.mark.parametrize(
    ("spec", "pods", "expected", "desired", "healthy", "allowed"),
    [
        pytest.param({"minAvailable": 2}, FOUR, 4, 2, 3, 1, id="min-int"),
        pytest.param({"minAvailable": 3}, FOUR, 4, 3, 3, 0, id="min-int-exact"),
        pytest.param({"minAvailable": "50%"}, FOUR, 4, 2, 3, 1, id="min-percent"),
        pytest.param({"minAvailable": "30%"}, FOUR, 4, 2, 3, 1, id="min-percent-rounds-up"),
        pytest.param({"maxUnavailable": 1}, FOUR, 4, 3, 3, 0, id="max-int"),
        pytest.param({"maxUnavailable": "25%"}, FOUR, 4, 3, 3, 0, id="max-percent"),
        pytest.param({"maxUnavailable": "50%"}, FOUR, 4, 2, 3, 1, id="max-percent-half"),
        pytest.param({"maxUnavailable": 9}, FOUR, 4, 0, 3, 3, id="max-over-scale"),
        pytest.param({"maxUnavailable": 1}, [*FOUR, pod("p05", owner="rs2")], 6, 5, 4, 0, id="two-controllers"),
        pytest.param({"minAvailable": 1}, [pod("p01", owner=None)], 1, 1, 1, 0, id="min-int-no-controller-ok"),
    ],
)
def test_pdb_counts(
    spec: dict[str, Any], pods: list[dict[str, Any]], expected: int, desired: int, healthy: int, allowed: int
) -> None:
    counts = compute_counts(pdb(**spec), pods, find)
    assert (counts.expected, counts.desired_healthy, counts.current_healthy) == (expected, desired, healthy)
    assert counts.disruptions_allowed == allowed


def test_terminating_pods_are_not_healthy() -> None:
    dying = pod("p01")
    dying["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert compute_counts(pdb(minAvailable=0), [dying], find).current_healthy == 0


@pytest.mark.parametrize(
    "pods",
    [pytest.param([pod("p01", owner=None)], id="no-controller"), pytest.param([pod("p01", owner="x")], id="unknown")],
)
def test_percentages_need_controllers(pods: list[dict[str, Any]]) -> None:
    with pytest.raises(PdbError):
        compute_counts(pdb(maxUnavailable="10%"), pods, find)


def test_pdb_status_conditions() -> None:
    budget = pdb(minAvailable=2)
    status = pdb_status(budget, compute_counts(budget, FOUR, find), None, "2026-01-01T00:00:00Z")
    assert status["observedGeneration"] == 3
    assert (
        status["disruptionsAllowed"],
        status["currentHealthy"],
        status["desiredHealthy"],
        status["expectedPods"],
    ) == (
        1,
        3,
        2,
        4,
    )
    (cond,) = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("DisruptionAllowed", "True", "SufficientPods")
    later = pdb_status(dict(budget, status=status), compute_counts(budget, FOUR, find), None, "2026-02-02T00:00:00Z")
    assert later == status  # unchanged status keeps lastTransitionTime
    failed = pdb_status(budget, None, "found no controllers", "2026-01-01T00:00:00Z")
    assert failed["disruptionsAllowed"] == 0 and failed["conditions"][0]["reason"] == "SyncFailed"
    tight = compute_counts(pdb(minAvailable=3), FOUR, find)
    assert pdb_status(budget, tight, None, "t")["conditions"][0]["reason"] == "InsufficientPods"


REQ = {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}


@pytest.mark.parametrize(
    ("hard", "scopes", "objects", "expected"),
    [
        pytest.param(
            {"pods": "10", "requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2", "limits.memory": "2Gi"},
            [],
            {
                "pods": [
                    pod("p01", resources=REQ),
                    pod("p02", resources=REQ),
                    pod("p03", phase="Succeeded", resources=REQ),
                ]
            },
            {
                "pods": "2",
                "requests.cpu": "200m",
                "requests.memory": "128Mi",
                "limits.cpu": "400m",
                "limits.memory": "256Mi",
            },
            id="compute-over-non-terminal",
        ),
        pytest.param(
            {"cpu": "1", "memory": "1Gi"},
            [],
            {"pods": [pod("p01", resources=REQ, initContainers=[{"resources": {"requests": {"cpu": "500m"}}}])]},
            {"cpu": "500m", "memory": "64Mi"},
            id="init-container-max",
        ),
        pytest.param(
            {
                "services": "5",
                "services.nodeports": "5",
                "configmaps": "5",
                "secrets": "5",
                "count/deployments.apps": "3",
            },
            [],
            {
                "services": [{"spec": {"type": "NodePort", "ports": [{}, {}]}}, {"spec": {}}],
                "configmaps": [{}, {}, {}],
                "secrets": [],
                "deployments.apps": [{}],
            },
            {
                "services": "2",
                "services.nodeports": "2",
                "configmaps": "3",
                "secrets": "0",
                "count/deployments.apps": "1",
            },
            id="object-counts",
        ),
        pytest.param(
            {"pods": "5"},
            ["BestEffort"],
            {"pods": [pod("p01"), pod("p02", resources=REQ)]},
            {"pods": "1"},
            id="best-effort-scope",
        ),
    ],
)
def test_quota_used(
    hard: dict[str, str], scopes: list[str], objects: dict[str, list[dict[str, Any]]], expected: dict[str, str]
) -> None:
    assert compute_used(hard, scopes, objects) == expected


def test_quota_lists_needed() -> None:
    assert lists_needed(["pods", "requests.cpu", "count/deployments.apps", "services.loadbalancers"]) == {
        "pods",
        "deployments.apps",
        "services",
    }


def test_podgc_selection() -> None:
    done = [pod(f"p{i:02}", phase="Succeeded") for i in (5, 1, 3)]
    running = [pod("p09")]
    assert [p["metadata"]["name"] for p in excess_terminated([*done, *running], 1)] == ["p01", "p03"]
    assert excess_terminated(done, 0) == []
    bound = pod("p10", nodeName="gone")
    assert orphaned([bound, pod("p11", nodeName="n1"), pod("p12")], {"n1"}) == {"gone": [bound]}
    dying = pod("p13")
    dying["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert unscheduled_terminating([dying, bound]) == [dying]


def test_quota_amounts_compare_by_value() -> None:
    assert same_amounts({"cpu": "1000m", "memory": "1Gi"}, {"cpu": "1", "memory": "1073741824"})
    assert not same_amounts({"cpu": "1"}, {"cpu": "2"})
    assert not same_amounts({"cpu": "1"}, {"cpu": "1", "pods": "1"})
    assert not same_amounts({"cpu": "1"}, None)
