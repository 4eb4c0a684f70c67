"""Rebuilding a cluster from a snapshot: quorum-loss recovery and EtcdRestore share one path.

Why one path: both mean "a new etcd cluster from one snapshot, then grow it
back", and the original got both wrong (quorum loss was logged forever; a
restore deleted the live cluster first, reported success before the new one
was healthy and let revisions go backwards).  Here:

1. the snapshot is staged and verified first (``snapshot status``); for a
   lost quorum the source is the newer of the newest verified backup of this
   cluster and a snapshot of the most advanced surviving member;
2. a seed member is built from it beside whatever is left (labelled
   ``etcd_restore`` instead of ``etcd_cluster`` so the client Service does not
   send traffic to it yet): its init containers fetch the file from the
   operator (snapshot_server) and run ``snapshot restore``;
3. once the seed is healthy its revision is raised past the last revision
   the operator saw (etcd 3.4/3.5.1 have no ``--bump-revision``) and
   compacted, so Kubernetes watchers relist instead of being fooled;
4. only then are the old members deleted and the seed takes the cluster's
   label; the normal reconcile grows it back to ``spec.size``.

Progress lives in ``status.recovery`` so an operator restarted half-way
resumes (the staged file is in the operator's state dir).  An EtcdRestore
succeeds only when its cluster is healthy at its size after the rebuild.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff.api.status import ApiError
from skiff.client.informer import meta_key
from skiff.client.resources import PERSISTENTVOLUMECLAIMS, PODS
from skiff.client.timefmt import rfc3339
from skiff.controllers.deployment_status import new_condition, set_condition
from skiff.etcdoperator import members as mb
from skiff.etcdoperator.backup_storage import BackupRecord, storage_for
from skiff.etcdoperator.cluster_view import ClusterView, endpoint_status, stuck
from skiff.etcdoperator.conditions import replace_condition
from skiff.etcdoperator.etcdclient import EtcdError
from skiff.etcdoperator.resources import ETCDRESTORES
from skiff.etcdoperator.snapshots import SnapshotError, verify_snapshot

if TYPE_CHECKING:
    from skiff.etcdoperator.cluster_controller import EtcdClusterController

log = logging.getLogger(__name__)

Obj = dict[str, Any]
#: Label a restored seed carries until it takes over (instead of etcd_cluster).
RESTORE_LABEL = "etcd_restore"
#: Revisions added on top of the last one observed, for writes the operator did not see.
BUMP_MARGIN = 1000
RECOVERING = "Recovering"


@dataclass
class RebuildContext:
    controller: EtcdClusterController
    cluster: Obj
    status: Obj
    #: Every pod and claim owned by the cluster, the seed's included.
    pods: list[Obj]
    claims: list[Obj]
    view: ClusterView

    @property
    def key(self) -> str:
        return meta_key(self.cluster)

    @property
    def namespace(self) -> str:
        return str(self.cluster["metadata"]["namespace"])


@dataclass(frozen=True)
class StagedSnapshot:
    path: Path
    revision: int
    source: str


async def drive(ctx: RebuildContext) -> bool:
    """Advance a rebuild in progress or start a pending restore; True when this pass belonged to it."""
    recovery = ctx.status.get("recovery") or {}
    if recovery.get("phase") == "Restoring":
        await _continue(ctx, recovery)
        return True
    await _finish_restores(ctx)
    restore = _pending_restore(ctx)
    if restore is not None:
        await _start_restore(ctx, restore)
        return True
    return False


async def consider_quorum_loss(ctx: RebuildContext) -> None:
    """No leader: wait while enough members still have their data, else recover after the grace period."""
    c = ctx.controller
    now = c.clock.now()
    since = c.unavailable_since.get(ctx.key, now)
    with_data = [s for s in ctx.view.states.values() if s.claim is not None]
    known = max(len(ctx.view.membership or []), int(ctx.status.get("size") or 0), len(with_data), 1)
    quorum = known // 2 + 1
    set_condition(ctx.status, new_condition("Available", "False", "NoQuorum", "no member has a leader", now))
    if len(with_data) >= quorum:
        message = f"no quorum; {len(with_data)} of {known} members have their data and are restarting"
        _degraded(ctx, "QuorumLost", message)
        return
    left = c.quorum_loss_grace - (now - since)
    if left > 0:
        _degraded(
            ctx, "QuorumLost", f"quorum lost: {len(with_data)} of {known} members have data; recovery in {left:.0f}s"
        )
        return
    staged = await _best_source(ctx)
    if staged is None:
        _degraded(ctx, "QuorumLost", "quorum lost and no verified backup or surviving member to recover from")
        set_condition(
            ctx.status, new_condition(RECOVERING, "False", "NoRecoverySource", "nothing to recover from", now)
        )
        return
    c._event(ctx.cluster, "Warning", "QuorumLost", f"recovering from {staged.source} at revision {staged.revision}")
    await _start(ctx, staged, reason="QuorumLost", restore=None)


def _degraded(ctx: RebuildContext, reason: str, message: str) -> None:
    replace_condition(ctx.status, "Degraded", "True", reason, message, ctx.controller.clock.now())


# -- sources ------------------------------------------------------------------------------------------------


async def _best_source(ctx: RebuildContext) -> StagedSnapshot | None:
    """The newer of: a surviving member's snapshot, the newest verified backup of this cluster."""
    survivor = max(
        (s for s in ctx.view.states.values() if s.status is not None and s.client_url),
        key=lambda s: s.status.revision if s.status else 0,
        default=None,
    )
    record, backup = _newest_backup(ctx)
    if (
        survivor is not None
        and survivor.status is not None
        and (record is None or survivor.status.revision >= record.revision)
    ):
        dest = _staging_path(ctx, f"survivor-{survivor.name}")
        with contextlib.suppress(EtcdError, SnapshotError, OSError, TimeoutError):
            assert survivor.client_url is not None
            async with ctx.view.client(survivor.client_url, 60.0) as client:
                await client.snapshot(dest)
            info = await verify_snapshot(dest)
            return StagedSnapshot(dest, info.revision, f"member {survivor.name}'s snapshot")
    if record is not None and backup is not None:
        spec = backup.get("spec") or {}
        with contextlib.suppress(Exception):
            return await _stage_from_storage(ctx, spec.get("storageType") or "Local", spec, record.path)
    return None


def _newest_backup(ctx: RebuildContext) -> tuple[BackupRecord | None, Obj | None]:
    name = ctx.cluster["metadata"]["name"]
    best: tuple[BackupRecord | None, Obj | None] = (None, None)
    for backup in ctx.controller.backups.list():
        if backup["metadata"].get("namespace") != ctx.namespace:
            continue
        spec = backup.get("spec") or {}
        targets = (spec.get("etcdCluster") or {}).get("name") == name or any(
            f"{name}-client" in str(e) for e in spec.get("etcdEndpoints") or []
        )
        if not targets:
            continue
        for raw in (backup.get("status") or {}).get("backups") or []:
            record = BackupRecord.from_status(raw)
            if best[0] is None or record.revision > best[0].revision:
                best = (record, backup)
    return best


async def _stage_from_storage(ctx: RebuildContext, storage_type: str, spec: Obj, path: str | None) -> StagedSnapshot:
    section = spec.get(storage_type.lower()) or {}
    storage, default_path = await storage_for(
        ctx.controller.client, ctx.namespace, storage_type, section, local_root=ctx.controller.backup_dir
    )
    where = path or default_path
    dest = _staging_path(ctx, "backup")
    await storage.fetch(where, dest)
    info = await verify_snapshot(dest)
    return StagedSnapshot(dest, info.revision, f"backup {where}")


async def _stage_named_backup(ctx: RebuildContext, name: str) -> StagedSnapshot:
    """Skiff's ``spec.backupName``: the newest record of that EtcdBackup, from wherever it stored it."""
    backup = ctx.controller.backups.get(f"{ctx.namespace}/{name}")
    if backup is None:
        raise LookupError(f'EtcdBackup "{name}" not found in namespace "{ctx.namespace}"')
    records = [BackupRecord.from_status(r) for r in (backup.get("status") or {}).get("backups") or []]
    if not records:
        raise LookupError(f'EtcdBackup "{name}" has no successful backup yet')
    newest = max(records, key=lambda r: r.revision)
    spec = backup.get("spec") or {}
    return await _stage_from_storage(ctx, str(spec.get("storageType") or "Local"), spec, newest.path)


def _staging_path(ctx: RebuildContext, what: str) -> Path:
    directory: Path = ctx.controller.staging_dir / ctx.namespace / str(ctx.cluster["metadata"]["name"])
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{what}-{secrets.token_hex(4)}.db"


# -- the rebuild --------------------------------------------------------------------------------------------


async def _start(ctx: RebuildContext, staged: StagedSnapshot, *, reason: str, restore: str | None) -> None:
    c = ctx.controller
    now = c.clock.now()
    seed = mb.new_member_name(ctx.cluster["metadata"]["name"])
    token = secrets.token_urlsafe(16)
    ctx.status["recovery"] = {
        "phase": "Restoring",
        "reason": reason,
        "source": staged.source,
        "revision": staged.revision,
        "lastObservedRevision": int(ctx.status.get("revision") or 0),
        "seed": seed,
        "token": token,
        "snapshot": str(staged.path),
        "restore": restore,
        "time": rfc3339(now),
    }
    set_condition(
        ctx.status,
        new_condition(
            RECOVERING, "True", reason, f"rebuilding from {staged.source} at revision {staged.revision}", now
        ),
    )
    await _create_seed(ctx, ctx.status["recovery"])


async def _create_seed(ctx: RebuildContext, recovery: Obj) -> None:
    c = ctx.controller
    seed, token = recovery["seed"], recovery["token"]
    url = c.snapshots.offer(Path(recovery["snapshot"]), token)
    labels: dict[str, str | None] = {mb.LABEL_CLUSTER: None, RESTORE_LABEL: ctx.cluster["metadata"]["name"]}
    await c._create_claim(ctx.cluster, seed, labels)
    pod = mb.member_pod(
        ctx.cluster,
        seed,
        version=_running_version(ctx),
        state="new",
        peers=(),
        token=token,
        snapshot_url=url,
        snapshot_ca=c.snapshots.ca_pem or None,
        labels_override=labels,
    )
    await c._create_pod(ctx.cluster, pod)


def _running_version(ctx: RebuildContext) -> str:
    return str(ctx.status.get("currentVersion") or ctx.controller.version(ctx.cluster))


async def _continue(ctx: RebuildContext, recovery: Obj) -> None:
    c = ctx.controller
    now = c.clock.now()
    seed = recovery["seed"]
    c.snapshots.offer(Path(recovery["snapshot"]), recovery["token"])  # again after an operator restart
    live = [p for p in ctx.pods if not p["metadata"].get("deletionTimestamp")]
    pod = next((p for p in live if p["metadata"]["name"] == seed), None)
    if pod is None:
        if not any(p["metadata"]["name"] == seed for p in ctx.pods):
            await _create_seed(ctx, recovery)
        return
    ip = str((pod.get("status") or {}).get("podIP") or "")
    status = await endpoint_status(ctx.view.client_url(ip), ctx.view.tls) if ip else None
    if status is None or not status.leader:
        if (problem := stuck(pod)) is not None:
            message = f"seed {seed} cannot start: {problem[0]}: {problem[1]}".strip()
            set_condition(ctx.status, new_condition(RECOVERING, "True", "SeedNotStarting", message, now))
        return
    if not recovery.get("bumped"):
        async with ctx.view.client(ctx.view.client_url(ip), 30.0) as client:
            current = await client.revision()
            target = max(int(recovery.get("lastObservedRevision") or 0), int(recovery["revision"])) + BUMP_MARGIN
            bumped = await client.bump_revision(target - current) if target > current else current
            try:
                await client.compact(bumped)  # mark everything before as compacted: old watchers must relist
            except EtcdError as err:
                if "compacted" not in str(err):
                    raise
        recovery["bumped"] = bumped
    for obj_res, objs in ((PODS, ctx.pods), (PERSISTENTVOLUMECLAIMS, ctx.claims)):
        for obj in objs:
            labels = obj["metadata"].get("labels") or {}
            if obj["metadata"]["name"] != seed and labels.get(mb.LABEL_CLUSTER):
                await c._delete(obj_res, ctx.cluster, obj["metadata"]["name"], grace=0)
    relabel = {"metadata": {"labels": {mb.LABEL_CLUSTER: ctx.cluster["metadata"]["name"], RESTORE_LABEL: None}}}
    for obj_res in (PERSISTENTVOLUMECLAIMS, PODS):
        with contextlib.suppress(ApiError):
            await c.client.patch(obj_res, seed, relabel, ctx.namespace)
    recovery["phase"] = "Done"
    recovery["lostRevisions"] = max(0, int(recovery.get("lastObservedRevision") or 0) - int(recovery["revision"]))
    message = loss_message(recovery)
    set_condition(ctx.status, new_condition(RECOVERING, "False", "Recovered", message, now))
    ctx.status["phase"] = "Running"
    ctx.status["members"] = {"ready": [], "unready": [seed]}
    ctx.status["size"] = 1
    ctx.status["revision"] = int(recovery["bumped"])
    c.snapshots.withdraw(recovery["token"])
    with contextlib.suppress(OSError):
        await asyncio.to_thread(Path(recovery["snapshot"]).unlink)
    c.unavailable_since.pop(ctx.key, None)
    c._event(ctx.cluster, "Normal", "Recovered", message)


def loss_message(recovery: Obj) -> str:
    """What the rebuild cost, in revisions: the ones after the snapshot that the operator had seen."""
    revision, last = int(recovery["revision"]), int(recovery.get("lastObservedRevision") or 0)
    head = f"restored from {recovery['source']} at revision {revision}"
    if last > revision:
        return f"{head}; revisions {revision + 1}..{last} ({last - revision}) written after it are lost"
    return f"{head}; no revision the operator observed (last {last}) is missing"


# -- EtcdRestore ----------------------------------------------------------------------------------------------


def _restores_for(ctx: RebuildContext) -> list[Obj]:
    name = ctx.cluster["metadata"]["name"]
    found = [
        r
        for r in ctx.controller.restores.list()
        if r["metadata"].get("namespace") == ctx.namespace
        and ((r.get("spec") or {}).get("etcdCluster") or {}).get("name") == name
        and not r["metadata"].get("deletionTimestamp")
    ]
    return sorted(found, key=lambda r: str(r["metadata"].get("creationTimestamp")))


def _pending_restore(ctx: RebuildContext) -> Obj | None:
    return next((r for r in _restores_for(ctx) if not (r.get("status") or {}).get("phase")), None)


async def _start_restore(ctx: RebuildContext, restore: Obj) -> None:
    spec = restore.get("spec") or {}
    key = meta_key(restore)
    try:
        if spec.get("backupName"):
            staged = await _stage_named_backup(ctx, str(spec["backupName"]))
        else:
            storage_type = str(spec.get("backupStorageType") or "Local")
            staged = await _stage_from_storage(ctx, storage_type, spec, None)
    except Exception as err:  # any failure to get a verified snapshot fails the restore, not the cluster
        await _restore_status(ctx, restore, {"phase": "Failed", "succeeded": False, "reason": str(err)})
        ctx.controller._event(restore, "Warning", "RestoreFailed", str(err))
        return
    await _restore_status(ctx, restore, {"phase": "Restoring", "succeeded": False, "restoredRevision": staged.revision})
    await _start(ctx, staged, reason="Restore", restore=key)
    ctx.controller._event(restore, "Normal", "Restoring", f"rebuilding {ctx.key} from {staged.source}")


async def _finish_restores(ctx: RebuildContext) -> None:
    """A restore succeeds once its rebuild is done and the cluster is healthy at its size."""
    recovery = ctx.status.get("recovery") or {}
    size = int((ctx.cluster.get("spec") or {}).get("size") or 1)
    for restore in _restores_for(ctx):
        if (restore.get("status") or {}).get("phase") != "Restoring":
            continue
        if recovery.get("restore") != meta_key(restore) or recovery.get("phase") != "Done":
            continue
        healthy = [s for s in ctx.view.voters if s.healthy and s.ready]
        if len(healthy) == size and not ctx.view.learners:
            body = {"phase": "Succeeded", "succeeded": True, "reason": loss_message(recovery)}
            await _restore_status(ctx, restore, body)
            message = f"{ctx.key} serves the backup at {size} members"
            ctx.controller._event(restore, "Normal", "RestoreSucceeded", message)


async def _restore_status(ctx: RebuildContext, restore: Obj, values: Obj) -> None:
    status = {**(restore.get("status") or {}), **values}
    try:
        await ctx.controller.client.update_status(ETCDRESTORES, {**restore, "status": status})
    except ApiError as err:
        if err.code not in (404, 409):
            raise
