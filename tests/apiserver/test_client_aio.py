"""The asyncio flavour of the official client (``kubernetes.aio`` in v37) against ``skiff apiserver``.

Equivalents of the kubernetes_asyncio e2e tests: typed CRUD, watch, the
utils' create_from_yaml, server-side apply through a typed patch, and the
dynamic client (discovery, then create/get/patch/delete of a ConfigMap).
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from apiserver_harness import RunningApiServer, apiserver  # noqa: F401
from kubernetes.aio import client, config, utils, watch
from kubernetes.aio.client.rest import ApiException
from kubernetes.aio.dynamic import DynamicClient

NS = "py-aio"


@pytest.fixture
async def api(apiserver: RunningApiServer) -> AsyncIterator[client.ApiClient]:
    api_client = await config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        try:
            await client.CoreV1Api(api_client).create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=NS))
            )
        except ApiException as err:
            assert err.status == 409  # made by an earlier test of this module
        yield api_client
    finally:
        await api_client.close()


async def test_configmap_crud(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="aio-cm", labels={"suite": "aio"}), data={"a": "1"})
    created = await core.create_namespaced_config_map(NS, body)
    assert created.metadata.namespace == NS
    listed = await core.list_namespaced_config_map(NS, label_selector="suite=aio")
    assert [item.metadata.name for item in listed.items] == ["aio-cm"]
    patched = await core.patch_namespaced_config_map("aio-cm", NS, {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    await core.delete_namespaced_config_map("aio-cm", NS)
    with pytest.raises(ApiException) as caught:
        await core.read_namespaced_config_map("aio-cm", NS)
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["reason"] == "NotFound"


async def test_watch_from_resource_version(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    start = (await core.list_namespaced_config_map(NS, label_selector="suite=aio-watch")).metadata.resource_version
    labels = {"suite": "aio-watch"}
    await core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="aw", labels=labels))
    )
    await core.patch_namespaced_config_map("aw", NS, {"data": {"x": "1"}})
    await core.delete_namespaced_config_map("aw", NS)
    events = []
    async with watch.Watch().stream(
        core.list_namespaced_config_map,
        NS,
        label_selector="suite=aio-watch",
        resource_version=start,
        timeout_seconds=1,
    ) as stream:
        async for event in stream:
            events.append((event["type"], event["object"].metadata.name))
    assert events == [("ADDED", "aw"), ("MODIFIED", "aw"), ("DELETED", "aw")]


async def test_create_from_yaml_and_apply_patch(api: client.ApiClient, tmp_path: Path) -> None:
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: aio-deploy\nspec:\n  replicas: 1\n"
        "  selector:\n    matchLabels: {app: aio}\n  template:\n    metadata:\n      labels: {app: aio}\n"
        "    spec:\n      containers:\n      - {name: nginx, image: 'nginx:1.25'}\n"
    )
    created = await utils.create_from_yaml(api, str(manifest), namespace=NS)
    assert [obj.metadata.name for group in created for obj in group] == ["aio-deploy"]

    # Server-side apply through the typed API on an object that does not exist yet creates it.
    core = client.CoreV1Api(api)
    applied = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aio-applied", "namespace": NS},
        "data": {"k": "v"},
    }
    result = await core.patch_namespaced_config_map(
        "aio-applied", NS, applied, field_manager="aio-test", _content_type="application/apply-patch+yaml"
    )
    assert result.data == {"k": "v"}
    assert (await core.read_namespaced_config_map("aio-applied", NS)).metadata.uid == result.metadata.uid


async def test_dynamic_client_configmap(api: client.ApiClient) -> None:
    dynamic = await DynamicClient(api)
    configmaps = await dynamic.resources.get(api_version="v1", kind="ConfigMap")
    assert (configmaps.name, configmaps.namespaced) == ("configmaps", True)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aio-dyn"}, "data": {"a": "1"}}
    created = await dynamic.create(configmaps, body=body, namespace=NS)
    assert created.metadata.name == "aio-dyn"
    got = await dynamic.get(configmaps, name="aio-dyn", namespace=NS)
    assert got.data.a == "1"
    patched = await dynamic.patch(
        configmaps,
        body={"metadata": {"name": "aio-dyn"}, "data": {"b": "2"}},
        namespace=NS,
        content_type="application/merge-patch+json",
    )
    assert patched.to_dict()["data"] == {"a": "1", "b": "2"}
    deployments = await dynamic.resources.get(api_version="apps/v1", kind="Deployment")
    assert deployments.group == "apps"
    listed = await dynamic.get(configmaps, namespace=NS)
    assert "aio-dyn" in [item.metadata.name for item in listed.items]
    deleted = await dynamic.delete(configmaps, name="aio-dyn", namespace=NS)
    assert deleted.status == "Success"
    with pytest.raises(Exception) as caught:
        await dynamic.get(configmaps, name="aio-dyn", namespace=NS)
    assert getattr(caught.value, "status", None) == 404
