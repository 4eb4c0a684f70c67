"""The REST client, informers, leader election and events against a real ``skiff apiserver``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from apiserver_harness import RunningApiServer, running_apiserver

from skiff.client import ApiClient, ApiError, ClientConfig, is_already_exists, is_conflict, is_not_found
from skiff.client.events import EventRecorder
from skiff.client.informer import InformerFactory, meta_key
from skiff.client.leader import LeaderElector
from skiff.client.resources import CONFIGMAPS, EVENTS, LEASES, NAMESPACES
from skiff.client.rest import decode_event


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("client")) as running:
        yield running


@pytest_asyncio.fixture
async def client(server: RunningApiServer) -> AsyncIterator[ApiClient]:
    async with ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig), user_agent="skiff-test") as api:
        yield api


def cm(name: str, **data: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": data}


async def until(predicate: Callable[[], bool], within_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_crud_and_typed_errors(client: ApiClient) -> None:
    created = await client.create(CONFIGMAPS, cm("crud", a="1"))
    assert created["metadata"]["uid"]
    with pytest.raises(ApiError) as exists:
        await client.create(CONFIGMAPS, cm("crud"))
    assert is_already_exists(exists.value) and not is_conflict(exists.value)
    stale = dict(created, data={"a": "2"})
    updated = await client.update(CONFIGMAPS, stale)
    with pytest.raises(ApiError) as conflict:
        await client.update(CONFIGMAPS, dict(created, data={"a": "3"}))
    assert is_conflict(conflict.value) and conflict.value.code == 409
    patched = await client.patch(CONFIGMAPS, "crud", {"data": {"b": "x"}}, "default")
    assert patched["data"] == {"a": "2", "b": "x"}
    assert updated["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    listed = await client.list(CONFIGMAPS, "default", field_selector="metadata.name=crud")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["crud"]
    assert listed["items"][0]["kind"] == "ConfigMap"
    await client.delete(CONFIGMAPS, "crud", "default")
    with pytest.raises(ApiError) as gone:
        await client.get(CONFIGMAPS, "crud", "default")
    assert is_not_found(gone.value)
    assert gone.value.message == 'configmaps "crud" not found'


async def test_list_all_follows_continue_tokens(client: ApiClient) -> None:
    await asyncio.gather(*(client.create(CONFIGMAPS, cm(f"page-{i}")) for i in range(7)))
    first = await client.list(CONFIGMAPS, "default", limit=3, label_selector=None)
    assert first["metadata"].get("continue")
    everything = await client.list_all(CONFIGMAPS, "default")
    names = {i["metadata"]["name"] for i in everything["items"]}
    assert {f"page-{i}" for i in range(7)} <= names


async def test_watch_streams_events_in_order(client: ApiClient) -> None:
    start = await client.list(CONFIGMAPS, "default")
    rv = start["metadata"]["resourceVersion"]

    async def collect() -> list[tuple[str, str]]:
        seen = []
        async for event in client.watch(CONFIGMAPS, "default", resource_version=rv, allow_bookmarks=False):
            seen.append((event.type, event.object["metadata"]["name"]))
            if len(seen) == 3:
                return seen
        return seen

    watcher = asyncio.create_task(collect())
    await client.create(CONFIGMAPS, cm("w1"))
    await client.patch(CONFIGMAPS, "w1", {"data": {"k": "v"}}, "default")
    await client.delete(CONFIGMAPS, "w1", "default")
    assert await asyncio.wait_for(watcher, 20) == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_error_events_become_api_errors() -> None:
    line = b'{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
    line += b'"message":"too old resource version: 1 (5)","reason":"Expired","code":410}}'
    with pytest.raises(ApiError) as expired:
        decode_event(line, CONFIGMAPS)
    assert (expired.value.code, expired.value.reason) == (410, "Expired")


async def test_informer_keeps_a_cache_and_calls_handlers(client: ApiClient) -> None:
    await client.create(CONFIGMAPS, cm("inf-before"))
    factory = InformerFactory(client)
    informer = factory.informer(CONFIGMAPS, "default")
    informer.add_index("by-data", lambda o: sorted((o.get("data") or {}).keys()))
    calls: list[tuple[str, str]] = []
    informer.add_handler(
        on_add=lambda o: calls.append(("add", meta_key(o))),
        on_update=lambda old, new: calls.append(("update", meta_key(new))),
        on_delete=lambda o: calls.append(("delete", meta_key(o))),
    )
    await factory.start()
    try:
        await asyncio.wait_for(factory.wait_synced(), 20)
        assert informer.get("default/inf-before") is not None
        created = await client.create(CONFIGMAPS, cm("inf-after", colour="red"))
        await until(lambda: ("add", "default/inf-after") in calls)
        # The server tracks managedFields; the cache leaves them out (client-go's TransformStripManagedFields).
        assert created["metadata"]["managedFields"]
        assert all("managedFields" not in o["metadata"] for o in informer.list())
        assert [o["metadata"]["name"] for o in informer.by_index("by-data", "colour")] == ["inf-after"]
        await client.patch(CONFIGMAPS, "inf-after", {"data": {"colour": None, "size": "l"}}, "default")
        await until(lambda: ("update", "default/inf-after") in calls)
        assert informer.by_index("by-data", "colour") == []
        await client.delete(CONFIGMAPS, "inf-after", "default")
        await until(lambda: ("delete", "default/inf-after") in calls)
        assert informer.get("default/inf-after") is None
    finally:
        await factory.stop()


async def test_one_leader_at_a_time_and_handover_on_stop(client: ApiClient) -> None:
    leading: list[str] = []

    def elector(identity: str) -> LeaderElector:
        return LeaderElector(
            client, name="test-leader", identity=identity, lease_duration_s=2, renew_deadline_s=1.5, retry_period_s=0.2
        )

    first, second = elector("one"), elector("two")

    def lead_as(identity: str) -> object:
        async def lead() -> None:
            leading.append(identity)
            await asyncio.Event().wait()

        return lead

    run_first = asyncio.create_task(first.run(lead_as("one")))  # type: ignore[arg-type]
    await until(lambda: leading == ["one"])
    run_second = asyncio.create_task(second.run(lead_as("two")))  # type: ignore[arg-type]
    await asyncio.sleep(1.0)
    assert leading == ["one"] and not second.is_leader
    first.stop()
    await asyncio.wait_for(run_first, 10)
    await until(lambda: leading == ["one", "two"])
    lease = await client.get(LEASES, "test-leader", "kube-system")
    assert lease["spec"]["holderIdentity"] == "two"
    assert lease["spec"]["leaseTransitions"] >= 1
    second.stop()
    await asyncio.wait_for(run_second, 10)
    released = await client.get(LEASES, "test-leader", "kube-system")
    assert released["spec"]["holderIdentity"] == ""


async def test_event_recorder_aggregates_repeats(client: ApiClient) -> None:
    ns = await client.get(NAMESPACES, "default")
    target = await client.create(CONFIGMAPS, cm("evented"))
    recorder = EventRecorder(client, "skiff-test", host="here")
    recorder.event(target, "Normal", "Tested", "once")
    await recorder.flush()
    recorder.event(target, "Normal", "Tested", "once")
    await recorder.flush()
    events = await client.list(EVENTS, "default", field_selector="involvedObject.name=evented")
    assert len(events["items"]) == 1
    event = events["items"][0]
    assert event["count"] == 2 and event["reason"] == "Tested" and event["source"]["component"] == "skiff-test"
    assert event["involvedObject"]["uid"] == target["metadata"]["uid"]
    assert ns["metadata"]["name"] == "default"


def test_kubeconfig_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "config"
    bad.write_text("apiVersion: v1\nkind: Config\ncontexts: []\n")
    with pytest.raises(ValueError, match="current-context"):
        ClientConfig.from_kubeconfig(bad)
