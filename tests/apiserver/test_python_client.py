"""The official ``kubernetes`` Python client against ``skiff apiserver``: configmap CRUD, list, watch."""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apiserver_harness import RunningApiServer, apiserver  # noqa: F401
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


@pytest.fixture
def core(apiserver: RunningApiServer) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


def _configmap(name: str, labels: dict[str, str]) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data={"a": "1"})


def test_configmap_create_read_list_patch_delete(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map("default", _configmap("py-cm", {"suite": "py"}))
    assert created.metadata.uid and int(created.metadata.resource_version) > 0
    read = core.read_namespaced_config_map("py-cm", "default")
    assert read.data == {"a": "1"}
    listed = core.list_namespaced_config_map("default", label_selector="suite=py")
    assert [cm.metadata.name for cm in listed.items] == ["py-cm"]
    patched = core.patch_namespaced_config_map("py-cm", "default", {"data": {"b": "2"}})  # strategic merge
    assert patched.data == {"a": "1", "b": "2"}
    replaced = core.patch_namespaced_config_map("py-cm", "default", [{"op": "replace", "path": "/data", "value": {}}])
    assert not replaced.data
    core.delete_namespaced_config_map("py-cm", "default")
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("py-cm", "default")
    assert err.value.status == 404
    assert core.list_namespaced_config_map("default", label_selector="suite=py").items == []


def test_stale_resource_version_is_a_conflict(core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", _configmap("py-rv", {}))
    cm.data = {"x": "1"}
    core.replace_namespaced_config_map("py-rv", "default", cm)
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("py-rv", "default", cm)  # still the old resourceVersion
    assert err.value.status == 409
    assert "the object has been modified" in err.value.body


def test_watch_from_list_resource_version(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map("default", label_selector="suite=pywatch").metadata.resource_version
    core.create_namespaced_config_map("default", _configmap("py-w1", {"suite": "pywatch"}))
    core.patch_namespaced_config_map("py-w1", "default", {"data": {"b": "2"}})
    core.create_namespaced_config_map("default", _configmap("py-w2", {"suite": "pywatch"}))
    core.delete_collection_namespaced_config_map("default", label_selector="suite=pywatch")
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        "default",
        label_selector="suite=pywatch",
        resource_version=start,
        timeout_seconds=2,
    )
    events = [(e["type"], e["object"].metadata.name) for e in stream]
    assert events[:3] == [("ADDED", "py-w1"), ("MODIFIED", "py-w1"), ("ADDED", "py-w2")]
    assert sorted(events[3:]) == [("DELETED", "py-w1"), ("DELETED", "py-w2")]
