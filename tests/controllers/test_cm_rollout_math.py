"""Pure Deployment arithmetic: fenceposts, new RS size, scale-down plans, proportional scaling, status."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.client.timefmt import rfc3339
from skiff.controllers.deployment_revisions import find_new_rs, history_to_delete, new_rs_body, set_new_rs_annotations
from skiff.controllers.deployment_rollout import (
    cleanup_unhealthy,
    max_scaled_down,
    max_surge,
    max_unavailable,
    new_rs_replicas,
    proportional_sizes,
    resolve_fenceposts,
    scale_down_old,
    scaled_value,
)
from skiff.controllers.deployment_status import (
    calculate_status,
    get_condition,
    is_timed_out,
    requeue_after,
    rollout_status,
)

NOW = 1_800_000_000.0


def dep(replicas: int, surge: Any = "25%", unavailable: Any = "25%", **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "d", "namespace": "ns", "uid": "d-uid", "generation": extra.pop("generation", 1)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "d"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
            "progressDeadlineSeconds": 600,
            **extra,
        },
        "status": {},
    }


def rs(name: str, replicas: int, available: int = 0, created: float = NOW, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"{name}-uid",
            "creationTimestamp": rfc3339(created),
            "annotations": {f"deployment.kubernetes.io/{k.replace('_', '-')}": v for k, v in annotations.items()},
        },
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available},
    }


@pytest.mark.parametrize(
    ("value", "total", "up", "want"),
    [
        pytest.param(3, 10, True, 3, id="int"),
        pytest.param("25%", 10, True, 3, id="percent-up"),
        pytest.param("25%", 10, False, 2, id="percent-down"),
        pytest.param("0%", 10, True, 0, id="zero-percent"),
        pytest.param("100%", 7, False, 7, id="all"),
        pytest.param(None, 10, True, 0, id="unset"),
    ],
)
def test_scaled_value(value: Any, total: int, up: bool, want: int) -> None:
    assert scaled_value(value, total, up) == want


def test_scaled_value_rejects_non_percent_strings() -> None:
    with pytest.raises(ValueError, match="not a percentage"):
        scaled_value("ten", 10, True)


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "want"),
    [
        pytest.param(0, 0, 10, (0, 1), id="both-zero-means-one-unavailable"),
        pytest.param("25%", "25%", 4, (1, 1), id="defaults-4"),
        pytest.param("25%", "25%", 1, (1, 0), id="defaults-1"),
        pytest.param("50%", 2, 3, (2, 2), id="mixed"),
    ],
)
def test_resolve_fenceposts(surge: Any, unavailable: Any, desired: int, want: tuple[int, int]) -> None:
    assert resolve_fenceposts(surge, unavailable, desired) == want


def test_max_unavailable_capped_and_zero_for_recreate() -> None:
    assert max_unavailable(dep(2, 0, "100%")) == 2
    assert max_unavailable(dep(3, 0, 10)) == 3
    recreate = dep(3)
    recreate["spec"]["strategy"] = {"type": "Recreate"}
    assert max_unavailable(recreate) == 0 and max_surge(recreate) == 0


@pytest.mark.parametrize(
    ("replicas", "surge", "sizes", "new_size", "want"),
    [
        pytest.param(4, 1, [4], 0, 1, id="surge-one"),
        pytest.param(4, 1, [3], 1, 2, id="room-after-old-shrank"),
        pytest.param(4, 1, [4], 1, 1, id="at-max-total"),
        pytest.param(10, "30%", [10], 0, 3, id="percent"),
        pytest.param(4, 1, [0], 3, 4, id="capped-at-desired"),
    ],
)
def test_new_rs_replicas(replicas: int, surge: Any, sizes: list[int], new_size: int, want: int) -> None:
    d = dep(replicas, surge, 0)
    old = [rs(f"old{i}", n) for i, n in enumerate(sizes)]
    new = rs("new", new_size)
    assert new_rs_replicas(d, [*old, new], new) == want


def test_old_scale_down_respects_min_available() -> None:
    d = dep(4, 1, 1)
    old = rs("old", 4, available=4, created=NOW - 10)
    new = rs("new", 1, available=0)
    # 5 pods, 3 must stay available, the new pod is unavailable: one old pod may go.
    assert max_scaled_down(d, [old, new], new) == 1
    assert cleanup_unhealthy([old], 1) == {}
    assert scale_down_old(d, [old, new], [old]) == {"old": 3}


def test_unhealthy_old_replicas_go_first_oldest_first() -> None:
    older = rs("a", 3, available=1, created=NOW - 20)
    newer = rs("b", 3, available=0, created=NOW - 10)
    assert cleanup_unhealthy([newer, older], 3) == {"a": 1, "b": 2}


def test_proportional_scaling_during_rollout() -> None:
    # 10 replicas + surge 3 = 13 pods mid-rollout (8 old, 5 new); scaled to 15 → 18 allowed, 5 more
    # spread by share: old 8*18/13 = 11.08 → 11, new 5*18/13 = 6.92 → 7.
    d = dep(15, 3, 2)
    old = rs("old", 8, created=NOW - 10, max_replicas="13", desired_replicas="10")
    new = rs("new", 5, created=NOW, max_replicas="13", desired_replicas="10")
    assert proportional_sizes(d, [old, new]) == {"old": 11, "new": 7}


def test_proportional_scale_down_to_zero() -> None:
    d = dep(0, 1, 0)
    sizes = proportional_sizes(d, [rs("a", 2, created=NOW - 1), rs("b", 3)])
    assert sizes == {"a": 0, "b": 0}


def test_new_rs_body_and_template_match() -> None:
    d = dep(3)
    body = new_rs_body(d)
    pod_hash = body["metadata"]["labels"]["pod-template-hash"]
    assert body["metadata"]["name"] == f"d-{pod_hash}"
    assert body["spec"]["selector"]["matchLabels"] == {"app": "d", "pod-template-hash": pod_hash}
    assert body["metadata"]["ownerReferences"][0]["uid"] == "d-uid"
    body["metadata"]["uid"] = "x"
    body["metadata"]["creationTimestamp"] = rfc3339(NOW)
    assert find_new_rs(d, [body]) is body
    changed = dep(3)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    assert find_new_rs(changed, [body]) is None
    assert set_new_rs_annotations(d, body, 2, exists=False)
    annotations = body["metadata"]["annotations"]
    assert annotations["deployment.kubernetes.io/revision"] == "2"
    assert annotations["deployment.kubernetes.io/desired-replicas"] == "3"
    assert annotations["deployment.kubernetes.io/max-replicas"] == "4"
    assert not set_new_rs_annotations(d, body, 2, exists=True)


def test_history_cleanup_keeps_limit_and_skips_live() -> None:
    d = dep(1, revisionHistoryLimit=1)
    olds = [rs("r1", 0, revision="1"), rs("r2", 0, revision="2"), rs("r3", 1, revision="3")]
    for o in olds:
        o["status"]["replicas"] = o["spec"]["replicas"]
    assert [o["metadata"]["name"] for o in history_to_delete(d, olds)] == ["r1", "r2"]
    olds[1]["status"]["replicas"] = 1
    assert [o["metadata"]["name"] for o in history_to_delete(d, olds)] == ["r1"]


def test_status_counts_and_available_condition() -> None:
    d = dep(4, 1, 1)
    old = rs("old", 2, available=2)
    new = rs("new", 3, available=1)
    status = calculate_status(d, [old, new], new, NOW)
    assert status["replicas"] == 5 and status["updatedReplicas"] == 3
    assert status["availableReplicas"] == 3 and status["unavailableReplicas"] == 2
    assert get_condition(status, "Available")["reason"] == "MinimumReplicasAvailable"  # type: ignore[index]
    status = calculate_status(d, [rs("new", 4, available=2)], None, NOW)
    assert get_condition(status, "Available")["status"] == "False"  # type: ignore[index]


def test_progressing_conditions() -> None:
    d = dep(2)
    d["status"] = {"replicas": 2, "updatedReplicas": 0}
    new = rs("new", 2, available=0)
    status = rollout_status(d, [new], new, NOW)
    prog = get_condition(status, "Progressing")
    assert prog is not None and prog["reason"] == "ReplicaSetUpdated"
    done = rollout_status(d, [rs("new", 2, available=2)], rs("new", 2, available=2), NOW)
    assert get_condition(done, "Progressing")["reason"] == "NewReplicaSetAvailable"  # type: ignore[index]
    stale = dep(2, progressDeadlineSeconds=10)
    stale["status"] = {
        "replicas": 2,
        "updatedReplicas": 2,
        "conditions": [
            {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "lastUpdateTime": rfc3339(NOW - 30),
            }
        ],
    }
    assert is_timed_out(stale, stale["status"], NOW)
    timed = rollout_status(stale, [rs("new", 2, available=0)], rs("new", 2), NOW)
    assert get_condition(timed, "Progressing")["reason"] == "ProgressDeadlineExceeded"  # type: ignore[index]
    fresh = dep(2, progressDeadlineSeconds=10)
    fresh["status"] = {
        "conditions": [
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "lastUpdateTime": rfc3339(NOW - 4)}
        ]
    }
    assert requeue_after(fresh, fresh["status"], NOW) == pytest.approx(6.0)
