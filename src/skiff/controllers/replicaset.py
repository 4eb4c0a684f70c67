"""The ReplicaSet controller: keep ``spec.replicas`` pods matching the selector (replica_set.go).

Reads top to bottom like upstream's syncReplicaSet:

1. the ReplicaSet from the informer (gone → forget its expectations);
2. active pods of its namespace, *claimed* through controller references
   (adopt matching orphans, release pods that stopped matching);
3. only when its expectations are satisfied (every create/delete it issued
   has been seen by the pod informer) and it is not being deleted: create
   the missing pods in slow-start batches (1, 2, 4, ...; at most 500 per
   sync) or delete the surplus, worst-ranked first (pod_ranking);
4. write the status computed by replicaset_status (ReplicaFailure on
   errors), then raise the error, if any, to retry with back-off.

The same class runs ReplicationControllers (replicationcontroller.py):
only the resource, kind and selector shape differ.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skiff.api.selectors import LabelSelector, label_selector_from_structured
from skiff.api.status import ApiError
from skiff.client import Resource, is_conflict, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.informer import meta_key
from skiff.client.resources import PODS, REPLICASETS
from skiff.controllers.controller_ref import (
    CONTROLLER_OR_ORPHAN_INDEX,
    ClaimAction,
    adopt,
    claim_action,
    controller_or_orphan_index,
    get_controller_of,
    new_controller_ref,
    orphan_key,
)
from skiff.controllers.controller_ref import release as release_ref
from skiff.controllers.expectations import ControllerExpectations
from skiff.controllers.manager import ControllerSpec
from skiff.controllers.pod_control import BatchError, create_pod, delete_pod, pod_from_template, slow_start_batch
from skiff.controllers.pod_ranking import pods_to_delete
from skiff.controllers.pod_status import is_pod_active, is_pod_ready
from skiff.controllers.replicaset_status import calculate_status, status_changed

log = logging.getLogger(__name__)
Obj = dict[str, Any]

BURST_REPLICAS = 500
NAMESPACE_INDEX = "namespace"


def namespace_index(obj: Obj) -> list[str]:
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


@dataclass(frozen=True)
class ReplicaKind:
    """What differs between ReplicaSets and ReplicationControllers."""

    resource: Resource
    controller_name: str
    component: str
    selector: Callable[[Obj], LabelSelector]


def replicaset_selector(rs: Obj) -> LabelSelector:
    return label_selector_from_structured((rs.get("spec") or {}).get("selector"))


REPLICASET_KIND = ReplicaKind(REPLICASETS, "replicaset", "replicaset-controller", replicaset_selector)


def _namespace_terminating(err: ApiError) -> bool:
    causes = err.details.causes if err.details else ()
    if err.code != 403:
        return False
    return any(c.reason == "NamespaceTerminating" for c in causes) or "because it is being terminated" in err.message


class ReplicaSetController(Controller):
    name = "replicaset"

    def __init__(self, context: ControllerContext, kind: ReplicaKind = REPLICASET_KIND) -> None:
        super().__init__(context)
        self.kind = kind
        self.name = kind.controller_name
        self.expectations = ControllerExpectations(now=self.clock.now)
        self.recorder = context.recorder_for(kind.component)
        self.owners = self.informers.informer(kind.resource)
        self.owners.add_index(NAMESPACE_INDEX, namespace_index)
        self.pods = self.informers.informer(PODS)
        self.pods.add_index(NAMESPACE_INDEX, namespace_index)
        self.pods.add_index(CONTROLLER_OR_ORPHAN_INDEX, controller_or_orphan_index)
        self.owners.add_handler(self.enqueue_obj, lambda _old, new: self.enqueue_obj(new), self._owner_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- event handlers: only bookkeeping and enqueueing --------------------------------------
    def _owner_deleted(self, obj: Obj) -> None:
        key = meta_key(obj)
        self.expectations.delete(key)
        self.enqueue(key)

    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        """resolveControllerRef: the owner named by ``ref`` if it is of our kind and the same uid."""
        if ref is None or ref.get("kind") != self.kind.resource.kind:
            return None
        owner = self.owners.get(f"{namespace}/{ref.get('name')}")
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return owner

    def _matching_owners(self, pod: Obj) -> list[Obj]:
        """Owners of our kind whose selector matches an orphan pod (getPodReplicaSets)."""
        labels = pod["metadata"].get("labels") or {}
        found = []
        for owner in self.owners.by_index(NAMESPACE_INDEX, pod["metadata"].get("namespace", "")):
            try:
                selector = self.kind.selector(owner)
            except ApiError:
                continue
            if not selector.empty and selector.matches(labels):
                found.append(owner)
        return found

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)  # a restarted manager may see pods already being deleted
            return
        ref = get_controller_of(pod)
        if ref is not None:
            owner = self._resolve(pod["metadata"].get("namespace", ""), ref)
            if owner is not None:
                self.expectations.creation_observed(meta_key(owner))
                self.enqueue_obj(owner)
            return
        for owner in self._matching_owners(pod):
            self.enqueue_obj(owner)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        ns = cur["metadata"].get("namespace", "")
        labels_changed = old["metadata"].get("labels") != cur["metadata"].get("labels")
        if cur["metadata"].get("deletionTimestamp"):
            self._pod_deleted(cur)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, cur_ref = get_controller_of(old), get_controller_of(cur)
        if old_ref != cur_ref and (old_owner := self._resolve(ns, old_ref)) is not None:
            self.enqueue_obj(old_owner)
        if cur_ref is not None:
            owner = self._resolve(ns, cur_ref)
            if owner is None:
                return
            self.enqueue_obj(owner)
            min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                self.queue.add_after(meta_key(owner), min_ready + 1)
            return
        if labels_changed or old_ref != cur_ref:
            for owner in self._matching_owners(cur):
                self.enqueue_obj(owner)

    def _pod_deleted(self, pod: Obj) -> None:
        owner = self._resolve(pod["metadata"].get("namespace", ""), get_controller_of(pod))
        if owner is None:
            return
        key = meta_key(owner)
        self.expectations.deletion_observed(key, meta_key(pod))
        self.enqueue(key)

    # -- sync -----------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        owner = self.owners.get(key)
        if owner is None:
            self.expectations.delete(key)
            return
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = self.kind.selector(owner)
        except ApiError as err:
            self.recorder.event(owner, "Warning", "SelectorParsingFailed", err.message)
            return
        namespace = owner["metadata"].get("namespace", "")
        candidates = [p for p in self._own_and_orphan_pods(owner, namespace) if is_pod_active(p)]
        pods = await self._claim_pods(owner, selector, candidates)
        failure: tuple[str, str] | None = None
        error: Exception | None = None
        if needs_sync and not owner["metadata"].get("deletionTimestamp"):
            diff = len(pods) - int((owner.get("spec") or {}).get("replicas", 1))
            try:
                await self._manage_replicas(key, owner, pods, diff)
            except ApiError as err:
                error = err
                failure = ("FailedCreate" if diff < 0 else "FailedDelete", err.message)
        now = self.clock.now()
        status = calculate_status(owner, pods, now, failure)
        updated = await self._write_status(owner, status)
        spec = owner.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        if error is None and min_ready > 0:
            st = updated.get("status") or {}
            if st.get("readyReplicas") == spec.get("replicas") and st.get("availableReplicas") != spec.get("replicas"):
                self.queue.add_after(key, min_ready)
        if error is not None:
            raise error

    def _own_and_orphan_pods(self, owner: Obj, namespace: str) -> list[Obj]:
        """The pods a claim can keep, release or adopt (FilterPodsByOwner): ours and the namespace's orphans."""
        index = CONTROLLER_OR_ORPHAN_INDEX
        return self.pods.by_index(index, owner["metadata"]["uid"]) + self.pods.by_index(index, orphan_key(namespace))

    async def _claim_pods(self, owner: Obj, selector: LabelSelector, pods: list[Obj]) -> list[Obj]:
        """ClaimPods: keep ours, adopt matching orphans (after re-checking the owner), release the rest."""
        claimed: list[Obj] = []
        fresh_checked: bool | None = None
        uid = owner["metadata"]["uid"]
        ref = new_controller_ref(owner, self.kind.resource.api_version, self.kind.resource.kind)
        for pod in pods:
            action = claim_action(pod, owner, selector)
            if action is ClaimAction.KEEP:
                claimed.append(pod)
            elif action is ClaimAction.RELEASE:
                try:
                    await release_ref(self.client, PODS, pod, uid)
                except ApiError as err:
                    if not (is_not_found(err) or err.code == 422):
                        raise
            elif action is ClaimAction.ADOPT:
                if fresh_checked is None:
                    fresh_checked = await self._can_adopt(owner)
                if not fresh_checked:
                    continue
                try:
                    claimed.append(await adopt(self.client, PODS, pod, ref))
                except ApiError as err:
                    if not (is_not_found(err) or err.code == 422):
                        raise
        return claimed

    async def _can_adopt(self, owner: Obj) -> bool:
        """RecheckDeletionTimestamp: never adopt for an owner that is, in truth, gone or being deleted."""
        meta = owner["metadata"]
        try:
            fresh = await self.client.get(self.kind.resource, meta["name"], meta.get("namespace"))
        except ApiError as err:
            if is_not_found(err):
                return False
            raise
        return bool(fresh["metadata"].get("uid") == meta["uid"] and not fresh["metadata"].get("deletionTimestamp"))

    async def _manage_replicas(self, key: str, owner: Obj, pods: list[Obj], diff: int) -> None:
        if diff < 0:
            await self._create_pods(key, owner, min(-diff, BURST_REPLICAS))
        elif diff > 0:
            await self._delete_pods(key, owner, pods, min(diff, BURST_REPLICAS))

    async def _create_pods(self, key: str, owner: Obj, count: int) -> None:
        self.expectations.expect_creations(key, count)
        template = (owner.get("spec") or {}).get("template") or {}
        ref = new_controller_ref(owner, self.kind.resource.api_version, self.kind.resource.kind)

        async def create_one() -> Obj:
            return await create_pod(self.client, self.recorder, owner, pod_from_template(template, owner, ref))

        try:
            await slow_start_batch(count, 1, create_one)
        except BatchError as err:
            for _ in range(count - err.successes):
                self.expectations.creation_observed(key)  # never coming: do not wait for them
            if isinstance(err.error, ApiError) and _namespace_terminating(err.error):
                return
            raise err.error from None

    async def _delete_pods(self, key: str, owner: Obj, pods: list[Obj], count: int) -> None:
        victims = pods_to_delete(pods, count, self._related_pods(owner, pods))
        self.expectations.expect_deletions(key, [meta_key(p) for p in victims])
        ns = owner["metadata"].get("namespace", "")
        results = await asyncio.gather(
            *(delete_pod(self.client, self.recorder, owner, ns, p["metadata"]["name"]) for p in victims),
            return_exceptions=True,
        )
        first: BaseException | None = None
        for victim, result in zip(victims, results, strict=True):
            if isinstance(result, BaseException):
                self.expectations.deletion_observed(key, meta_key(victim))
                first = first or result
        if first is not None:
            raise first

    def _related_pods(self, owner: Obj, pods: list[Obj]) -> list[Obj]:
        """getIndirectlyRelatedPods: pods of every RS controlled by the same Deployment (for node ranking)."""
        parent = get_controller_of(owner)
        if parent is None:
            return pods
        ns = owner["metadata"].get("namespace", "")
        related: list[Obj] = []
        for sibling in self.owners.by_index(NAMESPACE_INDEX, ns):
            sib_ref = get_controller_of(sibling)
            if sib_ref is None or sib_ref.get("uid") != parent.get("uid"):
                continue
            related += self.pods.by_index(CONTROLLER_OR_ORPHAN_INDEX, sibling["metadata"]["uid"])
        return related

    async def _write_status(self, owner: Obj, status: Obj) -> Obj:
        """updateReplicaSetStatus: PUT the status (observedGeneration = generation), one retry on conflict."""
        if not status_changed(owner, status):
            return owner
        body = dict(owner)
        for attempt in range(2):
            body = {**body, "status": {**status, "observedGeneration": body["metadata"].get("generation", 0)}}
            try:
                return await self.client.update_status(self.kind.resource, body)
            except ApiError as err:
                if is_not_found(err):
                    return owner
                if not is_conflict(err) or attempt:
                    raise
                meta = owner["metadata"]
                body = await self.client.get(self.kind.resource, meta["name"], meta.get("namespace"))
        return owner


CONTROLLERS = [ControllerSpec("replicaset", ReplicaSetController, workers=5, service_account="replicaset-controller")]
