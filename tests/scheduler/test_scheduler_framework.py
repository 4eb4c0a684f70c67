"""Whole attempts through Framework: node choice, scores, inter-pod affinity, spread, FitError text."""

from __future__ import annotations

import random
from typing import Any

import pytest
from scheduler_objects import make_node, make_pod

from skiff.scheduler import scores
from skiff.scheduler.cache import SchedulerCache
from skiff.scheduler.framework import FitError, Framework, num_feasible_nodes_to_find
from skiff.scheduler.podstate import PodState

Obj = dict[str, Any]


def cluster(nodes: list[Obj], pods: list[Obj] = ()) -> Framework:  # type: ignore[assignment]
    cache = SchedulerCache()
    for node in nodes:
        cache.add_node(node)
    for pod in pods:
        cache.add_pod(pod)
    return Framework(cache, rng=random.Random(7))


def schedule(fw: Framework, pod: Obj) -> str:
    return fw.schedule(PodState.of(pod)).node


def fit_error(fw: Framework, pod: Obj) -> str:
    with pytest.raises(FitError) as caught:
        fw.schedule(PodState.of(pod))
    return caught.value.message()


@pytest.mark.parametrize(
    ("num_nodes", "percentage", "want"),
    [
        pytest.param(50, 0, 50, id="small-all"),
        pytest.param(100, 0, 100, id="min-100"),
        pytest.param(1000, 0, 420, id="1000-adaptive-42pct"),
        pytest.param(5000, 0, 500, id="5000-adaptive-10pct"),
        pytest.param(10000, 0, 500, id="10000-floor-5pct"),
        pytest.param(1000, 100, 1000, id="all"),
        pytest.param(1000, 1, 100, id="never-below-100"),
    ],
)
def test_num_feasible_nodes_to_find(num_nodes: int, percentage: int, want: int) -> None:
    assert num_feasible_nodes_to_find(num_nodes, percentage) == want


def test_fit_error_message_matches_upstream_wording() -> None:
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    fw = cluster([make_node("cp", taints=[taint]), make_node("a", cpu="1"), make_node("b", cpu="1")])
    assert fit_error(fw, make_pod("big", cpu="2")) == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod."
    )


def test_no_nodes() -> None:
    assert fit_error(cluster([]), make_pod("p")) == "no nodes available to schedule pods"


def test_least_allocated_prefers_emptier_node() -> None:
    fw = cluster([make_node("busy"), make_node("idle")], [make_pod("e", cpu="3", memory="6Gi", node_name="busy")])
    assert schedule(fw, make_pod("p", cpu="500m", memory="512Mi")) == "idle"


def test_resources_are_counted_for_assumed_pods() -> None:
    fw = cluster([make_node("a", cpu="1"), make_node("b", cpu="1")])
    first = make_pod("p1", cpu="800m")
    node = schedule(fw, first)
    fw.cache.assume_pod(first, node)
    assert schedule(fw, make_pod("p2", cpu="800m")) != node
    fw.cache.forget_pod("default/p1")
    assert fw.cache.nodes[node].requested.get("cpu", 0) == 0


def test_terminal_pods_free_their_resources() -> None:
    done = make_pod("done", cpu="4", node_name="a")
    done["status"]["phase"] = "Succeeded"
    fw = cluster([make_node("a")], [done])
    assert schedule(fw, make_pod("p", cpu="4")) == "a"


@pytest.mark.parametrize(
    ("rows", "want"),
    [
        pytest.param([(0, 0), (2000, 0)], [100.0 * (1 - 0.025) / 2 + 50, 100.0 * (1 - 0.525) / 2 + 50], id="cpu-used"),
    ],
)
def test_least_allocated_values(rows: list[tuple[int, int]], want: list[float]) -> None:
    fw = cluster([make_node(f"n{i}", memory="1Ti") for i in range(len(rows))])
    nodes = fw.cache.node_list()
    for node, (cpu, _) in zip(nodes, rows, strict=True):
        node.non_zero_cpu = cpu
    got = scores.least_allocated(PodState.of(make_pod("p", memory="0")), nodes)
    assert got == pytest.approx(want, abs=0.05)  # memory: the 200Mi default over 1Ti is ~0.02%


def test_balanced_allocation_prefers_even_use() -> None:
    fw = cluster([make_node("cpu-heavy"), make_node("even")])
    fw.cache.nodes["cpu-heavy"].non_zero_cpu = 3000
    state = PodState.of(make_pod("p", cpu="1", memory="2Gi"))
    heavy, even = scores.balanced_allocation(state, fw.cache.node_list())
    assert even > heavy


def test_preferred_node_affinity_wins() -> None:
    preferred = [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}
    ]
    fw = cluster([make_node("hdd", labels={"disk": "hdd"}), make_node("ssd", labels={"disk": "ssd"})])
    pod = make_pod("p", affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred}})
    assert schedule(fw, pod) == "ssd"


def test_prefer_no_schedule_taint_avoided() -> None:
    soft = {"key": "spot", "value": "true", "effect": "PreferNoSchedule"}
    fw = cluster([make_node("a", taints=[soft]), make_node("b")])
    assert {schedule(fw, make_pod(f"p{i}")) for i in range(5)} == {"b"}


def _anti(key: str, labels: dict[str, str]) -> Obj:
    term = {"labelSelector": {"matchLabels": labels}, "topologyKey": key}
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


def _affinity(key: str, labels: dict[str, str]) -> Obj:
    term = {"labelSelector": {"matchLabels": labels}, "topologyKey": key}
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


ZONES = [
    make_node("a1", labels={"zone": "a"}),
    make_node("a2", labels={"zone": "a"}),
    make_node("b1", labels={"zone": "b"}),
]


def test_required_anti_affinity_spreads_replicas() -> None:
    existing = make_pod("web-0", labels={"app": "web"}, node_name="a1", affinity=_anti("zone", {"app": "web"}))
    fw = cluster(ZONES, [existing])
    pod = make_pod("web-1", labels={"app": "web"}, affinity=_anti("zone", {"app": "web"}))
    assert schedule(fw, pod) == "b1"


def test_existing_pods_anti_affinity_is_honoured() -> None:
    existing = make_pod("loner", labels={"app": "db"}, node_name="b1", affinity=_anti("zone", {"app": "web"}))
    fw = cluster(ZONES, [existing])
    assert {schedule(fw, make_pod(f"w{i}", labels={"app": "web"})) for i in range(6)} <= {"a1", "a2"}


def test_anti_affinity_unschedulable_message() -> None:
    web = [make_pod(f"web-{n}", labels={"app": "web"}, node_name=n) for n in ("a1", "b1")]
    fw = cluster(ZONES, web)
    message = fit_error(fw, make_pod("web-x", labels={"app": "web"}, affinity=_anti("zone", {"app": "web"})))
    assert message.startswith("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.")


def test_required_affinity_follows_target_and_first_pod_goes_anywhere() -> None:
    fw = cluster(ZONES, [make_pod("cache", labels={"app": "cache"}, node_name="b1")])
    assert schedule(fw, make_pod("web", affinity=_affinity("zone", {"app": "cache"}))) == "b1"
    lonely = cluster(ZONES)
    assert "didn't match pod affinity rules" in fit_error(lonely, make_pod("w", affinity=_affinity("zone", {"x": "y"})))
    self_matching = make_pod("g0", labels={"grp": "1"}, affinity=_affinity("zone", {"grp": "1"}))
    assert schedule(lonely, self_matching) in {"a1", "a2", "b1"}


def _spread(key: str, when: str = "DoNotSchedule", skew: int = 1) -> list[Obj]:
    return [
        {"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "s"}}}
    ]


def test_topology_spread_do_not_schedule() -> None:
    existing = [make_pod(f"s{i}", labels={"app": "s"}, node_name="a1") for i in range(2)]
    fw = cluster(ZONES, existing)
    pod = make_pod("new", labels={"app": "s"}, topologySpreadConstraints=_spread("zone"))
    assert schedule(fw, pod) == "b1"
    fw.cache.add_pod(make_pod("s3", labels={"app": "s"}, node_name="b1"))
    fw.cache.add_pod(make_pod("s4", labels={"app": "s"}, node_name="b1"))
    fw.cache.add_pod(make_pod("s5", labels={"app": "s"}, node_name="b1"))
    assert schedule(fw, pod) in {"a1", "a2"}


def test_topology_spread_missing_label_is_unresolvable() -> None:
    fw = cluster([make_node("x")])
    pod = make_pod("new", labels={"app": "s"}, topologySpreadConstraints=_spread("zone"))
    assert fit_error(fw, pod) == (
        "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label). "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )


def test_topology_spread_schedule_anyway_prefers_emptier_domain() -> None:
    existing = [make_pod(f"s{i}", labels={"app": "s"}, node_name="a1") for i in range(3)]
    fw = cluster(ZONES, existing)
    pod = make_pod("new", labels={"app": "s"}, topologySpreadConstraints=_spread("zone", "ScheduleAnyway"))
    assert schedule(fw, pod) == "b1"


def test_round_robin_start_covers_all_nodes() -> None:
    fw = cluster([make_node(f"n{i:03}") for i in range(300)])
    fw.percentage = 10  # 30 nodes, raised to the 100-node floor
    seen = set()
    for i in range(3):
        state = PodState.of(make_pod(f"p{i}"))
        feasible, evaluated = fw.find_feasible(state, fw.cache.node_list())
        assert evaluated == len(feasible) == 100
        seen.update(node.name for node in feasible)
    assert len(seen) == 300
