"""The scheduler loop: informers feed the cache and the queue; one attempt at a time; binds run concurrently.

Only pods with ``spec.schedulerName`` equal to ours and no ``spec.nodeName`` are
scheduled; pods being deleted are skipped.  After a node is chosen the pod is
*assumed* there (the cache counts it at once) and the pods/binding POST runs in
the background (bounded concurrency), as kube-scheduler's binding cycle does,
so the next attempt does not wait for the API round trip.  A failed attempt
writes PodScheduled=False/Unschedulable with upstream's message and a Warning
FailedScheduling event; a successful binding a Normal Scheduled event.
Cluster events that may free room (node added or changed, bound pod deleted or
finished) move unschedulable pods back into the queue.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from skiff.api.status import ApiError
from skiff.client import ApiClient, is_conflict, is_not_found
from skiff.client.clock import Clock, RealClock
from skiff.client.events import EventRecorder
from skiff.client.informer import InformerFactory
from skiff.client.resources import NODES, PODS
from skiff.client.timefmt import rfc3339
from skiff.scheduler import preemption
from skiff.scheduler.cache import TERMINAL_PHASES, PodInfo, SchedulerCache, pod_key
from skiff.scheduler.events import PacedEvents
from skiff.scheduler.framework import FitError, Framework
from skiff.scheduler.podstate import PodState
from skiff.scheduler.queue import QueuedPod, SchedulingQueue

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"
DEFAULT_BIND_CONCURRENCY = 64

Obj = dict[str, Any]


def is_assigned(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _node_relevant(node: Obj) -> tuple[Any, ...]:
    """What filters and scores read from a node (heartbeat timestamps excluded)."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    conditions = tuple((c.get("type"), c.get("status")) for c in status.get("conditions") or [])
    return (meta.get("labels"), node.get("spec"), status.get("allocatable"), status.get("capacity"), conditions)


def _has_spread_or_affinity(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    affinity = spec.get("affinity") or {}
    return bool(spec.get("topologySpreadConstraints") or affinity.get("podAffinity") or affinity.get("podAntiAffinity"))


class Scheduler:
    def __init__(
        self,
        client: ApiClient,
        *,
        scheduler_name: str = DEFAULT_SCHEDULER_NAME,
        informers: InformerFactory | None = None,
        clock: Clock | None = None,
        percentage_of_nodes_to_score: int = 0,
        bind_concurrency: int = DEFAULT_BIND_CONCURRENCY,
    ) -> None:
        self.client = client
        self.scheduler_name = scheduler_name
        self.clock = clock or RealClock()
        self.informers = informers or InformerFactory(client)
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue(self.clock)
        self.framework = Framework(self.cache, percentage_of_nodes_to_score)
        self.recorder = EventRecorder(client, scheduler_name, clock=self.clock)
        self.events = PacedEvents(self.recorder)
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        self._bind_slots = asyncio.Semaphore(bind_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.scheduled = 0
        self.failed_attempts = 0
        self.bind_errors = 0
        self._wire()

    # --- informer handlers (only touch the cache and the queue) -------------------------------

    def _wire(self) -> None:
        self.nodes.add_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)

    def responsible_for(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) == self.scheduler_name and not spec.get("nodeName")

    def _should_queue(self, pod: Obj) -> bool:
        """Pending, ours, not finished, and not already assumed (a stale event racing our own binding)."""
        return (
            self.responsible_for(pod)
            and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES
            and not self.cache.is_assumed(pod_key(pod))
        )

    def _on_node_add(self, node: Obj) -> None:
        self.cache.add_node(node)
        self.queue.move_all_to_active_or_backoff("NodeAdd")

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        self.cache.update_node(new)
        if _node_relevant(old) != _node_relevant(new):
            self.queue.move_all_to_active_or_backoff("NodeUpdate")

    def _on_node_delete(self, node: Obj) -> None:
        self.cache.remove_node((node.get("metadata") or {}).get("name") or "")

    def _on_pod_add(self, pod: Obj) -> None:
        if is_assigned(pod):
            self.cache.add_pod(pod)
            if _has_spread_or_affinity(pod):
                self.queue.move_all_to_active_or_backoff("AssignedPodAdd")
        elif self._should_queue(pod):
            self.queue.add(pod)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        if is_assigned(new):
            if not is_assigned(old):
                self.queue.delete(pod_key(new))
                self.framework.nominated.pop(pod_key(new), None)
            self.cache.update_pod(new)
            phase = (new.get("status") or {}).get("phase")
            if phase in TERMINAL_PHASES and (old.get("status") or {}).get("phase") != phase:
                self.queue.move_all_to_active_or_backoff("AssignedPodTerminated")
        elif self._should_queue(new):
            self.queue.add(new)

    def _on_pod_delete(self, pod: Obj) -> None:
        if is_assigned(pod):
            self.cache.remove_pod(pod)
            self.queue.move_all_to_active_or_backoff("AssignedPodDelete")
        else:
            self.queue.delete(pod_key(pod))
            self.framework.nominated.pop(pod_key(pod), None)

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Schedule until cancelled or ``stop()``; starts (and at the end stops) the informers."""
        await self.informers.start()
        flusher = asyncio.create_task(self.queue.run(), name="scheduler-queue-flush")
        writer = asyncio.create_task(self.events.run(), name="scheduler-events")
        try:
            await self.informers.wait_synced()
            log.info("%s: caches synced (%d nodes), scheduling", self.scheduler_name, len(self.cache.node_list()))
            while True:
                queued = await self.queue.pop()
                if queued is None:
                    break
                await self.schedule_one(queued)
        finally:
            self.queue.close()
            flusher.cancel()
            writer.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(flusher, writer, *self._tasks, return_exceptions=True)
            await self.events.drain()
            await self.informers.stop()

    def stop(self) -> None:
        self.queue.close()

    async def schedule_one(self, queued: QueuedPod) -> None:
        pod = self.pods.get(queued.key)
        if pod is None:  # deleted since it was queued
            self.queue.delete(queued.key)
            return
        if (
            not self.responsible_for(pod)
            or (pod.get("metadata") or {}).get("deletionTimestamp")
            or self.cache.is_assumed(queued.key)
        ):
            self.queue.done(queued.key)
            return
        state = PodState.of(pod)
        try:
            result = self.framework.schedule(state)
        except FitError as err:
            self.failed_attempts += 1
            nominated = self._try_preemption(state, err)
            self._record_unschedulable(pod, err.message(), nominated)
            self.queue.add_unschedulable(queued)
            return
        self.cache.assume_pod(pod, result.node)
        await self._bind_slots.acquire()
        self._spawn(self._bind(queued, pod, result.node))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind(self, queued: QueuedPod, pod: Obj, node: str) -> None:
        meta = pod.get("metadata") or {}
        namespace, name = meta.get("namespace") or "default", meta.get("name") or ""
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, **({"uid": meta["uid"]} if meta.get("uid") else {})},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.client.create(PODS, body, namespace, subresource="binding", name=name)
        except (ApiError, OSError, aiohttp.ClientError) as err:
            self.cache.forget_pod(queued.key)
            if isinstance(err, ApiError) and (is_not_found(err) or is_conflict(err)):
                self.queue.done(queued.key)  # deleted, or already bound by someone else: the informer tells us
            else:
                self.bind_errors += 1
                log.warning("binding %s/%s to %s failed: %s", namespace, name, node, err)
                self.events.event(pod, "Warning", "FailedScheduling", f"Binding rejected: {err}")
                self.queue.add_backoff(queued)
            return
        finally:
            self._bind_slots.release()
        self.scheduled += 1
        self.framework.nominated.pop(queued.key, None)
        self.queue.done(queued.key)
        self.events.event(pod, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {node}")

    def _try_preemption(self, state: PodState, err: FitError) -> str | None:
        """PostFilter: evict lower-priority pods to make room; returns the nominated node."""
        key = state.info.key
        known = self.framework.nominated.get(key)
        nominated = known[1] if known else (state.pod.get("status") or {}).get("nominatedNodeName")
        if not preemption.eligible(state, self.cache, nominated):
            return None
        candidate = preemption.find_candidate(state, self.cache, err.unresolvable)
        if candidate is None:
            return None
        err.preempting = True
        self.framework.nominated[key] = (state.info, candidate.node)
        for victim in candidate.victims:
            victim.terminating = True  # until the informer shows the deletion, never pick it twice
            self._spawn(self._evict(victim, state.pod, candidate.node))
        return candidate.node

    async def _evict(self, victim: PodInfo, preemptor: Obj, node: str) -> None:
        meta = victim.pod.get("metadata") or {}
        uid = (preemptor.get("metadata") or {}).get("uid") or ""
        self.events.event(victim.pod, "Normal", "Preempted", f"Preempted by pod {uid} on node {node}")
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": f"{self.scheduler_name}: preempting to accommodate a higher priority pod",
            "lastTransitionTime": rfc3339(self.clock.now()),
        }
        try:
            await self.client.patch(
                PODS, meta["name"], {"status": {"conditions": [condition]}}, victim.namespace,
                patch_type="strategic", subresource="status",
            )  # fmt: skip
            await self.client.delete(PODS, meta["name"], victim.namespace)
        except (ApiError, OSError, aiohttp.ClientError) as err:
            if not (isinstance(err, ApiError) and is_not_found(err)):
                log.warning("preempting %s failed: %s", victim.key, err)

    def _record_unschedulable(self, pod: Obj, message: str, nominated: str | None = None) -> None:
        self.events.event(pod, "Warning", "FailedScheduling", message)
        if nominated and (pod.get("status") or {}).get("nominatedNodeName") != nominated:
            self._spawn(self._patch_unschedulable(pod, message, nominated))
            return
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
                and condition.get("message") == message
            ):
                return
        self._spawn(self._patch_unschedulable(pod, message))

    async def _patch_unschedulable(self, pod: Obj, message: str, nominated: str | None = None) -> None:
        meta = pod.get("metadata") or {}
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": rfc3339(self.clock.now()),
        }
        patch: Obj = {"status": {"conditions": [condition]}}
        if nominated:
            patch["status"]["nominatedNodeName"] = nominated
        try:
            await self.client.patch(
                PODS, meta.get("name") or "", patch, meta.get("namespace"), patch_type="strategic", subresource="status"
            )
        except (ApiError, OSError, aiohttp.ClientError) as err:
            if not (isinstance(err, ApiError) and is_not_found(err)):
                log.warning("cannot mark %s/%s unschedulable: %s", meta.get("namespace"), meta.get("name"), err)
