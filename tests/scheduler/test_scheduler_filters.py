"""Each filter plugin, table-driven: one pod, one node, pass or the upstream reason."""

from __future__ import annotations

from typing import Any

import pytest
from scheduler_objects import make_node, make_pod

from skiff.scheduler import filters
from skiff.scheduler.cache import NodeInfo, PodInfo
from skiff.scheduler.podstate import PodState
from skiff.scheduler.resources import non_zero_requests, pod_requests

Obj = dict[str, Any]


def node_info(node: Obj, *pods: Obj) -> NodeInfo:
    info = NodeInfo(node["metadata"]["name"])
    info.set_node(node)
    for pod in pods:
        info.add_pod(PodInfo.of(pod))
    return info


def run(check: filters.Filter, pod: Obj, node: Obj, *existing: Obj) -> tuple[str, ...] | None:
    status = check(PodState.of(pod), node_info(node, *existing))
    return None if status is None else status.reasons


def expr(key: str, op: str, *values: str) -> Obj:
    return {"key": key, "operator": op, **({"values": list(values)} if values else {})}


def required(*terms: Obj) -> Obj:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


AFFINITY_ERR = ("node(s) didn't match Pod's node affinity/selector",)
LABELS = {"zone": "a", "disk": "ssd", "gen": "5"}
N = make_node("n", labels=LABELS)


@pytest.mark.parametrize(
    ("pod", "node", "want"),
    [
        pytest.param(make_pod("p"), make_node("n"), None, id="no-constraints"),
        pytest.param(make_pod("p", nodeSelector={"zone": "a"}), N, None, id="selector-match"),
        pytest.param(make_pod("p", nodeSelector={"zone": "b"}), N, AFFINITY_ERR, id="sel-miss"),
        pytest.param(make_pod("p", affinity=required({"matchExpressions": [expr("zone", "In", "a", "b")]})),
                     make_node("n", labels=LABELS), None, id="in"),
        pytest.param(make_pod("p", affinity=required({"matchExpressions": [expr("zone", "NotIn", "a")]})),
                     make_node("n", labels=LABELS), AFFINITY_ERR, id="notin"),
        pytest.param(make_pod("p", affinity=required({"matchExpressions": [expr("disk", "Exists")]})),
                     make_node("n", labels=LABELS), None, id="exists"),
        pytest.param(make_pod("p", affinity=required({"matchExpressions": [expr("gpu", "DoesNotExist")]})),
                     make_node("n", labels=LABELS), None, id="does-not-exist"),
        pytest.param(make_pod("p", affinity=required({"matchExpressions": [expr("gen", "Gt", "4")]})),
                     make_node("n", labels=LABELS), None, id="gt"),
        pytest.param(make_pod("p", affinity=required({"matchExpressions": [expr("gen", "Lt", "5")]})),
                     make_node("n", labels=LABELS), AFFINITY_ERR, id="lt-miss"),
        pytest.param(make_pod("p", affinity=required({"matchFields": [expr("metadata.name", "In", "n")]})),
                     make_node("n"), None, id="match-fields"),
        pytest.param(make_pod("p", affinity=required({"matchFields": [expr("metadata.name", "In", "other")]})),
                     make_node("n"), AFFINITY_ERR, id="match-fields-miss"),
        pytest.param(make_pod("p", affinity=required({"matchExpressions": [expr("zone", "In", "x")]},
                                                     {"matchExpressions": [expr("disk", "In", "ssd")]})),
                     make_node("n", labels=LABELS), None, id="terms-ored"),
        pytest.param(make_pod("p", affinity=required({})), N, AFFINITY_ERR, id="empty-term"),
    ],
)  # fmt: skip
def test_node_affinity(pod: Obj, node: Obj, want: tuple[str, ...] | None) -> None:
    assert run(filters.node_affinity, pod, node) == want


NO_SCHEDULE = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
TAINT_ERR = ("node(s) had untolerated taint {dedicated: db}",)


@pytest.mark.parametrize(
    ("tolerations", "taints", "want"),
    [
        pytest.param([], [], None, id="untainted"),
        pytest.param([], [NO_SCHEDULE], TAINT_ERR, id="untolerated"),
        pytest.param([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}], [NO_SCHEDULE], None, id="equal"),
        pytest.param([{"key": "dedicated", "value": "web"}], [NO_SCHEDULE], TAINT_ERR, id="wrong-value"),
        pytest.param([{"key": "dedicated", "operator": "Exists"}], [NO_SCHEDULE], None, id="exists"),
        pytest.param([{"operator": "Exists"}], [NO_SCHEDULE], None, id="tolerate-all"),
        pytest.param([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}], [NO_SCHEDULE], TAINT_ERR,
                     id="other-effect"),
        pytest.param([], [{"key": "soft", "effect": "PreferNoSchedule"}], None, id="prefer-no-schedule-ignored"),
        pytest.param([], [{"key": "gone", "effect": "NoExecute"}], ("node(s) had untolerated taint {gone: }",),
                     id="no-execute"),
    ],
)  # fmt: skip
def test_taint_toleration(tolerations: list[Obj], taints: list[Obj], want: tuple[str, ...] | None) -> None:
    assert run(filters.taint_toleration, make_pod("p", tolerations=tolerations), make_node("n", taints=taints)) == want


@pytest.mark.parametrize(
    ("pod", "existing", "want"),
    [
        pytest.param(make_pod("p", cpu="1"), [], None, id="fits"),
        pytest.param(make_pod("p", cpu="4"), [], None, id="exactly"),
        pytest.param(make_pod("p", cpu="4100m"), [], ("Insufficient cpu",), id="cpu"),
        pytest.param(make_pod("p", cpu="1", memory="2Gi"), [make_pod("e", cpu="3500m", memory="7Gi")],
                     ("Insufficient cpu", "Insufficient memory"), id="both"),
        pytest.param(make_pod("p"), [make_pod("e1"), make_pod("e2")], ("Too many pods",), id="pods"),
    ],
)  # fmt: skip
def test_node_resources_fit(pod: Obj, existing: list[Obj], want: tuple[str, ...] | None) -> None:
    assert run(filters.node_resources_fit, pod, make_node("n", pods="2"), *existing) == want


def _container(cpu: str, **extra: Any) -> Obj:
    return {"name": f"c{cpu}", "resources": {"requests": {"cpu": cpu}}, **extra}


@pytest.mark.parametrize(
    ("spec", "want_cpu"),
    [
        pytest.param({"containers": [_container("100m"), _container("200m")]}, 300, id="sum"),
        pytest.param({"containers": [_container("100m")], "initContainers": [_container("1")]}, 1000, id="init-max"),
        pytest.param({"containers": [_container("500m")], "initContainers": [_container("200m")]}, 500, id="main-max"),
        pytest.param({"containers": [_container("500m")],
                      "initContainers": [_container("200m", restartPolicy="Always"), _container("600m")]},
                     800, id="sidecar"),
        pytest.param({"containers": [_container("100m")], "overhead": {"cpu": "50m"}}, 150, id="overhead"),
    ],
)  # fmt: skip
def test_pod_requests(spec: Obj, want_cpu: int) -> None:
    assert pod_requests({"spec": spec}).get("cpu") == want_cpu


def test_non_zero_requests_default_for_empty_containers() -> None:
    assert non_zero_requests(make_pod("p")) == (100, 200 * 1024 * 1024)
    assert non_zero_requests(make_pod("p", cpu="1")) == (1000, 200 * 1024 * 1024)


@pytest.mark.parametrize(
    ("check", "pod", "node", "want"),
    [
        pytest.param(filters.node_unschedulable, make_pod("p"), make_node("n", unschedulable=True),
                     ("node(s) were unschedulable",), id="cordoned"),
        pytest.param(filters.node_unschedulable,
                     make_pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]),
                     make_node("n", unschedulable=True), None, id="cordoned-tolerated"),
        pytest.param(filters.node_ready, make_pod("p"), make_node("n", ready=False), ("node(s) were not ready",),
                     id="not-ready"),
        pytest.param(filters.node_ready, make_pod("p", tolerations=[{"operator": "Exists"}]),
                     make_node("n", ready=False), None, id="not-ready-tolerated"),
        pytest.param(filters.node_name, make_pod("p", nodeName="other"), make_node("n"),
                     ("node(s) didn't match the requested node name",), id="node-name"),
        pytest.param(filters.node_name, make_pod("p", nodeName="n"), make_node("n"), None, id="node-name-match"),
    ],
)  # fmt: skip
def test_node_filters(check: filters.Filter, pod: Obj, node: Obj, want: tuple[str, ...] | None) -> None:
    assert run(check, pod, node) == want


def _port_pod(name: str, port: int, ip: str | None = None, protocol: str = "TCP") -> Obj:
    entry: Obj = {"containerPort": port, "hostPort": port, "protocol": protocol}
    if ip:
        entry["hostIP"] = ip
    return make_pod(name, containers=[{"name": "c", "ports": [entry]}])


PORT_ERR = ("node(s) didn't have free ports for the requested pod ports",)


@pytest.mark.parametrize(
    ("pod", "existing", "want"),
    [
        pytest.param(_port_pod("p", 80), [], None, id="free"),
        pytest.param(_port_pod("p", 80), [_port_pod("e", 80)], PORT_ERR, id="taken"),
        pytest.param(_port_pod("p", 80, protocol="UDP"), [_port_pod("e", 80)], None, id="other-protocol"),
        pytest.param(_port_pod("p", 80, "127.0.0.2"), [_port_pod("e", 80, "127.0.0.3")], None, id="other-ip"),
        pytest.param(_port_pod("p", 80, "127.0.0.2"), [_port_pod("e", 80)], PORT_ERR, id="wildcard-taken"),
        pytest.param(_port_pod("p", 80), [_port_pod("e", 80, "127.0.0.3")], PORT_ERR, id="wildcard-wants"),
    ],
)  # fmt: skip
def test_node_ports(pod: Obj, existing: list[Obj], want: tuple[str, ...] | None) -> None:
    assert run(filters.node_ports, pod, make_node("n"), *existing) == want
