"""The EtcdCluster controller: create, resize, heal and upgrade real etcd members, one safe step at a time.

Upstream shape: coreos/etcd-operator's reconcile loop, with the failures
listed in ../shared/reference/etcd-operator-and-bootkube.md (A7, D4) fixed:

* members join as learners (MemberAdd of the new member's stable peer URL,
  then its claim and pod) and are promoted once in sync, so a slow or
  Pending pod never costs quorum, and one that never starts is rolled back;
* every member has a claim and a stable name, and peers know each other by
  DNS name (``<member>.<cluster>.<ns>.svc…``, from the headless Service), not
  by pod address: a dead process restarts in place (restartPolicy Always), a
  deleted pod comes back under the same name with its data, even when every
  pod went at once; only a member whose claim is gone is removed and replaced;
* one membership change per pass, each after re-reading membership, so a
  MemberAdd that timed out but was applied is seen before adding again;
* removal picks a follower; an upgrade recreates one member at a time with
  the new image, gated on every member healthy and caught up, leader last
  (leadership moved away first), after checking the version path;
* quorum loss is detected, reported, and handed to ``rebuild`` after a grace
  period when too few members still have their data.

Static TLS (``spec.TLS.static``, :mod:`skiff.etcdoperator.tls`): members are
reached with the operatorSecret's client certificate, read through the API on
every pass; while it is missing or incomplete the cluster is ``Degraded``
``OperatorSecretInvalid`` and nothing else is done with it.

Informers on EtcdClusters, member pods and claims (label app=etcd) and
EtcdRestores; every cluster is also re-synced each reconcile interval,
because etcd's own state (membership, health) changes without API events.
"""

from __future__ import annotations

import copy
import logging
import uuid
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from skiff.api.status import ApiError
from skiff.client.controller import Controller, ControllerContext
from skiff.client.informer import meta_key
from skiff.client.resources import PERSISTENTVOLUMECLAIMS, PODDISRUPTIONBUDGETS, PODS, SECRETS, SERVICES
from skiff.client.timefmt import parse_rfc3339
from skiff.controllers.deployment_status import get_condition, new_condition, remove_condition, set_condition
from skiff.controllers.manager import ControllerSpec
from skiff.etcdoperator import members as mb
from skiff.etcdoperator import rebuild
from skiff.etcdoperator.cluster_view import ClusterView, MemberState, observe, owned, stuck
from skiff.etcdoperator.conditions import replace_condition
from skiff.etcdoperator.etcdclient import ClientTls, EtcdError, is_learner_not_ready, is_member_not_found
from skiff.etcdoperator.resources import ETCDBACKUPS, ETCDCLUSTERS, ETCDRESTORES
from skiff.etcdoperator.snapshot_server import SnapshotServer
from skiff.etcdoperator.tls import operator_files, server_name, static_tls
from skiff.etcdoperator.versions import DEFAULT_REPOSITORY, DEFAULT_VERSION, normalize, spec_problems, upgrade_refusal

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT = "etcd-operator"
#: A learner whose member has not started within this long is rolled back (removed, pod and claim deleted).
JOIN_TIMEOUT_S = 120.0

AVAILABLE, SCALING, UPGRADING, RECOVERING, DEGRADED = "Available", "Scaling", "Upgrading", "Recovering", "Degraded"


class EtcdClusterController(Controller):
    name = "etcd-cluster"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        options = context.options
        self.recorder = context.recorder_for(COMPONENT)
        self.interval = float(options.get("reconcile_interval", 5.0))
        self.quorum_loss_grace = float(options.get("quorum_loss_grace", 30.0))
        self.staging_dir = Path(options.get("staging_dir") or Path.cwd() / "etcd-operator-staging")
        self.backup_dir = Path(options.get("backup_dir") or Path.cwd() / "etcd-backups")
        self.snapshots: SnapshotServer = options.get("snapshot_server") or SnapshotServer()
        metrics = options.get("metrics")
        self.actions: Counter | None = metrics["actions"] if metrics else None
        self.ready_gauge: Gauge | None = metrics["ready"] if metrics else None
        self.clusters = self.informers.informer(ETCDCLUSTERS)
        self.pods = self.informers.informer(PODS, label_selector=f"{mb.LABEL_APP}={mb.APP}")
        self.claims = self.informers.informer(PERSISTENTVOLUMECLAIMS, label_selector=f"{mb.LABEL_APP}={mb.APP}")
        self.restores = self.informers.informer(ETCDRESTORES)
        self.backups = self.informers.informer(ETCDBACKUPS)
        self.clusters.add_handler(self.enqueue_obj, lambda _old, new: self.enqueue_obj(new), None)
        for informer in (self.pods, self.claims):
            informer.add_handler(self._on_member_obj, lambda _old, new: self._on_member_obj(new), self._on_member_obj)
        self.restores.add_handler(self._on_restore, lambda _old, new: self._on_restore(new), None)
        #: When each cluster was first seen without quorum (for the grace period); memory only, which is safe:
        #: a restarted operator just waits one more grace period.
        self.unavailable_since: dict[str, float] = {}
        #: The object each status write returned: the informer may not have caught up with our own write by the
        #: next pass, and acting on the older status would, for instance, start a second rebuild.
        self.written: dict[str, Obj] = {}
        #: When each learner was first seen, for the join timeout (memory only: a restart grants a fresh timeout).
        self.learner_seen: dict[tuple[str, int], float] = {}

    def _on_member_obj(self, obj: Obj) -> None:
        labels = obj["metadata"].get("labels") or {}
        cluster = labels.get(mb.LABEL_CLUSTER) or labels.get(rebuild.RESTORE_LABEL)
        if cluster:
            self.enqueue(f"{obj['metadata'].get('namespace', '')}/{cluster}")

    def _on_restore(self, restore: Obj) -> None:
        target = ((restore.get("spec") or {}).get("etcdCluster") or {}).get("name")
        if target:
            self.enqueue(f"{restore['metadata'].get('namespace', '')}/{target}")

    def freshest(self, key: str) -> Obj | None:
        """The cached cluster, or the one our last status write returned when that is newer."""
        cached, written = self.clusters.get(key), self.written.get(key)
        if cached is None or written is None:
            return cached
        if _rv(written) > _rv(cached) and written["metadata"].get("uid") == cached["metadata"].get("uid"):
            return written
        self.written.pop(key, None)
        return cached

    async def sync(self, key: str) -> None:
        cluster = self.freshest(key)
        if cluster is None or cluster["metadata"].get("deletionTimestamp"):
            self.unavailable_since.pop(key, None)
            self.written.pop(key, None)
            return
        self.queue.add_after(key, self.interval)
        await self.reconcile(cluster)

    # -- one pass ---------------------------------------------------------------------------------------------

    async def reconcile(self, cluster: Obj) -> None:
        status = copy.deepcopy(cluster.get("status") or {})
        spec = cluster.get("spec") or {}
        now = self.clock.now()
        status["observedGeneration"] = cluster["metadata"].get("generation", 1)
        problems = spec_problems(cluster["metadata"]["name"], spec)
        if problems:
            status["reason"] = "; ".join(problems)
            set_condition(status, new_condition(DEGRADED, "True", "InvalidSpec", status["reason"], now))
            await self._write_status(cluster, status)
            return
        if status.get("reason") and get_condition(status, DEGRADED) and status.get("phase") != "Failed":
            status.pop("reason", None)
        status["controlPaused"] = bool(spec.get("paused"))
        if spec.get("paused"):
            await self._write_status(cluster, status)
            return
        await self._ensure_services(cluster, int(spec.get("size") or 1))
        uid = cluster["metadata"]["uid"]
        pods = owned(self._namespaced(self.pods.list(), cluster), uid)
        claims = owned(self._namespaced(self.claims.list(), cluster), uid)
        member_pods = [p for p in pods if (p["metadata"].get("labels") or {}).get(mb.LABEL_CLUSTER)]
        member_claims = [c for c in claims if (c["metadata"].get("labels") or {}).get(mb.LABEL_CLUSTER)]
        try:
            tls = await self._operator_tls(cluster)
        except ValueError as err:  # the operatorSecret is missing or incomplete: nothing can be asked of etcd
            status["reason"] = str(err)
            replace_condition(status, DEGRADED, "True", "OperatorSecretInvalid", str(err), self.clock.now())
            await self._write_status(cluster, status)
            return
        view = await observe(member_pods, member_claims, tls)
        ctx = rebuild.RebuildContext(self, cluster, status, pods, claims, view)
        if await rebuild.drive(ctx):
            await self._write_status(cluster, status)
            return
        await self._step(cluster, status, view)
        self._summarise(cluster, status, view)
        await self._write_status(cluster, status)

    async def _step(self, cluster: Obj, status: Obj, view: ClusterView) -> None:
        """At most one membership change per pass; pod (re)creations alongside are safe."""
        key = meta_key(cluster)
        if not view.states and not status.get("members") and status.get("phase") in (None, "", "Creating"):
            await self._create_seed(cluster, status)
            return
        if view.membership is None:
            await self._without_membership(cluster, status, view)
            return
        self.unavailable_since.pop(key, None) if view.has_quorum else self.unavailable_since.setdefault(
            key, self.clock.now()
        )
        if not view.has_quorum:
            await self._recreate_missing_pods(cluster, view)
            await rebuild.consider_quorum_loss(rebuild.RebuildContext(self, cluster, status, [], [], view))
            return
        status["phase"] = "Running"
        await self._recreate_missing_pods(cluster, view)
        for action in (
            self._drop_lost_members,
            self._settle_strangers,
            self._promote_learners,
            self._resize,
            self._upgrade,
        ):
            if await action(cluster, status, view):
                return

    async def _without_membership(self, cluster: Obj, status: Obj, view: ClusterView) -> None:
        """No member answers: a seed still starting, members restarting in place, or a lost quorum."""
        key = meta_key(cluster)
        if status.get("phase") in (None, "", "Creating") and len(view.states) <= 1:
            return  # the seed is on its way
        self.unavailable_since.setdefault(key, self.clock.now())
        await self._recreate_missing_pods(cluster, view)
        await rebuild.consider_quorum_loss(rebuild.RebuildContext(self, cluster, status, [], [], view))

    # -- creation -----------------------------------------------------------------------------------------

    async def _create_seed(self, cluster: Obj, status: Obj) -> None:
        name = mb.new_member_name(cluster["metadata"]["name"])
        await self._create_claim(cluster, name)
        pod = mb.member_pod(
            cluster, name, version=self.version(cluster), state="new", peers=(), token=str(uuid.uuid4())
        )
        await self._create_pod(cluster, pod)
        status["phase"] = "Creating"
        set_condition(
            status, new_condition(SCALING, "True", "ScalingUp", f"seed member {name} created", self.clock.now())
        )
        self._event(cluster, "Normal", "SeedMemberCreated", f"seed member {name} created")

    async def _create_claim(self, cluster: Obj, name: str, labels: dict[str, str | None] | None = None) -> None:
        claim = mb.member_pvc(cluster, name)
        _relabel(claim, labels)
        try:
            await self.client.create(PERSISTENTVOLUMECLAIMS, claim)
        except ApiError as err:
            if err.code != 409:
                raise

    async def _create_pod(self, cluster: Obj, pod: Obj) -> None:
        try:
            await self.client.create(PODS, pod)
        except ApiError as err:
            if err.code != 409:
                raise
        self._count("create_pod")

    def _join_pod(self, cluster: Obj, name: str, view: ClusterView, version: str) -> Obj:
        """A member pod for an existing cluster (a new learner, or a member coming back on its own data)."""
        peers = [
            (s.name, s.member.peer_urls[0])
            for s in view.states.values()
            if s.member is not None and s.member.peer_urls and s.name != name
        ]
        return mb.member_pod(cluster, name, version=version, state="existing", peers=peers)

    # -- healing ------------------------------------------------------------------------------------------

    async def _recreate_missing_pods(self, cluster: Obj, view: ClusterView) -> None:
        """A member (or a claim of one) without a pod comes back under its own name, with its own data."""
        for state in list(view.states.values()):
            if state.pod is not None or state.name in view.terminating:
                continue
            learner = state.member is not None and state.member.is_learner
            if state.claim is None and not learner:
                continue  # data gone: _drop_lost_members
            if view.membership is not None and state.member is None:
                continue  # a claim left behind by a member that is gone: _settle_strangers
            if state.claim is None:
                await self._create_claim(cluster, state.name)  # a join interrupted after its MemberAdd
            version = self._pod_version(cluster, state, view)
            await self._create_pod(cluster, self._join_pod(cluster, state.name, view, version))
            if not learner:
                self._event(cluster, "Normal", "MemberRestarted", f"recreated {state.name} on its existing volume")

    def _pod_version(self, cluster: Obj, state: MemberState, view: ClusterView) -> str:
        """During an upgrade a recreated member takes the target version; otherwise it keeps the cluster's."""
        target = self.version(cluster)
        status = cluster.get("status") or {}
        current = status.get("currentVersion") or target
        if status.get("targetVersion") == target or upgrade_refusal(current, target) is None:
            return target
        return current

    async def _drop_lost_members(self, cluster: Obj, status: Obj, view: ClusterView) -> bool:
        """A member whose claim is gone lost its data: remove it (remove first, add later, per etcd's FAQ)."""
        for state in view.states.values():
            if state.claim is not None or state.member is None or state.member.is_learner:
                continue
            if state.pod is not None:
                await self._delete(PODS, cluster, state.name, grace=0)
            await self._remove_member(cluster, view, state.member.id, state.name, "its data volume is gone")
            return True
        return False

    async def _settle_strangers(self, cluster: Obj, status: Obj, view: ClusterView) -> bool:
        """Learners that never start are rolled back; pods and claims of no member are leftovers and go."""
        now = self.clock.now()
        key = meta_key(cluster)
        seen = {(key, m.id) for m in view.learners}
        for stale in [k for k in self.learner_seen if k[0] == key and k not in seen]:
            del self.learner_seen[stale]
        for state in view.states.values():
            member = state.member
            if member is not None and member.is_learner and state.status is None:
                since = self.learner_seen.setdefault((key, member.id), now)
                problem = stuck(state.pod)
                if problem or now - since > JOIN_TIMEOUT_S:
                    why = f"it did not start ({problem[0] if problem else 'timed out'})"
                    await self._remove_member(cluster, view, member.id, state.name, why)
                    await self._discard(cluster, state.name)
                    self._event(cluster, "Warning", "MemberAddRolledBack", f"{state.name}: {why}")
                    return True
            if member is not None or state.name in view.terminating:
                continue
            if state.pod is None and state.claim is not None and _age(state.claim, now) < 10.0:
                continue  # the claim of a learner added this moment (the informer may not show it yet)
            await self._discard(cluster, state.name)
            return True
        return False

    async def _promote_learners(self, cluster: Obj, status: Obj, view: ClusterView) -> bool:
        for state in view.states.values():
            if state.member is None or not state.member.is_learner or state.status is None:
                continue
            try:
                await self._call(view, lambda c, m=state.member: c.member_promote(m.id))
            except EtcdError as err:
                if not is_learner_not_ready(err):
                    raise
                self.queue.add_after(meta_key(cluster), 1.0)
                return True
            self._count("member_promote")
            self._event(cluster, "Normal", "MemberPromoted", f"{state.name} promoted to voting member")
            return True
        return False

    # -- resize ---------------------------------------------------------------------------------------------

    def _all_healthy(self, view: ClusterView) -> bool:
        states = [s for s in view.states.values() if s.member is not None]
        return bool(states) and all(s.healthy and view.caught_up(s) for s in states) and not view.unnamed

    async def _resize(self, cluster: Obj, status: Obj, view: ClusterView) -> bool:
        size = int((cluster.get("spec") or {}).get("size") or 1)
        voters = view.voters
        now = self.clock.now()
        if len(voters) == size and not view.learners:
            if get_condition(status, SCALING):
                set_condition(status, new_condition(SCALING, "False", "ScalingDone", f"{size} members", now))
            return False
        if not self._all_healthy(view):
            return True  # never change membership while a member is unhealthy or behind
        set_condition(status, new_condition(SCALING, "True", "Scaling", f"{len(voters)} -> {size} members", now))
        if len(voters) < size and not view.learners:
            # MemberAdd as a learner (harmless to quorum if the pod never starts), then claim and pod; a pass
            # interrupted after the MemberAdd finds the learner and creates what is missing.
            name = mb.new_member_name(cluster["metadata"]["name"])
            url = mb.peer_url(cluster, name)
            await self._call(view, lambda c: c.member_add([url], learner=True))
            await self._create_claim(cluster, name)
            self._count("member_add")
            self._event(cluster, "Normal", "MemberAdded", f"added {name} as a learner at {url}")
            pod = self._join_pod(cluster, name, view, self._pod_version(cluster, MemberState(name), view))
            await self._create_pod(cluster, pod)
            return True
        if len(voters) > size:
            victim = min((s for s in voters if s.member and s.member.id != view.leader_id), key=lambda s: s.name)
            assert victim.member is not None
            await self._remove_member(cluster, view, victim.member.id, victim.name, f"scaling down to {size}")
            await self._discard(cluster, victim.name)
            return True
        return False

    async def _remove_member(self, cluster: Obj, view: ClusterView, member_id: int, name: str, why: str) -> None:
        if member_id == view.leader_id and len(view.voters) > 1:
            target = next(s for s in view.voters if s.member and s.member.id != member_id)
            assert target.member is not None
            await self._on_leader(view, lambda c, t=target.member.id: c.move_leader(t))
        try:
            await self._call(view, lambda c: c.member_remove(member_id))
        except EtcdError as err:
            if not is_member_not_found(err):
                raise
        self._count("member_remove")
        self._event(cluster, "Normal", "MemberRemoved", f"removed {name}: {why}")

    async def _discard(self, cluster: Obj, name: str) -> None:
        await self._delete(PODS, cluster, name, grace=5)
        await self._delete(PERSISTENTVOLUMECLAIMS, cluster, name)

    # -- upgrade --------------------------------------------------------------------------------------------

    async def _upgrade(self, cluster: Obj, status: Obj, view: ClusterView) -> bool:
        target = self.version(cluster)
        now = self.clock.now()
        states = [s for s in view.states.values() if s.member is not None]
        stale = [s for s in states if s.version_label != target]
        if not stale:
            status["currentVersion"] = target
            status.pop("targetVersion", None)
            if get_condition(status, UPGRADING):
                set_condition(status, new_condition(UPGRADING, "False", "UpgradeDone", f"all members at {target}", now))
            return False
        current = status.get("currentVersion") or min((s.version_label for s in stale), default=target)
        refusal = upgrade_refusal(current, target)
        if refusal and status.get("targetVersion") != target:
            replace_condition(status, UPGRADING, "False", "UpgradeRefused", refusal, now)
            if status.get("reason") != refusal:
                self._event(cluster, "Warning", "UpgradeRefused", refusal)
            status["reason"] = refusal
            return False
        upgraded = [s for s in states if s.version_label == target]
        failed = next(((s, p) for s in upgraded if (p := stuck(s.pod))), None)
        if failed is not None:
            message = f"member {failed[0].name} did not come up at {target}: {failed[1][0]}: {failed[1][1]}".strip()
            replace_condition(status, UPGRADING, "False", "UpgradeFailed", message, now)
            return True
        status["targetVersion"] = target
        status.pop("reason", None)
        replace_condition(
            status, UPGRADING, "True", "Upgrading", f"{len(upgraded)}/{len(states)} members at {target}", now
        )
        down = [s for s in stale if stuck(s.pod)]
        if len(down) == 1 and all(s.healthy for s in states if s is not down[0]):
            # Stuck, so already unavailable (e.g. on a version no node has, before the spec changed back): replacing it
            # costs nothing, and the health gate below would otherwise wait for it forever.
            await self._delete(PODS, cluster, down[0].name, grace=0)
            self._event(cluster, "Normal", "MemberUpgrading", f"recreating {down[0].name} at {target}: it was down")
            return True
        if not self._all_healthy(view):
            return True  # the health gate: the previous member must be back, in sync, before the next goes
        followers = [s for s in stale if s.member and s.member.id != view.leader_id]
        if followers:
            victim = min(followers, key=lambda s: s.name)
        else:
            new_home = next((s for s in upgraded if s.member), None)
            if new_home is not None and new_home.member is not None:
                await self._on_leader(view, lambda c, t=new_home.member.id: c.move_leader(t))
                self._event(cluster, "Normal", "LeaderMoved", f"leadership moved to {new_home.name} before upgrading")
                return True
            victim = stale[0]
        await self._delete(PODS, cluster, victim.name, grace=10)
        self._count("member_upgrade")
        self._event(cluster, "Normal", "MemberUpgrading", f"restarting {victim.name} at {target} on its own data")
        return True

    # -- status and owned objects -----------------------------------------------------------------------------

    def _summarise(self, cluster: Obj, status: Obj, view: ClusterView) -> None:
        size = int((cluster.get("spec") or {}).get("size") or 1)
        named = sorted(s.name for s in view.states.values() if s.pod is not None and s.member is not None)
        ready = [n for n in named if view.states[n].ready]
        status["members"] = {"ready": ready, "unready": [n for n in named if n not in ready]}
        status["size"] = len(view.voters) if view.membership is not None else status.get("size", 0)
        status["ready"] = f"{len(ready)}/{size}"
        status["serviceName"] = mb.client_service(cluster)["metadata"]["name"]
        status["clientPort"] = mb.CLIENT_PORT
        revision = view.revision()
        if revision:
            status["revision"] = max(revision, int(status.get("revision") or 0))
        now = self.clock.now()
        healthy = view.membership is not None and self._all_healthy(view) and len(view.voters) >= 1
        if view.has_quorum:
            replace_condition(status, AVAILABLE, "True", "Quorate", f"{len(ready)} of {size} ready", now)
        else:
            set_condition(status, new_condition(AVAILABLE, "False", "NoQuorum", "no member has a leader", now))
        stuck_members = sorted((s.name, p) for s in view.states.values() if (p := stuck(s.pod)))
        if stuck_members:
            # e.g. an etcd version no node has: the kubelet's image error, word for word
            message = "; ".join(f"{name}: {reason}: {why}".strip() for name, (reason, why) in stuck_members)
            replace_condition(status, DEGRADED, "True", "MemberNotStarting", message, now)
        elif healthy and len(ready) == size:
            remove_condition(status, DEGRADED)
        elif status.get("phase") == "Running":
            unhealthy = sorted(s.name for s in view.states.values() if s.member and not s.healthy)
            message = f"unhealthy members: {', '.join(unhealthy)}" if unhealthy else f"{len(ready)} of {size} ready"
            replace_condition(status, DEGRADED, "True", "MembersUnhealthy", message, now)
        if self.ready_gauge is not None:
            self.ready_gauge.labels(meta_key(cluster)).set(len(ready))

    async def _ensure_services(self, cluster: Obj, size: int) -> None:
        for res, obj in (
            (SERVICES, mb.peer_service(cluster)),
            (SERVICES, mb.client_service(cluster)),
            (PODDISRUPTIONBUDGETS, mb.disruption_budget(cluster, size)),
        ):
            ns, name = cluster["metadata"]["namespace"], obj["metadata"]["name"]
            try:
                current = await self.client.get(res, name, ns)
            except ApiError as err:
                if err.code != 404:
                    raise
                try:
                    await self.client.create(res, obj)
                except ApiError as create_err:
                    if create_err.code != 409:
                        raise
                continue
            wanted = obj["spec"].get("minAvailable")
            if res is PODDISRUPTIONBUDGETS and (current.get("spec") or {}).get("minAvailable") != wanted:
                await self.client.patch(res, name, {"spec": {"minAvailable": obj["spec"]["minAvailable"]}}, ns)

    async def _write_status(self, cluster: Obj, status: Obj) -> None:
        if status == (cluster.get("status") or {}):
            return
        body = {**cluster, "status": status}
        try:
            self.written[meta_key(cluster)] = await self.client.update_status(ETCDCLUSTERS, body)
        except ApiError as err:
            if err.code in (404, 409):
                self.enqueue(meta_key(cluster))  # a newer object (or none) in the cache; recompute from it
                return
            raise

    # -- small helpers ----------------------------------------------------------------------------------------

    def version(self, cluster: Obj) -> str:
        return normalize(str((cluster.get("spec") or {}).get("version") or DEFAULT_VERSION))

    def repository(self, cluster: Obj) -> str:
        return str((cluster.get("spec") or {}).get("repository") or DEFAULT_REPOSITORY)

    def _namespaced(self, objs: list[Obj], cluster: Obj) -> list[Obj]:
        ns = cluster["metadata"]["namespace"]
        return [o for o in objs if o["metadata"].get("namespace") == ns]

    async def _call(self, view: ClusterView, op: Any) -> Any:
        """Run a membership call on the healthiest member that answers (leader first)."""
        ordered = sorted(
            (s for s in view.states.values() if s.client_url and s.status is not None),
            key=lambda s: (not (s.member and s.member.id == view.leader_id), s.name),
        )
        last: Exception | None = None
        for state in ordered:
            assert state.client_url is not None
            async with view.client(state.client_url, 10.0) as client:
                try:
                    return await op(client)
                except EtcdError as err:
                    if is_learner_not_ready(err) or is_member_not_found(err) or "learner" in str(err).lower():
                        raise
                    last = err
        raise last or EtcdError("no member reachable")

    async def _on_leader(self, view: ClusterView, op: Any) -> Any:
        leader = next((s for s in view.states.values() if s.member and s.member.id == view.leader_id), None)
        if leader is None or leader.client_url is None:
            raise EtcdError("no leader to ask")
        async with view.client(leader.client_url, 10.0) as client:
            return await op(client)

    async def _operator_tls(self, cluster: Obj) -> ClientTls | None:
        """How to reach the members: the operatorSecret's files (read each pass, so a rotation applies), or None."""
        secret_name = static_tls(cluster.get("spec") or {}).operator_secret
        if secret_name is None:
            return None
        try:
            secret = await self.client.get(SECRETS, secret_name, cluster["metadata"]["namespace"])
        except ApiError as err:
            if err.code != 404:
                raise
            raise ValueError(f"spec.TLS.static.operatorSecret: secret {secret_name} not found") from None
        try:
            ca, cert, key = operator_files(secret)
        except ValueError as err:
            raise ValueError(f"spec.TLS.static.operatorSecret: {err}") from None
        return ClientTls(ca, cert, key, server_name=server_name(cluster))

    async def _delete(self, res: Any, cluster: Obj, name: str, grace: int | None = None) -> None:
        try:
            await self.client.delete(res, name, cluster["metadata"]["namespace"], grace_period_seconds=grace)
        except ApiError as err:
            if err.code != 404:
                raise

    def _event(self, cluster: Obj, type_: str, reason: str, message: str) -> None:
        log.info("%s: %s: %s", meta_key(cluster), reason, message)
        self.recorder.event(cluster, type_, reason, message)

    def _count(self, action: str) -> None:
        if self.actions is not None:
            self.actions.labels(action).inc()


def _rv(obj: Obj) -> int:
    text = str(obj["metadata"].get("resourceVersion") or "0")
    return int(text) if text.isdigit() else 0


def _age(obj: Obj, now: float) -> float:
    created = obj["metadata"].get("creationTimestamp")
    return now - parse_rfc3339(created) if created else 0.0


def _relabel(obj: Obj, labels: dict[str, str | None] | None) -> None:
    if not labels:
        return
    current = obj["metadata"].setdefault("labels", {})
    for k, v in labels.items():
        if v is None:
            current.pop(k, None)
        else:
            current[k] = v


CONTROLLERS = [ControllerSpec("etcd-cluster", EtcdClusterController, workers=4)]
