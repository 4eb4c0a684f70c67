"""The generic registry and the watch cache against a real SqliteStore (in-process, fast).

Resources here are hand-made rows with small strategies, so these tests pin
the storage semantics (metadata, conflicts, deletion, lists, watches) and not
any one kind's rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from skiff.api.status import ApiError
from skiff.registry import cache_watcher
from skiff.registry.deletion import pod_grace_period
from skiff.registry.generic import GenericRegistry
from skiff.registry.keys import object_key
from skiff.registry.listing import ListQuery, compile_selection
from skiff.registry.metadata import NAME_ALPHABET
from skiff.registry.resource import Obj, ResourceInfo, Strategy
from skiff.registry.watch_cache import WatchCache
from skiff.registry.watch_events import CachedObject, CacheEvent
from skiff.store.sqlite import SqliteStore

START = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class PodStrategy(Strategy):
    has_status = True
    field_selectors = ("spec.nodeName", "status.phase")

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        if "status" in old:
            new["status"] = old["status"]

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        new["spec"] = old.get("spec")

    def field_values(self, obj: Obj) -> dict[str, str]:
        return {
            "spec.nodeName": str((obj.get("spec") or {}).get("nodeName", "")),
            "status.phase": str((obj.get("status") or {}).get("phase", "")),
        }

    def graceful_delete_period(self, obj: Obj, requested: int | None) -> int:
        return pod_grace_period(obj, requested)


class TrackingStrategy(Strategy):
    has_status = True
    tracks_generation = True
    allow_create_on_update = False


class PutCreatesStrategy(Strategy):
    allow_create_on_update = True


CONFIGMAPS = ResourceInfo("", "v1", "configmaps", "configmap", "ConfigMap", True, strategy=PutCreatesStrategy())
PODS = ResourceInfo("", "v1", "pods", "pod", "Pod", True, strategy=PodStrategy())
DEPLOYMENTS = ResourceInfo("apps", "v1", "deployments", "deployment", "Deployment", True, strategy=TrackingStrategy())
NODES = ResourceInfo("", "v1", "nodes", "node", "Node", False)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "store.db")
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Env:
    """Registries (one watch cache each) over one store; closes the caches at the end."""

    def __init__(self, store: SqliteStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.caches: list[WatchCache] = []
        self._uids = (f"uid-{i}" for i in range(1_000_000))

    async def registry(self, info: ResourceInfo, **cache_options: Any) -> GenericRegistry:
        cache = WatchCache(self.store, info, **cache_options)
        await cache.start()
        self.caches.append(cache)
        return GenericRegistry(self.store, info, cache, clock=self.clock, uid=lambda: next(self._uids))

    async def close(self) -> None:
        for cache in self.caches:
            await cache.stop()


@pytest.fixture
async def env(store: SqliteStore, clock: Clock) -> AsyncIterator[Env]:
    e = Env(store, clock)
    yield e
    await e.close()


def cm(name: str = "", labels: dict[str, str] | None = None, **extra: Any) -> Obj:
    meta: dict[str, Any] = {"name": name} if name else {}
    if labels:
        meta["labels"] = labels
    meta.update(extra.pop("meta", {}))
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": extra or {"k": "v"}}


def pod(name: str, node: str = "", grace: int | None = None, **meta: Any) -> Obj:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
    if node:
        spec["nodeName"] = node
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta}, "spec": spec}


async def error_of(awaitable: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await awaitable
    return caught.value


def rv(obj: Obj) -> str:
    return str(obj["metadata"]["resourceVersion"])


@contextlib.asynccontextmanager
async def watching(registry: GenericRegistry, namespace: str | None, q: ListQuery) -> AsyncIterator[Any]:
    stream: Any = await registry.watch(namespace, q)
    try:
        yield stream
    finally:
        await stream.aclose()


async def next_event(stream: Any) -> dict[str, Any]:
    line = await asyncio.wait_for(anext(stream), 10)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    event: dict[str, Any] = json.loads(line)
    return event


def summary(event: dict[str, Any]) -> tuple[str, str]:
    return event["type"], event["object"]["metadata"].get("name", "")


# -- create / get -------------------------------------------------------------------------


async def test_create_fills_system_metadata_and_get_reads_it_back(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    created = await reg.create("default", cm("a"))
    meta = created["metadata"]
    assert (created["kind"], created["apiVersion"]) == ("ConfigMap", "v1")
    assert meta["namespace"] == "default"
    assert meta["uid"] == "uid-0"
    assert meta["creationTimestamp"] == "2024-05-01T12:00:00Z"
    assert "generation" not in meta
    assert int(meta["resourceVersion"]) == (await env.store.status()).revision
    assert await reg.get("default", "a") == created


@pytest.mark.parametrize(
    ("namespace", "body_namespace", "code", "message"),
    [
        pytest.param("default", "other", 400, "the namespace of the provided object does not match", id="mismatch"),
        pytest.param("default", "default", 0, "", id="same"),
    ],
)
async def test_create_namespace_rules(env: Env, namespace: str, body_namespace: str, code: int, message: str) -> None:
    reg = await env.registry(CONFIGMAPS)
    body = cm("a", meta={"namespace": body_namespace})
    if code:
        err = await error_of(reg.create(namespace, body))
        assert err.code == code and message in err.message
    else:
        assert (await reg.create(namespace, body))["metadata"]["namespace"] == namespace


async def test_cluster_scoped_objects_drop_a_namespace(env: Env) -> None:
    reg = await env.registry(NODES)
    created = await reg.create(None, {"metadata": {"name": "n1", "namespace": "x"}})
    assert "namespace" not in created["metadata"]
    assert (created["kind"], created["apiVersion"]) == ("Node", "v1")
    assert (await env.store.get(b"/registry/core/nodes/n1")) is not None


async def test_create_conflicts_and_missing_objects(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    await reg.create("default", cm("a"))
    err = await error_of(reg.create("default", cm("a")))
    assert err.body() == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \\"a\\" already'
        b' exists","reason":"AlreadyExists","details":{"name":"a","kind":"configmaps"},"code":409}\n'
    )
    err = await error_of(reg.get("default", "missing"))
    assert (err.code, err.message) == (404, 'configmaps "missing" not found')


async def test_generate_name_uses_kubernetes_alphabet_and_retries_collisions(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    first = await reg.create("default", cm(meta={"generateName": "web-"}))
    name = first["metadata"]["name"]
    assert name.startswith("web-") and len(name) == 9 and set(name[4:]) <= set(NAME_ALPHABET)
    suffixes = iter(["bbbbb", "bbbbb", "ccccc"])
    reg.name_suffix = lambda: next(suffixes)
    assert (await reg.create("default", cm(meta={"generateName": "x-"})))["metadata"]["name"] == "x-bbbbb"
    assert (await reg.create("default", cm(meta={"generateName": "x-"})))["metadata"]["name"] == "x-ccccc"


async def test_create_refuses_a_resource_version_and_dry_run_writes_nothing(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    err = await error_of(reg.create("default", cm("a", meta={"resourceVersion": "5"})))
    assert (err.code, err.message) == (500, "resourceVersion should not be set on objects to be created")
    before = (await env.store.status()).revision
    dry = await reg.create("default", cm("a"), dry_run=True)
    assert dry["metadata"]["uid"] and "resourceVersion" not in dry["metadata"]
    assert (await env.store.status()).revision == before
    assert (await error_of(reg.get("default", "a"))).code == 404


# -- update / patch -------------------------------------------------------------------------


async def test_update_checks_resource_version_and_skips_no_op_writes(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    created = await reg.create("default", cm("a"))
    stale = {**created, "data": {"k": "new"}}
    updated, was_created = await reg.update("default", "a", stale)
    assert not was_created and int(rv(updated)) > int(rv(created))
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    err = await error_of(reg.update("default", "a", stale))
    assert err.code == 409
    assert err.message == (
        'Operation cannot be fulfilled on configmaps "a": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    unconditional = cm("a", k="newer")
    again, _ = await reg.update("default", "a", unconditional)
    assert again["data"] == {"k": "newer"}
    assert again["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    same, _ = await reg.update("default", "a", again)
    assert rv(same) == rv(again)


async def test_update_creates_only_when_the_strategy_allows(env: Env) -> None:
    configmaps = await env.registry(CONFIGMAPS)
    obj, created = await configmaps.update("default", "new", cm("new"))
    assert created and obj["metadata"]["uid"]
    deployments = await env.registry(DEPLOYMENTS)
    err = await error_of(deployments.update("default", "d", {"metadata": {"name": "d"}, "spec": {}}))
    assert (err.code, err.message) == (404, 'deployments.apps "d" not found')
    err = await error_of(configmaps.update("default", "other", cm("new")))
    assert err.code == 400 and "does not match the name on the URL" in err.message


async def test_generation_tracks_spec_but_not_metadata_or_status(env: Env) -> None:
    reg = await env.registry(DEPLOYMENTS)
    d = await reg.create("default", {"metadata": {"name": "d"}, "spec": {"replicas": 1}})
    assert d["metadata"]["generation"] == 1
    d["metadata"]["labels"] = {"a": "b"}
    d, _ = await reg.update("default", "d", d)
    assert d["metadata"]["generation"] == 1
    d["spec"]["replicas"] = 2
    d["metadata"]["generation"] = 99  # clients cannot set it
    d, _ = await reg.update("default", "d", d)
    assert d["metadata"]["generation"] == 2
    d["status"] = {"replicas": 2}
    d, _ = await reg.update("default", "d", d, subresource="status")
    assert d["metadata"]["generation"] == 2


async def test_patch_retries_a_lost_race_and_honours_a_pinned_resource_version(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = await env.registry(CONFIGMAPS)
    await reg.create("default", cm("a", n="0", other="x"))
    real_update = env.store.update
    races = 1

    async def update_after_a_rival(key: bytes, value: bytes, mod_revision: int, lease: int = 0) -> int:
        nonlocal races
        if races:
            races -= 1
            rival = json.loads(value)
            rival["data"] = {"n": "0", "other": "rival"}
            await real_update(key, json.dumps(rival).encode(), mod_revision)
        return await real_update(key, value, mod_revision, lease)

    monkeypatch.setattr(env.store, "update", update_after_a_rival)
    seen: list[Obj] = []

    def increment(current: Obj | None) -> Obj:
        assert current is not None
        seen.append(copy.deepcopy(current))
        current["data"]["n"] = str(int(current["data"]["n"]) + 1)
        return current

    patched, created = await reg.patch("default", "a", increment)
    assert not created and len(seen) == 2
    assert patched["data"] == {"n": "1", "other": "rival"}  # re-applied on top of the rival's write
    assert (await reg.get("default", "a")) == patched

    def pin_old(current: Obj | None) -> Obj:
        assert current is not None
        current["metadata"]["resourceVersion"] = "1"
        return current

    assert (await error_of(reg.patch("default", "a", pin_old))).code == 409


async def cached_copy(reg: GenericRegistry, name: str, revision: str) -> CachedObject:
    """The watch cache's copy of configmap ``default/name`` once it has reached ``revision``."""
    key = object_key(CONFIGMAPS, "default", name)
    for _ in range(500):
        cached = reg.cache.cached(key)
        if cached is not None and str(cached.revision) == revision:
            return cached
        await asyncio.sleep(0.01)
    raise AssertionError(f"the cache never showed {key} at {revision}")


async def test_an_update_starts_from_the_cache_and_reads_no_store(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = await env.registry(CONFIGMAPS)
    created = await reg.create("default", cm("a", n="0"))
    await cached_copy(reg, "a", rv(created))
    reads = 0
    real_get = env.store.get

    async def counting_get(key: bytes, revision: int = 0) -> Any:
        nonlocal reads
        reads += 1
        return await real_get(key, revision)

    monkeypatch.setattr(env.store, "get", counting_get)
    updated, _ = await reg.update("default", "a", {**created, "data": {"n": "1"}})
    patched, _ = await reg.patch("default", "a", lambda current: {**(current or {}), "data": {"n": "2"}})
    assert reads == 0
    assert int(rv(patched)) > int(rv(updated)) > int(rv(created))
    assert (await reg.get("default", "a"))["data"] == {"n": "2"}


async def test_an_update_from_a_stale_cached_copy_is_judged_on_the_stored_object(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every answer is the one the stored object gives: a lost race, a pinned resourceVersion that only
    the store knows, and a write that is a no-op only against the old copy."""
    reg = await env.registry(CONFIGMAPS)
    created = await reg.create("default", cm("a", n="0"))
    stale = await cached_copy(reg, "a", rv(created))
    newer, _ = await reg.update("default", "a", {**created, "data": {"n": "1"}})
    await cached_copy(reg, "a", rv(newer))
    monkeypatch.setattr(reg.cache, "cached", lambda key: stale)
    seen: list[str] = []

    def increment(current: Obj | None) -> Obj:
        assert current is not None
        seen.append(current["data"]["n"])
        current["data"]["n"] = str(int(current["data"]["n"]) + 1)
        return current

    patched, _ = await reg.patch("default", "a", increment)
    assert seen == ["0", "1"]  # the stale copy lost the compare-and-swap; the winner came back with it
    assert patched["data"] == {"n": "2"}

    pinned, _ = await reg.update("default", "a", {**patched, "data": {"n": "3"}})
    assert pinned["data"] == {"n": "3"}  # the cache's copy is older than the pin: not a 409

    as_stale = stale.obj  # a fresh dict
    del as_stale["metadata"]["resourceVersion"]
    rewritten, _ = await reg.update("default", "a", as_stale)  # unchanged from the stale copy only
    assert rewritten["data"] == {"n": "0"} and int(rv(rewritten)) > int(rv(pinned))
    assert (await reg.get("default", "a"))["data"] == {"n": "0"}

    assert (await error_of(reg.update("default", "a", {**stale.obj, "data": {"n": "9"}}))).code == 409


async def test_patch_can_create_a_missing_object(env: Env) -> None:
    reg = await env.registry(DEPLOYMENTS)
    obj, created = await reg.patch(
        "default", "d", lambda cur: {"metadata": {"name": "d"}, "spec": {"x": 1}}, create_if_missing=True
    )
    assert created and obj["metadata"]["generation"] == 1
    assert (await error_of(reg.patch("default", "missing", lambda cur: cur or {}))).code == 404


# -- delete ------------------------------------------------------------------------------------


async def test_delete_returns_the_last_state_and_checks_preconditions(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    created = await reg.create("default", cm("a"))
    err = await error_of(reg.delete("default", "a", {"preconditions": {"uid": "other"}}))
    assert err.code == 409 and err.message.startswith('Operation cannot be fulfilled on ConfigMap "a": the UID')
    err = await error_of(reg.delete("default", "a", {"preconditions": {"resourceVersion": "1"}}))
    assert err.code == 409
    err = await error_of(reg.delete("default", "a", {"propagationPolicy": "Sideways"}))
    assert err.code == 422 and err.message.startswith('DeleteOptions.meta.k8s.io "" is invalid')
    obj, deleted = await reg.delete("default", "a", {"propagationPolicy": "Background"})
    assert deleted and obj == created
    assert (await error_of(reg.delete("default", "a", {}))).code == 404


async def test_finalizers_keep_an_object_until_an_update_removes_the_last_one(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    await reg.create("default", cm("a", meta={"finalizers": ["example.com/f"]}))
    env.clock.now = START + timedelta(seconds=7)
    obj, deleted = await reg.delete("default", "a", {})
    assert not deleted
    assert obj["metadata"]["deletionTimestamp"] == "2024-05-01T12:00:07Z"
    assert obj["metadata"]["deletionGracePeriodSeconds"] == 0
    again, deleted = await reg.delete("default", "a", {})
    assert not deleted and rv(again) == rv(obj)
    obj["metadata"]["finalizers"] = []
    await reg.update("default", "a", obj)
    assert (await error_of(reg.get("default", "a"))).code == 404


@pytest.mark.parametrize(
    ("policy", "finalizer"),
    [pytest.param("Foreground", "foregroundDeletion", id="foreground"), pytest.param("Orphan", "orphan", id="orphan")],
)
async def test_propagation_policies_add_their_finalizer(env: Env, policy: str, finalizer: str) -> None:
    reg = await env.registry(CONFIGMAPS)
    await reg.create("default", cm("a"))
    obj, deleted = await reg.delete("default", "a", {"propagationPolicy": policy})
    assert not deleted
    assert obj["metadata"]["finalizers"] == [finalizer] and obj["metadata"]["deletionTimestamp"]


async def test_pod_graceful_deletion(env: Env) -> None:
    reg = await env.registry(PODS)
    await reg.create("default", pod("unbound", grace=30))
    _, deleted = await reg.delete("default", "unbound", {})
    assert deleted
    await reg.create("default", pod("bound", node="n1", grace=30))
    obj, deleted = await reg.delete("default", "bound", {})
    assert not deleted
    assert obj["metadata"]["deletionTimestamp"] == "2024-05-01T12:00:30Z"
    assert obj["metadata"]["deletionGracePeriodSeconds"] == 30
    pending, deleted = await reg.delete("default", "bound", {})
    assert not deleted and rv(pending) == rv(obj)
    _, deleted = await reg.delete("default", "bound", {"gracePeriodSeconds": 0})
    assert deleted
    assert (await error_of(reg.get("default", "bound"))).code == 404


# -- list ----------------------------------------------------------------------------------------


async def test_list_sorts_filters_and_never_returns_null_items(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    empty = await reg.list("default", ListQuery())
    assert empty["items"] == [] and empty["kind"] == "ConfigMapList" and empty["apiVersion"] == "v1"
    for ns, name, env_label in [("b", "z", "prod"), ("a", "y", "dev"), ("a", "x", "prod")]:
        await reg.create(ns, cm(name, labels={"env": env_label}))
    everything = await reg.list(None, ListQuery())
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everything["items"]] == [
        ("a", "x"),
        ("a", "y"),
        ("b", "z"),
    ]
    assert everything["metadata"]["resourceVersion"] == str((await env.store.status()).revision)
    names = lambda listed: [i["metadata"]["name"] for i in listed["items"]]  # noqa: E731
    assert names(await reg.list("a", ListQuery())) == ["x", "y"]
    assert names(await reg.list(None, ListQuery(label_selector="env=prod"))) == ["x", "z"]
    assert names(await reg.list(None, ListQuery(field_selector="metadata.namespace=b"))) == ["z"]
    assert names(await reg.list(None, ListQuery(field_selector="metadata.name!=x", resource_version="0"))) == ["y", "z"]
    err = await error_of(reg.list(None, ListQuery(field_selector="spec.foo=1")))
    assert (err.code, err.message) == (400, "field label not supported: spec.foo")


async def test_pagination_is_a_consistent_snapshot_across_writes(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    for name in "abcde":
        await reg.create("default", cm(name))
    first = await reg.list("default", ListQuery(limit=2))
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 3
    await reg.delete("default", "c", {})
    await reg.create("default", cm("bb"))
    second = await reg.list("default", ListQuery(limit=2, continue_token=first["metadata"]["continue"]))
    assert [i["metadata"]["name"] for i in second["items"]] == ["c", "d"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    third = await reg.list("default", ListQuery(limit=2, continue_token=second["metadata"]["continue"]))
    assert [i["metadata"]["name"] for i in third["items"]] == ["e"]
    assert "continue" not in third["metadata"]


async def test_continue_after_compaction_is_gone(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    for name in "abc":
        await reg.create("default", cm(name))
    first = await reg.list("default", ListQuery(limit=1))
    await reg.create("default", cm("d"))
    await env.store.compact((await env.store.status()).revision)
    err = await error_of(reg.list("default", ListQuery(limit=1, continue_token=first["metadata"]["continue"])))
    assert (err.code, err.reason) == (410, "Expired")
    assert err.message.startswith("The provided continue parameter is too old to display a consistent list result.")
    bad = await error_of(reg.list("default", ListQuery(continue_token="not-a-token")))
    assert bad.code == 400


async def test_exact_list_reads_a_past_revision(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    a = await reg.create("default", cm("a"))
    await reg.create("default", cm("b"))
    past = await reg.list("default", ListQuery(resource_version=rv(a), resource_version_match="Exact"))
    assert [i["metadata"]["name"] for i in past["items"]] == ["a"]
    err = await error_of(reg.list("default", ListQuery(resource_version_match="Exact")))
    assert err.code == 422


# -- watch ------------------------------------------------------------------------------------------


async def test_watch_without_resource_version_starts_with_the_current_objects(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    await reg.create("default", cm("a"))
    async with watching(reg, "default", ListQuery()) as stream:
        assert summary(await next_event(stream)) == ("ADDED", "a")
        b = await reg.create("default", cm("b"))
        assert summary(await next_event(stream)) == ("ADDED", "b")
        b["data"] = {"k": "2"}
        await reg.update("default", "b", b)
        assert summary(await next_event(stream)) == ("MODIFIED", "b")
        last, _ = await reg.delete("default", "b", {})
        event = await next_event(stream)
        assert summary(event) == ("DELETED", "b")
        assert event["object"]["data"] == {"k": "2"}
        assert int(rv(event["object"])) == (await env.store.status()).revision > int(rv(last))


async def test_a_coalesced_watch_joins_waiting_lines_in_order(env: Env) -> None:
    """coalesce=True: the initial ADDED lines and events that queued up meanwhile come several to an item."""
    reg = await env.registry(CONFIGMAPS)
    for name in "ab":
        await reg.create("default", cm(name))
    stream: Any = await reg.watch("default", ListQuery(), coalesce=True)
    try:
        first = await asyncio.wait_for(anext(stream), 10)
        assert [summary(json.loads(line)) for line in first.splitlines()] == [("ADDED", "a"), ("ADDED", "b")]
        for name in "cde":  # written while the consumer is not reading: they queue up
            await reg.create("default", cm(name))
        batch = await asyncio.wait_for(anext(stream), 10)
        assert batch.endswith(b"\n")
        assert [summary(json.loads(line)) for line in batch.splitlines()] == [("ADDED", n) for n in "cde"]
    finally:
        await stream.aclose()


async def test_watch_from_a_resource_version_replays_what_followed(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    a = await reg.create("default", cm("a"))
    await reg.create("default", cm("b"))
    await reg.delete("default", "a", {})
    async with watching(reg, "default", ListQuery(resource_version=rv(a))) as stream:
        assert summary(await next_event(stream)) == ("ADDED", "b")
        assert summary(await next_event(stream)) == ("DELETED", "a")


async def test_watch_older_than_the_ring_reads_the_store_or_reports_410(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS, capacity=2)
    a = await reg.create("default", cm("a"))
    for name in "bcd":
        await reg.create("default", cm(name))
    assert reg.cache.history_from > int(rv(a))
    async with watching(reg, "default", ListQuery(resource_version=rv(a))) as stream:
        assert [summary(await next_event(stream)) for _ in range(3)] == [("ADDED", n) for n in "bcd"]
        await reg.create("default", cm("e"))
        assert summary(await next_event(stream)) == ("ADDED", "e")
    await env.store.compact((await env.store.status()).revision)
    async with watching(reg, "default", ListQuery(resource_version=rv(a))) as stream:
        event = await next_event(stream)
        assert event["type"] == "ERROR"
        assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
        assert event["object"]["message"].startswith(f"too old resource version: {rv(a)} (")
        with pytest.raises(StopAsyncIteration):
            await anext(stream)


async def test_watch_selectors_turn_label_changes_into_added_and_deleted(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    obj = await reg.create("default", cm("a", labels={"env": "dev"}))
    async with watching(reg, "default", ListQuery(label_selector="env=prod", resource_version=rv(obj))) as stream:
        obj["metadata"]["labels"] = {"env": "prod"}
        obj, _ = await reg.update("default", "a", obj)
        assert summary(await next_event(stream)) == ("ADDED", "a")
        obj["metadata"]["labels"] = {"env": "dev"}
        moved, _ = await reg.update("default", "a", obj)
        event = await next_event(stream)
        assert summary(event) == ("DELETED", "a")
        assert event["object"]["metadata"]["labels"] == {"env": "prod"}  # the last state it matched in
        assert rv(event["object"]) == rv(moved)


async def test_bookmarks_carry_the_cache_revision(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS, bookmark_interval=0.01)
    created = await reg.create("default", cm("a"))
    q = ListQuery(resource_version=rv(created), allow_watch_bookmarks=True)
    async with watching(reg, "default", q) as stream:
        event = await next_event(stream)
        assert event == {
            "type": "BOOKMARK",
            "object": {
                "kind": "ConfigMap",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": rv(created), "creationTimestamp": None},
            },
        }


async def test_timeout_ends_the_stream(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    async with watching(reg, "default", ListQuery(resource_version="0", timeout_seconds=0.01)) as stream:
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(stream), 10)


async def test_node_watchers_are_indexed_and_only_offered_their_pods(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = await env.registry(PODS)
    offers: list[str] = []
    original = cache_watcher.CacheWatcher.offer

    def counting(self: cache_watcher.CacheWatcher, event: Any) -> None:
        offers.append(self.selection.index[1] if self.selection.index else "")
        original(self, event)

    monkeypatch.setattr(cache_watcher.CacheWatcher, "offer", counting)
    streams = {}
    async with contextlib.AsyncExitStack() as stack:
        for node in ("n1", "n2", "n3"):
            q = ListQuery(field_selector=f"spec.nodeName={node}", resource_version="0")
            streams[node] = await stack.enter_async_context(watching(reg, None, q))
        one, two, three = await started(reg, *streams.values())
        await reg.create("default", pod("p2", node="n2"))
        await reg.create("default", pod("p1", node="n1"))
        assert summary(json.loads(await one)) == ("ADDED", "p1")
        assert summary(json.loads(await two)) == ("ADDED", "p2")
        assert offers == ["n2", "n1"]
        three.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await three


async def started(reg: GenericRegistry, *streams: Any) -> list[asyncio.Task[bytes]]:
    """Begin reading each stream (watchers register on first read); returns the pending first reads."""
    before = reg.cache.watcher_count()
    tasks = [asyncio.create_task(anext(stream)) for stream in streams]
    while reg.cache.watcher_count() < before + len(streams):  # noqa: ASYNC110 - no event to wait on: yield until they ran
        await asyncio.sleep(0)
    return tasks


async def test_each_event_is_serialised_once_for_all_watchers(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    q = ListQuery(resource_version="0")
    async with watching(reg, "default", q) as one, watching(reg, None, q) as two:
        first, second = await started(reg, one, two)
        await reg.create("default", cm("a"))
        assert (await first) is (await second)
        assert json.loads(await first)["type"] == "ADDED"


def test_a_watcher_that_falls_behind_is_closed() -> None:
    selection = compile_selection(ListQuery(), CONFIGMAPS)
    w = cache_watcher.CacheWatcher("", selection, max_queue=2)
    for i, name in enumerate("abc"):
        obj = cm(name, meta={"namespace": "default", "resourceVersion": str(i + 1)})
        w.offer(CacheEvent("ADDED", i + 1, CachedObject(f"/k/{name}", obj, i + 1, {}), None))
    assert w.closed and w.overflowed and w.pending() == 2


async def test_handing_a_live_event_to_a_stream_observes_the_watch_delay() -> None:
    """Live events (received from the store) are timed; events replayed from history (received 0) are not."""
    selection = compile_selection(ListQuery(), CONFIGMAPS)
    w = cache_watcher.CacheWatcher("", selection)
    delay = cache_watcher.WATCH_EVENT_DELAY

    def observed() -> float:
        return next(s.value for s in delay.collect()[0].samples if s.name.endswith("_count"))

    before = observed()
    obj = cm("a", meta={"namespace": "default", "resourceVersion": "1"})
    w.offer(CacheEvent("ADDED", 1, CachedObject("/k/a", obj, 1, {}), None, received=time.monotonic() - 0.5))
    w.offer(CacheEvent("MODIFIED", 2, CachedObject("/k/a", obj, 2, {}), None))
    assert await w.next_line(0) is not None and await w.next_line(0) is not None
    assert observed() == before + 1
    big = [s for s in delay.collect()[0].samples if s.name.endswith("_bucket") and s.labels["le"] == "0.25"]
    assert big and big[0].value < observed()  # the 0.5 s delay landed above the 0.25 s bucket


async def test_consistent_list_sees_writes_made_behind_the_cache(env: Env) -> None:
    reg = await env.registry(CONFIGMAPS)
    other = GenericRegistry(env.store, CONFIGMAPS, reg.cache)
    await other.create("default", cm("a"))
    listed = await reg.list("default", ListQuery())
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a"]


async def test_builtin_pods_and_deployments_through_the_registry(env: Env) -> None:
    """The real resource table's strategies run in the registry's sequence (defaults, status, generation)."""
    from skiff.registry import builtin

    pods_info = builtin.find("", "v1", "pods")
    deployments_info = builtin.find("apps", "v1", "deployments")
    assert pods_info is not None and deployments_info is not None
    pods = await env.registry(pods_info)
    created = await pods.create("default", pod("p", node="n1"))
    assert created["status"]["phase"] == "Pending"
    listed = await pods.list(None, ListQuery(field_selector="spec.nodeName=n1"))
    assert [i["metadata"]["name"] for i in listed["items"]] == ["p"]
    invalid = await error_of(pods.create("default", pod("Bad_Name")))
    assert invalid.code == 422 and invalid.reason == "Invalid"

    deployments = await env.registry(deployments_info)
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    body = {"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template}}
    d = await deployments.create("default", body)
    assert d["metadata"]["generation"] == 1
    d["spec"]["replicas"] = 3
    d, _ = await deployments.update("default", "d", d)
    assert d["metadata"]["generation"] == 2
