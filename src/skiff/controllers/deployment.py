"""The Deployment controller: roll ReplicaSets from one template to the next (pkg/controller/deployment).

sync(key) reads like upstream's syncDeployment:

1. the Deployment from the informer (a deep copy; the cache is never mutated);
2. its ReplicaSets, claimed by controller reference and selector;
3. being deleted → status only; paused → scale and clean up only (with the
   DeploymentPaused / DeploymentResumed Progressing condition); a changed
   ``spec.replicas`` during a rollout → proportional scaling
   (deployment_rollout.proportional_sizes);
4. otherwise the strategy: RollingUpdate (grow the new RS within maxSurge,
   shrink old ones within maxUnavailable) or Recreate (old RSs to zero, wait
   for their pods to go, then the new RS to full size);
5. a complete rollout prunes history beyond revisionHistoryLimit;
6. the status and conditions from deployment_status, requeued so a stalled
   rollout reports ProgressDeadlineExceeded on time.

The rollout steps live in deployment_strategies.py; this module holds the
wiring, the new-ReplicaSet bookkeeping and the writes.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from skiff.api.selectors import LabelSelector, label_selector_from_structured
from skiff.api.status import ApiError
from skiff.client import is_already_exists, is_conflict, is_not_found
from skiff.client.controller import ControllerContext
from skiff.client.resources import DEPLOYMENTS, PODS, REPLICASETS
from skiff.controllers.controller_ref import (
    CONTROLLER_UID_INDEX,
    ClaimAction,
    adopt,
    claim_action,
    controller_uid_index,
    get_controller_of,
    is_controlled_by,
    new_controller_ref,
    release,
)
from skiff.controllers.deployment_revisions import (
    find_new_rs,
    max_revision,
    new_rs_body,
    old_rss,
    set_new_rs_annotations,
)
from skiff.controllers.deployment_rollout import REVISION_ANNOTATION, new_rs_replicas, replicas_of
from skiff.controllers.deployment_status import (
    FAILED_RS_CREATE,
    FOUND_NEW_RS,
    NEW_RS_CREATED,
    PAUSED,
    PROGRESSING,
    RESUMED,
    TIMED_OUT,
    get_condition,
    has_progress_deadline,
    new_condition,
    set_condition,
)
from skiff.controllers.deployment_strategies import DeploymentStrategies
from skiff.controllers.manager import ControllerSpec
from skiff.controllers.pod_template_hash import equal_ignore_hash
from skiff.controllers.replicaset import NAMESPACE_INDEX, namespace_index

log = logging.getLogger(__name__)
Obj = dict[str, Any]
CONFLICT_RETRY_S = 0.1


class DeploymentController(DeploymentStrategies):
    name = "deployment"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.recorder = context.recorder_for("deployment-controller")
        self.deployments = self.informers.informer(DEPLOYMENTS)
        self.deployments.add_index(NAMESPACE_INDEX, namespace_index)
        self.replicasets = self.informers.informer(REPLICASETS)
        self.replicasets.add_index(NAMESPACE_INDEX, namespace_index)
        self.pods = self.informers.informer(PODS)
        self.pods.add_index(NAMESPACE_INDEX, namespace_index)
        self.pods.add_index(CONTROLLER_UID_INDEX, controller_uid_index)
        self.deployments.add_handler(self.enqueue_obj, lambda _o, new: self.enqueue_obj(new), self.enqueue_obj)
        self.replicasets.add_handler(self._rs_changed, self._rs_updated, self._rs_changed)
        self.pods.add_handler(on_delete=self._pod_deleted)

    # -- event handlers --------------------------------------------------------------------------
    def _owner_of(self, obj: Obj) -> Obj | None:
        ref = get_controller_of(obj)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        found = self.deployments.get(f"{obj['metadata'].get('namespace')}/{ref.get('name')}")
        return found if found is not None and found["metadata"].get("uid") == ref.get("uid") else None

    def _matching(self, rs: Obj) -> list[Obj]:
        labels = rs["metadata"].get("labels") or {}
        found = []
        for d in self.deployments.by_index(NAMESPACE_INDEX, rs["metadata"].get("namespace", "")):
            try:
                selector = label_selector_from_structured((d.get("spec") or {}).get("selector"))
            except ApiError:
                continue
            if not selector.empty and selector.matches(labels):
                found.append(d)
        return found

    def _rs_changed(self, rs: Obj) -> None:
        owner = self._owner_of(rs)
        if owner is not None:
            self.enqueue_obj(owner)
        elif get_controller_of(rs) is None:
            for d in self._matching(rs):
                self.enqueue_obj(d)

    def _rs_updated(self, old: Obj, cur: Obj) -> None:
        if get_controller_of(old) != get_controller_of(cur) and (prev := self._owner_of(old)) is not None:
            self.enqueue_obj(prev)
        self._rs_changed(cur)

    def _pod_deleted(self, pod: Obj) -> None:
        """Recreate waits for old pods to go: look again when one does."""
        ref = get_controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get(f"{pod['metadata'].get('namespace')}/{ref.get('name')}")
        owner = self._owner_of(rs) if rs is not None else None
        if owner is not None and ((owner.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
            self.enqueue_obj(owner)

    # -- sync ------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        """One pass; a write conflict means our cache is behind our own last write: look again shortly.

        Conflicts are expected right after every write (the informer has not
        delivered it yet), so they are retried quietly instead of being
        reported as failures with back-off.
        """
        try:
            await self._sync(key)
        except ApiError as err:
            if not is_conflict(err):
                raise
            log.debug("deployment %s: %s; retrying", key, err.message)
            self.queue.add_after(key, CONFLICT_RETRY_S)

    async def _sync(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        try:
            selector = label_selector_from_structured((d.get("spec") or {}).get("selector"))
        except ApiError as err:
            self.recorder.event(d, "Warning", "SelectorParsingFailed", err.message)
            return
        if selector.empty:
            msg = "This deployment is selecting all pods. A non-empty selector is required."
            self.recorder.event(d, "Warning", "SelectingAll", msg)
            if self._observed_generation(d) < int(d["metadata"].get("generation") or 0):
                observed = {**(d.get("status") or {}), "observedGeneration": d["metadata"]["generation"]}
                await self.write_status(d, observed)
            return
        rs_list = [copy.deepcopy(rs) for rs in await self._claim_replicasets(d, selector)]
        if d["metadata"].get("deletionTimestamp"):
            await self.sync_status_only(d, rs_list)
            return
        await self._check_paused_conditions(d)
        if (d.get("spec") or {}).get("paused"):
            await self.sync_scale(d, rs_list)
        elif await self.is_scaling_event(d, rs_list):
            await self.sync_scale(d, rs_list)
        elif ((d.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
            await self.rollout_recreate(d, rs_list, self._pods_by_rs(d, rs_list))
        else:
            await self.rollout_rolling(d, rs_list)

    @staticmethod
    def _observed_generation(d: Obj) -> int:
        return int((d.get("status") or {}).get("observedGeneration") or 0)

    async def _claim_replicasets(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        """ClaimReplicaSets: ours (kept or released), plus orphans adopted when the Deployment is alive."""
        uid = d["metadata"]["uid"]
        ref = new_controller_ref(d, "apps/v1", "Deployment")
        claimed: list[Obj] = []
        fresh_ok: bool | None = None
        for rs in self.replicasets.by_index(NAMESPACE_INDEX, d["metadata"].get("namespace", "")):
            action = claim_action(rs, d, selector)
            try:
                if action is ClaimAction.KEEP:
                    claimed.append(rs)
                elif action is ClaimAction.RELEASE:
                    await release(self.client, REPLICASETS, rs, uid)
                elif action is ClaimAction.ADOPT:
                    if fresh_ok is None:
                        fresh = await self.client.get(DEPLOYMENTS, d["metadata"]["name"], d["metadata"]["namespace"])
                        fresh_ok = fresh["metadata"]["uid"] == uid and not fresh["metadata"].get("deletionTimestamp")
                    if fresh_ok:
                        claimed.append(await adopt(self.client, REPLICASETS, rs, ref))
            except ApiError as err:
                if not (is_not_found(err) or err.code == 422):
                    raise
        return claimed

    def _pods_by_rs(self, d: Obj, rs_list: list[Obj]) -> dict[str, list[Obj]]:
        uids = {rs["metadata"]["uid"] for rs in rs_list}
        by_rs: dict[str, list[Obj]] = {uid: [] for uid in uids}
        for uid in uids:
            by_rs[uid] = self.pods.by_index(CONTROLLER_UID_INDEX, uid)
        return by_rs

    async def _check_paused_conditions(self, d: Obj) -> None:
        """checkPausedConditions: Progressing Unknown DeploymentPaused / DeploymentResumed."""
        if not has_progress_deadline(d):
            return
        status = copy.deepcopy(d.get("status") or {})
        cond = get_condition(status, PROGRESSING)
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == PAUSED
        paused = bool((d.get("spec") or {}).get("paused"))
        now = self.clock.now()
        if paused and not paused_cond:
            set_condition(status, new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now))
        elif not paused and paused_cond:
            set_condition(status, new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now))
        else:
            return
        await self.write_status(d, status)

    # -- the new ReplicaSet ------------------------------------------------------------------------
    async def get_all_rss(self, d: Obj, rs_list: list[Obj], create: bool) -> tuple[Obj | None, list[Obj]]:
        """getAllReplicaSetsAndSyncRevision: (new RS or None, all old RSs)."""
        existing = find_new_rs(d, rs_list)
        old = old_rss(rs_list, existing)
        new = await self._get_new_rs(d, rs_list, old, existing, create)
        return new, old

    async def _get_new_rs(
        self, d: Obj, rs_list: list[Obj], old: list[Obj], existing: Obj | None, create: bool
    ) -> Obj | None:
        new_revision = max_revision(old) + 1
        if existing is not None:
            return await self._sync_existing_new_rs(d, existing, new_revision)
        if not create:
            return None
        body = new_rs_body(d)
        body["spec"]["replicas"] = new_rs_replicas(d, [*old, body], body)
        set_new_rs_annotations(d, body, new_revision, exists=False)
        already = False
        try:
            created = await self.client.create(REPLICASETS, body, d["metadata"]["namespace"])
        except ApiError as err:
            if not is_already_exists(err):
                await self._report_create_failure(d, body, err)
                raise
            created = await self._existing_or_collision(d, body)
            already = True
        name = created["metadata"]["name"]
        if not already and replicas_of(created) > 0:
            msg = f"Scaled up replica set {name} from 0 to {replicas_of(created)}"
            self.recorder.event(d, "Normal", "ScalingReplicaSet", msg)
        await self._set_deployment_revision(d, str(new_revision))
        if not already and has_progress_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            msg = f'Created new replica set "{name}"'
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_CREATED, msg, self.clock.now()))
            await self.write_status(d, status)
        rs_list.append(created)
        return created

    async def _sync_existing_new_rs(self, d: Obj, existing: Obj, new_revision: int) -> Obj:
        """Bring the found new RS's annotations and minReadySeconds up to date (``existing`` updated in place)."""
        rs = copy.deepcopy(existing)
        changed = set_new_rs_annotations(d, rs, new_revision, exists=True)
        min_ready = int((d.get("spec") or {}).get("minReadySeconds") or 0)
        if int(rs["spec"].get("minReadySeconds") or 0) != min_ready:
            rs["spec"]["minReadySeconds"] = min_ready
            changed = True
        if changed:
            rs = await self.client.update(REPLICASETS, rs)
            existing.clear()
            existing.update(rs)
        revision = (rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION)
        await self._set_deployment_revision(d, str(revision or ""))
        if get_condition(d.get("status") or {}, PROGRESSING) is None:
            status = copy.deepcopy(d.get("status") or {})
            msg = f'Found new replica set "{rs["metadata"]["name"]}"'
            set_condition(status, new_condition(PROGRESSING, "True", FOUND_NEW_RS, msg, self.clock.now()))
            await self.write_status(d, status)
        return existing

    async def _existing_or_collision(self, d: Obj, body: Obj) -> Obj:
        """An RS with our name exists: ours with our template → use it; otherwise bump collisionCount."""
        found = await self.client.get(REPLICASETS, body["metadata"]["name"], d["metadata"]["namespace"])
        if is_controlled_by(found, d["metadata"]["uid"]) and equal_ignore_hash(
            (found.get("spec") or {}).get("template"), (d.get("spec") or {}).get("template")
        ):
            return found
        status = copy.deepcopy(d.get("status") or {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.write_status(d, status)
        raise RuntimeError(f"hash collision for replica set {body['metadata']['name']}; collisionCount raised")

    async def _report_create_failure(self, d: Obj, body: Obj, err: ApiError) -> None:
        msg = f'Failed to create new replica set "{body["metadata"]["name"]}": {err.message}'
        if has_progress_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            set_condition(status, new_condition(PROGRESSING, "False", FAILED_RS_CREATE, msg, self.clock.now()))
            await self.write_status(d, status)
        self.recorder.event(d, "Warning", FAILED_RS_CREATE, msg)

    async def _set_deployment_revision(self, d: Obj, revision: str) -> None:
        """SetDeploymentRevision: the Deployment's own revision annotation.

        Written with an update of the cached object (a stale cache conflicts and the sync retries): the
        deployment-controller role may update Deployments but not patch them.  (Upstream writes it through
        UpdateStatus, whose strategy keeps annotations; ours keeps only status.)
        """
        if not revision:
            return
        if (d["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) == revision:
            return
        body = copy.deepcopy(d)
        body["metadata"].setdefault("annotations", {})[REVISION_ANNOTATION] = revision
        updated = await self.client.update(DEPLOYMENTS, body)
        d["metadata"] = updated["metadata"]

    async def write_status(self, d: Obj, status: Obj) -> None:
        """PUT the status (conflicts raise: the sync retries with a fresher cache); ``d`` follows the result."""
        body = {**d, "status": status}
        try:
            updated = await self.client.update_status(DEPLOYMENTS, body)
        except ApiError as err:
            if is_not_found(err):
                return
            raise
        d["metadata"] = updated["metadata"]
        d["status"] = updated.get("status") or {}


CONTROLLERS = [ControllerSpec("deployment", DeploymentController, workers=5, service_account="deployment-controller")]
