"""ServiceAccount/root CA, disruption, resource quota and pod GC controllers against a real API server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from apiserver_harness import RunningApiServer, running_apiserver
from cm_harness import eventually, new_namespace, running_manager
from svcnode_harness import running_controllers

from skiff.client import ApiClient, ApiError, is_not_found
from skiff.client.resources import (
    CONFIGMAPS,
    DEPLOYMENTS,
    PODDISRUPTIONBUDGETS,
    PODS,
    REPLICASETS,
    RESOURCEQUOTAS,
    SERVICEACCOUNTS,
    SERVICES,
)
from skiff.client.timefmt import rfc3339
from skiff.controllers.disruption import DisruptionController
from skiff.controllers.podgc import PodGCController
from skiff.controllers.resourcequota import ResourceQuotaController
from skiff.controllers.serviceaccount import RootCACertPublisher, ServiceAccountsController


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("misc-controllers")) as srv:
        yield srv


async def exists(client: ApiClient, res: Any, name: str, ns: str) -> dict[str, Any] | None:
    try:
        return await client.get(res, name, ns)
    except ApiError as err:
        if is_not_found(err):
            return None
        raise


async def test_default_service_account_and_root_ca(server: RunningApiServer) -> None:
    builders = [ServiceAccountsController, RootCACertPublisher]
    async with running_controllers(server.kubeconfig, builders, {"root-ca-file": str(server.pki.ca_cert)}) as client:
        ns = await new_namespace(client, "sa")

        async def default_sa() -> dict[str, Any] | None:
            return await exists(client, SERVICEACCOUNTS, "default", ns)

        first = await eventually(default_sa, "the default ServiceAccount")
        await client.delete(SERVICEACCOUNTS, "default", ns)

        async def recreated() -> bool:
            again = await default_sa()
            return again is not None and again["metadata"]["uid"] != first["metadata"]["uid"]

        await eventually(recreated, "the default ServiceAccount recreated")

        async def root_ca() -> dict[str, Any] | None:
            return await exists(client, CONFIGMAPS, "kube-root-ca.crt", ns)

        cm = await eventually(root_ca, "the kube-root-ca.crt ConfigMap")
        assert cm["data"] == {"ca.crt": server.pki.ca_cert.read_text()}
        cm["data"] = {"ca.crt": "tampered"}
        await client.update(CONFIGMAPS, cm)

        async def restored() -> bool:
            again = await root_ca()
            return again is not None and again["data"]["ca.crt"] == server.pki.ca_cert.read_text()

        await eventually(restored, "the root CA restored")


def owned_pod(name: str, rs: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"], "uid": rs["metadata"]["uid"]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "ownerReferences": [dict(ref, controller=True)]},
        "spec": {"containers": [{"name": "c", "image": "python:3"}]},
    }


async def set_ready(client: ApiClient, ns: str, name: str, ready: bool) -> None:
    status = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": rfc3339()}],
    }
    await client.patch(PODS, name, {"status": status}, ns, subresource="status")


async def test_pdb_status(server: RunningApiServer) -> None:
    async with running_controllers(server.kubeconfig, [DisruptionController]) as client:
        ns = await new_namespace(client, "pdb")
        labels = {"app": "db"}
        template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "python:3"}]}}
        spec = {"replicas": 4, "selector": {"matchLabels": labels}, "template": template}
        deployment = await client.create(DEPLOYMENTS, {"metadata": {"name": "db"}, "spec": spec}, ns)
        dep_ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "db", "uid": deployment["metadata"]["uid"]}
        rs_meta = {"name": "db-1", "labels": labels, "ownerReferences": [dict(dep_ref, controller=True)]}
        rs = await client.create(REPLICASETS, {"metadata": rs_meta, "spec": dict(spec, replicas=3)}, ns)
        for i in range(3):
            await client.create(PODS, owned_pod(f"db-{i}", rs, labels), ns)
            await set_ready(client, ns, f"db-{i}", ready=i < 2)
        pdb = {"metadata": {"name": "db"}, "spec": {"maxUnavailable": "25%", "selector": {"matchLabels": labels}}}
        await client.create(PODDISRUPTIONBUDGETS, pdb, ns)

        async def status(want: dict[str, Any]) -> dict[str, Any] | None:
            got = (await client.get(PODDISRUPTIONBUDGETS, "db", ns)).get("status") or {}
            return got if all(got.get(k) == v for k, v in want.items()) else None

        async def first() -> dict[str, Any] | None:
            # The Deployment's 4 replicas are the scale: desired 4 - ceil(25% of 4) = 3; 2 healthy.
            return await status({"expectedPods": 4, "desiredHealthy": 3, "currentHealthy": 2, "disruptionsAllowed": 0})

        got = await eventually(first, "PDB status with InsufficientPods")
        assert got["observedGeneration"] == 1
        (cond,) = got["conditions"]
        assert (cond["type"], cond["status"], cond["reason"]) == ("DisruptionAllowed", "False", "InsufficientPods")

        await set_ready(client, ns, "db-2", ready=True)
        await client.patch(DEPLOYMENTS, "db", {"spec": {"replicas": 2}}, ns)

        async def second() -> dict[str, Any] | None:
            return await status({"expectedPods": 2, "desiredHealthy": 1, "currentHealthy": 3, "disruptionsAllowed": 2})

        got = await eventually(second, "PDB status after scale-down and readiness")
        assert got["conditions"][0]["reason"] == "SufficientPods"


async def test_quota_usage(server: RunningApiServer) -> None:
    async with running_controllers(server.kubeconfig, [ResourceQuotaController]) as client:
        ns = await new_namespace(client, "quota")
        hard = {"pods": "10", "services": "5", "configmaps": "9", "requests.cpu": "2", "limits.memory": "1Gi"}
        await client.create(RESOURCEQUOTAS, {"metadata": {"name": "q"}, "spec": {"hard": hard}}, ns)
        resources = {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "100Mi"}}
        for i in range(2):
            body = {
                "metadata": {"name": f"p{i}"},
                "spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]},
            }
            await client.create(PODS, body, ns)
        await client.create(SERVICES, {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}, ns)
        await client.create(CONFIGMAPS, {"metadata": {"name": "c"}, "data": {}}, ns)

        async def used(want: dict[str, str]) -> dict[str, Any] | None:
            status = (await client.get(RESOURCEQUOTAS, "q", ns)).get("status") or {}
            return status if status.get("used") == want else None

        async def counted() -> dict[str, Any] | None:
            want = {"pods": "2", "services": "1", "requests.cpu": "500m", "limits.memory": "200Mi"}
            # configmaps: ours plus kube-root-ca.crt only if that controller runs (it does not here).
            return await used(dict(want, configmaps="1"))

        status = await eventually(counted, "quota usage counted")
        assert status["hard"] == hard
        await client.delete(PODS, "p0", ns, grace_period_seconds=0)

        async def released() -> dict[str, Any] | None:
            want = {"pods": "1", "services": "1", "configmaps": "1", "requests.cpu": "250m", "limits.memory": "100Mi"}
            return await used(want)

        await eventually(released, "usage released when a pod goes")


async def test_podgc_orphans_and_terminated(server: RunningApiServer) -> None:
    options = {"terminated-pod-gc-threshold": 1, "pod-gc-period": 0.2, "pod-gc-orphan-quarantine": 0.5}
    async with running_controllers(server.kubeconfig, [PodGCController], options) as client:
        ns = await new_namespace(client, "podgc")
        orphan = {
            "metadata": {"name": "orphan"},
            "spec": {"nodeName": f"no-such-node-{uuid.uuid4().hex[:4]}", "containers": [{"name": "c", "image": "x"}]},
        }
        await client.create(PODS, orphan, ns)

        async def orphan_gone() -> bool:
            return await exists(client, PODS, "orphan", ns) is None

        await eventually(orphan_gone, "the orphaned pod force-deleted")

        for i in range(3):
            await client.create(
                PODS, {"metadata": {"name": f"done-{i}"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}, ns
            )
            await client.patch(PODS, f"done-{i}", {"status": {"phase": "Succeeded"}}, ns, subresource="status")

        async def one_left() -> list[str] | None:
            names = [p["metadata"]["name"] for p in (await client.list(PODS, ns))["items"]]
            return names if len(names) == 1 else None

        # Above the threshold of 1 terminated pod: the oldest two go.
        assert await eventually(one_left, "terminated pods trimmed to the threshold") == ["done-2"]


MINE = [
    "endpoint",
    "endpointslice",
    "serviceaccount",
    "root-ca-cert-publisher",
    "nodeipam",
    "nodelifecycle",
    "taint-eviction-controller",
    "podgc",
    "disruption",
    "resourcequota",
]


async def test_all_run_under_the_manager_with_default_options(server: RunningApiServer) -> None:
    """Discovery and the manager's context (no options): the CA falls back to the kubeconfig's."""
    async with running_manager(server.kubeconfig, MINE) as (client, manager):
        assert set(manager.controllers) == set(MINE)
        ns = await new_namespace(client, "mgr")

        async def both() -> bool:
            sa = await exists(client, SERVICEACCOUNTS, "default", ns)
            cm = await exists(client, CONFIGMAPS, "kube-root-ca.crt", ns)
            return sa is not None and cm is not None and cm["data"]["ca.crt"] == server.pki.ca_cert.read_text()

        await eventually(both, "default ServiceAccount and root CA in a new namespace")
