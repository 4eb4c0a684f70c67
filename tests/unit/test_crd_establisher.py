"""The CRD establisher in process, over a real SqliteStore: serving, versions, cleanup finalizer, restart."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from skiff.api.status import ApiError
from skiff.apiserver.crds.crd_registry import CLEANUP_FINALIZER
from skiff.apiserver.crds.establisher import CrdEstablisher
from skiff.apiserver.served import ResourceRegistry, ServedResources
from skiff.registry.builtin import find
from skiff.registry.generic import GenericRegistry
from skiff.registry.listing import ListQuery
from skiff.registry.resource import Obj
from skiff.registry.watch_cache import WatchCache
from skiff.store.sqlite import SqliteStore

#: How long a test waits for the establisher to act before failing (never reached when it works).
DEADLINE_S = 10.0

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer", "default": 1}}},
    },
}


def _crd(versions: tuple[str, ...] = ("v1",), storage: str = "v1") -> Obj:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": v == storage,
                    "schema": {"openAPIV3Schema": copy.deepcopy(SCHEMA)},
                }
                for v in versions
            ],
        },
    }


def _widget(name: str, version: str = "v1", **meta: Any) -> Obj:
    return {
        "apiVersion": f"example.com/{version}",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "default", **meta},
        "spec": {},
    }


class Cluster:
    """The CRD row and an establisher over one store, as ApiServer wires them."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.served = ServedResources()
        info = find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert info is not None
        self.cache = WatchCache(store, info)
        self.served.add(info, GenericRegistry(store, info, self.cache))
        self.establisher: CrdEstablisher | None = None

    async def start(self) -> None:
        await self.cache.start()
        self.establisher = CrdEstablisher(self.store, self.served, retry_delay=0.05)
        await self.establisher.start()

    async def stop(self) -> None:
        if self.establisher is not None:
            await self.establisher.stop()
        await self.cache.stop()

    @property
    def crds(self) -> ResourceRegistry:
        row = self.served.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert row is not None
        return row.registry

    def widgets(self, version: str = "v1") -> ResourceRegistry:
        row = self.served.find("example.com", version, "widgets")
        assert row is not None, f"example.com/{version} widgets not served"
        return row.registry


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "store.db")
    yield opened
    await opened.close()


@pytest.fixture
async def cluster(store: SqliteStore) -> AsyncIterator[Cluster]:
    running = Cluster(store)
    await running.start()
    yield running
    await running.stop()


async def eventually(check: Callable[[], Any]) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    async with asyncio.timeout(DEADLINE_S):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.01)


async def established(cluster: Cluster) -> Obj:
    async def check() -> Obj | None:
        crd = await cluster.crds.get(None, "widgets.example.com")
        conditions = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
        return crd if conditions.get("Established") == "True" else None

    result: Obj = await eventually(check)
    return result


async def test_a_new_crd_is_served_then_established(cluster: Cluster) -> None:
    await cluster.crds.create(None, _crd())
    crd = await established(cluster)
    assert crd["status"]["acceptedNames"]["shortNames"] == ["wd"]
    info = cluster.served.find("example.com", "v1", "widgets")
    assert info is not None and info.info.short_names == ("wd",) and info.info.namespaced
    created = await cluster.widgets().create("default", _widget("w1"))
    assert created["spec"] == {"size": 1}


async def test_versions_share_storage_and_rewrite_api_version(cluster: Cluster, store: SqliteStore) -> None:
    await cluster.crds.create(None, _crd(("v1", "v1beta1"), storage="v1"))
    await established(cluster)
    created = await cluster.widgets("v1beta1").create("default", _widget("w", "v1beta1"))
    assert created["apiVersion"] == "example.com/v1beta1"
    stored = await store.get(b"/registry/example.com/widgets/default/w")
    assert stored is not None and orjson.loads(stored.value)["apiVersion"] == "example.com/v1"
    assert (await cluster.widgets("v1").get("default", "w"))["apiVersion"] == "example.com/v1"
    listed = await cluster.widgets("v1beta1").list("default", ListQuery())
    assert listed["apiVersion"] == "example.com/v1beta1"
    assert [i["apiVersion"] for i in listed["items"]] == ["example.com/v1beta1"]
    lines = await cluster.widgets("v1beta1").watch("default", ListQuery(resource_version="0", timeout_seconds=0.2))
    events = [orjson.loads(line) async for line in lines]
    assert [(e["type"], e["object"]["apiVersion"]) for e in events] == [("ADDED", "example.com/v1beta1")]


async def test_deletion_waits_for_custom_resources(cluster: Cluster) -> None:
    await cluster.crds.create(None, _crd())
    await established(cluster)
    await cluster.widgets().create("default", _widget("kept", finalizers=["example.com/hold"]))
    await cluster.widgets().create("default", _widget("plain"))

    marked, deleted = await cluster.crds.delete(None, "widgets.example.com", None)
    assert not deleted and CLEANUP_FINALIZER in marked["metadata"]["finalizers"]
    assert marked["metadata"]["deletionTimestamp"]

    async def only_kept_left() -> bool:
        items = (await cluster.widgets().list("default", ListQuery()))["items"]
        return [i["metadata"]["name"] for i in items] == ["kept"] and bool(
            items[0]["metadata"].get("deletionTimestamp")
        )

    await eventually(only_kept_left)
    with pytest.raises(ApiError) as refused:
        await cluster.widgets().create("default", _widget("late"))
    assert refused.value.code == 405
    assert refused.value.message == "create not allowed while custom resource definition is terminating"
    crd = await cluster.crds.get(None, "widgets.example.com")
    terminating = [c for c in crd["status"]["conditions"] if c["type"] == "Terminating"]
    assert [(c["status"], c["reason"]) for c in terminating] == [("True", "InstanceDeletionInProgress")]

    await cluster.widgets().patch(
        "default", "kept", lambda cur: {**(cur or {}), "metadata": {**(cur or {})["metadata"], "finalizers": []}}
    )

    async def crd_gone() -> bool:
        try:
            await cluster.crds.get(None, "widgets.example.com")
        except ApiError as err:
            return err.code == 404
        return False

    await eventually(crd_gone)
    await eventually(lambda: cluster.served.find("example.com", "v1", "widgets") is None)


async def test_a_restarted_establisher_serves_stored_crds(store: SqliteStore) -> None:
    first = Cluster(store)
    await first.start()
    await first.crds.create(None, _crd())
    await established(first)
    await first.widgets().create("default", _widget("survivor"))
    await first.stop()

    second = Cluster(store)
    await second.start()
    try:
        # start() returns with every stored CRD served: no waiting needed.
        assert (await second.widgets().get("default", "survivor"))["metadata"]["name"] == "survivor"
    finally:
        await second.stop()


async def test_conflicting_names_are_not_accepted(cluster: Cluster) -> None:
    await cluster.crds.create(None, _crd())
    await established(cluster)
    rival = _crd()
    rival["metadata"]["name"] = "gadgets.example.com"
    rival["spec"]["names"] = {"plural": "gadgets", "kind": "Gadget", "shortNames": ["wd"]}
    await cluster.crds.create(None, rival)

    async def rejected() -> Obj | None:
        crd = await cluster.crds.get(None, "gadgets.example.com")
        conditions = {c["type"]: c for c in (crd.get("status") or {}).get("conditions") or []}
        return conditions.get("NamesAccepted")

    condition = await eventually(rejected)
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False",
        "ShortNamesConflict",
        '"wd" is already in use',
    )
    assert cluster.served.find("example.com", "v1", "gadgets") is None


async def test_a_crd_overlapping_a_built_in_is_neither_served_nor_emptied(cluster: Cluster) -> None:
    await cluster.crds.create(None, _crd())
    await established(cluster)
    overlapping = _crd()
    overlapping["metadata"]["name"] = "customresourcedefinitions.apiextensions.k8s.io"
    overlapping["spec"]["group"] = "apiextensions.k8s.io"
    overlapping["spec"]["scope"] = "Cluster"
    overlapping["spec"]["names"] = {"plural": "customresourcedefinitions", "kind": "Hijack"}
    crds_row = cluster.served.find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    await cluster.crds.create(None, overlapping)
    name = "customresourcedefinitions.apiextensions.k8s.io"
    await eventually(lambda: cluster.crds.get(None, name))
    assert cluster.served.find("apiextensions.k8s.io", "v1", "customresourcedefinitions") == crds_row

    await cluster.crds.delete(None, name, None)

    async def gone() -> bool:
        names = [c["metadata"]["name"] for c in (await cluster.crds.list(None, ListQuery()))["items"]]
        return names == ["widgets.example.com"]

    await eventually(gone)  # deleted, and the built-in CRDs' storage was not emptied
