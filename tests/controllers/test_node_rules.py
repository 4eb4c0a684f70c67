"""Pure node rules: pod CIDR allocation, health from heartbeats (fake time), taints, toleration times."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.api.node_affinity import tolerates
from skiff.client.timefmt import rfc3339
from skiff.controllers.nodeipam_cidrs import CidrSet, CidrSetFull
from skiff.controllers.nodelifecycle_health import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    desired_taints,
    is_overdue,
    observe,
    unknown_conditions,
)
from skiff.controllers.taint_eviction_rules import FOREVER, toleration_time

T0 = 1_800_000_000.0


def test_cidr_allocation_skips_used_and_reuses_released() -> None:
    cidrs = CidrSet("127.16.0.0/12", 24)
    assert cidrs.size == 4096
    assert cidrs.occupy("127.16.1.0/24")
    assert not cidrs.occupy("10.0.0.0/24")
    assert not cidrs.occupy("127.16.2.0/25")
    assert [cidrs.allocate_next() for _ in range(3)] == ["127.16.0.0/24", "127.16.2.0/24", "127.16.3.0/24"]
    cidrs.release("127.16.0.0/24")
    assert not cidrs.in_use("127.16.0.0/24")
    assert cidrs.allocate_next() == "127.16.4.0/24"  # round-robin: released subnets come back last


def test_cidr_set_full() -> None:
    cidrs = CidrSet("127.16.0.0/23", 24)
    assert {cidrs.allocate_next(), cidrs.allocate_next()} == {"127.16.0.0/24", "127.16.1.0/24"}
    with pytest.raises(CidrSetFull):
        cidrs.allocate_next()


def node(
    ready: str | None = "True", heartbeat: float = T0, taints: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    conditions = []
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready, "lastHeartbeatTime": rfc3339(heartbeat)})
    return {
        "metadata": {"name": "n1", "creationTimestamp": rfc3339(T0 - 100)},
        "spec": {"taints": taints or []},
        "status": {"conditions": conditions},
    }


def lease(renew: float) -> dict[str, Any]:
    return {"spec": {"renewTime": rfc3339(renew)}}


def test_health_follows_lease_renewals_on_our_clock() -> None:
    grace = 40.0
    health = observe(None, node(), lease(T0), T0 + 1)
    assert health.probe_timestamp == T0 + 1
    # Nothing new for 41 s: overdue.
    same = observe(health, node(), lease(T0), T0 + 42)
    assert same.probe_timestamp == T0 + 1 and is_overdue(same, T0 + 42, grace)
    # A renewal at any kubelet time counts as heard now.
    renewed = observe(health, node(), lease(T0 - 999), T0 + 30)
    assert renewed.probe_timestamp == T0 + 30 and not is_overdue(renewed, T0 + 42, grace)


def test_node_never_heard_from_counts_from_creation() -> None:
    health = observe(None, node(ready=None), None, T0)
    assert health.probe_timestamp == T0 - 100
    assert is_overdue(health, T0, 40)


def test_unknown_conditions() -> None:
    conditions = unknown_conditions(node(), T0)
    assert conditions is not None
    by_type = {c["type"]: c for c in conditions}
    assert set(by_type) == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    assert by_type["Ready"]["status"] == "Unknown"
    assert by_type["Ready"]["reason"] == "NodeStatusUnknown"
    assert by_type["Ready"]["message"] == "Kubelet stopped posting node status."
    assert by_type["Ready"]["lastHeartbeatTime"] == rfc3339(T0)
    assert by_type["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"
    again = dict(node(), status={"conditions": conditions})
    assert unknown_conditions(again, T0 + 5) is None


@pytest.mark.parametrize(
    ("ready", "expected"),
    [
        pytest.param("True", set(), id="ready"),
        pytest.param("False", {(NOT_READY_TAINT, "NoSchedule"), (NOT_READY_TAINT, "NoExecute")}, id="not-ready"),
        pytest.param("Unknown", {(UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")}, id="unknown"),
    ],
)
def test_condition_taints(ready: str, expected: set[tuple[str, str]]) -> None:
    user_taint = {"key": "dedicated", "value": "x", "effect": "NoSchedule"}
    taints = desired_taints(node(ready, taints=[user_taint]), T0)
    if not expected:
        assert taints is None
        return
    assert taints is not None
    assert {(t["key"], t["effect"]) for t in taints} == expected | {("dedicated", "NoSchedule")}
    assert all(t.get("timeAdded") == rfc3339(T0) for t in taints if t["effect"] == "NoExecute")
    assert desired_taints(node(ready, taints=taints), T0 + 10) is None  # stable, timeAdded kept


def test_recovery_removes_taints() -> None:
    stale = [{"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": rfc3339(T0)}]
    assert desired_taints(node("True", taints=stale), T0) == []
    flipped = desired_taints(node("False", taints=stale), T0 + 1)
    assert flipped is not None and {t["key"] for t in flipped} == {NOT_READY_TAINT}


UNREACHABLE = {"key": UNREACHABLE_TAINT, "effect": "NoExecute"}
NOT_READY = {"key": NOT_READY_TAINT, "effect": "NoExecute"}


def tol(key: str = "", seconds: int | None = None, **extra: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"key": key, "operator": "Exists", "effect": "NoExecute", **extra}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


@pytest.mark.parametrize(
    ("tolerations", "taints", "expected"),
    [
        pytest.param([], [], None, id="no-taints"),
        pytest.param([], [UNREACHABLE], 0.0, id="not-tolerated"),
        pytest.param([tol(UNREACHABLE_TAINT, 300)], [UNREACHABLE], 300.0, id="default-300"),
        pytest.param([tol(UNREACHABLE_TAINT)], [UNREACHABLE], FOREVER, id="forever"),
        pytest.param([tol(UNREACHABLE_TAINT, 5), tol(NOT_READY_TAINT, 2)], [UNREACHABLE, NOT_READY], 2.0, id="min"),
        pytest.param([tol(UNREACHABLE_TAINT, 5)], [UNREACHABLE, NOT_READY], 0.0, id="one-untolerated"),
        pytest.param([tol("", None)], [UNREACHABLE, NOT_READY], FOREVER, id="tolerate-everything"),
        pytest.param([tol(UNREACHABLE_TAINT, -3)], [UNREACHABLE], 0.0, id="negative-is-zero"),
    ],
)
def test_toleration_time(
    tolerations: list[dict[str, Any]], taints: list[dict[str, Any]], expected: float | None
) -> None:
    assert toleration_time(tolerations, taints) == expected


def test_tolerates_equal_operator() -> None:
    taint = {"key": "k", "value": "v", "effect": "NoExecute"}
    assert tolerates({"key": "k", "operator": "Equal", "value": "v"}, taint)
    assert not tolerates({"key": "k", "operator": "Equal", "value": "w"}, taint)
    assert not tolerates({"key": "k", "value": "v", "effect": "NoSchedule"}, taint)
    assert not tolerates({"operator": "Equal"}, taint)
