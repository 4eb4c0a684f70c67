"""Node IPAM: give every Node a pod CIDR (spec.podCIDR / spec.podCIDRs) from the cluster CIDR.

Upstream: pkg/controller/nodeipam with the RangeAllocator.  Before the first
allocation the used set is rebuilt from the nodes that already have a CIDR
(so a restarted or newly elected controller never hands one out twice);
a node without one gets the next free subnet, written with a patch; a
deleted node's subnet goes back to the pool.  What we assigned is also
remembered until the cache shows it, so a stale cached node never gets a
second subnet.

Options (kube-controller-manager flags): ``cluster-cidr`` (default
127.16.0.0/12) and ``node-cidr-mask-size`` (default 24).
"""

from __future__ import annotations

from typing import Any

from skiff.client import ApiError, is_not_found
from skiff.client.cluster_defaults import CLUSTER_CIDR, NODE_CIDR_MASK
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import NODES
from skiff.controllers.manager import ControllerSpec
from skiff.controllers.nodeipam_cidrs import CidrSet, CidrSetFull

Obj = dict[str, Any]


def node_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = [str(c) for c in spec.get("podCIDRs") or []]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [str(spec["podCIDR"])]
    return cidrs


class NodeIpamController(Controller):
    name = "nodeipam"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        cluster_cidr = str(context.options.get("cluster-cidr") or CLUSTER_CIDR)
        mask = int(context.options.get("node-cidr-mask-size") or NODE_CIDR_MASK)
        self.cidrs = CidrSet(cluster_cidr, mask)
        self.recorder = context.recorder_for("node-controller")
        self.nodes = self.informers.informer(NODES)
        self._loaded = False
        self._assigned: dict[str, str] = {}
        self.nodes.add_handler(
            on_add=self.enqueue_obj, on_update=lambda old, new: self.enqueue_obj(new), on_delete=self._node_deleted
        )

    def _load(self) -> None:
        """Mark every CIDR already on a node as used (the informer is synced before workers run)."""
        if not self._loaded:
            for node in self.nodes.list():
                for cidr in node_cidrs(node):
                    self.cidrs.occupy(cidr)
            self._loaded = True

    def _node_deleted(self, node: Obj) -> None:
        name = str(node["metadata"]["name"])
        for cidr in {*node_cidrs(node), self._assigned.pop(name, "")} - {""}:
            self.cidrs.release(cidr)

    async def sync(self, key: str) -> None:
        self._load()
        node = self.nodes.get(key)
        if node is None:
            return
        have = node_cidrs(node)
        if have:
            for cidr in have:
                self.cidrs.occupy(cidr)
            self._assigned.pop(key, None)
            return
        cidr = self._assigned.get(key, "")
        if not cidr:
            try:
                cidr = self.cidrs.allocate_next()
            except CidrSetFull as err:
                self.recorder.event(node, "Normal", "CIDRNotAvailable", f"Node {key} status is now: CIDRNotAvailable")
                raise err
        try:
            await self.client.patch(NODES, key, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except ApiError as err:
            self._assigned.pop(key, None)
            self.cidrs.release(cidr)
            if is_not_found(err):
                return
            self.recorder.event(node, "Warning", "CIDRAssignmentFailed", f"Node {key} status is now: {err}")
            raise
        self._assigned[key] = cidr


CONTROLLERS = [ControllerSpec("nodeipam", NodeIpamController, workers=1, service_account="node-controller")]
