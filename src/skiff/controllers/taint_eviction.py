"""Taint-based eviction: delete pods from nodes with NoExecute taints they do not tolerate (long enough).

Upstream: pkg/controller/tainteviction (the former NoExecuteTaintManager).
Keys are pod keys.  A pod on a node with NoExecute taints is deleted at
once when some taint is not tolerated, after the smallest matching
``tolerationSeconds`` otherwise (counted from when this controller first
saw the pod needing eviction), never when the tolerations have no limit.
Before deleting, the pod gets the ``DisruptionTarget`` condition (reason
``DeletionByTaintManager``) and a ``TaintManagerEviction`` event, as upstream.

The work queue's ``add_after`` keeps the earliest pending timer per key, so
timed re-checks use the key ``ns/name@deadline``: a sooner deadline (a new
taint, a shorter toleration) is never hidden behind a later one.
"""

from __future__ import annotations

from typing import Any

from skiff.client import ApiError, is_conflict, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import NODES, PODS
from skiff.client.timefmt import rfc3339
from skiff.controllers.manager import ControllerSpec
from skiff.controllers.taint_eviction_rules import FOREVER, no_execute_taints, toleration_time

Obj = dict[str, Any]
NODE_INDEX = "taint-eviction/node"


def pod_node(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [str(node)] if node else []


class TaintEvictionController(Controller):
    name = "taint-eviction-controller"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.recorder = context.recorder_for("taint-eviction-controller")
        self.nodes = self.informers.informer(NODES)
        self.pods = self.informers.informer(PODS)
        self.pods.add_index(NODE_INDEX, pod_node)
        self._since: dict[str, float] = {}
        self.nodes.add_handler(on_add=self._node_changed, on_update=self._node_updated)
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new))

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if no_execute_taints(old) != no_execute_taints(new):
            self._node_changed(new)

    def _node_changed(self, node: Obj) -> None:
        for pod in self.pods.by_index(NODE_INDEX, str(node["metadata"]["name"])):
            self.enqueue_obj(pod)

    def _pod_changed(self, pod: Obj) -> None:
        if pod_node(pod):
            self.enqueue_obj(pod)

    async def sync(self, key: str) -> None:
        pod_key = key.partition("@")[0]
        pod = self.pods.get(pod_key)
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._since.pop(pod_key, None)
            return
        node = self.nodes.get(pod_node(pod)[0]) if pod_node(pod) else None
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        seconds = toleration_time(tolerations, no_execute_taints(node)) if node is not None else None
        if seconds is None or seconds == FOREVER:
            self._since.pop(pod_key, None)
            return
        now = self.clock.now()
        deadline = self._since.setdefault(pod_key, now) + seconds
        if now < deadline:
            self.queue.add_after(f"{pod_key}@{deadline:.3f}", deadline - now)
            return
        await self._evict(pod, now)
        self._since.pop(pod_key, None)

    async def _evict(self, pod: Obj, now: float) -> None:
        meta = pod["metadata"]
        name, namespace = meta["name"], meta.get("namespace")
        self.recorder.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {namespace}/{name}")
        condition = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
            "lastTransitionTime": rfc3339(now),
        }
        try:
            await self.client.patch(
                PODS,
                name,
                {"status": {"conditions": [condition]}},
                namespace,
                patch_type="strategic",
                subresource="status",
            )
            await self.client.delete(PODS, name, namespace, preconditions={"uid": meta.get("uid")})
        except ApiError as err:
            # Gone, or replaced by a pod of the same name (uid precondition): nothing to evict.
            if not (is_not_found(err) or is_conflict(err)):
                raise


CONTROLLERS = [
    ControllerSpec("taint-eviction-controller", TaintEvictionController, workers=2, service_account="node-controller")
]
