"""The operator's CRDs against a real ``skiff apiserver`` and the real kubectl 1.32.

(Named test_etcd_crds.py: tests/apiserver/test_crds.py already owns the module
name ``test_crds`` on pytest's rootdir-relative import path.)

One server for the module.  ``ensure_crds`` must be idempotent and must repair
a drifted CRD; the original project's example manifests must apply unchanged
with kubectl's default strict field validation; ``kubectl get etcd`` shows the
printer columns; the schema rejects size 8 and version "latest" with 422.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from apiserver_harness import Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401

from skiff.client.config import ClientConfig
from skiff.client.errors import ApiError
from skiff.client.rest import ApiClient
from skiff.etcdoperator.crds import CUSTOMRESOURCEDEFINITIONS, crd_manifests, ensure_crds
from skiff.etcdoperator.resources import ETCDBACKUPS, ETCDCLUSTERS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "etcd-operator"
NAMESPACE = "default"


def _client(server: RunningApiServer) -> ApiClient:
    pki = server.pki
    config = ClientConfig(
        server=server.url, ca_file=str(pki.ca_cert), cert_file=str(pki.admin_cert), key_file=str(pki.admin_key)
    )
    return ApiClient(config, user_agent="etcd-operator-tests")


@pytest.fixture(scope="module")
def installed(apiserver: RunningApiServer) -> RunningApiServer:
    async def install() -> None:
        async with _client(apiserver) as client:
            await ensure_crds(client)

    asyncio.run(install())
    return apiserver


async def _resource_versions(client: ApiClient) -> dict[str, str]:
    out = {}
    for crd in crd_manifests():
        name = crd["metadata"]["name"]
        out[name] = (await client.get(CUSTOMRESOURCEDEFINITIONS, name))["metadata"]["resourceVersion"]
    return out


async def test_ensure_crds_is_idempotent(installed: RunningApiServer) -> None:
    async with _client(installed) as client:
        before = await _resource_versions(client)
        await ensure_crds(client)
        assert await _resource_versions(client) == before


async def test_ensure_crds_repairs_a_drifted_spec(installed: RunningApiServer) -> None:
    name = f"etcdclusters.{ETCDCLUSTERS.group}"
    async with _client(installed) as client:
        stored = await client.get(CUSTOMRESOURCEDEFINITIONS, name)
        drifted = copy.deepcopy(stored)
        drifted["spec"]["versions"][0]["additionalPrinterColumns"] = []
        await client.update(CUSTOMRESOURCEDEFINITIONS, drifted)
        await ensure_crds(client)
        repaired = await client.get(CUSTOMRESOURCEDEFINITIONS, name)
        assert repaired["spec"] == crd_manifests()[0]["spec"]
        assert repaired["metadata"]["uid"] == stored["metadata"]["uid"]  # updated in place, not recreated


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_original_examples_apply_unchanged(installed: RunningApiServer, kubectl: Kubectl, example: str) -> None:
    out = kubectl.ok("apply", "--namespace", NAMESPACE, "-f", str(EXAMPLES / example))
    doc = yaml.safe_load((EXAMPLES / example).read_text())
    assert doc["metadata"]["name"] in out
    applied = yaml.safe_load(
        kubectl.ok("get", "--namespace", NAMESPACE, doc["kind"], doc["metadata"]["name"], "-o", "yaml")
    )
    assert applied["spec"] == doc["spec"]  # nothing pruned


async def test_kubectl_get_etcd_prints_size_version_ready(installed: RunningApiServer, kubectl: Kubectl) -> None:
    async with _client(installed) as client:
        cluster = await client.create(
            ETCDCLUSTERS,
            {
                "apiVersion": ETCDCLUSTERS.api_version,
                "kind": "EtcdCluster",
                "metadata": {"name": "columns"},
                "spec": {"size": 3, "version": "3.5.1"},
            },
            NAMESPACE,
        )
        cluster["status"] = {"ready": "2/3", "currentVersion": "3.5.1", "phase": "Running"}
        await client.update_status(ETCDCLUSTERS, cluster)
    out = await asyncio.to_thread(kubectl.ok, "get", "etcd", "columns", "--namespace", NAMESPACE)
    header, row = out.splitlines()
    assert header.split() == ["NAME", "SIZE", "VERSION", "READY", "AGE"]
    assert row.split()[:4] == ["columns", "3", "3.5.1", "2/3"]


async def test_kubectl_get_backups_and_restores_columns(installed: RunningApiServer, kubectl: Kubectl) -> None:
    async with _client(installed) as client:
        backup = await client.create(
            ETCDBACKUPS,
            {
                "apiVersion": ETCDBACKUPS.api_version,
                "kind": "EtcdBackup",
                "metadata": {"name": "columns"},
                "spec": {"etcdCluster": {"name": "columns"}, "storageType": "Local", "local": {"path": "a/b"}},
            },
            NAMESPACE,
        )
        backup["status"] = {"succeeded": True, "etcdRevision": 42, "lastSuccessDate": "2020-01-01T00:00:00Z"}
        await client.update_status(ETCDBACKUPS, backup)
    out = await asyncio.to_thread(kubectl.ok, "get", "etcdbackups", "columns", "--namespace", NAMESPACE)
    header, row = out.splitlines()
    assert header.split() == ["NAME", "SUCCEEDED", "REVISION", "LAST-SUCCESS", "AGE"]
    assert row.split()[:3] == ["columns", "true", "42"]
    out = await asyncio.to_thread(kubectl.ok, "get", "etcdrestores", "--namespace", NAMESPACE)
    assert out.splitlines()[0].split() == ["NAME", "SUCCEEDED", "AGE"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param({"size": 8, "version": "3.5.1"}, "spec.size", id="size-8"),
        pytest.param({"size": 0}, "spec.size", id="size-0"),
        pytest.param({"size": 3, "version": "latest"}, "spec.version", id="version-latest"),
        pytest.param({"size": "3"}, "spec.size", id="size-string"),
    ],
)
async def test_invalid_cluster_is_422(installed: RunningApiServer, spec: dict[str, Any], field: str) -> None:
    body = {"apiVersion": ETCDCLUSTERS.api_version, "kind": "EtcdCluster", "metadata": {"name": "bad"}, "spec": spec}
    async with _client(installed) as client:
        with pytest.raises(ApiError) as raised:
            await client.create(ETCDCLUSTERS, body, NAMESPACE)
    err = raised.value
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.details is not None
    assert [c.field for c in err.details.causes] == [field]


async def test_invalid_backup_storage_type_is_422(installed: RunningApiServer) -> None:
    body = {
        "apiVersion": ETCDBACKUPS.api_version,
        "kind": "EtcdBackup",
        "metadata": {"name": "bad"},
        "spec": {"etcdEndpoints": ["http://127.0.0.1:2379"], "storageType": "FTP"},
    }
    async with _client(installed) as client:
        with pytest.raises(ApiError) as raised:
            await client.create(ETCDBACKUPS, body, NAMESPACE)
    assert (raised.value.code, raised.value.reason) == (422, "Invalid")


def test_manifests_shape() -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in crd_manifests()}
    assert list(by_kind) == ["EtcdCluster", "EtcdBackup", "EtcdRestore"]
    assert by_kind["EtcdCluster"]["spec"]["names"]["shortNames"] == ["etcd"]
    for kind, crd in by_kind.items():
        spec = crd["spec"]
        assert crd["metadata"]["name"] == f"{spec['names']['plural']}.etcd.database.coreos.com"
        assert spec["scope"] == "Namespaced"
        (version,) = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1beta2", True, True)
        assert version["subresources"] == {"status": {}}
        assert version["additionalPrinterColumns"][-1]["name"] == "Age", kind
    first, second = crd_manifests(), crd_manifests()
    first[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"].clear()
    assert second == crd_manifests()  # fresh dicts every call
