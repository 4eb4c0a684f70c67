"""The EtcdBackup controller: one-shot and periodic snapshots of an etcd cluster, verified and retained.

Follows coreos/etcd-operator's backup operator (pkg/controller/backup-operator,
pkg/backup) with its known bugs fixed.  ``sync(key)``:

1. A backup being deleted loses the ``backup-operator-periodic`` finalizer and
   nothing else happens.  Stored snapshots are *kept*: deleting the CR never
   deletes backups (as the original, coreos/etcd-operator#1838 — deliberate
   here: losing a CR must not lose the data it protected).
2. An invalid spec (no endpoints and no ``etcdCluster.name``, negative
   interval/maxBackups, ABS/GCS/OSS storage) is written to
   status (``succeeded: false``, ``reason``, condition) once; it is not retried.
3. One-shot (``backupIntervalInSecond`` 0): runs once per generation — skipped
   when ``status.observedGeneration`` equals the generation and ``succeeded``
   or ``reason`` is set.  A failure is final for that generation, as upstream.
4. Periodic: adds the finalizer, then is *level-triggered*: a backup is due
   ``interval`` after the later of ``status.lastSuccessDate`` and this
   process's last attempt; until then the key is re-queued with
   ``queue.add_after``.  No ticker task exists, so nothing can outlive the CR
   (upstream's runner busy-looped after cancellation: ``break`` inside
   ``select``).  After each backup, retention lists ``<path>_v`` and keeps the
   newest ``maxBackups`` by *parsed* revision and time (#2113 sorted strings).

TLS: ``spec.clientTLSSecret`` (upstream's keys ``etcd-client.crt``,
``etcd-client.key``, ``etcd-client-ca.crt``), or, for a backup of
``spec.etcdCluster`` with client TLS, that cluster's ``operatorSecret``; the
members' certificates are checked under the first endpoint's Service name
(``<svc>.<ns>.svc``, as the members' are for the operator) when it names one.

A backup (``take_backup``): resolve endpoints (Services → member URLs), dial
every member's Maintenance.Status and snapshot the one with the highest
revision, verify the file with ``snapshot status`` (a file that fails is a
failed backup and is deleted), then save it.  ``backupPolicy.timeoutInSecond``
(default 60) bounds all of it.  Any failure of a backup attempt is a failed
backup: written to status, logged and recorded as a ``BackupFailed`` event.

Status is written with a merge patch of the status subresource, not an update:
a conflict after a completed backup must not re-run the backup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from skiff.client.controller import Controller, ControllerContext
from skiff.client.errors import ApiError, is_not_found
from skiff.client.informer import meta_key
from skiff.client.resources import SECRETS
from skiff.client.timefmt import parse_rfc3339, rfc3339
from skiff.controllers.manager import ControllerSpec
from skiff.etcdoperator.backup_storage import (
    BackupRecord,
    BackupStorage,
    StorageSpecError,
    UnsupportedStorage,
    is_periodic_of,
    periodic_name,
    retained,
    storage_for,
)
from skiff.etcdoperator.conditions import replace_condition
from skiff.etcdoperator.endpoints import cluster_client_endpoint, resolve_endpoints, service_of
from skiff.etcdoperator.etcdclient import ClientTls, EndpointStatus, EtcdClient
from skiff.etcdoperator.resources import ETCDBACKUPS, ETCDCLUSTERS
from skiff.etcdoperator.snapshots import verify_snapshot
from skiff.etcdoperator.tls import operator_files, static_tls

log = logging.getLogger(__name__)

Obj = dict[str, Any]
FINALIZER = "backup-operator-periodic"
BACKUP_DIR_OPTION = "backup_dir"
STAGING_DIR_OPTION = "staging_dir"
DEFAULT_TIMEOUT_S = 60
#: Deadline of one Maintenance.Status call while picking a member.
STATUS_TIMEOUT_S = 5.0
#: status.backups never grows past this (unlimited retention keeps files, not records).
MAX_STATUS_RECORDS = 64
CONDITION_TYPE = "Succeeded"


class BackupError(Exception):
    """A backup attempt failed; the message is the status reason."""


@dataclass
class _Memory:
    """What the controller did for one object (by uid) that its status may not show yet."""

    uid: str
    last_attempt: float | None = None  # wall time of the last periodic attempt, success or not
    one_shot_generation: int | None = None  # the generation a one-shot ran for
    unwritten: Obj | None = None  # a status patch that failed to be written
    records: list[BackupRecord] = field(default_factory=list)  # status.backups as last computed


@dataclass(frozen=True)
class BackupPolicy:
    timeout_s: int
    interval_s: int
    max_backups: int

    @property
    def periodic(self) -> bool:
        return self.interval_s > 0


# -- pure decisions -------------------------------------------------------------------------------------


def _int_field(policy: Obj, name: str) -> int | str:
    value = policy.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        return f"spec.backupPolicy.{name} must be an integer"
    if value < 0:
        return f"spec.backupPolicy.{name} must be >= 0"
    return value


def validate(spec: Obj) -> str | None:
    """The first problem of a backup spec (the status reason), or None; ABS/GCS/OSS are found by storage_for."""
    endpoints = spec.get("etcdEndpoints")
    if endpoints is not None and (
        not isinstance(endpoints, list) or not all(isinstance(e, str) and e for e in endpoints)
    ):
        return "spec.etcdEndpoints must be a list of URLs"
    cluster = (spec.get("etcdCluster") or {}).get("name")
    if not endpoints and not cluster:
        return "spec.etcdEndpoints or spec.etcdCluster.name is required"
    policy = spec.get("backupPolicy") or {}
    if not isinstance(policy, dict):
        return "spec.backupPolicy must be an object"
    for name in ("timeoutInSecond", "backupIntervalInSecond", "maxBackups"):
        value = _int_field(policy, name)
        if isinstance(value, str):
            return value
    return None


def policy_of(spec: Obj) -> BackupPolicy:
    """The backup policy of a valid spec; a timeout of 0 (or none) means the default 60 s."""
    policy = spec.get("backupPolicy") or {}
    return BackupPolicy(
        timeout_s=int(policy.get("timeoutInSecond") or DEFAULT_TIMEOUT_S),
        interval_s=int(policy.get("backupIntervalInSecond") or 0),
        max_backups=int(policy.get("maxBackups") or 0),
    )


def endpoints_of(spec: Obj, secure: bool = False) -> list[str]:
    """spec.etcdEndpoints, else the client Service of spec.etcdCluster (https when ``secure``)."""
    given = list(spec.get("etcdEndpoints") or [])
    if given:
        return given
    url = cluster_client_endpoint(spec["etcdCluster"]["name"])
    return ["https://" + url.removeprefix("http://") if secure else url]


def storage_section(spec: Obj) -> tuple[str, Obj]:
    """(storageType, its section): ``spec.s3`` for S3, ``spec.local`` for Local (the default)."""
    kind = str(spec.get("storageType") or "Local")
    return kind, dict(spec.get(kind.lower()) or {})


def one_shot_settled(backup: Obj) -> bool:
    """A one-shot backup already ran (succeeded or failed) for its current generation."""
    status = backup.get("status") or {}
    generation = backup["metadata"].get("generation")
    return status.get("observedGeneration") == generation and bool(status.get("succeeded") or status.get("reason"))


def seconds_until_due(last_success: str | None, last_attempt: float | None, interval_s: float, now: float) -> float:
    """Seconds until the next periodic backup: ``interval`` after the later of both anchors; 0 when neither."""
    anchors = [] if last_attempt is None else [last_attempt]
    if last_success:
        with contextlib.suppress(ValueError):
            anchors.append(parse_rfc3339(last_success))
    if not anchors:
        return 0.0
    return max(0.0, max(anchors) + interval_s - now)


def backup_target(path: str, revision: int, started: float, periodic: bool) -> str:
    """Where a backup is stored: ``path`` itself, or the periodic name under it."""
    return periodic_name(path, revision, datetime.fromtimestamp(started, UTC)) if periodic else path


def kept_records(previous: list[BackupRecord], new: BackupRecord, kept: list[str] | None) -> list[BackupRecord]:
    """status.backups after a run: the retained paths' records in retention order, newest first.

    ``kept`` None means retention did not run (listing failed): the known
    records, newest first by (revision, time).  Paths without a record (files
    from before this status existed) are not listed.
    """
    by_path = {r.path: r for r in previous}
    by_path[new.path] = new
    if kept is None:
        ordered = sorted(by_path.values(), key=lambda r: (r.revision, r.time), reverse=True)
    else:
        ordered = [by_path[p] for p in kept if p in by_path]
    return ordered[:MAX_STATUS_RECORDS]


def condition(old_status: Obj, ok: bool, reason: str, message: str, now: float) -> Obj:
    """The Succeeded condition; lastTransitionTime moves only when its status changes."""
    scratch: Obj = {"conditions": [c for c in old_status.get("conditions") or [] if c.get("type") == CONDITION_TYPE]}
    replace_condition(scratch, CONDITION_TYPE, "True" if ok else "False", reason, message, now)
    return dict(scratch["conditions"][0])


def success_status(old: Obj, generation: int, record: BackupRecord, records: list[BackupRecord], now: float) -> Obj:
    message = f"snapshot at revision {record.revision} saved to {record.path}"
    return {
        "succeeded": True,
        "reason": None,
        "etcdVersion": record.etcd_version,
        "etcdRevision": record.revision,
        "lastSuccessDate": record.time,
        "observedGeneration": generation,
        "conditions": [condition(old, True, "BackupSucceeded", message, now)],
        "backups": [r.to_status() for r in records],
    }


def failure_status(old: Obj, generation: int, kind: str, reason: str, now: float) -> Obj | None:
    """The status patch for a failure, or None when status already says exactly this."""
    cond: Obj = next((c for c in old.get("conditions") or [] if c.get("type") == CONDITION_TYPE), {})
    if (
        old.get("succeeded") is False
        and old.get("reason") == reason
        and old.get("observedGeneration") == generation
        and cond.get("reason") == kind
    ):
        return None
    return {
        "succeeded": False,
        "reason": reason,
        "observedGeneration": generation,
        "conditions": [condition(old, False, kind, reason, now)],
    }


# -- the controller -------------------------------------------------------------------------------------


class BackupController(Controller):
    name = "etcd-backup"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.recorder = context.recorder_for("etcd-backup")
        backup_dir = context.options.get(BACKUP_DIR_OPTION)
        self.backup_dir = Path(backup_dir) if backup_dir else None
        self.staging_dir = Path(context.options.get(STAGING_DIR_OPTION) or tempfile.gettempdir())
        self.backups = self.informers.informer(ETCDBACKUPS)
        self.backups.add_handler(self.enqueue_obj, lambda _old, new: self.enqueue_obj(new), self.enqueue_obj)
        #: What this process did per key; the informer cache may lag our own writes, this never does.
        self._memory: dict[str, _Memory] = {}

    def _remember(self, key: str, uid: str) -> _Memory:
        memory = self._memory.get(key)
        if memory is None or memory.uid != uid:  # a new object under the same name starts afresh
            memory = self._memory[key] = _Memory(uid)
        return memory

    async def sync(self, key: str) -> None:
        backup = self.backups.get(key)
        if backup is None:
            self._memory.pop(key, None)
            return
        meta = backup["metadata"]
        memory = self._remember(key, str(meta.get("uid")))
        if memory.unwritten is not None:  # a finished attempt whose status write failed: write it, never re-run
            await self._patch_status(backup, memory.unwritten)
        if meta.get("deletionTimestamp"):
            await self._remove_finalizer(backup)
            return
        spec = backup.get("spec") or {}
        problem = validate(spec)
        if problem is not None:
            await self._write_failure(backup, "InvalidSpec", problem)
            return
        policy = policy_of(spec)
        generation = int(meta.get("generation") or 0)
        if not policy.periodic:
            if FINALIZER in (meta.get("finalizers") or []):
                await self._remove_finalizer(backup)
                return  # the patch's watch event brings the key back
            if one_shot_settled(backup) or memory.one_shot_generation == generation:
                return
            memory.one_shot_generation = generation
            await self._run(backup, policy)
            return
        if FINALIZER not in (meta.get("finalizers") or []):
            await self._add_finalizer(backup)
            return  # the patch's watch event brings the key back
        status = backup.get("status") or {}
        wait = seconds_until_due(
            status.get("lastSuccessDate"), memory.last_attempt, policy.interval_s, self.clock.now()
        )
        if wait > 0:
            self.queue.add_after(key, wait)
            if status.get("observedGeneration") != generation:  # a new schedule/path is in force from now on
                await self._patch_status(backup, {"observedGeneration": generation})
            return
        memory.last_attempt = self.clock.now()
        await self._run(backup, policy)
        self.queue.add_after(key, policy.interval_s)

    # -- one attempt --------------------------------------------------------------------------------

    async def _run(self, backup: Obj, policy: BackupPolicy) -> None:
        meta = backup["metadata"]
        spec = backup.get("spec") or {}
        started = self.clock.now()
        try:
            async with asyncio.timeout(policy.timeout_s):
                kind, section = storage_section(spec)
                storage, path = await storage_for(
                    self.client, meta["namespace"], kind, section, local_root=self.backup_dir
                )
                record = await self.take_backup(backup, storage, path, policy, started)
        except StorageSpecError as err:
            kind = "UnsupportedStorage" if isinstance(err, UnsupportedStorage) else "InvalidSpec"
            await self._write_failure(backup, kind, err.reason)
            return
        except TimeoutError:
            await self._write_failure(backup, "BackupFailed", f"backup did not finish within {policy.timeout_s}s")
            return
        except asyncio.CancelledError:
            raise
        except Exception as err:  # every failure of an attempt is reported: status, event, log
            log.warning("etcd-backup %s/%s failed: %s", meta["namespace"], meta["name"], err)
            log.debug("etcd-backup failure detail", exc_info=True)
            await self._write_failure(backup, "BackupFailed", str(err) or type(err).__name__)
            return
        old = backup.get("status") or {}
        memory = self._memory.get(meta_key(backup))
        previous = [BackupRecord.from_status(r) for r in old.get("backups") or []]
        previous += memory.records if memory else []
        if policy.periodic:
            kept = await self._retain(backup, storage, path, record, policy.max_backups)
            records = kept_records(previous, record, kept)
        else:
            records = [record]
        status = success_status(old, int(meta.get("generation") or 0), record, records, self.clock.now())
        if memory:
            memory.records = records
        await self._patch_status(backup, status)
        self.recorder.event(
            backup, "Normal", "BackupSucceeded", f"Saved snapshot at revision {record.revision} to {record.path}"
        )

    async def take_backup(
        self, backup: Obj, storage: BackupStorage, path: str, policy: BackupPolicy, started: float
    ) -> BackupRecord:
        """Snapshot the most advanced member, verify it, store it; the record of what was stored."""
        spec = backup.get("spec") or {}
        namespace = backup["metadata"]["namespace"]
        secret_name = spec.get("clientTLSSecret") or await self._cluster_operator_secret(backup)
        endpoints = endpoints_of(spec, secure=bool(secret_name))
        tls = await self._client_tls(namespace, str(secret_name), endpoints) if secret_name else None
        urls = await resolve_endpoints(self.client, namespace, endpoints)
        if not urls:
            raise BackupError(f"no etcd endpoint to back up from (resolved {endpoints} to nothing)")
        member = await pick_member(urls, tls)
        await asyncio.to_thread(self.staging_dir.mkdir, parents=True, exist_ok=True)
        staging = self.staging_dir / f"etcd-backup-{uuid.uuid4().hex}.db"
        try:
            async with EtcdClient(
                member.endpoint, timeout=STATUS_TIMEOUT_S, snapshot_timeout=policy.timeout_s, tls=tls
            ) as etcd:
                size = await etcd.snapshot(staging)
            info = await verify_snapshot(staging)  # SnapshotError: a failed backup; the file goes below
            target = backup_target(path, info.revision, started, policy.periodic)
            stored = await storage.save(staging, target)
        finally:
            await asyncio.to_thread(staging.unlink, missing_ok=True)
        return BackupRecord(stored, info.revision, member.version, size, rfc3339(started), info.hash)

    async def _cluster_operator_secret(self, backup: Obj) -> str | None:
        """The operatorSecret of the EtcdCluster a backup names (and gives no endpoints for), if it has one."""
        spec = backup.get("spec") or {}
        name = (spec.get("etcdCluster") or {}).get("name")
        if not name or spec.get("etcdEndpoints"):
            return None
        try:
            cluster = await self.client.get(ETCDCLUSTERS, name, backup["metadata"]["namespace"])
        except ApiError as err:
            if is_not_found(err):
                return None
            raise
        return static_tls(cluster.get("spec") or {}).operator_secret

    async def _client_tls(self, namespace: str, secret_name: str, endpoints: list[str]) -> ClientTls:
        try:
            secret = await self.client.get(SECRETS, secret_name, namespace)
        except ApiError as err:
            if is_not_found(err):
                raise BackupError(f"TLS secret {secret_name} not found") from None
            raise
        try:
            ca, cert, key = operator_files(secret)
        except ValueError as err:
            raise BackupError(str(err)) from None
        host = urlsplit(endpoints[0] if "://" in endpoints[0] else f"//{endpoints[0]}").hostname or ""
        service = service_of(host, namespace)
        return ClientTls(ca, cert, key, server_name=f"{service[0]}.{service[1]}.svc" if service else None)

    async def _retain(
        self, backup: Obj, storage: BackupStorage, path: str, record: BackupRecord, max_backups: int
    ) -> list[str] | None:
        """Delete periodic backups beyond ``max_backups``; the kept paths, or None if listing failed."""
        try:
            names = [n for n in await storage.list(f"{path}_v") if is_periodic_of(n, path)]
            keep, delete = retained([*names, record.path], max_backups)
            for name in delete:
                await storage.delete(name)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the backup itself succeeded; retention is retried by the next run
            log.warning("etcd-backup %s: retention under %s failed: %s", backup["metadata"]["name"], path, err)
            self.recorder.event(backup, "Warning", "RetentionFailed", f"Retention under {path} failed: {err}")
            return None
        return keep

    # -- writes -------------------------------------------------------------------------------------

    async def _write_failure(self, backup: Obj, kind: str, reason: str) -> None:
        meta = backup["metadata"]
        patch = failure_status(
            backup.get("status") or {}, int(meta.get("generation") or 0), kind, reason, self.clock.now()
        )
        if patch is None:
            return
        await self._patch_status(backup, patch)
        self.recorder.event(backup, "Warning", "BackupFailed", reason)

    async def _patch_status(self, backup: Obj, status: Obj) -> None:
        """Merge-patch status; a failed write is remembered and retried by the next sync (which raises now)."""
        meta = backup["metadata"]
        memory = self._memory.get(meta_key(backup))
        try:
            await self.client.patch(
                ETCDBACKUPS, meta["name"], {"status": status}, meta["namespace"], subresource="status"
            )
        except ApiError as err:
            if not is_not_found(err):
                if memory is not None:
                    memory.unwritten = status
                raise
        if memory is not None:
            memory.unwritten = None

    async def _add_finalizer(self, backup: Obj) -> None:
        finalizers = [*(backup["metadata"].get("finalizers") or []), FINALIZER]
        await self._patch_finalizers(backup, finalizers)

    async def _remove_finalizer(self, backup: Obj) -> None:
        """Release the CR; stored backups stay (see the module docstring)."""
        finalizers = backup["metadata"].get("finalizers") or []
        if FINALIZER in finalizers:
            await self._patch_finalizers(backup, [f for f in finalizers if f != FINALIZER])

    async def _patch_finalizers(self, backup: Obj, finalizers: list[str]) -> None:
        """A merge patch carrying resourceVersion: a concurrent change conflicts and the key is retried."""
        meta = backup["metadata"]
        patch = {"metadata": {"finalizers": finalizers or None, "resourceVersion": meta.get("resourceVersion")}}
        try:
            await self.client.patch(ETCDBACKUPS, meta["name"], patch, meta["namespace"])
        except ApiError as err:
            if not is_not_found(err):
                raise


async def pick_member(urls: list[str], tls: ClientTls | None = None) -> EndpointStatus:
    """Maintenance.Status of every URL; the member with the highest revision (BackupError if none answers)."""

    async def status_of(url: str) -> EndpointStatus:
        async with EtcdClient(url, timeout=STATUS_TIMEOUT_S, tls=tls) as etcd:
            return await etcd.status()

    results = await asyncio.gather(*(status_of(url) for url in urls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result
    answered = [r for r in results if isinstance(r, EndpointStatus)]
    if not answered:
        detail = "; ".join(f"{url}: {err}" for url, err in zip(urls, results, strict=True))
        raise BackupError(f"no etcd member reachable: {detail}")
    return max(answered, key=lambda s: s.revision)


CONTROLLERS = [ControllerSpec("etcd-backup", BackupController)]
