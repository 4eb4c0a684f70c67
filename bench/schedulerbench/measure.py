"""Scheduling throughput: how fast pending pods get ``spec.nodeName``, observed by a watch.

All pods are created *before* the scheduler starts, so the figure is the
scheduler's own pace (kube-scheduler's scheduler_perf measures the same way:
pods scheduled per second once scheduling is under way), not pod creation's.
The window runs from the first binding seen to the last one.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from skiff.client import ApiClient
from skiff.client.resources import NAMESPACES, PODS

CREATE_CONCURRENCY = 32


@dataclass
class Bindings:
    expected: int
    bound_at: dict[str, float]
    done: asyncio.Event
    task: asyncio.Task[None] | None = field(default=None)

    @property
    def throughput(self) -> float:
        if len(self.bound_at) < 2:
            return 0.0
        times = sorted(self.bound_at.values())
        return (len(times) - 1) / max(times[-1] - times[0], 1e-9)


async def create_pods(client: ApiClient, namespace: str, count: int, cpu: str, memory: str) -> None:
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    slots = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one(index: int) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"pod-{index:06}", "namespace": namespace, "labels": {"app": "bench"}},
            "spec": {
                "containers": [
                    {"name": "main", "image": "pause", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
                ]
            },
        }
        async with slots:
            await client.create(PODS, body)

    await asyncio.gather(*(one(i) for i in range(count)))


async def watch_bindings(client: ApiClient, namespace: str, expected: int) -> Bindings:
    """Start watching; the returned Bindings fills in as pods get a node (``done`` set when all have)."""
    listed = await client.list(PODS, namespace)
    bindings = Bindings(expected, {}, asyncio.Event())
    for pod in listed["items"]:
        if pod["spec"].get("nodeName"):
            bindings.bound_at[pod["metadata"]["name"]] = time.monotonic()
    version = listed["metadata"]["resourceVersion"]

    async def follow() -> None:
        async for event in client.watch(PODS, namespace, resource_version=version, timeout_seconds=3600):
            pod = event.object
            name = (pod.get("metadata") or {}).get("name")
            if event.type in ("ADDED", "MODIFIED") and (pod.get("spec") or {}).get("nodeName"):
                bindings.bound_at.setdefault(name, time.monotonic())
                if len(bindings.bound_at) >= expected:
                    bindings.done.set()
                    return

    task = asyncio.create_task(follow())
    task.add_done_callback(lambda _t: bindings.done.set())
    bindings.task = task
    return bindings
