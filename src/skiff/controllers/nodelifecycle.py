"""The node lifecycle controller: node health from Leases and status, condition taints, pods marked not ready.

Upstream: pkg/controller/nodelifecycle (monitorNodeHealth, the NoSchedule and
NoExecute tainting passes, MarkPodsNotReady).  Keys are node names; a node
is synced when it or its kube-node-lease Lease changes, and again when its
grace period would run out.  The decisions are nodelifecycle_health's pure
functions; this module only reads caches and writes:

1. after ``node-monitor-grace-period`` (option, default 40 s) without a
   heartbeat, the monitored conditions become Unknown (status update);
2. the node's condition taints are brought up to date (a resourceVersion-
   guarded patch, so a concurrent ``kubectl taint`` is never lost);
3. while the node is not Ready, its pods' Ready condition is set to False.

Zone-disruption rate limiting of upstream is not modelled: taints are
applied to every unhealthy node at once.
"""

from __future__ import annotations

from typing import Any

from skiff.client import ApiError, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import LEASES, NODES, PODS
from skiff.client.timefmt import rfc3339
from skiff.controllers.manager import ControllerSpec
from skiff.controllers.nodelifecycle_health import (
    NodeHealth,
    desired_taints,
    is_overdue,
    observe,
    ready_status,
    unknown_conditions,
)

Obj = dict[str, Any]
NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_INDEX = "nodelifecycle/node"
DEFAULT_GRACE_PERIOD_S = 40.0
#: A node that never posted status gets longer (upstream --node-startup-grace-period).
DEFAULT_STARTUP_GRACE_PERIOD_S = 60.0
#: Re-check a little after the deadline so the comparison is strictly past it.
RECHECK_SLACK_S = 0.05


def pod_node(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [str(node)] if node else []


class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.grace_period_s = float(context.options.get("node-monitor-grace-period", DEFAULT_GRACE_PERIOD_S))
        self.startup_grace_period_s = float(
            context.options.get("node-startup-grace-period", DEFAULT_STARTUP_GRACE_PERIOD_S)
        )
        self.recorder = context.recorder_for("node-controller")
        self.nodes = self.informers.informer(NODES)
        self.leases = self.informers.informer(LEASES, NODE_LEASE_NAMESPACE)
        self.pods = self.informers.informer(PODS)
        self.pods.add_index(NODE_INDEX, pod_node)
        self.health: dict[str, NodeHealth] = {}
        self.nodes.add_handler(
            on_add=self.enqueue_obj, on_update=lambda old, new: self.enqueue_obj(new), on_delete=self.enqueue_obj
        )
        self.leases.add_handler(on_add=self._lease_changed, on_update=lambda old, new: self._lease_changed(new))

    def _lease_changed(self, lease: Obj) -> None:
        self.enqueue(str(lease["metadata"]["name"]))

    async def sync(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            self.health.pop(key, None)
            return
        now = self.clock.now()
        health = observe(self.health.get(key), node, self.leases.get(f"{NODE_LEASE_NAMESPACE}/{key}"), now)
        self.health[key] = health
        never_heard = health.heartbeat is None and health.lease_renew is None
        grace = self.startup_grace_period_s if never_heard else self.grace_period_s
        if is_overdue(health, now, grace):
            node = await self._mark_unknown(node, now)
        else:
            self.queue.add_after(key, health.probe_timestamp + grace - now + RECHECK_SLACK_S)
        await self._update_taints(node, now)
        if ready_status(node) != "True":
            await self._mark_pods_not_ready(key, now)

    async def _mark_unknown(self, node: Obj, now: float) -> Obj:
        conditions = unknown_conditions(node, now)
        if conditions is None:
            return node
        body = dict(node, status=dict(node.get("status") or {}, conditions=conditions))
        updated = await self.client.update_status(NODES, body)
        name = node["metadata"]["name"]
        self.recorder.event(updated, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        return updated

    async def _update_taints(self, node: Obj, now: float) -> None:
        taints = desired_taints(node, now)
        if taints is None:
            return
        meta = node["metadata"]
        patch = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "spec": {"taints": taints}}
        await self.client.patch(NODES, meta["name"], patch)

    async def _mark_pods_not_ready(self, node_name: str, now: float) -> None:
        """MarkPodsNotReady: the pods of a node we cannot vouch for are not Ready."""
        stamp = rfc3339(now)
        for pod in self.pods.by_index(NODE_INDEX, node_name):
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            ready = next(
                (c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None
            )
            if ready is None or ready.get("status") == "False":
                continue
            meta = pod["metadata"]
            condition = {"type": "Ready", "status": "False", "lastTransitionTime": stamp}
            try:
                await self.client.patch(
                    PODS,
                    meta["name"],
                    {"status": {"conditions": [condition]}},
                    meta.get("namespace"),
                    patch_type="strategic",
                    subresource="status",
                )
            except ApiError as err:
                if not is_not_found(err):
                    raise


CONTROLLERS = [ControllerSpec("nodelifecycle", NodeLifecycleController, workers=2, service_account="node-controller")]
