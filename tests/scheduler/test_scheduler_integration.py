"""The scheduler and hollow nodes against a real ``skiff apiserver``: binding, constraints, unschedulable pods.

The scheduler and the hollow nodes run in the test's event loop (the same
code ``skiff scheduler`` and ``skiff sim nodes`` run); each test works in its
own namespace with its own nodes and removes its nodes at the end, so the
"0/N nodes" counts are the test's own.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from apiserver_harness import RunningApiServer, running_apiserver

from skiff.client import ApiClient, ClientConfig
from skiff.client.resources import EVENTS, NAMESPACES, PODS
from skiff.kubelet.hollow import HollowConfig, HollowNodes
from skiff.scheduler.scheduler import Scheduler

Obj = dict[str, Any]
DEADLINE_S = 30.0
_first_index = itertools.count(0, 100)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("scheduler")) as running:
        yield running


class Cluster:
    def __init__(self, client: ApiClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.groups: list[tuple[HollowNodes, asyncio.Task[None]]] = []

    async def add_nodes(self, prefix: str, count: int, **config: Any) -> HollowNodes:
        nodes = HollowNodes(self.client, count, f"{self.namespace}-{prefix}", HollowConfig(**config),
                            first_index=next(_first_index))  # fmt: skip
        task = asyncio.create_task(nodes.run())
        self.groups.append((nodes, task))
        await asyncio.wait({task, asyncio.create_task(nodes.registered.wait())}, return_when=asyncio.FIRST_COMPLETED)
        assert nodes.registered.is_set(), task.exception() if task.done() else "not registered"
        return nodes

    async def create_pod(self, name: str, cpu: str | None = None, **spec: Any) -> Obj:
        container: Obj = {"name": "main", "image": "busybox"}
        if cpu:
            container["resources"] = {"requests": {"cpu": cpu}}
        labels = spec.pop("labels", {})
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
            "spec": {"containers": [container], **spec},
        }
        return await self.client.create(PODS, body)

    async def pod(self, name: str) -> Obj:
        return await self.client.get(PODS, name, self.namespace)

    async def wait_pod(self, name: str, predicate: Callable[[Obj], bool], what: str) -> Obj:
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while True:
            pod = await self.pod(name)
            if predicate(pod):
                return pod
            assert asyncio.get_running_loop().time() < deadline, f"pod {name} never {what}: {pod.get('status')}"
            await asyncio.sleep(0.05)

    async def wait_running(self, name: str) -> Obj:
        return await self.wait_pod(name, lambda p: (p.get("status") or {}).get("phase") == "Running", "Running")

    async def events(self, name: str) -> list[Obj]:
        listed = await self.client.list(EVENTS, self.namespace, field_selector=f"involvedObject.name={name}")
        return list(listed["items"])

    async def wait_event(self, name: str, reason: str) -> Obj:
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while True:
            found = [e for e in await self.events(name) if e["reason"] == reason]
            if found:
                return found[0]
            assert asyncio.get_running_loop().time() < deadline, f"no {reason} event for {name}"
            await asyncio.sleep(0.05)


def scheduled_condition(pod: Obj) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled":
            return dict(condition)
    return None


_namespaces = itertools.count()


@pytest_asyncio.fixture
async def cluster(server: RunningApiServer) -> AsyncIterator[Cluster]:
    async with ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig), user_agent="scheduler-test") as client:
        namespace = f"sched-{next(_namespaces)}"
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        scheduler = Scheduler(client)
        running = asyncio.create_task(scheduler.run())
        test_cluster = Cluster(client, namespace)
        try:
            yield test_cluster
        finally:
            scheduler.stop()
            await asyncio.wait_for(running, 10)
            for nodes, task in test_cluster.groups:
                nodes.stop()
                await asyncio.wait_for(task, 10)
                await nodes.delete_nodes()


async def test_pods_land_on_fitting_nodes_and_run(cluster: Cluster) -> None:
    await cluster.add_nodes("small-", 2, cpu="2")
    big = await cluster.add_nodes("big-", 1, cpu="8")
    await cluster.create_pod("needs-4", cpu="4")
    pod = await cluster.wait_running("needs-4")
    assert pod["spec"]["nodeName"] == big.names[0]
    assert pod["status"]["podIP"].startswith("127.")
    assert scheduled_condition(pod) is not None and scheduled_condition(pod)["status"] == "True"  # type: ignore[index]
    for i in range(6):
        await cluster.create_pod(f"small-{i}", cpu="500m")
    placed = [(await cluster.wait_running(f"small-{i}"))["spec"]["nodeName"] for i in range(6)]
    assert len(set(placed)) == 3  # least-allocated spreads them over every node
    event = await cluster.wait_event("needs-4", "Scheduled")
    assert event["type"] == "Normal"
    assert event["message"] == f"Successfully assigned {cluster.namespace}/needs-4 to {big.names[0]}"


async def test_node_selector_and_taints_are_honoured(cluster: Cluster) -> None:
    ssd = await cluster.add_nodes("ssd-", 2, labels={"disk": "ssd"})
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    db = await cluster.add_nodes("db-", 2, labels={"disk": "hdd"}, taints=[taint])
    for i in range(4):
        await cluster.create_pod(f"ssd-{i}", nodeSelector={"disk": "ssd"})
        await cluster.create_pod(f"plain-{i}")
    await cluster.create_pod("db", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db"}],
                             nodeSelector={"disk": "hdd"})  # fmt: skip
    for i in range(4):
        assert (await cluster.wait_running(f"ssd-{i}"))["spec"]["nodeName"] in ssd.names
        assert (await cluster.wait_running(f"plain-{i}"))["spec"]["nodeName"] in ssd.names
    assert (await cluster.wait_running("db"))["spec"]["nodeName"] in db.names


async def test_required_anti_affinity_one_per_node(cluster: Cluster) -> None:
    nodes = await cluster.add_nodes("anti-", 3)
    term = {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
    affinity = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    for i in range(4):
        await cluster.create_pod(f"web-{i}", labels={"app": "web"}, affinity=affinity)
    placed = []
    for i in range(3):
        placed.append((await cluster.wait_running(f"web-{i}"))["spec"]["nodeName"])
    assert sorted(placed) == sorted(nodes.names)
    pod = await cluster.wait_pod("web-3", lambda p: scheduled_condition(p) is not None, "marked")
    assert scheduled_condition(pod)["message"].startswith(  # type: ignore[index]
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
    )


async def test_impossible_pod_waits_then_lands_on_a_new_node(cluster: Cluster) -> None:
    await cluster.add_nodes("tiny-", 3, cpu="2")
    await cluster.create_pod("huge", cpu="64")
    pod = await cluster.wait_pod("huge", lambda p: scheduled_condition(p) is not None, "marked unschedulable")
    condition = scheduled_condition(pod)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert condition["message"] == (
        "0/3 nodes are available: 3 Insufficient cpu. "
        "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    )
    event = await cluster.wait_event("huge", "FailedScheduling")
    assert event["type"] == "Warning" and event["message"] == condition["message"]
    roomy = await cluster.add_nodes("roomy-", 1, cpu="100")
    pod = await cluster.wait_running("huge")
    assert pod["spec"]["nodeName"] == roomy.names[0]


async def test_deleted_pods_are_removed_by_hollow_nodes(cluster: Cluster) -> None:
    await cluster.add_nodes("del-", 1)
    await cluster.create_pod("short", terminationGracePeriodSeconds=30)
    await cluster.wait_running("short")
    await cluster.client.delete(PODS, "short", cluster.namespace)
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while (await cluster.client.list(PODS, cluster.namespace, field_selector="metadata.name=short"))["items"]:
        assert asyncio.get_running_loop().time() < deadline, "pod never removed"
        await asyncio.sleep(0.05)


async def test_cli_scheduler_leader_elected(server: RunningApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    """``skiff scheduler`` (its run function) takes the kube-scheduler Lease, binds, serves /metrics, and
    releases the Lease on SIGTERM."""
    import argparse
    import os
    import signal

    from skiff.cli import scheduler as scheduler_cli
    from skiff.client.resources import LEASES

    parser = argparse.ArgumentParser()
    scheduler_cli.register(parser.add_subparsers())
    args = parser.parse_args(["scheduler", "--kubeconfig", str(server.kubeconfig), "--port", "0"])
    assert args.leader_elect is True and args.scheduler_name == "default-scheduler"
    async with ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig), user_agent="scheduler-test") as client:
        namespace = f"sched-cli-{next(_namespaces)}"
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        test_cluster = Cluster(client, namespace)
        nodes = await test_cluster.add_nodes("cli-", 1)
        running = asyncio.create_task(scheduler_cli.run(args))
        try:
            await test_cluster.create_pod("via-cli")
            pod = await test_cluster.wait_running("via-cli")
            assert pod["spec"]["nodeName"] == nodes.names[0]
            lease = await client.get(LEASES, "kube-scheduler", "kube-system")
            assert lease["spec"]["holderIdentity"]
            metrics = await _get(_health_url(capsys.readouterr().out) + "/metrics")
            assert "skiff_scheduler_leader 1" in metrics
            assert 'scheduler_schedule_attempts_total{result="scheduled"}' in metrics
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # the command's own handler takes it
            assert await asyncio.wait_for(running, 20) == 0
            nodes.stop()
            await asyncio.wait_for(test_cluster.groups[0][1], 10)
            await nodes.delete_nodes()
        lease = await client.get(LEASES, "kube-scheduler", "kube-system")
        assert lease["spec"].get("holderIdentity", "") == ""


def _health_url(stdout: str) -> str:
    match = re.search(r"serving health on (http://\S+)", stdout)
    assert match, stdout
    return match.group(1)


async def _get(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.text()


async def test_cli_sim_nodes_register_and_delete_on_exit(
    server: RunningApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """``skiff sim nodes --count 3`` registers Ready nodes with Leases; --delete-on-exit removes them on SIGTERM."""
    import argparse
    import os
    import signal

    from skiff.cli import sim
    from skiff.client.resources import LEASES, NODES

    parser = argparse.ArgumentParser()
    sim.register(parser.add_subparsers())
    prefix = f"simcli{next(_namespaces)}-"
    argv = ["sim", "nodes", "--count", "3", "--name-prefix", prefix, "--kubeconfig", str(server.kubeconfig)]
    args = parser.parse_args([*argv, "--labels", "zone=z1", "--cpu", "8", "--delete-on-exit"])
    running = asyncio.create_task(sim.run(args))
    async with ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig), user_agent="scheduler-test") as client:
        try:
            deadline = asyncio.get_running_loop().time() + DEADLINE_S
            while "3 hollow nodes registered" not in capsys.readouterr().out:
                assert not running.done(), running.result()
                assert asyncio.get_running_loop().time() < deadline, "sim never reported registration"
                await asyncio.sleep(0.05)
            node = await client.get(NODES, f"{prefix}1")
            assert node["metadata"]["labels"]["zone"] == "z1"
            assert node["status"]["allocatable"]["cpu"] == "8"
            assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
            lease = await client.get(LEASES, f"{prefix}1", "kube-node-lease")
            assert lease["spec"]["holderIdentity"] == f"{prefix}1"
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # the command's own handler takes it
            assert await asyncio.wait_for(running, 30) == 0
        names = {n["metadata"]["name"] for n in (await client.list(NODES))["items"]}
        assert not {f"{prefix}{i}" for i in range(3)} & names


async def test_higher_priority_pod_preempts(cluster: Cluster) -> None:
    from skiff.client.resources import PRIORITYCLASSES

    nodes = await cluster.add_nodes("prio-", 1, cpu="2")
    await cluster.create_pod("low", cpu="2")
    await cluster.wait_running("low")
    high = f"{cluster.namespace}-high"
    body = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": high}, "value": 1000}
    await cluster.client.create(PRIORITYCLASSES, body)
    await cluster.create_pod("urgent", cpu="2", priorityClassName=high)
    pod = await cluster.wait_running("urgent")
    assert pod["spec"]["nodeName"] == nodes.names[0]
    event = await cluster.wait_event("low", "Preempted")
    assert event["message"] == f"Preempted by pod {pod['metadata']['uid']} on node {nodes.names[0]}"
    assert not (await cluster.client.list(PODS, cluster.namespace, field_selector="metadata.name=low"))["items"]
    await cluster.client.delete(PRIORITYCLASSES, high)
