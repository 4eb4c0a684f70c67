"""The CronJob controller: start Jobs on schedule, track them, keep a bounded history.

Upstream: pkg/controller/cronjob (cronjob_controllerv2.go).  ``sync``:

1. reconciles ``status.active`` with the Jobs this CronJob controls (finished
   jobs leave it, ``lastSuccessfulTime`` follows completions, missing ones are
   dropped);
2. unless suspended or being deleted, finds the most recent unmet schedule
   time (``cronjob_schedule.most_recent_due``) and applies
   startingDeadlineSeconds and the concurrencyPolicy (Forbid skips while a job
   runs, Replace deletes the running ones first);
3. creates ``<cronjob>-<minutes>`` from the job template with the
   scheduled-timestamp annotation and a controller reference;
4. deletes finished jobs beyond the history limits and requeues itself at the
   next schedule time.

Every decision reads the injected clock, so tests drive it with a FakeClock.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from skiff.api.status import ApiError
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import CRONJOBS, JOBS
from skiff.client.timefmt import parse_rfc3339, rfc3339
from skiff.controllers import cronjob_schedule as cs
from skiff.controllers.controller_ref import (
    CONTROLLER_UID_INDEX,
    controller_uid_index,
    get_controller_of,
    new_controller_ref,
)
from skiff.controllers.job_status import has_condition, is_finished
from skiff.controllers.manager import ControllerSpec
from skiff.controllers.status_writes import store_status

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KIND = "CronJob"
API_VERSION = "batch/v1"
#: nextScheduleTimeDuration adds a little so the requeue lands after the minute boundary.
REQUEUE_SLACK_S = 0.1


def job_ref(job: Obj) -> Obj:
    meta = job["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": "Job",
        "namespace": meta.get("namespace"),
        "name": meta["name"],
        "uid": meta["uid"],
        "resourceVersion": meta.get("resourceVersion"),
    }


def job_from_template(cronjob: Obj, scheduled: float) -> Obj:
    """getJobFromTemplate2: template labels/annotations, scheduled-timestamp annotation, controller ref."""
    spec = cronjob.get("spec") or {}
    template = spec.get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    meta = cronjob["metadata"]
    annotations = dict(tmeta.get("annotations") or {})
    annotations[cs.SCHEDULED_TIMESTAMP_ANNOTATION] = cs.scheduled_timestamp(scheduled, spec.get("timeZone"))
    return {
        "apiVersion": API_VERSION,
        "kind": "Job",
        "metadata": {
            "name": cs.job_name(meta["name"], scheduled),
            "namespace": meta.get("namespace"),
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [new_controller_ref(cronjob, API_VERSION, KIND)],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def finish_time(job: Obj) -> str:
    status = job.get("status") or {}
    return str(
        status.get("completionTime") or status.get("startTime") or job["metadata"].get("creationTimestamp") or ""
    )


class CronJobController(Controller):
    name = "cronjob"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.recorder = context.recorder_for("cronjob-controller")
        self.cronjobs = self.informers.informer(CRONJOBS)
        self.jobs = self.informers.informer(JOBS)
        self.jobs.add_index(CONTROLLER_UID_INDEX, controller_uid_index)
        self.cronjobs.add_handler(self.enqueue_obj, lambda _old, new: self.enqueue_obj(new), None)
        self.jobs.add_handler(self._on_job, lambda _old, new: self._on_job(new), self._on_job)

    def _on_job(self, job: Obj) -> None:
        ref = get_controller_of(job)
        if ref is not None and ref.get("kind") == KIND:
            self.enqueue(f"{job['metadata'].get('namespace', '')}/{ref.get('name', '')}")

    async def sync(self, key: str) -> None:
        cronjob = self.cronjobs.get(key)
        if cronjob is None:
            return
        jobs = self.jobs.by_index(CONTROLLER_UID_INDEX, cronjob["metadata"]["uid"])
        status = copy.deepcopy(cronjob.get("status") or {})
        self._reconcile_active(cronjob, status, jobs)
        spec = cronjob.get("spec") or {}
        if not cronjob["metadata"].get("deletionTimestamp") and not spec.get("suspend"):
            try:
                await self._run_schedule(key, cronjob, status)
            except cs.ScheduleError as err:
                self.recorder.event(cronjob, "Warning", "UnparseableSchedule", str(err))
        await self._write_status(cronjob, status)
        await self._cleanup(cronjob, jobs)

    def _reconcile_active(self, cronjob: Obj, status: Obj, jobs: list[Obj]) -> None:
        active = list(status.get("active") or [])
        by_uid = {j["metadata"]["uid"]: j for j in jobs}
        active_uids = {ref.get("uid") for ref in active}
        for job in jobs:
            finished = is_finished(job)
            uid = job["metadata"]["uid"]
            if not finished and uid not in active_uids and not job["metadata"].get("deletionTimestamp"):
                active.append(job_ref(job))
            if finished and uid in active_uids:
                active = [r for r in active if r.get("uid") != uid]
                self.recorder.event(
                    cronjob, "Normal", "SawCompletedJob", f"Saw completed job: {job['metadata']['name']}"
                )
            completed = (job.get("status") or {}).get("completionTime")
            if has_condition(job, "Complete") and completed:
                last = status.get("lastSuccessfulTime")
                if not last or parse_rfc3339(str(completed)) > parse_rfc3339(str(last)):
                    status["lastSuccessfulTime"] = completed
        kept = [r for r in active if r.get("uid") in by_uid]
        for ref in active:
            if ref.get("uid") not in by_uid:
                self.recorder.event(cronjob, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
        status["active"] = kept or None

    async def _run_schedule(self, key: str, cronjob: Obj, status: Obj) -> None:
        now = self.clock.now()
        due = cs.most_recent_due({**cronjob, "status": status}, now)
        self.queue.add_after(key, max(0.0, due.next_time - now) + REQUEUE_SLACK_S)
        if due.scheduled is None:
            return
        if due.missed > cs.MAX_MISSED:
            self.recorder.event(
                cronjob, "Warning", "TooManyMissedTimes", "too many missed start times; only the last one is started"
            )
        if cs.too_late(cronjob, due.scheduled, now):
            self.recorder.event(
                cronjob, "Warning", "MissSchedule", f"Missed scheduled time to start a job: {rfc3339(due.scheduled)}"
            )
            return
        policy = (cronjob.get("spec") or {}).get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and status.get("active"):
            return  # upstream: requeued, retried at the next schedule time
        if policy == "Replace":
            for ref in status.get("active") or []:
                await self._delete_job(cronjob, str(ref.get("namespace") or ""), str(ref.get("name")))
            status["active"] = None
        job = await self._create_job(cronjob, due.scheduled)
        active = list(status.get("active") or [])
        if job is not None and all(ref.get("uid") != job["metadata"]["uid"] for ref in active):
            status["active"] = [*active, job_ref(job)]
        status["lastScheduleTime"] = rfc3339(due.scheduled)

    async def _create_job(self, cronjob: Obj, scheduled: float) -> Obj | None:
        body = job_from_template(cronjob, scheduled)
        try:
            created: Obj = await self.client.create(JOBS, body)
        except ApiError as err:
            if err.code != 409:
                self.recorder.event(cronjob, "Warning", "FailedCreate", f"Error creating job: {err.message}")
                raise
            existing: Obj = await self.client.get(JOBS, body["metadata"]["name"], body["metadata"]["namespace"])
            owner = get_controller_of(existing) or {}
            return existing if owner.get("uid") == cronjob["metadata"]["uid"] and not is_finished(existing) else None
        self.recorder.event(cronjob, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}")
        return created

    async def _delete_job(self, cronjob: Obj, namespace: str, name: str) -> None:
        try:
            await self.client.delete(JOBS, name, namespace, propagation_policy="Background")
        except ApiError as err:
            if err.code != 404:
                raise
            return
        self.recorder.event(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {name}")

    async def _write_status(self, cronjob: Obj, status: Obj) -> None:
        """The fields this controller owns (None removes), over the stored status (UpdateStatus, as upstream)."""
        old = cronjob.get("status") or {}
        fields = ("active", "lastScheduleTime", "lastSuccessfulTime")
        patch = {k: status.get(k) or None for k in fields if (status.get(k) or None) != (old.get(k) or None)}
        if not patch:
            return
        await store_status(self.client, CRONJOBS, cronjob, patch)

    async def _cleanup(self, cronjob: Obj, jobs: list[Obj]) -> None:
        """cleanupFinishedJobs: delete the oldest finished jobs beyond the history limits."""
        spec = cronjob.get("spec") or {}
        for condition, limit in (
            ("Complete", spec.get("successfulJobsHistoryLimit")),
            ("Failed", spec.get("failedJobsHistoryLimit")),
        ):
            if limit is None:
                continue
            done = sorted(
                (j for j in jobs if has_condition(j, condition) and not j["metadata"].get("deletionTimestamp")),
                key=finish_time,
            )
            for job in done[: max(0, len(done) - int(limit))]:
                await self._delete_job(cronjob, str(job["metadata"].get("namespace") or ""), job["metadata"]["name"])


CONTROLLERS = [ControllerSpec("cronjob", CronJobController, service_account="cronjob-controller")]
