"""DaemonSet decisions without an API server: eligible nodes, pod spec, rollout choices, status."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.api.node_affinity import tolerates
from skiff.controllers.daemonset_nodes import daemon_pod_spec, node_should_run_daemon_pod
from skiff.controllers.daemonset_rollout import (
    NodeView,
    calculate_status,
    failed_nodes,
    manage_decisions,
    rolling_update_decisions,
    surge_and_unavailable,
    target_node_name,
)

NOW = 1_800_000_000.0


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def in_terms(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}
        }
    }


@pytest.mark.parametrize(
    ("the_node", "spec", "expected"),
    [
        pytest.param(node("a"), {}, (True, True), id="plain-node"),
        pytest.param(node("a", {"disk": "ssd"}), {"nodeSelector": {"disk": "ssd"}}, (True, True), id="selector-match"),
        pytest.param(node("a", {"disk": "hdd"}), {"nodeSelector": {"disk": "ssd"}}, (False, False), id="selector-miss"),
        pytest.param(node("a"), {"nodeName": "b"}, (False, False), id="other-node-name"),
        pytest.param(
            node("a", {"zone": "1"}),
            in_terms({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["1", "2"]}]}),
            (True, True),
            id="affinity-in",
        ),
        pytest.param(
            node("a", {"zone": "3"}),
            in_terms(
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["1"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["2"]}]},
            ),
            (True, True),
            id="affinity-terms-ored",
        ),
        pytest.param(
            node("a", {"zone": "1"}),
            in_terms({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}),
            (False, False),
            id="affinity-does-not-exist",
        ),
        pytest.param(
            node("a"),
            in_terms({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}),
            (True, True),
            id="affinity-match-fields",
        ),
        pytest.param(
            node("a", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
            {},
            (False, True),
            id="noschedule-taint-keeps-running-pod",
        ),
        pytest.param(
            node("a", taints=[{"key": "dedicated", "value": "db", "effect": "NoExecute"}]),
            {},
            (False, False),
            id="noexecute-taint-evicts",
        ),
        pytest.param(
            node("a", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
            {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db"}]},
            (True, True),
            id="tolerated",
        ),
        pytest.param(
            node("a", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]),
            {},
            (True, True),
            id="default-toleration-not-ready",
        ),
        pytest.param(
            node("a", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
            {},
            (True, True),
            id="default-toleration-unschedulable",
        ),
        pytest.param(
            node("a", taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
            {},
            (False, True),
            id="network-unavailable-only-for-host-network",
        ),
        pytest.param(
            node("a", taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
            {"hostNetwork": True},
            (True, True),
            id="host-network-tolerates-network-unavailable",
        ),
        pytest.param(
            node("a", taints=[{"key": "x", "effect": "PreferNoSchedule"}]), {}, (True, True), id="prefer-ignored"
        ),
    ],
)
def test_node_should_run_daemon_pod(
    the_node: dict[str, Any], spec: dict[str, Any], expected: tuple[bool, bool]
) -> None:
    assert node_should_run_daemon_pod(the_node, spec) == expected


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        pytest.param({"operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, True, id="wildcard"),
        pytest.param(
            {"key": "k", "operator": "Exists", "effect": "NoExecute"},
            {"key": "k", "effect": "NoSchedule"},
            False,
            id="effect",
        ),
        pytest.param({"key": "k", "value": "v"}, {"key": "k", "value": "w", "effect": "NoSchedule"}, False, id="value"),
        pytest.param({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True, id="equal"),
    ],
)
def test_toleration_matches(toleration: dict[str, str], taint: dict[str, str], expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


def test_daemon_pod_spec_pins_node_and_adds_tolerations() -> None:
    template = {"containers": [{"name": "c"}], **in_terms({"matchExpressions": [{"key": "z", "operator": "Exists"}]})}
    spec = daemon_pod_spec(template, "node-1")
    (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchFields"] == [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]
    assert term["matchExpressions"] == [{"key": "z", "operator": "Exists"}]
    keys = {(t["key"], t["effect"]) for t in spec["tolerations"]}
    assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
    assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert ("node.kubernetes.io/disk-pressure", "NoSchedule") in keys
    assert "tolerations" not in template  # the template is not mutated
    assert target_node_name({"spec": spec}) == "node-1"


def pod(name: str, hash_: str, *, ready: bool = True, phase: str = "Running", created: str = "") -> dict[str, Any]:
    conditions = [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": "2020-01-01T00:00:00Z"}
    ]
    return {
        "metadata": {"name": name, "labels": {"controller-revision-hash": hash_}, "creationTimestamp": created or name},
        "status": {"phase": phase, "conditions": conditions},
    }


def test_manage_creates_missing_and_deletes_extra_failed_and_misplaced() -> None:
    views = [
        NodeView("a", True, True, []),
        NodeView("b", True, True, [pod("b1", "h"), pod("b2", "h")]),
        NodeView("c", True, True, [pod("c1", "h", phase="Failed")]),
        NodeView("d", False, False, [pod("d1", "h")]),
        NodeView("e", False, True, [pod("e1", "h")]),
    ]
    decisions = manage_decisions(views, "h", surge_allowed=False)
    assert decisions.create_on == ["a"]
    assert [p["metadata"]["name"] for p in decisions.delete] == ["b2", "c1", "d1"]


@pytest.mark.parametrize(
    ("strategy", "desired", "expected"),
    [
        pytest.param({"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}, 3, (0, 1), id="default"),
        pytest.param({"rollingUpdate": {"maxUnavailable": "50%", "maxSurge": 0}}, 3, (0, 2), id="percent-rounds-up"),
        pytest.param({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}}, 3, (1, 0), id="surge"),
        pytest.param({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}, 3, (0, 1), id="both-zero"),
    ],
)
def test_surge_and_unavailable(strategy: dict[str, Any], desired: int, expected: tuple[int, int]) -> None:
    assert surge_and_unavailable(strategy, desired) == expected


def test_rolling_update_respects_max_unavailable() -> None:
    views = [NodeView(n, True, True, [pod(f"{n}1", "old")]) for n in "abc"]
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    decisions = rolling_update_decisions(views, "new", strategy, 0, NOW)
    assert [p["metadata"]["name"] for p in decisions.delete] == ["a1"]
    # One node already unavailable (its new pod is not ready yet): no budget left.
    views[0] = NodeView("a", True, True, [pod("a2", "new", ready=False)])
    assert rolling_update_decisions(views, "new", strategy, 0, NOW).delete == []
    # An unavailable old pod is replaced regardless of the budget.
    views[1] = NodeView("b", True, True, [pod("b1", "old", ready=False)])
    assert [p["metadata"]["name"] for p in rolling_update_decisions(views, "new", strategy, 0, NOW).delete] == ["b1"]


def test_rolling_update_with_surge_creates_then_deletes_old() -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    views = [NodeView(n, True, True, [pod(f"{n}1", "old")]) for n in "ab"]
    first = rolling_update_decisions(views, "new", strategy, 0, NOW)
    assert first.create_on == ["a"] and first.delete == []
    views[0].pods.append(pod("a2", "new", ready=False))
    assert rolling_update_decisions(views, "new", strategy, 0, NOW).create_on == []  # surge budget used
    views[0].pods[1] = pod("a2", "new")
    then = rolling_update_decisions(views, "new", strategy, 0, NOW)
    assert [p["metadata"]["name"] for p in then.delete] == ["a1"]


def test_calculate_status() -> None:
    views = [
        NodeView("a", True, True, [pod("a1", "new")]),
        NodeView("b", True, True, [pod("b1", "old", ready=False)]),
        NodeView("c", True, True, []),
        NodeView("d", False, False, [pod("d1", "new")]),
    ]
    assert calculate_status(views, "new", 0, NOW) == {
        "desiredNumberScheduled": 3,
        "currentNumberScheduled": 2,
        "numberMisscheduled": 1,
        "numberReady": 1,
        "numberAvailable": 1,
        "numberUnavailable": 2,
        "updatedNumberScheduled": 1,
    }


def test_failed_pods_wait_while_node_backs_off() -> None:
    views = [
        NodeView("a", True, True, [pod("a1", "h", phase="Failed")]),
        NodeView("b", True, True, [pod("b1", "h", phase="Failed")]),
    ]
    decisions = manage_decisions(views, "h", surge_allowed=False, backing_off=frozenset({"a"}))
    assert [p["metadata"]["name"] for p in decisions.delete] == ["b1"]
    assert failed_nodes(views, decisions) == ["b"]
