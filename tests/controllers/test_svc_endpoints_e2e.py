"""Endpoints and EndpointSlices follow pods' readiness, against a real API server (no kubelet)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from apiserver_harness import RunningApiServer, running_apiserver
from cm_harness import eventually, new_namespace
from svcnode_harness import running_controllers

from skiff.client import ApiClient, ApiError, is_not_found
from skiff.client.resources import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES
from skiff.client.timefmt import rfc3339
from skiff.controllers.endpoints import EndpointsController
from skiff.controllers.endpointslice import EndpointSliceController


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("svc-endpoints")) as srv:
        yield srv


def pod_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "nodeName": "node-a",
            "containers": [{"name": "c", "image": "python:3", "ports": [{"name": "http", "containerPort": 8080}]}],
        },
    }


async def set_pod_status(client: ApiClient, ns: str, name: str, ip: str, ready: bool) -> None:
    status = {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": rfc3339()}],
    }
    await client.patch(PODS, name, {"status": status}, ns, subresource="status")


def service_body(headless: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"app": "web"},
        "ports": [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}],
    }
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}


async def get_endpoints(client: ApiClient, ns: str) -> dict[str, Any]:
    """The Endpoints "web", or an empty object while it does not exist yet."""
    try:
        return await client.get(ENDPOINTS, "web", ns)
    except ApiError as err:
        if is_not_found(err):
            return {}
        raise


def ips(addresses: list[dict[str, Any]] | None) -> set[str]:
    return {a["ip"] for a in addresses or []}


async def test_endpoints_follow_readiness(server: RunningApiServer) -> None:
    async with running_controllers(server.kubeconfig, [EndpointsController]) as client:
        ns = await new_namespace(client, "ep")
        for name in ("a", "b"):
            await client.create(PODS, pod_body(name), ns)
        await set_pod_status(client, ns, "a", "127.16.0.10", ready=True)
        await set_pod_status(client, ns, "b", "127.16.0.11", ready=False)
        await client.create(SERVICES, service_body(headless=True), ns)

        async def split() -> dict[str, Any] | None:
            ep = await get_endpoints(client, ns)
            subsets = ep.get("subsets") or []
            if len(subsets) == 1 and ips(subsets[0].get("addresses")) == {"127.16.0.10"}:
                return ep if ips(subsets[0].get("notReadyAddresses")) == {"127.16.0.11"} else None
            return None

        ep = await eventually(split, "one ready and one not-ready address")
        subset = ep["subsets"][0]
        assert subset["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
        address = subset["addresses"][0]
        assert address["nodeName"] == "node-a"
        assert address["targetRef"]["kind"] == "Pod" and address["targetRef"]["name"] == "a"
        assert ep["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
        assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]
        version = ep["metadata"]["resourceVersion"]

        # A change that does not affect endpoints (an annotation) must not cause a write: only the
        # readiness change after it shows up as a modification of the Endpoints.
        await client.patch(PODS, "a", {"metadata": {"annotations": {"touched": "yes"}}}, ns)
        await set_pod_status(client, ns, "b", "127.16.0.11", ready=True)

        async def both_ready() -> bool:
            ep = await get_endpoints(client, ns)
            subsets = ep.get("subsets") or []
            return len(subsets) == 1 and ips(subsets[0].get("addresses")) == {"127.16.0.10", "127.16.0.11"}

        await eventually(both_ready, "both addresses ready")
        writes = [
            event.type
            async for event in client.watch(ENDPOINTS, ns, resource_version=version, timeout_seconds=1)
            if event.type != "BOOKMARK"
        ]
        assert writes == ["MODIFIED"]

        await client.delete(PODS, "a", ns, grace_period_seconds=0)

        async def only_b() -> bool:
            ep = await get_endpoints(client, ns)
            subsets = ep.get("subsets") or []
            return len(subsets) == 1 and ips(subsets[0].get("addresses")) == {"127.16.0.11"}

        await eventually(only_b, "a's address removed")
        await client.delete(SERVICES, "web", ns)

        async def gone() -> bool:
            listed = await client.list(ENDPOINTS, ns)
            return not [e for e in listed["items"] if e["metadata"]["name"] == "web"]

        await eventually(gone, "endpoints deleted with the service")


async def test_endpointslices_follow_readiness(server: RunningApiServer) -> None:
    async with running_controllers(server.kubeconfig, [EndpointSliceController]) as client:
        ns = await new_namespace(client, "eps")
        await client.create(PODS, pod_body("a"), ns)
        await set_pod_status(client, ns, "a", "127.16.0.20", ready=False)
        svc = await client.create(SERVICES, service_body(), ns)

        async def slices() -> list[dict[str, Any]]:
            listed = await client.list(ENDPOINTSLICES, ns, label_selector="kubernetes.io/service-name=web")
            return list(listed["items"])

        async def endpoint_ready(ready: bool) -> dict[str, Any] | None:
            found = await slices()
            if len(found) != 1:
                return None
            endpoints = found[0].get("endpoints") or []
            if len(endpoints) == 1 and endpoints[0]["conditions"]["ready"] is ready:
                return found[0]
            return None

        async def not_ready() -> dict[str, Any] | None:
            return await endpoint_ready(False)

        async def ready() -> dict[str, Any] | None:
            return await endpoint_ready(True)

        slice_ = await eventually(not_ready, "a slice with one not-ready endpoint")
        meta = slice_["metadata"]
        assert meta["name"].startswith("web-") and meta["generateName"] == "web-"
        assert meta["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
        assert meta["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
        assert meta["ownerReferences"][0]["kind"] == "Service"
        assert slice_["addressType"] == "IPv4"
        assert slice_["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
        (endpoint,) = slice_["endpoints"]
        assert endpoint["addresses"] == ["127.16.0.20"] and endpoint["nodeName"] == "node-a"
        assert endpoint["conditions"] == {"ready": False, "serving": False, "terminating": False}

        await set_pod_status(client, ns, "a", "127.16.0.20", ready=True)
        updated = await eventually(ready, "the endpoint becomes ready")
        assert updated["metadata"]["name"] == meta["name"]  # updated in place, not replaced


async def test_endpointslices_pack_at_most_n(server: RunningApiServer) -> None:
    options = {"max-endpoints-per-slice": 2}
    async with running_controllers(server.kubeconfig, [EndpointSliceController], options) as client:
        ns = await new_namespace(client, "pack")
        for i in range(5):
            await client.create(PODS, pod_body(f"p{i}"), ns)
            await set_pod_status(client, ns, f"p{i}", f"127.16.1.{i + 1}", ready=True)
        await client.create(SERVICES, service_body(), ns)

        async def packed() -> list[dict[str, Any]] | None:
            listed = await client.list(ENDPOINTSLICES, ns, label_selector="kubernetes.io/service-name=web")
            sizes = sorted(len(s.get("endpoints") or []) for s in listed["items"])
            return listed["items"] if sizes == [1, 2, 2] else None

        slices = await eventually(packed, "five endpoints in slices of at most two")
        addresses = {a for s in slices for e in s["endpoints"] for a in e["addresses"]}
        assert addresses == {f"127.16.1.{i}" for i in range(1, 6)}
        assert len({s["metadata"]["name"] for s in slices}) == 3

        for i in range(5):
            await client.delete(PODS, f"p{i}", ns, grace_period_seconds=0)

        async def placeholder() -> bool:
            listed = await client.list(ENDPOINTSLICES, ns, label_selector="kubernetes.io/service-name=web")
            return len(listed["items"]) == 1 and not listed["items"][0].get("endpoints")

        await eventually(placeholder, "one empty placeholder slice once every pod is gone")
