"""The rollout steps of the Deployment controller (rolling.go, recreate.go, sync.go upstream).

Each step computes a plan with deployment_rollout's pure functions and
writes it: ``scale_rs`` PUTs a ReplicaSet's size together with the
desired-replicas / max-replicas annotations and records a
``ScalingReplicaSet`` event.  The ReplicaSet dicts passed around are the
controller's private copies and are updated in place after each write, so
later steps of the same sync see the sizes just written.
"""

from __future__ import annotations

import copy
from typing import Any

from skiff.api.status import ApiError
from skiff.client import is_not_found
from skiff.client.controller import Controller
from skiff.client.events import EventRecorder
from skiff.client.resources import REPLICASETS
from skiff.controllers.deployment_revisions import active_rss, history_to_delete, replicas_annotations_need_update
from skiff.controllers.deployment_revisions import set_replicas_annotations as annotate_replicas
from skiff.controllers.deployment_rollout import (
    DESIRED_REPLICAS_ANNOTATION,
    annotation_int,
    cleanup_unhealthy,
    creation_order_key,
    is_rolling_update,
    max_scaled_down,
    max_surge,
    new_rs_replicas,
    proportional_sizes,
    replicas_of,
    scale_down_old,
    status_int,
    total_replicas,
)
from skiff.controllers.deployment_status import calculate_status, is_complete, requeue_after, rollout_status
from skiff.controllers.pod_status import pod_phase

Obj = dict[str, Any]


def _normalized(status: Obj) -> Obj:
    """Status fields Go would omit when zero/empty are treated as absent for comparison."""
    return {k: v for k, v in status.items() if v not in (0, None, [], {})}


class DeploymentStrategies(Controller):
    recorder: EventRecorder

    async def get_all_rss(self, d: Obj, rs_list: list[Obj], create: bool) -> tuple[Obj | None, list[Obj]]:
        raise NotImplementedError

    async def write_status(self, d: Obj, status: Obj) -> None:
        raise NotImplementedError

    # -- writes ------------------------------------------------------------------------------------
    async def scale_rs(self, d: Obj, rs: Obj, size: int, operation: str | None = None) -> bool:
        """scaleReplicaSet: new size and replica annotations; True when the size changed."""
        desired = replicas_of(d)
        maximum = desired + max_surge(d)
        old_size = replicas_of(rs)
        size_changed = old_size != size
        if not size_changed and not replicas_annotations_need_update(rs, desired, maximum):
            return False
        body = copy.deepcopy(rs)
        body["spec"]["replicas"] = size
        annotate_replicas(body, desired, maximum)
        updated = await self.client.update(REPLICASETS, body)
        rs.clear()
        rs.update(updated)
        if size_changed:
            operation = operation or ("up" if size > old_size else "down")
            msg = f"Scaled {operation} replica set {rs['metadata']['name']} from {old_size} to {size}"
            self.recorder.event(d, "Normal", "ScalingReplicaSet", msg)
        return size_changed

    async def apply_sizes(self, d: Obj, rss: list[Obj], sizes: dict[str, int], operation: str | None = None) -> int:
        """Scale each RS named in ``sizes``; the number of replicas removed or added in total."""
        moved = 0
        for rs in rss:
            size = sizes.get(rs["metadata"]["name"])
            if size is None:
                continue
            before = replicas_of(rs)
            if await self.scale_rs(d, rs, size, operation):
                moved += abs(before - size)
        return moved

    # -- status ------------------------------------------------------------------------------------
    async def sync_deployment_status(self, d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> None:
        status = calculate_status(d, all_rss, new_rs, self.clock.now())
        if _normalized(status) != _normalized(d.get("status") or {}):
            await self.write_status(d, status)

    async def sync_rollout_status(self, d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> None:
        now = self.clock.now()
        status = rollout_status(d, all_rss, new_rs, now)
        if _normalized(status) != _normalized(d.get("status") or {}):
            await self.write_status(d, status)
        after = requeue_after(d, d.get("status") or {}, now)
        if after is not None:
            self.queue.add_after(f"{d['metadata']['namespace']}/{d['metadata']['name']}", after)

    async def sync_status_only(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old = await self.get_all_rss(d, rs_list, create=False)
        await self.sync_deployment_status(d, [*old, *([new_rs] if new_rs else [])], new_rs)

    # -- scaling (paused, or spec.replicas changed mid-rollout) -------------------------------------
    async def is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        """isScalingEvent: an active RS's desired-replicas annotation differs from spec.replicas."""
        new_rs, old = await self.get_all_rss(d, rs_list, create=False)
        for rs in active_rss([*old, new_rs]):
            desired = annotation_int(rs, DESIRED_REPLICAS_ANNOTATION)
            if desired is not None and desired != replicas_of(d):
                return True
        return False

    async def sync_scale(self, d: Obj, rs_list: list[Obj]) -> None:
        """sync(): scale, clean up history when paused, then status."""
        new_rs, old = await self.get_all_rss(d, rs_list, create=False)
        await self.scale(d, new_rs, old)
        if (d.get("spec") or {}).get("paused"):
            await self.cleanup(d, old)
        await self.sync_deployment_status(d, [*old, *([new_rs] if new_rs else [])], new_rs)

    async def scale(self, d: Obj, new_rs: Obj | None, old: list[Obj]) -> None:
        """DeploymentController.scale."""
        latest = _active_or_latest(new_rs, old)
        if latest is not None:
            if replicas_of(latest) != replicas_of(d):
                await self.scale_rs(d, latest, replicas_of(d))
            return
        if new_rs is not None and _is_saturated(d, new_rs):
            for rs in active_rss(old):
                await self.scale_rs(d, rs, 0)
            return
        if is_rolling_update(d):
            active = active_rss([*old, new_rs])
            sizes = proportional_sizes(d, active)
            allowed = replicas_of(d) + max_surge(d) if replicas_of(d) > 0 else 0
            operation = "up" if allowed > total_replicas(active) else "down"
            await self.apply_sizes(d, active, sizes, operation)

    # -- RollingUpdate -----------------------------------------------------------------------------
    async def rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old = await self.get_all_rss(d, rs_list, create=True)
        assert new_rs is not None
        all_rss = [*old, new_rs]
        if await self._reconcile_new_rs(d, all_rss, new_rs):
            await self.sync_rollout_status(d, all_rss, new_rs)
            return
        if await self._reconcile_old_rss(d, all_rss, active_rss(old), new_rs):
            await self.sync_rollout_status(d, all_rss, new_rs)
            return
        if is_complete(d, d.get("status") or {}):
            await self.cleanup(d, old)
        await self.sync_rollout_status(d, all_rss, new_rs)

    async def _reconcile_new_rs(self, d: Obj, all_rss: list[Obj], new_rs: Obj) -> bool:
        desired, current = replicas_of(d), replicas_of(new_rs)
        if current == desired:
            return False
        if current > desired:
            return await self.scale_rs(d, new_rs, desired)
        return await self.scale_rs(d, new_rs, new_rs_replicas(d, all_rss, new_rs))

    async def _reconcile_old_rss(self, d: Obj, all_rss: list[Obj], old: list[Obj], new_rs: Obj) -> bool:
        if total_replicas(old) == 0:
            return False
        budget = max_scaled_down(d, all_rss, new_rs)
        if budget <= 0:
            return False
        moved = await self.apply_sizes(d, old, cleanup_unhealthy(old, budget), "down")
        moved += await self.apply_sizes(d, old, scale_down_old(d, [*old, new_rs], old), "down")
        return moved > 0

    # -- Recreate ----------------------------------------------------------------------------------
    async def rollout_recreate(self, d: Obj, rs_list: list[Obj], pods_by_rs: dict[str, list[Obj]]) -> None:
        new_rs, old = await self.get_all_rss(d, rs_list, create=False)
        all_rss = [*old, *([new_rs] if new_rs else [])]
        scaled = False
        for rs in active_rss(old):
            scaled = await self.scale_rs(d, rs, 0) or scaled
        if scaled or _old_pods_running(new_rs, old, pods_by_rs):
            await self.sync_rollout_status(d, all_rss, new_rs)
            return
        if new_rs is None:
            new_rs, old = await self.get_all_rss(d, rs_list, create=True)
            assert new_rs is not None
            all_rss = [*old, new_rs]
        await self.scale_rs(d, new_rs, replicas_of(d))
        if is_complete(d, d.get("status") or {}):
            await self.cleanup(d, old)
        await self.sync_rollout_status(d, all_rss, new_rs)

    # -- history -----------------------------------------------------------------------------------
    async def cleanup(self, d: Obj, old: list[Obj]) -> None:
        """cleanupDeployment: delete old RSs beyond revisionHistoryLimit."""
        for rs in history_to_delete(d, old):
            try:
                await self.client.delete(REPLICASETS, rs["metadata"]["name"], rs["metadata"]["namespace"])
            except ApiError as err:
                if not is_not_found(err):
                    raise


def _active_or_latest(new_rs: Obj | None, old: list[Obj]) -> Obj | None:
    """FindActiveOrLatest: the only active RS, or the newest when none is active; None when several are."""
    if new_rs is None and not old:
        return None
    newest_first = sorted(old, key=creation_order_key, reverse=True)
    active = active_rss([*newest_first, new_rs])
    if len(active) == 0:
        return new_rs if new_rs is not None else newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


def _is_saturated(d: Obj, rs: Obj) -> bool:
    desired = annotation_int(rs, DESIRED_REPLICAS_ANNOTATION)
    want = replicas_of(d)
    return replicas_of(rs) == want and desired == want and status_int(rs, "availableReplicas") == want


def _old_pods_running(new_rs: Obj | None, old: list[Obj], pods_by_rs: dict[str, list[Obj]]) -> bool:
    """oldPodsRunning: any old RS still reports replicas, or has a pod not yet Succeeded/Failed."""
    if sum(status_int(rs, "replicas") for rs in old) > 0:
        return True
    new_uid = (new_rs or {}).get("metadata", {}).get("uid")
    for uid, pods in pods_by_rs.items():
        if uid == new_uid:
            continue
        if any(pod_phase(p) not in ("Failed", "Succeeded") for p in pods):
            return True
    return False
