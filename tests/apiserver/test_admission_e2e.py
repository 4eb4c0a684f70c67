"""Admission, namespace lifecycle and service allocation against a real ``skiff apiserver``.

Real kubectl 1.32 and the official Python client; messages asserted verbatim
against what kube-apiserver prints.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from apiserver_harness import Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401
from kubernetes import client, config
from kubernetes.client.rest import ApiException

SERVICE_CIDR = ipaddress.ip_network("127.254.0.0/16")
CONCURRENT_SERVICES = 200
WORKERS = 16


@pytest.fixture
def core(apiserver: RunningApiServer) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


def _json(kubectl: Kubectl, *args: str) -> dict:  # type: ignore[type-arg]
    return json.loads(kubectl.ok(*args, "-o", "json"))  # type: ignore[no-any-return]


def test_system_namespaces_and_kubernetes_service_exist_at_start(kubectl: Kubectl, apiserver: RunningApiServer) -> None:
    names = kubectl.ok("get", "namespaces", "-o", "name").split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public", "namespace/kube-node-lease"} <= set(
        names
    )
    svc = _json(kubectl, "get", "service", "kubernetes", "-n", "default")
    assert svc["spec"]["clusterIP"] == "127.254.0.1"
    assert svc["spec"]["clusterIPs"] == ["127.254.0.1"]
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": apiserver.port}]
    assert svc["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    endpoints = _json(kubectl, "get", "endpoints", "kubernetes", "-n", "default")
    assert endpoints["subsets"] == [
        {"addresses": [{"ip": apiserver.host}], "ports": [{"name": "https", "port": apiserver.port, "protocol": "TCP"}]}
    ]
    slice_ = _json(kubectl, "get", "endpointslices.discovery.k8s.io", "kubernetes", "-n", "default")
    assert slice_["endpoints"][0]["addresses"] == [apiserver.host]
    classes = kubectl.ok("get", "priorityclasses", "--no-headers").split("\n")
    assert [line.split()[:2] for line in classes if line] == [
        ["system-cluster-critical", "2000000000"],
        ["system-node-critical", "2000001000"],
    ]


def test_create_in_a_missing_namespace_fails(kubectl: Kubectl) -> None:
    code, _, err = kubectl.run("create", "deployment", "web", "--image=nginx", "-n", "no-such-ns")
    assert code == 1
    assert err.strip() == 'error: failed to create deployment: namespaces "no-such-ns" not found'


def test_immortal_namespace_cannot_be_deleted(kubectl: Kubectl) -> None:
    code, _, err = kubectl.run("delete", "namespace", "default")
    assert code == 1
    assert err.strip() == (
        'Error from server (Forbidden): namespaces "default" is forbidden: this namespace may not be deleted'
    )


def test_namespace_termination_and_finalize(kubectl: Kubectl, apiserver: RunningApiServer) -> None:
    kubectl.ok("create", "namespace", "doomed")
    kubectl.ok("delete", "namespace", "doomed", "--wait=false")
    ns = _json(kubectl, "get", "namespace", "doomed")
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    code, _, err = kubectl.run("create", "configmap", "late", "-n", "doomed")
    assert code == 1
    assert err.strip() == (
        'error: failed to create configmap: configmaps "late" is forbidden: '
        "unable to create new content in namespace doomed because it is being terminated"
    )
    code, _, err = kubectl.run("delete", "namespace", "doomed", "--wait=false")
    assert code == 1 and "The system is ensuring all content is removed from this namespace." in err
    # What the namespace controller (issue C) will do: finalize, then delete again.
    ns["spec"]["finalizers"] = []
    kubectl.ok("replace", "--raw", "/api/v1/namespaces/doomed/finalize", "-f", "-", stdin=json.dumps(ns))
    assert _json(kubectl, "get", "namespace", "doomed")["spec"].get("finalizers", []) == []
    kubectl.ok("delete", "namespace", "doomed")
    code, _, err = kubectl.run("get", "namespace", "doomed")
    assert code == 1 and 'namespaces "doomed" not found' in err


def test_pods_get_admission_defaults(kubectl: Kubectl) -> None:
    kubectl.ok("run", "adm-pod", "--image=nginx", "-n", "default")
    spec = _json(kubectl, "get", "pod", "adm-pod", "-n", "default")["spec"]
    assert (spec["serviceAccountName"], spec["priority"], spec["preemptionPolicy"]) == (
        "default",
        0,
        "PreemptLowerPriority",
    )
    assert [t["key"] for t in spec["tolerations"]] == [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ]
    code, _, err = kubectl.run(
        "run", "adm-pod2", "--image=nginx", "-n", "default", "--overrides",
        json.dumps({"spec": {"priorityClassName": "nope"}}),
    )  # fmt: skip
    assert code == 1
    assert 'pods "adm-pod2" is forbidden: no PriorityClass with name nope was found' in err


def test_cluster_ip_service(kubectl: Kubectl) -> None:
    kubectl.ok("create", "service", "clusterip", "alloc-a", "--tcp=80:8080")
    spec = _json(kubectl, "get", "service", "alloc-a")["spec"]
    assert ipaddress.ip_address(spec["clusterIP"]) in SERVICE_CIDR
    assert (spec["clusterIPs"], spec["ipFamilies"], spec["ipFamilyPolicy"]) == (
        [spec["clusterIP"]],
        ["IPv4"],
        "SingleStack",
    )
    rows = {line.split()[0]: line.split() for line in kubectl.ok("get", "svc", "--no-headers").splitlines()}
    assert rows["alloc-a"][1:4] == ["ClusterIP", spec["clusterIP"], "<none>"]


def test_node_port_service(kubectl: Kubectl) -> None:
    kubectl.ok("create", "service", "nodeport", "alloc-np", "--tcp=80:8080")
    port = _json(kubectl, "get", "service", "alloc-np")["spec"]["ports"][0]
    assert 30000 <= port["nodePort"] <= 32767


EXPLICIT = """\
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  clusterIP: 127.254.200.1
  ports:
  - port: 80
"""


def test_explicit_cluster_ip_is_released_on_delete(kubectl: Kubectl) -> None:
    kubectl.ok("create", "-f", "-", stdin=EXPLICIT.format(name="fixed-1"))
    code, _, err = kubectl.run("create", "-f", "-", stdin=EXPLICIT.format(name="fixed-2"))
    assert code == 1
    assert err.strip() == (
        'The Service "fixed-2" is invalid: spec.clusterIPs: Invalid value: []string{"127.254.200.1"}: '
        "failed to allocate IP 127.254.200.1: provided IP is already allocated"
    )
    kubectl.ok("delete", "service", "fixed-1")
    kubectl.ok("create", "-f", "-", stdin=EXPLICIT.format(name="fixed-2"))
    assert _json(kubectl, "get", "service", "fixed-2")["spec"]["clusterIP"] == "127.254.200.1"


def test_concurrent_creates_get_distinct_addresses(core: client.CoreV1Api) -> None:
    def create(i: int) -> str:
        body = client.V1Service(
            metadata=client.V1ObjectMeta(name=f"many-{i}"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)], type="NodePort"),
        )
        created = core.create_namespaced_service("default", body)
        return f"{created.spec.cluster_ip} {created.spec.ports[0].node_port}"

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(create, range(CONCURRENT_SERVICES)))
    ips = {r.split()[0] for r in results}
    ports = {r.split()[1] for r in results}
    assert len(ips) == len(ports) == CONCURRENT_SERVICES
    assert all(ipaddress.ip_address(ip) in SERVICE_CIDR for ip in ips)

    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(lambda i: core.delete_namespaced_service(f"many-{i}", "default"), range(CONCURRENT_SERVICES)))
    # Every address is free again: the first one can be requested explicitly.
    first = sorted(ips)[0]
    body = client.V1Service(
        metadata=client.V1ObjectMeta(name="many-again"),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)], cluster_ip=first),
    )
    assert core.create_namespaced_service("default", body).spec.cluster_ip == first
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_service("no-such-ns", body)
    assert caught.value.status == 404
