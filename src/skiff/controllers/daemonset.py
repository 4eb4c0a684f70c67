"""The DaemonSet controller: one pod per eligible node, rolled by ControllerRevision.

Upstream: pkg/controller/daemon.  Informers on DaemonSets, pods, nodes and
ControllerRevisions; handlers only enqueue DaemonSet keys.  ``sync``:

1. makes sure a ControllerRevision records the current template (its hash is
   the ``controller-revision-hash`` label of new pods);
2. when the expectations of the last sync are met, creates the pods missing
   on eligible nodes and deletes failed, duplicate and misplaced ones
   (``daemonset_rollout.manage_decisions``), otherwise rolls old pods
   (``rolling_update_decisions``) unless the strategy is OnDelete;
3. prunes history beyond ``revisionHistoryLimit`` and writes the status.

Daemon pods are created unbound with a required ``metadata.name In [node]``
node affinity; the scheduler binds them (ScheduleDaemonSetPods, GA in 1.17).
"""

from __future__ import annotations

import logging
from typing import Any

from skiff.api.selectors import LabelSelector, label_selector_from_structured
from skiff.api.status import ApiError
from skiff.client import ApiClient, Resource
from skiff.client.controller import Controller, ControllerContext
from skiff.client.informer import Informer, meta_key
from skiff.client.resources import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS, STATEFULSETS
from skiff.controllers.controller_ref import (
    CONTROLLER_UID_INDEX,
    ClaimAction,
    adopt,
    claim_action,
    controller_uid_index,
    get_controller_of,
    new_controller_ref,
    release,
)
from skiff.controllers.daemonset_nodes import daemon_pod_spec, node_should_run_daemon_pod
from skiff.controllers.daemonset_rollout import (
    Decisions,
    NodeView,
    calculate_status,
    failed_nodes,
    manage_decisions,
    pod_hash,
    rolling_update_decisions,
    surge_and_unavailable,
    target_node_name,
)
from skiff.controllers.expectations import ControllerExpectations
from skiff.controllers.history import REVISION_HASH_LABEL, ensure_revision, owned_revisions, truncate_history
from skiff.controllers.manager import ControllerSpec
from skiff.controllers.pod_control import create_pod, delete_pod, pod_from_template
from skiff.controllers.status_writes import store_status

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KIND = "DaemonSet"
API_VERSION = "apps/v1"
NAMESPACE_INDEX = "namespace"
FAILED_BACKOFF_MIN_S = 1.0
FAILED_BACKOFF_MAX_S = 15 * 60.0


def namespace_index(obj: Obj) -> list[str]:
    """Index objects by namespace (the same index the ReplicaSet controller registers)."""
    return [str((obj.get("metadata") or {}).get("namespace") or "")]


async def claim_pods(
    client: ApiClient, owner: Obj, api_version: str, kind: str, candidates: list[Obj], selector: LabelSelector
) -> list[Obj]:
    """ClaimPods: keep ours, adopt matching orphans (after re-checking the owner is live), release the rest."""
    ref = new_controller_ref(owner, api_version, kind)
    claimed: list[Obj] = []
    owner_checked: bool | None = None
    for pod in candidates:
        action = claim_action(pod, owner, selector)
        if action is ClaimAction.KEEP:
            claimed.append(pod)
            continue
        if action is ClaimAction.IGNORE:
            continue
        try:
            if action is ClaimAction.RELEASE:
                await release(client, PODS, pod, owner["metadata"]["uid"])
                continue
            if owner_checked is None:
                owner_checked = await _owner_is_live(client, owner, DAEMONSETS if kind == KIND else STATEFULSETS)
            if owner_checked:
                claimed.append(await adopt(client, PODS, pod, ref))
        except ApiError as err:
            if err.code not in (404, 409, 422):
                raise
    return claimed


async def _owner_is_live(client: ApiClient, owner: Obj, resource: Resource) -> bool:
    """RecheckDeletionTimestamp: never adopt for an owner that is, in truth, gone or being deleted."""
    meta = owner["metadata"]
    try:
        fresh = await client.get(resource, meta["name"], meta.get("namespace"))
    except ApiError as err:
        if err.code == 404:
            return False
        raise
    return bool(fresh["metadata"].get("uid") == meta["uid"] and not fresh["metadata"].get("deletionTimestamp"))


def claim_candidates(pods: Informer, owner: Obj) -> list[Obj]:
    """Pods of the owner's namespace that are ours or nobody's (others' pods are never touched)."""
    uid = owner["metadata"]["uid"]
    return [
        p
        for p in pods.by_index(NAMESPACE_INDEX, str(owner["metadata"].get("namespace") or ""))
        if (get_controller_of(p) or {}).get("uid", uid) == uid
    ]


def enqueue_selecting(controller: Controller, owners: Informer, pod: Obj) -> None:
    """An orphan pod: wake every owner in its namespace whose selector matches, so one can adopt it."""
    namespace = pod["metadata"].get("namespace")
    labels = pod["metadata"].get("labels") or {}
    for owner in owners.list():
        if owner["metadata"].get("namespace") != namespace:
            continue
        selector = (owner.get("spec") or {}).get("selector")
        if selector and label_selector_from_structured(selector).matches(labels):
            controller.enqueue_obj(owner)


def creation_key(pod: Obj) -> str:
    return f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"


class DaemonSetController(Controller):
    name = "daemonset"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.recorder = context.recorder_for("daemonset-controller")
        self.expectations = ControllerExpectations(self.clock.now)
        self._failed_backoff: dict[str, tuple[float, float]] = {}  # "<ds uid>/<node>" → (delay, until)
        self.daemonsets = self.informers.informer(DAEMONSETS)
        self.pods = self.informers.informer(PODS)
        self.nodes = self.informers.informer(NODES)
        self.revisions = self.informers.informer(CONTROLLERREVISIONS)
        self.pods.add_index(CONTROLLER_UID_INDEX, controller_uid_index)
        self.pods.add_index(NAMESPACE_INDEX, namespace_index)
        self.revisions.add_index(CONTROLLER_UID_INDEX, controller_uid_index)
        self.daemonsets.add_handler(self.enqueue_obj, lambda _old, new: self.enqueue_obj(new), self._on_ds_delete)
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        self.nodes.add_handler(self._on_node_change, lambda _old, new: self._on_node_change(new), self._on_node_change)

    # -- handlers: only enqueue and count expectations ------------------------------------------------
    def _owner_key(self, pod: Obj) -> str | None:
        ref = get_controller_of(pod)
        if ref is None or ref.get("kind") != KIND:
            return None
        return f"{pod['metadata'].get('namespace', '')}/{ref.get('name', '')}"

    def _on_ds_delete(self, ds: Obj) -> None:
        self.expectations.delete(meta_key(ds))
        prefix = f"{ds['metadata'].get('uid')}/"
        for key in [k for k in self._failed_backoff if k.startswith(prefix)]:
            del self._failed_backoff[key]

    def _on_pod_add(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.enqueue(key)
        elif get_controller_of(pod) is None:
            enqueue_selecting(self, self.daemonsets, pod)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        for pod in (old, new):
            key = self._owner_key(pod)
            if key is not None:
                self.enqueue(key)
        if get_controller_of(new) is None:
            enqueue_selecting(self, self.daemonsets, new)

    def _on_pod_delete(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, creation_key(pod))
            self.enqueue(key)

    def _on_node_change(self, _node: Obj) -> None:
        for ds in self.daemonsets.list():
            self.enqueue_obj(ds)

    # -- sync ------------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        ds = self.daemonsets.get(key)
        if ds is None:
            self.expectations.delete(key)
            return
        if ds["metadata"].get("deletionTimestamp"):
            return
        uid = ds["metadata"]["uid"]
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        revisions = owned_revisions(self.revisions.by_index(CONTROLLER_UID_INDEX, uid), uid)
        revision, collision = await ensure_revision(self.client, ds, API_VERSION, KIND, revisions, template)
        current_hash = revision["metadata"]["labels"][REVISION_HASH_LABEL]
        selector = label_selector_from_structured(spec.get("selector"))
        pods = await claim_pods(self.client, ds, API_VERSION, KIND, claim_candidates(self.pods, ds), selector)
        views = self._node_views(ds, pods)
        if self.expectations.satisfied(key):
            await self._act(ds, key, views, current_hash)
        live_hashes = {pod_hash(p) for v in views for p in v.pods}
        keep = {
            r["metadata"]["name"] for r in revisions if r["metadata"]["labels"].get(REVISION_HASH_LABEL) in live_hashes
        }
        keep.add(revision["metadata"]["name"])
        await truncate_history(self.client, revisions, keep, spec.get("revisionHistoryLimit"))
        await self._write_status(ds, views, current_hash, collision)

    def _node_views(self, ds: Obj, pods: list[Obj]) -> list[NodeView]:
        """Every node with its should-run answers and this DaemonSet's pods there (oldest first)."""
        template_spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        by_node: dict[str, list[Obj]] = {}
        for pod in pods:
            node_name = target_node_name(pod)
            if node_name:
                by_node.setdefault(node_name, []).append(pod)
        views: list[NodeView] = []
        for node in sorted(self.nodes.list(), key=lambda n: str(n["metadata"]["name"])):
            name = node["metadata"]["name"]
            should_run, should_continue = node_should_run_daemon_pod(node, template_spec)
            views.append(NodeView(name, should_run, should_continue, by_node.pop(name, [])))
        views += [NodeView(name, False, False, pods) for name, pods in sorted(by_node.items())]
        for view in views:
            view.pods.sort(key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
        return views

    async def _act(self, ds: Obj, key: str, views: list[NodeView], current_hash: str) -> None:
        spec = ds.get("spec") or {}
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        desired = sum(1 for v in views if v.should_run)
        surge_allowed = rolling and surge_and_unavailable(strategy, desired)[0] > 0
        backing_off = self._backing_off(ds, key)
        decisions = manage_decisions(views, current_hash, surge_allowed, backing_off)
        self._back_off(ds, failed_nodes(views, decisions))
        if not decisions.create_on and not decisions.delete and rolling:
            min_ready = int(spec.get("minReadySeconds") or 0)
            decisions = rolling_update_decisions(views, current_hash, strategy, min_ready, self.clock.now())
            if min_ready > 0:
                self.queue.add_after(key, min_ready)
        await self._apply(ds, key, decisions, current_hash)

    def _backing_off(self, ds: Obj, key: str) -> frozenset[str]:
        """Nodes whose failed daemon pod must wait before being deleted again; requeue for the earliest."""
        prefix = f"{ds['metadata']['uid']}/"
        now = self.clock.monotonic()
        waiting = {
            k.removeprefix(prefix): until for k, (_, until) in self._failed_backoff.items() if k.startswith(prefix)
        }
        pending = {node: until for node, until in waiting.items() if until > now}
        if pending:
            self.queue.add_after(key, min(pending.values()) - now)
        return frozenset(pending)

    def _back_off(self, ds: Obj, nodes: list[str]) -> None:
        """failedPodsBackoff: 1 s doubling to 15 min per (DaemonSet, node)."""
        now = self.clock.monotonic()
        for node in nodes:
            key = f"{ds['metadata']['uid']}/{node}"
            delay, _ = self._failed_backoff.get(key, (FAILED_BACKOFF_MIN_S / 2, 0.0))
            delay = min(delay * 2, FAILED_BACKOFF_MAX_S)
            self._failed_backoff[key] = (delay, now + delay)

    async def _apply(self, ds: Obj, key: str, decisions: Decisions, current_hash: str) -> None:
        """Issue creations and deletions under expectations; failed writes lower them and raise."""
        if decisions.create_on:
            self.expectations.expect_creations(key, len(decisions.create_on))
        elif decisions.delete:
            self.expectations.expect_deletions(key, [creation_key(p) for p in decisions.delete])
        else:
            return
        if decisions.create_on and decisions.delete:
            self.expectations.raise_expectations(key, 0, len(decisions.delete))
        template = (ds.get("spec") or {}).get("template") or {}
        ref = new_controller_ref(ds, API_VERSION, KIND)
        errors: list[ApiError] = []
        for node_name in decisions.create_on:
            pod = pod_from_template(template, ds, ref)
            pod["metadata"].setdefault("labels", {})[REVISION_HASH_LABEL] = current_hash
            pod["spec"] = daemon_pod_spec(template.get("spec") or {}, node_name)
            try:
                await create_pod(self.client, self.recorder, ds, pod)
            except ApiError as err:
                self.expectations.creation_observed(key)
                errors.append(err)
        namespace = str(ds["metadata"].get("namespace") or "")
        for pod in decisions.delete:
            try:
                await delete_pod(self.client, self.recorder, ds, namespace, pod["metadata"]["name"])
            except ApiError as err:
                self.expectations.deletion_observed(key, creation_key(pod))
                errors.append(err)
        if errors:
            raise errors[0]

    async def _write_status(self, ds: Obj, views: list[NodeView], current_hash: str, collision: int) -> None:
        spec = ds.get("spec") or {}
        status = calculate_status(views, current_hash, int(spec.get("minReadySeconds") or 0), self.clock.now())
        status["observedGeneration"] = ds["metadata"].get("generation")
        if collision:
            status["collisionCount"] = collision
        old = ds.get("status") or {}
        if all(old.get(k) == v for k, v in status.items()):
            return
        await store_status(self.client, DAEMONSETS, ds, status)


CONTROLLERS = [ControllerSpec("daemonset", DaemonSetController, service_account="daemon-set-controller")]
