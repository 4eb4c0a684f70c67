"""Pod garbage collection: finished pods above a threshold, orphans of deleted nodes, unscheduled terminating pods.

Upstream: pkg/controller/podgc.  Every ``pod-gc-period`` (option, 20 s) one pass:

* terminated pods (phase neither Pending, Running nor Unknown) beyond
  ``terminated-pod-gc-threshold`` (option, default 12500; 0 disables) are
  deleted, oldest first;
* pods bound to a node that is not in the cache are quarantined for
  ``pod-gc-orphan-quarantine`` (40 s); if the API server then confirms the
  node is gone, they are marked Failed with the DisruptionTarget condition
  (reason DeletionByPodGC) and force-deleted (grace period 0);
* pods being deleted that were never scheduled are force-deleted.

The pure selection functions come first; the controller only lists caches
and writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from skiff.client import ApiError, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import NODES, PODS
from skiff.client.timefmt import rfc3339
from skiff.controllers.manager import ControllerSpec

Obj = dict[str, Any]
GC_KEY = "podgc"
DEFAULT_THRESHOLD = 12500
DEFAULT_PERIOD_S = 20.0
DEFAULT_QUARANTINE_S = 40.0


def is_terminated(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Pending", "Running", "Unknown", None)


def excess_terminated(pods: Iterable[Mapping[str, Any]], threshold: int) -> list[Mapping[str, Any]]:
    """The terminated pods to delete so at most ``threshold`` remain, oldest first."""
    if threshold <= 0:
        return []
    terminated = [p for p in pods if is_terminated(p)]
    excess = len(terminated) - threshold
    if excess <= 0:
        return []
    terminated.sort(key=lambda p: (str(p["metadata"].get("creationTimestamp") or ""), str(p["metadata"]["name"])))
    return terminated[:excess]


def orphaned(pods: Iterable[Mapping[str, Any]], nodes: set[str]) -> dict[str, list[Mapping[str, Any]]]:
    """Pods bound to nodes not in ``nodes``, by node name."""
    found: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and node not in nodes:
            found.setdefault(str(node), []).append(pod)
    return found


def unscheduled_terminating(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [p for p in pods if p["metadata"].get("deletionTimestamp") and not (p.get("spec") or {}).get("nodeName")]


class PodGCController(Controller):
    name = "podgc"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        options = context.options
        self.threshold = int(options.get("terminated-pod-gc-threshold", DEFAULT_THRESHOLD))
        self.period_s = float(options.get("pod-gc-period", DEFAULT_PERIOD_S))
        self.quarantine_s = float(options.get("pod-gc-orphan-quarantine", DEFAULT_QUARANTINE_S))
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        self._missing_since: dict[str, float] = {}
        self.enqueue(GC_KEY)

    async def sync(self, key: str) -> None:
        try:
            await self.gc()
        finally:
            self.queue.add_after(GC_KEY, self.period_s)

    async def gc(self) -> None:
        pods = self.pods.list()
        for pod in excess_terminated(pods, self.threshold):
            await self._force_delete(pod)
        await self._gc_orphans(pods)
        for pod in unscheduled_terminating(pods):
            await self._force_delete(pod)

    async def _gc_orphans(self, pods: list[Obj]) -> None:
        now = self.clock.monotonic()
        by_node = orphaned(pods, set(self.nodes.keys()))
        for node in list(self._missing_since):
            if node not in by_node:
                del self._missing_since[node]
        for node, node_pods in by_node.items():
            since = self._missing_since.setdefault(node, now)
            if now - since < self.quarantine_s:
                continue
            try:
                await self.client.get(NODES, node)
            except ApiError as err:
                if not is_not_found(err):
                    raise
            else:
                del self._missing_since[node]  # the cache was behind: the node exists
                continue
            for pod in node_pods:
                await self._fail_and_delete(pod)

    async def _fail_and_delete(self, pod: Mapping[str, Any]) -> None:
        """Orphans are marked Failed with DisruptionTarget (DeletionByPodGC) first, as upstream."""
        meta = pod["metadata"]
        if is_terminated(pod):
            await self._force_delete(pod)
            return
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists",
            "lastTransitionTime": rfc3339(self.clock.now()),
        }
        try:
            await self.client.patch(
                PODS,
                meta["name"],
                {"status": {"phase": "Failed", "conditions": [condition]}},
                meta.get("namespace"),
                patch_type="strategic",
                subresource="status",
            )
        except ApiError as err:
            if not is_not_found(err):
                raise
            return
        await self._force_delete(pod)

    async def _force_delete(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(
                PODS,
                meta["name"],
                meta.get("namespace"),
                grace_period_seconds=0,
                preconditions={"uid": meta.get("uid")},
            )
        except ApiError as err:
            if not (is_not_found(err) or err.code == 409):
                raise


CONTROLLERS = [ControllerSpec("podgc", PodGCController, workers=1, service_account="pod-garbage-collector")]
