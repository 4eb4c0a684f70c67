"""The garbage collector: delete objects whose owners are gone; orphan and foreground deletion.

garbagecollector.go upstream, over the same REST API everyone uses:

* Graph: informers over every resource that can be listed, watched and
  deleted (a fixed seed list at start, then /api + /apis discovery every
  ``REDISCOVERY_S``, which adds CRDs) feed gc_graph.Graph; events are
  ignored as upstream does.
* attemptToDelete(dependent): classify its owners as solid (exists),
  dangling (absent — a live GET confirms before anything is deleted, the
  cache may lag), or waiting (exists and deleting its dependents in the
  foreground).  Some solid → remove only the dangling/waiting references;
  none solid → delete it (Background, or the policy its own GC finalizer
  asks for; with waiting owners and dependents of its own, Foreground after
  unblocking its references so the chain does not deadlock).
* Orphan (``orphan`` finalizer on a deleted owner): remove the owner from
  every dependent's ownerReferences, then remove the finalizer.
* Foreground (``foregroundDeletion``): delete every dependent; only when no
  dependent with ``blockOwnerDeletion: true`` remains, remove the finalizer.

Queue keys are uids.  Writes are guarded (uid precondition on delete,
resourceVersion on patches); a conflict raises and the item is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from skiff.api.status import ApiError
from skiff.client import Resource, is_conflict, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import (
    CONFIGMAPS,
    CONTROLLERREVISIONS,
    CRONJOBS,
    DAEMONSETS,
    DEPLOYMENTS,
    ENDPOINTSLICES,
    JOBS,
    LEASES,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    SECRETS,
    SERVICEACCOUNTS,
    SERVICES,
    STATEFULSETS,
)
from skiff.controllers.api_discovery import discover_resources
from skiff.controllers.gc_graph import FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Graph, Node, node_of
from skiff.controllers.manager import ControllerSpec

log = logging.getLogger(__name__)
Obj = dict[str, Any]

REDISCOVERY_S = 30.0
#: ControllerContext.options key overriding REDISCOVERY_S (tests use a short period).
REDISCOVERY_OPTION = "garbage-collector-rediscovery-period"
#: Owners confirmed absent are remembered (no GET per dependent); the memory is bounded.
MAX_ABSENT_OWNERS = 10_000
IGNORED = frozenset({("", "events"), ("events.k8s.io", "events")})
SEED = (
    PODS, REPLICASETS, DEPLOYMENTS, DAEMONSETS, STATEFULSETS, JOBS, CRONJOBS,
    CONTROLLERREVISIONS, ENDPOINTSLICES, CONFIGMAPS, SECRETS, SERVICES, REPLICATIONCONTROLLERS,
    SERVICEACCOUNTS, PERSISTENTVOLUMECLAIMS, NODES, LEASES,
)  # fmt: skip


def _group_of(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


class GarbageCollector(Controller):
    name = "garbagecollector"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.graph = Graph()
        self.monitored: set[tuple[str, str]] = set()
        self.kinds: dict[tuple[str, str], Resource] = {}
        self.absent_owners: set[str] = set()
        self.rediscovery_s = float(context.options.get(REDISCOVERY_OPTION, REDISCOVERY_S))
        for res in SEED:
            self.monitor(res)

    # -- the graph ---------------------------------------------------------------------------------
    def learn_kind(self, res: Resource) -> None:
        """Remember how to GET objects of ``res``'s kind; dependents of that kind's owners are looked at again.

        Until a kind is known its owners count as present (never delete on a
        guess), so a CRD discovered late must re-check the dependents it owns.
        """
        key = (res.group, res.kind)
        if key in self.kinds:
            return
        self.kinds[key] = res
        for node in list(self.graph.nodes.values()):
            if any((_group_of(str(r.get("apiVersion", ""))), r.get("kind")) == key for r in node.owners):
                self.enqueue(node.uid)

    def monitor(self, res: Resource) -> None:
        """Watch ``res`` and feed the graph (idempotent)."""
        self.learn_kind(res)
        key = (res.group, res.plural)
        if key in self.monitored or key in IGNORED:
            return
        self.monitored.add(key)
        informer = self.informers.informer(res)
        informer.add_handler(
            on_add=lambda obj: self._observed(res, obj),
            on_update=lambda _old, new: self._observed(res, new),
            on_delete=self._gone,
        )

    def _observed(self, res: Resource, obj: Obj) -> None:
        node = node_of(res, obj)
        self.absent_owners.discard(node.uid)
        for uid in self.graph.observe(node):
            self.enqueue(uid)

    def _gone(self, obj: Obj) -> None:
        for uid in self.graph.forget(str((obj.get("metadata") or {}).get("uid", ""))):
            self.enqueue(uid)

    async def run(self, workers: int = 2) -> None:
        discovery = asyncio.create_task(self._discovery_loop())
        try:
            await super().run(workers)
        finally:
            discovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await discovery

    async def _discovery_loop(self) -> None:
        while True:
            try:
                for found in await discover_resources(self.client):
                    self.learn_kind(found.resource)
                    if found.can("list", "watch", "delete"):
                        self.monitor(found.resource)
            except (ApiError, OSError) as err:
                log.warning("garbagecollector: discovery failed: %s", err)
            await self.clock.sleep(self.rediscovery_s)

    # -- sync --------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        node = self.graph.nodes.get(key)
        if node is None:
            return
        if node.orphaning:
            await self._orphan_dependents(node)
        elif node.deleting_dependents:
            await self._delete_dependents_first(node)
        elif node.owners and not node.deleting:
            await self._attempt_to_delete(node)

    async def _owner_state(self, node: Node, ref: Obj) -> str:
        """ "solid", "dangling" or "waiting" (owner deleting its dependents in the foreground)."""
        uid = str(ref.get("uid", ""))
        owner = self.graph.nodes.get(uid)
        if owner is not None:
            return "waiting" if owner.deleting_dependents else "solid"
        if uid in self.absent_owners:
            return "dangling"
        res = self.kinds.get((_group_of(str(ref.get("apiVersion", ""))), str(ref.get("kind", ""))))
        if res is None:
            return "solid"  # a kind we cannot look up: never delete on a guess
        if res.namespaced and not node.namespace:
            return "dangling"  # a cluster-scoped object cannot be owned by a namespaced one
        try:
            live = await self.client.get(res, str(ref.get("name", "")), node.namespace if res.namespaced else None)
        except ApiError as err:
            if not is_not_found(err):
                raise
            live = None
        if live is None or live["metadata"].get("uid") != uid:
            if len(self.absent_owners) >= MAX_ABSENT_OWNERS:
                self.absent_owners.clear()
            self.absent_owners.add(uid)
            return "dangling"
        meta = live["metadata"]
        if meta.get("deletionTimestamp") and FOREGROUND_FINALIZER in (meta.get("finalizers") or []):
            return "waiting"
        return "solid"

    async def _attempt_to_delete(self, node: Node) -> None:
        states = {str(ref.get("uid")): await self._owner_state(node, ref) for ref in node.owners}
        solid = [u for u, s in states.items() if s == "solid"]
        waiting = [u for u, s in states.items() if s == "waiting"]
        if solid:
            stale = {u for u, s in states.items() if s != "solid"}
            if stale:
                await self._patch_owner_refs(node, lambda refs: [r for r in refs if str(r.get("uid")) not in stale])
            return
        dependents = self.graph.dependents_of(node.uid)
        if waiting and dependents:
            # Deleted in the foreground so its own dependents keep blocking the owner chain.  Only when a
            # dependent is itself deleting its dependents are our references unblocked (upstream's cycle guard).
            if any(dep.deleting_dependents for dep in dependents):
                blocked = set(waiting)

                def unblock(refs: list[Obj]) -> list[Obj]:
                    return [{**r, "blockOwnerDeletion": False} if str(r.get("uid")) in blocked else r for r in refs]

                await self._patch_owner_refs(node, unblock)
            await self._delete(node, "Foreground")
            return
        if ORPHAN_FINALIZER in node.finalizers:
            policy = "Orphan"
        elif FOREGROUND_FINALIZER in node.finalizers:
            policy = "Foreground"
        else:
            policy = "Background"
        await self._delete(node, policy)

    async def _orphan_dependents(self, owner: Node) -> None:
        for dep in self.graph.dependents_of(owner.uid):
            await self._patch_owner_refs(dep, lambda refs: [r for r in refs if str(r.get("uid")) != owner.uid])
        await self._remove_finalizer(owner, ORPHAN_FINALIZER)

    async def _delete_dependents_first(self, owner: Node) -> None:
        if not self.graph.blocking_dependents(owner.uid):
            await self._remove_finalizer(owner, FOREGROUND_FINALIZER)
            return
        for dep in self.graph.dependents_of(owner.uid):
            if not dep.deleting:
                self.enqueue(dep.uid)

    # -- writes ------------------------------------------------------------------------------------
    async def _latest(self, node: Node) -> Obj | None:
        try:
            obj = await self.client.get(node.resource, node.name, node.namespace or None)
        except ApiError as err:
            if is_not_found(err):
                return None
            raise
        return obj if obj["metadata"].get("uid") == node.uid else None

    async def _patch_owner_refs(self, node: Node, change: Any) -> None:
        """Rewrite the node's ownerReferences with ``change(refs)``, guarded by resourceVersion."""
        latest = await self._latest(node)
        if latest is None:
            return
        refs = list(latest["metadata"].get("ownerReferences") or [])
        new_refs = change(refs)
        if new_refs == refs:
            return
        meta = latest["metadata"]
        patch = {"metadata": {"ownerReferences": new_refs or None, "resourceVersion": meta["resourceVersion"]}}
        await self._guarded_patch(node, patch)

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        latest = await self._latest(node)
        if latest is None:
            return
        finalizers = list(latest["metadata"].get("finalizers") or [])
        if finalizer not in finalizers:
            return
        rest = [f for f in finalizers if f != finalizer]
        patch = {"metadata": {"finalizers": rest or None, "resourceVersion": latest["metadata"]["resourceVersion"]}}
        await self._guarded_patch(node, patch)

    async def _guarded_patch(self, node: Node, patch: Obj) -> None:
        try:
            await self.client.patch(node.resource, node.name, patch, node.namespace or None)
        except ApiError as err:
            if not is_not_found(err):
                raise

    async def _delete(self, node: Node, policy: str) -> None:
        log.info("garbagecollector: deleting %s %s/%s (%s)", node.resource.kind, node.namespace, node.name, policy)
        try:
            await self.client.delete(
                node.resource, node.name, node.namespace or None, propagation_policy=policy,
                preconditions={"uid": node.uid},
            )  # fmt: skip
        except ApiError as err:
            if not (is_not_found(err) or is_conflict(err)):
                raise


CONTROLLERS = [
    ControllerSpec("garbagecollector", GarbageCollector, workers=5, service_account="generic-garbage-collector")
]
