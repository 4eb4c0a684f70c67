"""ReplicaSet and ReplicationController controllers against a real API server (no kubelet)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from apiserver_harness import RunningApiServer, running_apiserver
from cm_harness import container, eventually, mark_ready, new_namespace, pods_of, running_manager

from skiff.client.resources import EVENTS, LIMITRANGES, PODS, REPLICASETS, REPLICATIONCONTROLLERS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("cm-rs")) as srv:
        yield srv


def replicaset(name: str, replicas: int, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container()]}},
        },
    }


async def test_replicaset_creates_exactly_n_and_replaces_deleted(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, ["replicaset"]) as (client, _):
        ns = await new_namespace(client, "rs")
        rs = await client.create(REPLICASETS, replicaset("web", 3, {"app": "web"}), ns)

        async def three() -> list[dict[str, Any]] | None:
            pods = await pods_of(client, ns, "app=web")
            return pods if len(pods) == 3 else None

        pods = await eventually(three, "3 pods")
        for pod in pods:
            assert pod["metadata"]["generateName"] == "web-"
            (ref,) = pod["metadata"]["ownerReferences"]
            assert ref == {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web",
                "uid": rs["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        await client.delete(PODS, pods[0]["metadata"]["name"], ns)

        async def replaced() -> bool:
            now = await pods_of(client, ns, "app=web")
            names = {p["metadata"]["name"] for p in now}
            return len(now) == 3 and pods[0]["metadata"]["name"] not in names

        await eventually(replaced, "a replacement pod")
        # Settle, then verify nothing was over-created: still exactly 3 after a quiet period of syncs.
        await asyncio.sleep(1.0)
        assert len(await pods_of(client, ns, "app=web")) == 3

        async def status_ok() -> bool:
            got = await client.get(REPLICASETS, "web", ns)
            st = got.get("status") or {}
            return (
                st.get("replicas") == 3
                and st.get("fullyLabeledReplicas") == 3
                and st.get("observedGeneration") == got["metadata"]["generation"]
            )

        await eventually(status_ok, "status replicas=3")


async def test_replicaset_scales_down_not_ready_first_and_reports_ready(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, ["replicaset"]) as (client, _):
        ns = await new_namespace(client, "rs")
        await client.create(REPLICASETS, replicaset("api", 4, {"app": "api"}), ns)

        async def four() -> list[dict[str, Any]] | None:
            pods = await pods_of(client, ns, "app=api")
            return pods if len(pods) == 4 else None

        pods = await eventually(four, "4 pods")
        ready = {p["metadata"]["name"] for p in pods[:2]}
        for pod in pods[:2]:
            await mark_ready(client, pod)

        async def ready_counted() -> bool:
            st = (await client.get(REPLICASETS, "api", ns)).get("status") or {}
            return st.get("readyReplicas") == 2 and st.get("availableReplicas") == 2

        await eventually(ready_counted, "readyReplicas=2")
        await client.patch(REPLICASETS, "api", {"spec": {"replicas": 2}}, ns)

        async def two() -> set[str] | None:
            now = await pods_of(client, ns, "app=api")
            return {p["metadata"]["name"] for p in now} if len(now) == 2 else None

        assert await eventually(two, "2 pods") == ready


async def test_replicaset_adopts_orphans_and_releases_unmatched(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, ["replicaset"]) as (client, _):
        ns = await new_namespace(client, "rs")
        orphan = {"metadata": {"name": "orphan", "labels": {"app": "db"}}, "spec": {"containers": [container()]}}
        await client.create(PODS, orphan, ns)
        rs = await client.create(REPLICASETS, replicaset("db", 2, {"app": "db"}), ns)

        async def adopted() -> bool:
            pod = await client.get(PODS, "orphan", ns)
            refs = pod["metadata"].get("ownerReferences") or []
            return any(r["uid"] == rs["metadata"]["uid"] for r in refs)

        await eventually(adopted, "the orphan adopted")

        async def two() -> bool:
            return len(await pods_of(client, ns, "app=db")) == 2

        await eventually(two, "2 pods including the orphan")
        await client.patch(PODS, "orphan", {"metadata": {"labels": {"app": "other"}}}, ns)

        async def released() -> bool:
            pod = await client.get(PODS, "orphan", ns)
            return not pod["metadata"].get("ownerReferences") and len(await pods_of(client, ns, "app=db")) == 2

        await eventually(released, "the relabelled pod released and replaced")


async def test_replicationcontroller_keeps_replicas(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, ["replicationcontroller"]) as (client, _):
        ns = await new_namespace(client, "rc")
        body = {
            "metadata": {"name": "legacy"},
            "spec": {
                "replicas": 2,
                "selector": {"app": "legacy"},
                "template": {"metadata": {"labels": {"app": "legacy"}}, "spec": {"containers": [container()]}},
            },
        }
        await client.create(REPLICATIONCONTROLLERS, body, ns)

        async def two() -> bool:
            pods = await pods_of(client, ns, "app=legacy")
            st = (await client.get(REPLICATIONCONTROLLERS, "legacy", ns)).get("status") or {}
            return len(pods) == 2 and st.get("replicas") == 2

        await eventually(two, "2 pods and status")
        assert all(
            p["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController"
            for p in await pods_of(client, ns, "app=legacy")
        )


async def test_replicaset_never_over_creates(server: RunningApiServer) -> None:
    """Every pod creation is seen on a watch: exactly ``replicas`` creations, none made and then deleted."""
    async with running_manager(server.kubeconfig, ["replicaset"]) as (client, _):
        ns = await new_namespace(client, "rs")
        created: set[str] = set()

        async def watch_creations() -> None:
            async for event in client.watch(PODS, ns):
                if event.type == "ADDED":
                    created.add(event.object["metadata"]["name"])

        watcher = asyncio.create_task(watch_creations())
        try:
            await asyncio.sleep(0.2)  # let the watch start before anything is created
            await client.create(REPLICASETS, replicaset("burst", 12, {"app": "burst"}), ns)

            async def twelve() -> bool:
                st = (await client.get(REPLICASETS, "burst", ns)).get("status") or {}
                return st.get("replicas") == 12 and len(created) >= 12

            await eventually(twelve, "12 pods")
            # Status updates and pod events keep the controller syncing; none of those syncs may create more.
            for pod in (await client.list(PODS, ns))["items"][:6]:
                await mark_ready(client, pod)

            async def six_ready() -> bool:
                st = (await client.get(REPLICASETS, "burst", ns)).get("status") or {}
                return st.get("readyReplicas") == 6

            await eventually(six_ready, "6 ready")
            assert len(created) == 12
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def test_replica_failure_condition_on_create_errors(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, ["replicaset"]) as (client, _):
        ns = await new_namespace(client, "rs")
        limits = {"metadata": {"name": "small"}, "spec": {"limits": [{"type": "Container", "max": {"cpu": "100m"}}]}}
        await client.create(LIMITRANGES, limits, ns)
        body = replicaset("big", 2, {"app": "big"})
        body["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
        await client.create(REPLICASETS, body, ns)

        async def failed() -> dict[str, Any] | None:
            st = (await client.get(REPLICASETS, "big", ns)).get("status") or {}
            conds = {c["type"]: c for c in st.get("conditions") or []}
            return conds.get("ReplicaFailure")

        cond = await eventually(failed, "ReplicaFailure condition")
        assert cond["status"] == "True" and cond["reason"] == "FailedCreate"
        assert "maximum cpu usage per Container is 100m" in cond["message"]

        async def event() -> bool:
            items = (await client.list(EVENTS, ns))["items"]
            return any(e.get("reason") == "FailedCreate" and e["involvedObject"]["name"] == "big" for e in items)

        await eventually(event, "a FailedCreate event")
        await client.delete(LIMITRANGES, "small", ns)

        async def recovered() -> bool:
            st = (await client.get(REPLICASETS, "big", ns)).get("status") or {}
            return st.get("replicas") == 2 and not st.get("conditions")

        await eventually(recovered, "pods created and the condition cleared")
