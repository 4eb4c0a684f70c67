"""The StatefulSet controller: stable names, ordered start and stop, claims, partitioned rollouts.

Upstream: pkg/controller/statefulset.  Informers on StatefulSets, pods and
ControllerRevisions; handlers only enqueue set keys.  ``sync`` records the
template as a ControllerRevision (the update revision), works out the
current revision from status, asks ``statefulset_pods.plan`` what to do this
round, creates claims before their pod, and writes the status.  Pods have
fixed names, so a create racing a stale cache fails with AlreadyExists
instead of over-creating; that is why StatefulSets need no expectations.
Claims are bound by a provisioner (``local_provisioner`` for local storage).
"""

from __future__ import annotations

import logging
from typing import Any

from skiff.api.selectors import label_selector_from_structured
from skiff.api.status import ApiError
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import CONTROLLERREVISIONS, PERSISTENTVOLUMECLAIMS, PODS, STATEFULSETS
from skiff.controllers import statefulset_pods as sp
from skiff.controllers.controller_ref import (
    CONTROLLER_UID_INDEX,
    controller_uid_index,
    get_controller_of,
    new_controller_ref,
    owner_refs_with,
)
from skiff.controllers.daemonset import (
    NAMESPACE_INDEX,
    claim_candidates,
    claim_pods,
    enqueue_selecting,
    namespace_index,
)
from skiff.controllers.history import ensure_revision, owned_revisions, template_of, truncate_history
from skiff.controllers.manager import ControllerSpec
from skiff.controllers.pod_control import create_pod, delete_pod
from skiff.controllers.status_writes import store_status

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KIND = "StatefulSet"
API_VERSION = "apps/v1"


class StatefulSetController(Controller):
    name = "statefulset"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.recorder = context.recorder_for("statefulset-controller")
        self.sets = self.informers.informer(STATEFULSETS)
        self.pods = self.informers.informer(PODS)
        self.revisions = self.informers.informer(CONTROLLERREVISIONS)
        self.pods.add_index(CONTROLLER_UID_INDEX, controller_uid_index)
        self.pods.add_index(NAMESPACE_INDEX, namespace_index)
        self.revisions.add_index(CONTROLLER_UID_INDEX, controller_uid_index)
        self.sets.add_handler(self.enqueue_obj, lambda _old, new: self.enqueue_obj(new), None)
        self.pods.add_handler(self._on_pod, lambda _old, new: self._on_pod(new), self._on_pod)

    def _on_pod(self, pod: Obj) -> None:
        ref = get_controller_of(pod)
        if ref is not None and ref.get("kind") == KIND:
            self.enqueue(f"{pod['metadata'].get('namespace', '')}/{ref.get('name', '')}")
        elif ref is None:
            enqueue_selecting(self, self.sets, pod)

    async def sync(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        uid = sts["metadata"]["uid"]
        revisions = owned_revisions(self.revisions.by_index(CONTROLLER_UID_INDEX, uid), uid)
        template = (sts.get("spec") or {}).get("template") or {}
        update, collision = await ensure_revision(self.client, sts, API_VERSION, KIND, revisions, template)
        update_name = update["metadata"]["name"]
        by_name = {r["metadata"]["name"]: r for r in revisions}
        current_name = (sts.get("status") or {}).get("currentRevision") or update_name
        current = by_name.get(current_name, update)
        current_name = current["metadata"]["name"]
        pods = await self._set_pods(sts)
        for action in sp.plan(sts, pods, update_name):
            if isinstance(action, sp.Create):
                revision = current if action.revision == "current" else update
                await self._create(sts, action.ordinal, revision)
            else:
                await self._delete(sts, action)
        status = sp.calculate_status(sts, pods, current_name, update_name, collision, self.clock.now())
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready and status["availableReplicas"] < status["readyReplicas"]:
            self.queue.add_after(key, min_ready)  # availability comes with time alone
        if status["currentRevision"] != current_name:
            current_name = status["currentRevision"]
        keep = {current_name, update_name} | {r for p in pods if (r := sp.revision_of(p))}
        await truncate_history(self.client, revisions, keep, (sts.get("spec") or {}).get("revisionHistoryLimit"))
        await self._write_status(sts, status)

    async def _set_pods(self, sts: Obj) -> list[Obj]:
        """Our pods (claiming orphans that match, isMemberOf: named ``<set>-<ordinal>``), by ordinal."""
        selector = label_selector_from_structured((sts.get("spec") or {}).get("selector"))
        name = sts["metadata"]["name"]
        members = [
            p for p in claim_candidates(self.pods, sts) if sp.ordinal_of(name, p["metadata"]["name"]) is not None
        ]
        claimed = await claim_pods(self.client, sts, API_VERSION, KIND, members, selector)
        return sorted(claimed, key=lambda p: sp.ordinal_of(name, p["metadata"]["name"]) or 0)

    async def _create(self, sts: Obj, ordinal: int, revision: Obj) -> None:
        """createPersistentVolumeClaims, then the pod; an existing pod (stale cache) is not an error."""
        for claim in sp.claims_for(sts, ordinal):
            try:
                await self.client.create(PERSISTENTVOLUMECLAIMS, claim)
            except ApiError as err:
                if err.code != 409:
                    self.recorder.event(
                        sts,
                        "Warning",
                        "FailedCreate",
                        f"create Claim {claim['metadata']['name']} failed: {err.message}",
                    )
                    raise
            else:
                self.recorder.event(
                    sts, "Normal", "SuccessfulCreate", f"create Claim {claim['metadata']['name']} success"
                )
        pod = sp.new_pod(sts, template_of(revision), revision["metadata"]["name"], ordinal)
        try:
            await create_pod(self.client, self.recorder, sts, pod)
        except ApiError as err:
            if err.code != 409:
                raise

    async def _delete(self, sts: Obj, action: sp.Delete) -> None:
        pod = action.pod
        retention = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
        if action.reason == "condemned" and retention.get("whenScaled") == "Delete":
            await self._claims_owned_by_pod(sts, pod)
        await delete_pod(
            self.client, self.recorder, sts, str(pod["metadata"].get("namespace") or ""), pod["metadata"]["name"]
        )

    async def _claims_owned_by_pod(self, sts: Obj, pod: Obj) -> None:
        """whenScaled: Delete — the condemned pod owns its claims, so the garbage collector removes them."""
        ordinal = sp.ordinal_of(sts["metadata"]["name"], pod["metadata"]["name"])
        if ordinal is None:
            return
        ref = new_controller_ref(pod, "v1", "Pod")
        ref["controller"] = False
        for claim in sp.claims_for(sts, ordinal):
            meta = claim["metadata"]
            try:
                existing = await self.client.get(PERSISTENTVOLUMECLAIMS, meta["name"], meta["namespace"])
                existing["metadata"]["ownerReferences"] = owner_refs_with(existing, ref)
                # UpdateClaim, as upstream: the statefulset-controller role updates claims, never patches them.
                await self.client.update(PERSISTENTVOLUMECLAIMS, existing)
            except ApiError as err:
                if err.code != 404:
                    raise

    async def _write_status(self, sts: Obj, status: Obj) -> None:
        old = sts.get("status") or {}
        if not status.get("collisionCount"):
            status.pop("collisionCount")
        if all(old.get(k) == v for k, v in status.items()):
            return
        await store_status(self.client, STATEFULSETS, sts, status)


CONTROLLERS = [ControllerSpec("statefulset", StatefulSetController, service_account="statefulset-controller")]
