"""Pure parts of the service proxy: endpoints from slices, the desired listener set, the LB pool."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.proxy.endpoints import (
    Endpoint,
    ServicePortName,
    affinity_timeout,
    cluster_ips,
    service_ports,
    slice_endpoints,
    target_endpoints,
    usable_endpoints,
)
from skiff.proxy.lb_allocator import LoadBalancerAllocator, PoolExhausted
from skiff.proxy.listeners import ListenerKey, desired_listeners, diff_listeners, service_listeners


def service(name: str = "web", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "ClusterIP",
        "clusterIP": "127.254.0.5",
        "clusterIPs": ["127.254.0.5"],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
    }
    base.update(spec)
    return {"metadata": {"namespace": "default", "name": name}, "spec": base, "status": {"loadBalancer": {}}}


def endpoint_slice(*endpoints: dict[str, Any], port: int = 8080, name: str = "http") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "default", "name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": name, "port": port, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


def ep(ip: str, **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "conditions": conditions}


HTTP = ServicePortName("default", "web", "http", "TCP")


@pytest.mark.parametrize(
    ("endpoints", "usable"),
    [
        pytest.param([ep("127.16.0.2", ready=True), ep("127.16.0.3", ready=False)], ["127.16.0.2"], id="ready-only"),
        pytest.param([ep("127.16.0.2")], ["127.16.0.2"], id="missing-condition-means-ready"),
        pytest.param(
            [ep("127.16.0.2", ready=False, serving=True, terminating=True), ep("127.16.0.3", ready=False)],
            ["127.16.0.2"],
            id="terminating-fallback",
        ),
        pytest.param(
            [ep("127.16.0.2", ready=True), ep("127.16.0.3", ready=False, serving=True, terminating=True)],
            ["127.16.0.2"],
            id="no-fallback-when-ready-exist",
        ),
        pytest.param([ep("127.16.0.3", ready=False, serving=False, terminating=True)], [], id="none"),
    ],
)
def test_usable_endpoints(endpoints: list[dict[str, Any]], usable: list[str]) -> None:
    found = usable_endpoints(slice_endpoints([endpoint_slice(*endpoints)], "http", "TCP"))
    assert [e.ip for e in found] == usable
    assert all(e.port == 8080 for e in found)


def test_slice_ports_match_by_name_and_protocol() -> None:
    slices = [endpoint_slice(ep("127.16.0.2"), name="http"), endpoint_slice(ep("127.16.0.9"), name="metrics")]
    assert [e.ip for e in slice_endpoints(slices, "http", "TCP")] == ["127.16.0.2"]
    assert slice_endpoints(slices, "http", "UDP") == []


def test_duplicate_addresses_across_slices_prefer_ready() -> None:
    slices = [endpoint_slice(ep("127.16.0.2", ready=False)), endpoint_slice(ep("127.16.0.2", ready=True))]
    assert slice_endpoints(slices, "http", "TCP") == [Endpoint("127.16.0.2", 8080, True, True, False)]


def test_service_ports_and_ips() -> None:
    svc = service(ports=[{"port": 53, "protocol": "UDP"}, {"port": 9, "protocol": "SCTP"}, {"name": "x"}])
    assert [name for name, _ in service_ports(svc)] == [ServicePortName("default", "web", "", "UDP")]
    assert cluster_ips(svc) == ["127.254.0.5"]
    assert cluster_ips(service(clusterIP="None", clusterIPs=["None"])) == []


@pytest.mark.parametrize(
    ("spec", "timeout"),
    [
        pytest.param({}, None, id="none"),
        pytest.param({"sessionAffinity": "ClientIP"}, 10800.0, id="default"),
        pytest.param(
            {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
            60.0,
            id="configured",
        ),
    ],
)
def test_affinity_timeout(spec: dict[str, Any], timeout: float | None) -> None:
    assert affinity_timeout(service(**spec)) == timeout


def test_listeners_for_each_service_type() -> None:
    node_port = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]
    lb = service("lb", type="LoadBalancer", ports=node_port, clusterIP="127.254.0.7", clusterIPs=["127.254.0.7"])
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "127.252.0.1", "ipMode": "VIP"}]}}
    services = [
        service(),
        service("np", type="NodePort", ports=node_port, clusterIP="127.254.0.6", clusterIPs=["127.254.0.6"]),
        lb,
        service("headless", clusterIP="None", clusterIPs=["None"]),
        service("ext", externalIPs=["127.9.9.9", "10.0.0.1"], clusterIP="127.254.0.8", clusterIPs=["127.254.0.8"]),
    ]
    keys = {str(k): str(v) for k, v in desired_listeners(services, {"127.0.1.1": ""}).items()}
    assert keys == {
        "127.254.0.5:80/TCP": "default/web:http/TCP",
        "127.254.0.6:80/TCP": "default/np:http/TCP",
        "127.0.1.1:30080/TCP": "default/lb:http/TCP",  # first by name wins a duplicate node port
        "127.254.0.7:80/TCP": "default/lb:http/TCP",
        "127.252.0.1:80/TCP": "default/lb:http/TCP",
        "127.254.0.8:80/TCP": "default/ext:http/TCP",
        "127.9.9.9:80/TCP": "default/ext:http/TCP",
    }


def test_node_ports_only_with_a_node_ip() -> None:
    svc = service(type="NodePort", ports=[{"name": "", "port": 80, "protocol": "UDP", "nodePort": 30053}])
    assert list(service_listeners(svc, {})) == [ListenerKey("127.254.0.5", 80, "UDP")]
    assert len(service_listeners(svc, {"127.0.1.1": "", "127.0.1.2": ""})) == 3


def test_diff_listeners() -> None:
    a, b, c = (ListenerKey("127.254.0.1", p, "TCP") for p in (1, 2, 3))
    other = ServicePortName("default", "other", "", "TCP")
    diff = diff_listeners({a: HTTP, b: HTTP}, {b: other, c: HTTP})
    assert diff.start == {c: HTTP}
    assert diff.stop == [a]
    assert diff.retarget == {b: other}


def test_allocator_never_duplicates_and_rebuilds() -> None:
    pool = LoadBalancerAllocator("127.252.0.0/30")
    assert pool.claim("ns/a", "127.252.0.1")
    assert not pool.claim("ns/b", "127.252.0.1")
    assert pool.allocate("ns/b") == "127.252.0.2"
    assert pool.allocate("ns/b") == "127.252.0.2"
    with pytest.raises(PoolExhausted):
        pool.allocate("ns/c")
    pool.release("ns/a")
    assert pool.allocate("ns/c") == "127.252.0.1"
    assert pool.owner("127.252.0.1") == "ns/c"


def test_allocator_does_not_reuse_a_released_address_at_once() -> None:
    pool = LoadBalancerAllocator("127.252.0.0/24")
    first = pool.allocate("ns/a")
    pool.release("ns/a")
    assert pool.allocate("ns/b") != first


@pytest.mark.parametrize("cidr", ["10.0.0.0/24", "::1/128", "127.252.0.0/33"])
def test_allocator_rejects_non_loopback_pools(cidr: str) -> None:
    with pytest.raises(ValueError):
        LoadBalancerAllocator(cidr)


def test_traffic_policy_local_narrows_targets_to_a_node() -> None:
    ports = [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]
    local = service(type="NodePort", ports=ports, externalTrafficPolicy="Local", internalTrafficPolicy="Local")
    nodes = {"127.0.1.1": "node-a", "127.0.1.2": "node-b", "127.0.1.3": ""}
    targets = {str(k): v.node for k, v in service_listeners(local, nodes, local_node="node-a").items()}
    assert targets == {
        "127.254.0.5:80/TCP": "node-a",  # internal Local: this proxy's node
        "127.0.1.1:30080/TCP": "node-a",
        "127.0.1.2:30080/TCP": "node-b",
        "127.0.1.3:30080/TCP": "",  # unknown node name: acts as Cluster
    }
    cluster = service(type="NodePort", ports=ports)
    assert {v.node for v in service_listeners(cluster, nodes, local_node="node-a").values()} == {""}


def test_target_endpoints_filter_by_node_with_terminating_fallback() -> None:
    endpoints = [
        {**ep("127.16.0.2", ready=True), "nodeName": "node-a"},
        {**ep("127.16.0.3", ready=False, serving=True, terminating=True), "nodeName": "node-b"},
        {**ep("127.16.0.4", ready=True), "nodeName": "node-c"},
    ]
    slices = [endpoint_slice(*endpoints)]
    ips = {node: [e.ip for e in target_endpoints(ServicePortName("default", "web", "http", "TCP", node), slices)]
           for node in ("", "node-a", "node-b", "node-d")}  # fmt: skip
    assert ips == {
        "": ["127.16.0.2", "127.16.0.4"],
        "node-a": ["127.16.0.2"],
        "node-b": ["127.16.0.3"],  # only a terminating endpoint on the node: still used
        "node-d": [],  # nothing local: dropped, never sent to another node
    }
