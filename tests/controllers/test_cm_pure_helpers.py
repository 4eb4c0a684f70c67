"""Pure helpers shared by controllers: hashing, deletion ranking, RS status, expectations, claims, flags."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.api.selectors import label_selector_from_structured
from skiff.client.resources import PODS, REPLICASETS
from skiff.client.timefmt import rfc3339
from skiff.controllers.controller_ref import ClaimAction, claim_action, get_controller_of, new_controller_ref
from skiff.controllers.expectations import ControllerExpectations
from skiff.controllers.gc_graph import Graph, node_of
from skiff.controllers.manager import ControllerSpec, discover_specs, is_enabled, parse_controllers_flag, select_specs
from skiff.controllers.pod_control import pod_from_template
from skiff.controllers.pod_ranking import pods_to_delete
from skiff.controllers.pod_template_hash import compute_hash, equal_ignore_hash, safe_encode
from skiff.controllers.replicaset_status import calculate_status

NOW = 1_800_000_000.0


def pod(
    name: str,
    *,
    node: str = "",
    phase: str = "Running",
    ready_at: float | None = None,
    created: float = NOW,
    restarts: int = 0,
    cost: int | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(ready_at)}] if ready_at else []
    meta: dict[str, Any] = {"name": name, "creationTimestamp": rfc3339(created), "labels": labels or {}}
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    return {
        "metadata": meta,
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": conditions, "containerStatuses": [{"restartCount": restarts}]},
    }


def test_hash_is_stable_and_sensitive() -> None:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}
    assert compute_hash(template) == compute_hash(
        {"spec": {"containers": [{"name": "c"}]}, "metadata": {"labels": {"a": "b"}}}
    )
    assert compute_hash(template) != compute_hash(template, 1)
    assert compute_hash(template) != compute_hash({**template, "spec": {"containers": [{"name": "d"}]}})
    assert set(compute_hash(template)) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert safe_encode("0123456789") == "456789bcdf"


def test_equal_ignore_hash_and_nulls() -> None:
    a = {"metadata": {"labels": {"app": "x", "pod-template-hash": "abc"}}, "spec": {"x": 1}}
    b = {"metadata": {"labels": {"app": "x"}, "creationTimestamp": None}, "spec": {"x": 1}}
    assert equal_ignore_hash(a, b)
    assert not equal_ignore_hash(a, {"metadata": {"labels": {"app": "y"}}, "spec": {"x": 1}})


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(pod("a", node=""), pod("b", node="n1"), id="unscheduled-first"),
        pytest.param(pod("a", node="n", phase="Pending"), pod("b", node="n"), id="pending-before-running"),
        pytest.param(pod("a", node="n"), pod("b", node="n", ready_at=NOW - 5), id="not-ready-first"),
        pytest.param(pod("a", node="n", cost=-1), pod("b", node="n", cost=5), id="lower-cost-first"),
        pytest.param(
            pod("a", node="n", ready_at=NOW - 1), pod("b", node="n", ready_at=NOW - 100), id="ready-recently-first"
        ),
        pytest.param(pod("a", node="n", restarts=3), pod("b", node="n"), id="more-restarts-first"),
        pytest.param(pod("a", node="n", created=NOW), pod("b", node="n", created=NOW - 60), id="newer-first"),
    ],
)
def test_deletion_ranking(first: dict[str, Any], second: dict[str, Any]) -> None:
    assert pods_to_delete([second, first], 1) == [first]
    assert pods_to_delete([first, second], 1) == [first]


def test_doubled_up_pods_go_first() -> None:
    a, b, c = pod("a", node="n1"), pod("b", node="n2"), pod("c", node="n1")
    assert pods_to_delete([b, a, c], 1)[0]["metadata"]["name"] in ("a", "c")


def test_replicaset_status() -> None:
    rs = {
        "metadata": {"generation": 2},
        "spec": {"minReadySeconds": 10, "template": {"metadata": {"labels": {"app": "x", "tier": "web"}}}},
    }
    pods = [
        pod("a", labels={"app": "x", "tier": "web"}, ready_at=NOW - 60),
        pod("b", labels={"app": "x", "tier": "web"}, ready_at=NOW - 5),
        pod("c", labels={"app": "x"}),
    ]
    status = calculate_status(rs, pods, NOW)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 1}
    failed = calculate_status(rs, pods, NOW, ("FailedCreate", "quota exceeded"))
    (cond,) = failed["conditions"]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == (
        "ReplicaFailure",
        "True",
        "FailedCreate",
        "quota exceeded",
    )
    assert "conditions" not in calculate_status({**rs, "status": failed}, pods, NOW)


def test_expectations_gate_until_observed_or_expired() -> None:
    clock = [NOW]
    exp = ControllerExpectations(now=lambda: clock[0], ttl_s=300)
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.pending("ns/rs") == (1, 0)
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")  # the same pod twice counts once
    exp.deletion_observed("ns/rs", "ns/zzz")  # not one we deleted
    assert exp.pending("ns/rs") == (0, 1) and not exp.satisfied("ns/rs")
    clock[0] += 301
    assert exp.satisfied("ns/rs")


def test_claim_actions() -> None:
    owner = {"metadata": {"name": "rs", "uid": "u1"}}
    sel = label_selector_from_structured({"matchLabels": {"app": "x"}})
    ref = new_controller_ref(owner, "apps/v1", "ReplicaSet")
    mine = {"metadata": {"labels": {"app": "x"}, "ownerReferences": [ref]}}
    assert get_controller_of(mine) == ref
    assert claim_action(mine, owner, sel) is ClaimAction.KEEP
    assert (
        claim_action({"metadata": {"labels": {"app": "y"}, "ownerReferences": [ref]}}, owner, sel)
        is ClaimAction.RELEASE
    )
    assert claim_action({"metadata": {"labels": {"app": "x"}}}, owner, sel) is ClaimAction.ADOPT
    other = {**ref, "uid": "u2"}
    assert (
        claim_action({"metadata": {"labels": {"app": "x"}, "ownerReferences": [other]}}, owner, sel)
        is ClaimAction.IGNORE
    )
    deleting = {"metadata": {"name": "rs", "uid": "u1", "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert claim_action({"metadata": {"labels": {"app": "x"}}}, deleting, sel) is ClaimAction.IGNORE


def test_pod_from_template() -> None:
    parent = {"metadata": {"name": "web", "namespace": "ns", "uid": "u"}}
    template = {
        "metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}, "finalizers": ["f"]},
        "spec": {"containers": []},
    }
    ref = new_controller_ref(parent, "apps/v1", "ReplicaSet")
    pod_obj = pod_from_template(template, parent, ref)
    assert pod_obj["metadata"] == {
        "namespace": "ns",
        "generateName": "web-",
        "labels": {"a": "b"},
        "annotations": {"x": "y"},
        "finalizers": ["f"],
        "ownerReferences": [ref],
    }
    assert pod_obj["spec"] == {"containers": []} and pod_obj["spec"] is not template["spec"]


@pytest.mark.parametrize(
    ("flags", "name", "default_on", "want"),
    [
        pytest.param("*", "deployment", True, True, id="star"),
        pytest.param("*,-deployment", "deployment", True, False, id="star-minus"),
        pytest.param("-deployment,*", "deployment", True, False, id="minus-before-star"),
        pytest.param("replicaset", "deployment", True, False, id="explicit-others-only"),
        pytest.param("*", "bootstrapsigner", False, False, id="off-by-default"),
        pytest.param("*,bootstrapsigner", "bootstrapsigner", False, True, id="explicit-on"),
    ],
)
def test_controllers_flag(flags: str, name: str, default_on: bool, want: bool) -> None:
    assert is_enabled(name, parse_controllers_flag(flags), default_on) is want


def test_discovery_finds_this_packages_controllers() -> None:
    names = {spec.name for spec in discover_specs()}
    assert {"deployment", "replicaset", "replicationcontroller", "garbagecollector", "namespace"} <= names
    specs = [ControllerSpec("a", lambda ctx: None), ControllerSpec("b", lambda ctx: None)]  # type: ignore[arg-type,return-value]
    assert [s.name for s in select_specs(specs, ["*", "-a"])] == ["b"]


def test_gc_graph_tracks_dependents() -> None:
    graph = Graph()
    owner = {"metadata": {"name": "rs", "namespace": "ns", "uid": "o"}}
    dep = {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "d",
            "ownerReferences": [{"uid": "o", "blockOwnerDeletion": True}],
        }
    }
    graph.observe(node_of(REPLICASETS, owner))
    assert graph.observe(node_of(PODS, dep)) == {"d", "o"}
    assert [n.uid for n in graph.blocking_dependents("o")] == ["d"]
    deleting = {"metadata": {**owner["metadata"], "deletionTimestamp": "x", "finalizers": ["foregroundDeletion"]}}
    assert graph.observe(node_of(REPLICASETS, deleting)) == {"o", "d"}
    assert graph.forget("d") == {"o"}
    assert graph.blocking_dependents("o") == []
