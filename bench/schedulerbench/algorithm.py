"""The scheduling algorithm alone: Framework.schedule + assume over an in-memory cache, no API server.

Separates what the scheduler's own code costs per pod from what the API
round trips and the other processes cost; the nodes and pods have the shapes
the end-to-end cells use (hollow node capacity, 100m/128Mi pods).
"""

from __future__ import annotations

import time
from typing import Any

from skiff.scheduler.cache import SchedulerCache
from skiff.scheduler.framework import Framework
from skiff.scheduler.podstate import PodState


def _node(name: str) -> dict[str, Any]:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"capacity": capacity, "allocatable": capacity, "conditions": [{"type": "Ready", "status": "True"}]},
    }


def _pod(index: int) -> dict[str, Any]:
    requests = {"cpu": "100m", "memory": "128Mi"}
    return {
        "metadata": {"name": f"pod-{index}", "namespace": "bench", "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "main", "resources": {"requests": requests}}]},
    }


def measure(nodes: int, pods: int) -> dict[str, Any]:
    cache = SchedulerCache()
    for i in range(nodes):
        cache.add_node(_node(f"hollow-{i}"))
    framework = Framework(cache)
    objects = [_pod(i) for i in range(pods)]
    started = time.perf_counter()
    for pod in objects:
        result = framework.schedule(PodState.of(pod))
        cache.assume_pod(pod, result.node)
    elapsed = time.perf_counter() - started
    return {
        "nodes": nodes,
        "pods": pods,
        "ms_per_pod": round(1000 * elapsed / pods, 3),
        "pods_per_s": round(pods / elapsed),
    }
