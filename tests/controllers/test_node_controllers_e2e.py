"""Node IPAM, node lifecycle and taint-based eviction against a real API server (no kubelet: the test plays it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from apiserver_harness import RunningApiServer, running_apiserver
from cm_harness import eventually, new_namespace
from svcnode_harness import create_node, running_controllers

from skiff.client import ApiClient, ApiError, is_already_exists, is_not_found
from skiff.client.resources import LEASES, NAMESPACES, NODES, PODS
from skiff.client.timefmt import rfc3339, rfc3339_micro
from skiff.controllers.nodeipam import NodeIpamController
from skiff.controllers.nodelifecycle import NodeLifecycleController
from skiff.controllers.taint_eviction import TaintEvictionController

UNREACHABLE = "node.kubernetes.io/unreachable"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("node-controllers")) as srv:
        yield srv


async def test_pod_cidrs_assigned_uniquely(server: RunningApiServer) -> None:
    options = {"cluster-cidr": "127.16.0.0/22", "node-cidr-mask-size": 24}
    async with running_controllers(server.kubeconfig, [NodeIpamController], options) as client:
        names = [f"ipam-{i}-{uuid.uuid4().hex[:4]}" for i in range(3)]
        for name in names:
            await create_node(client, name)

        async def assigned() -> dict[str, str] | None:
            cidrs = {}
            for name in names:
                spec = (await client.get(NODES, name)).get("spec") or {}
                if not spec.get("podCIDR"):
                    return None
                assert spec["podCIDRs"] == [spec["podCIDR"]]
                cidrs[name] = spec["podCIDR"]
            return cidrs

        cidrs = await eventually(assigned, "pod CIDRs on all three nodes")
    assert len(set(cidrs.values())) == 3
    assert set(cidrs.values()) <= {"127.16.0.0/24", "127.16.1.0/24", "127.16.2.0/24", "127.16.3.0/24"}

    # A new controller (new leader) rebuilds the used set from the nodes: the fourth node gets the last subnet.
    async with running_controllers(server.kubeconfig, [NodeIpamController], options) as client:
        fourth = f"ipam-3-{uuid.uuid4().hex[:4]}"
        await create_node(client, fourth)

        async def fourth_cidr() -> str | None:
            return ((await client.get(NODES, fourth)).get("spec") or {}).get("podCIDR")

        last = await eventually(fourth_cidr, "a CIDR for the fourth node")
    assert last not in cidrs.values()


async def renew_lease(client: ApiClient, node: str) -> None:
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": rfc3339_micro()},
    }
    try:
        await client.create(NAMESPACES, {"metadata": {"name": "kube-node-lease"}})
    except ApiError as err:
        if not is_already_exists(err):
            raise
    await client.create(LEASES, body, "kube-node-lease")


def pod_on(node: str, name: str, toleration_s: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "image": "python:3"}]}
    if toleration_s is not None:
        spec["tolerations"] = [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": toleration_s}
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def mark_running(client: ApiClient, ns: str, name: str) -> None:
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": rfc3339()}]}
    await client.patch(PODS, name, {"status": status}, ns, subresource="status")


async def test_silent_node_becomes_unknown_tainted_and_evicted(server: RunningApiServer) -> None:
    builders = [NodeLifecycleController, TaintEvictionController]
    async with running_controllers(server.kubeconfig, builders, {"node-monitor-grace-period": 2.0}) as client:
        node = f"silent-{uuid.uuid4().hex[:4]}"
        await create_node(client, node)
        await renew_lease(client, node)
        ns = await new_namespace(client, "evict")
        await client.create(PODS, pod_on(node, "quick", 1), ns)
        patient = await client.create(PODS, pod_on(node, "patient", None), ns)
        # DefaultTolerationSeconds admission gave the patient pod 300 s tolerations.
        assert any(t.get("tolerationSeconds") == 300 for t in patient["spec"]["tolerations"])
        for name in ("quick", "patient"):
            await mark_running(client, ns, name)

        async def unknown() -> dict[str, Any] | None:
            obj = await client.get(NODES, node)
            ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
            taints = {(t["key"], t["effect"]) for t in obj.get("spec", {}).get("taints") or []}
            wanted = {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")}
            return obj if ready["status"] == "Unknown" and wanted <= taints else None

        obj = await eventually(unknown, "node Unknown with unreachable taints")
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "NodeStatusUnknown"
        assert ready["message"] == "Kubelet stopped posting node status."

        async def quick_evicted() -> bool:
            try:
                pod = await client.get(PODS, "quick", ns)
            except ApiError as err:
                if is_not_found(err):
                    return True
                raise
            return bool(pod["metadata"].get("deletionTimestamp"))

        await eventually(quick_evicted, "the pod tolerating 1 s evicted")

        async def patient_not_ready() -> bool:
            pod = await client.get(PODS, "patient", ns)
            assert not pod["metadata"].get("deletionTimestamp"), "evicted before its 300 s toleration"
            ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
            return bool(ready["status"] == "False")

        await eventually(patient_not_ready, "the remaining pod marked not ready")

        # The kubelet comes back: a fresh heartbeat with Ready=True clears the taints.
        current = await client.get(NODES, node)
        now = rfc3339()
        current["status"]["conditions"] = [
            {"type": "Ready", "status": "True", "lastHeartbeatTime": now, "lastTransitionTime": now}
        ]
        await client.update_status(NODES, current)

        async def untainted() -> bool:
            obj = await client.get(NODES, node)
            return not [t for t in obj.get("spec", {}).get("taints") or [] if t["key"] == UNREACHABLE]

        await eventually(untainted, "taints removed after recovery")
