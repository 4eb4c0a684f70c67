"""Garbage collector against a real API server: background, orphan and foreground deletion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from apiserver_harness import KUBECTL, RunningApiServer, running_apiserver
from cm_harness import container, eventually, new_namespace, pods_of, run_kubectl, running_manager

from skiff.client import ApiClient, Resource, is_not_found
from skiff.client.resources import CONFIGMAPS, DEPLOYMENTS, PODS, REPLICASETS

CONTROLLERS = ["garbagecollector", "replicaset", "deployment"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("cm-gc")) as srv:
        yield srv


async def make_rs(client: ApiClient, ns: str, name: str, replicas: int, finalizers: list[str] | None = None) -> None:
    labels = {"app": name}
    template: dict[str, Any] = {"metadata": {"labels": labels}, "spec": {"containers": [container()]}}
    if finalizers:
        template["metadata"]["finalizers"] = finalizers
    body = {
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
    }
    await client.create(REPLICASETS, body, ns)

    async def ready() -> bool:
        return len(await pods_of(client, ns, f"app={name}")) == replicas

    await eventually(ready, f"{replicas} pods of {name}")


async def gone(client: ApiClient, res: Any, name: str, ns: str) -> bool:
    try:
        await client.get(res, name, ns)
    except Exception as err:
        if is_not_found(err):
            return True
        raise
    return False


async def test_background_deletes_dependents(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "gc")
        await make_rs(client, ns, "bg", 2)
        await client.delete(REPLICASETS, "bg", ns, propagation_policy="Background")

        async def pods_gone() -> bool:
            return not (await client.list(PODS, ns, label_selector="app=bg"))["items"]

        await eventually(pods_gone, "pods of a deleted ReplicaSet collected")


async def test_orphan_keeps_dependents_without_owner(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "gc")
        await make_rs(client, ns, "orph", 2)
        await client.delete(REPLICASETS, "orph", ns, propagation_policy="Orphan")

        async def orphaned() -> bool:
            if not await gone(client, REPLICASETS, "orph", ns):
                return False
            pods = await pods_of(client, ns, "app=orph")
            return len(pods) == 2 and all(not p["metadata"].get("ownerReferences") for p in pods)

        await eventually(orphaned, "ReplicaSet gone, pods kept without ownerReferences")


async def test_foreground_waits_for_blocking_dependents(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "gc")
        await make_rs(client, ns, "fg", 2, finalizers=["example.com/hold"])
        await client.delete(REPLICASETS, "fg", ns, propagation_policy="Foreground")

        async def pods_terminating() -> list[dict[str, Any]] | None:
            pods = (await client.list(PODS, ns, label_selector="app=fg"))["items"]
            return pods if pods and all(p["metadata"].get("deletionTimestamp") for p in pods) else None

        pods = await eventually(pods_terminating, "dependents being deleted")
        rs = await client.get(REPLICASETS, "fg", ns)
        assert rs["metadata"]["deletionTimestamp"]
        assert "foregroundDeletion" in rs["metadata"]["finalizers"]
        for pod in pods:
            patch = {"metadata": {"finalizers": None}}
            await client.patch(PODS, pod["metadata"]["name"], patch, ns)

        async def owner_gone() -> bool:
            return await gone(client, REPLICASETS, "fg", ns)

        await eventually(owner_gone, "the owner deleted after its dependents")


async def test_dangling_reference_and_any_resource(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "gc")
        owner = await client.create(CONFIGMAPS, {"metadata": {"name": "owner"}, "data": {"a": "1"}}, ns)
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
        await client.create(CONFIGMAPS, {"metadata": {"name": "dep", "ownerReferences": [ref]}}, ns)
        ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost", "uid": "0000-ghost"}
        await client.create(
            PODS, {"metadata": {"name": "stray", "ownerReferences": [ghost]}, "spec": {"containers": [container()]}}, ns
        )

        async def stray_gone() -> bool:
            return await gone(client, PODS, "stray", ns)

        await eventually(stray_gone, "a pod whose owner never existed collected")
        assert not await gone(client, CONFIGMAPS, "dep", ns)
        await client.delete(CONFIGMAPS, "owner", ns)

        async def dep_gone() -> bool:
            return await gone(client, CONFIGMAPS, "dep", ns)

        await eventually(dep_gone, "a ConfigMap owned by a deleted ConfigMap collected")


async def test_kubectl_foreground_cascade_through_deployment(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "gc")
        kc = server.kubeconfig
        code, _, err = await run_kubectl(
            KUBECTL, kc, "-n", ns, "create", "deployment", "chain", "--image=python:3", "--replicas=2"
        )
        assert code == 0, err

        async def two() -> bool:
            return len(await pods_of(client, ns, "app=chain")) == 2

        await eventually(two, "2 pods")
        code, _, err = await run_kubectl(
            KUBECTL,
            kc,
            "-n",
            ns,
            "delete",
            "deployment",
            "chain",
            "--cascade=foreground",
            "--wait=true",
            "--timeout=90s",
        )
        assert code == 0, err
        assert await gone(client, DEPLOYMENTS, "chain", ns)
        assert not (await client.list(REPLICASETS, ns))["items"]
        assert not (await client.list(PODS, ns))["items"]


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.gc.skiff.test"},
    "spec": {
        "group": "gc.skiff.test",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)
WIDGETS = Resource("gc.skiff.test", "v1", "widgets", "Widget")


async def test_custom_resources_own_and_are_owned(server: RunningApiServer) -> None:
    options = {"garbage-collector-rediscovery-period": 0.5}
    async with running_manager(server.kubeconfig, CONTROLLERS, options=options) as (client, _):
        await client.create(CRDS, CRD)

        async def established() -> bool:
            crd = await client.get(CRDS, "widgets.gc.skiff.test")
            conds = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            return conds.get("Established") == "True"

        await eventually(established, "the CRD established")
        ns = await new_namespace(client, "gc")
        widget = await client.create(
            WIDGETS, {"apiVersion": "gc.skiff.test/v1", "kind": "Widget", "metadata": {"name": "w"}}, ns
        )
        ref = {"apiVersion": "gc.skiff.test/v1", "kind": "Widget", "name": "w", "uid": widget["metadata"]["uid"]}
        await client.create(CONFIGMAPS, {"metadata": {"name": "owned-by-widget", "ownerReferences": [ref]}}, ns)
        cm = await client.get(CONFIGMAPS, "owned-by-widget", ns)
        cm_ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owned-by-widget", "uid": cm["metadata"]["uid"]}
        body = {
            "apiVersion": "gc.skiff.test/v1",
            "kind": "Widget",
            "metadata": {"name": "child", "ownerReferences": [cm_ref]},
        }
        await client.create(WIDGETS, body, ns)
        await client.delete(WIDGETS, "w", ns)

        async def chain_gone() -> bool:
            return await gone(client, CONFIGMAPS, "owned-by-widget", ns) and await gone(client, WIDGETS, "child", ns)

        await eventually(chain_gone, "a ConfigMap owned by a custom resource, and a custom resource it owns, collected")
