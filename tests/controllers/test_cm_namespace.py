"""Namespace deletion end to end: content removed, conditions written, finalizer released, namespace gone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apiserver_harness import KUBECTL, RunningApiServer, running_apiserver
from cm_harness import container, eventually, new_namespace, run_kubectl, running_manager

from skiff.client import ApiClient, is_not_found
from skiff.client.resources import CONFIGMAPS, NAMESPACES, PODS, REPLICASETS, SECRETS

CONTROLLERS = ["namespace", "garbagecollector", "replicaset"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("cm-ns")) as srv:
        yield srv


async def fill(client: ApiClient, ns: str) -> None:
    labels = {"app": "x"}
    rs = {
        "metadata": {"name": "x"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container()]}},
        },
    }
    await client.create(REPLICASETS, rs, ns)
    await client.create(CONFIGMAPS, {"metadata": {"name": "cfg"}, "data": {"k": "v"}}, ns)
    await client.create(SECRETS, {"metadata": {"name": "sec"}, "stringData": {"k": "v"}}, ns)

    async def pods() -> bool:
        return len((await client.list(PODS, ns))["items"]) == 2

    await eventually(pods, "pods created")


async def namespace_gone(client: ApiClient, name: str) -> bool:
    try:
        await client.get(NAMESPACES, name)
    except Exception as err:
        if is_not_found(err):
            return True
        raise
    return False


async def test_kubectl_delete_namespace_completes(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "nsdel")
        await fill(client, ns)
        code, out, err = await run_kubectl(KUBECTL, server.kubeconfig, "delete", "namespace", ns, "--timeout=90s")
        assert code == 0, err
        assert f'namespace "{ns}" deleted' in out
        assert await namespace_gone(client, ns)


async def test_finalizer_on_content_holds_namespace(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "nsfin")
        await client.create(CONFIGMAPS, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}, ns)
        await client.delete(NAMESPACES, ns)

        async def reported() -> dict[str, dict[str, str]] | None:
            got = await client.get(NAMESPACES, ns)
            conds = {c["type"]: c for c in got.get("status", {}).get("conditions") or []}
            remaining = conds.get("NamespaceContentRemaining", {})
            return conds if remaining.get("status") == "True" else None

        conds = await eventually(reported, "NamespaceContentRemaining=True")
        assert conds["NamespaceContentRemaining"]["reason"] == "SomeResourcesRemain"
        assert "configmaps has 1 resource instances" in conds["NamespaceContentRemaining"]["message"]
        assert conds["NamespaceFinalizersRemaining"]["status"] == "True"
        assert "example.com/hold in 1 resource instances" in conds["NamespaceFinalizersRemaining"]["message"]
        assert conds["NamespaceDeletionDiscoveryFailure"]["status"] == "False"
        got = await client.get(NAMESPACES, ns)
        assert got["status"]["phase"] == "Terminating" and got["spec"]["finalizers"] == ["kubernetes"]
        await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, ns)

        async def gone() -> bool:
            return await namespace_gone(client, ns)

        await eventually(gone, "namespace removed once its content is gone")
