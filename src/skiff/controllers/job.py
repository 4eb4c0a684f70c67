"""The Job controller: run pods to completion, count them once, finish, expire.

Upstream: pkg/controller/job and (for ``ttlSecondsAfterFinished``) the
ttl-after-finished controller, folded in here.  ``sync``:

1. counts finished pods through the job-tracking finalizer
   (``job_status.count_finished``): record them in
   ``status.uncountedTerminatedPods``, remove the finalizer, then add them to
   ``succeeded``/``failed`` (and ``completedIndexes``);
2. decides success or failure (``decide_finish``); once decided, deletes the
   remaining active pods and, when none is left, adds Complete/Failed;
3. otherwise, when expectations are met, creates pods up to the wanted
   parallelism (after a failure back-off) or deletes the excess;
4. writes the status with a compare-and-swap update (a conflict retries).

Pods get ``batch.kubernetes.io/job-tracking`` at creation; Indexed pods get
the completion-index annotation and label, ``hostname <job>-<index>`` and the
``JOB_COMPLETION_INDEX`` env var as a downward-API fieldRef on the annotation
(the kubelet resolves it, as upstream).  The apiserver generates the selector
and the controller-uid/job-name labels.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from skiff.api.selectors import label_selector_from_structured
from skiff.api.status import ApiError
from skiff.client.controller import Controller, ControllerContext
from skiff.client.informer import meta_key
from skiff.client.resources import JOBS, PODS
from skiff.client.timefmt import parse_rfc3339, rfc3339
from skiff.controllers import job_status as js
from skiff.controllers.controller_ref import (
    CONTROLLER_UID_INDEX,
    controller_uid_index,
    get_controller_of,
    new_controller_ref,
)
from skiff.controllers.expectations import ControllerExpectations
from skiff.controllers.manager import ControllerSpec
from skiff.controllers.pod_control import create_pod, delete_pod, pod_from_template
from skiff.controllers.pod_status import is_pod_ready

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KIND = "Job"
API_VERSION = "batch/v1"
#: Queue keys of pods whose job is gone; "#" never appears in a namespace or name.
ORPHAN_PREFIX = "#orphan:"


def pod_key(pod: Obj) -> str:
    return f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"


def indexed_pod(pod: Obj, job_name: str, index: int) -> Obj:
    """Give a pod its completion index: annotation, label, hostname, generateName, env var."""
    meta = pod["metadata"]
    meta.setdefault("annotations", {})[js.COMPLETION_INDEX_ANNOTATION] = str(index)
    meta.setdefault("labels", {})[js.COMPLETION_INDEX_ANNOTATION] = str(index)
    meta["generateName"] = f"{job_name}-{index}-"
    spec = pod["spec"]
    spec.setdefault("hostname", f"{job_name}-{index}")
    env_var = {
        "name": js.COMPLETION_INDEX_ENV,
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{js.COMPLETION_INDEX_ANNOTATION}']"}},
    }
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        env = [e for e in container.get("env") or [] if e.get("name") != js.COMPLETION_INDEX_ENV]
        container["env"] = [*env, env_var]
    return pod


class JobController(Controller):
    name = "job"
    #: Base of the failure back-off (tests set 0 to replace failed pods at once).
    backoff_base_s = js.BACKOFF_BASE_S

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.recorder = context.recorder_for("job-controller")
        self.expectations = ControllerExpectations(self.clock.now)
        self.jobs = self.informers.informer(JOBS)
        self.pods = self.informers.informer(PODS)
        self.pods.add_index(CONTROLLER_UID_INDEX, controller_uid_index)
        self._released: dict[str, set[str]] = {}  # job uid → pod uids whose finalizer we removed
        self._last_failure: dict[str, float] = {}
        self.jobs.add_handler(self.enqueue_obj, lambda _old, new: self.enqueue_obj(new), self._on_job_delete)
        self.pods.add_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = get_controller_of(pod)
        if ref is None or ref.get("kind") != KIND:
            return None
        return f"{pod['metadata'].get('namespace', '')}/{ref.get('name', '')}"

    def _on_job_delete(self, job: Obj) -> None:
        self.expectations.delete(meta_key(job))
        self._released.pop(job["metadata"].get("uid", ""), None)
        self._last_failure.pop(meta_key(job), None)
        for pod in self.pods.by_index(CONTROLLER_UID_INDEX, job["metadata"].get("uid", "")):
            if js.has_finalizer(pod):
                self.enqueue(ORPHAN_PREFIX + meta_key(pod))

    def _on_pod_add(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.enqueue(key)
        self._check_orphan(pod, key)

    def _on_pod_update(self, _old: Obj, new: Obj) -> None:
        key = self._owner_key(new)
        if key is not None:
            self.enqueue(key)
        self._check_orphan(new, key)

    def _on_pod_delete(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod_key(pod))
            ref = get_controller_of(pod) or {}
            self._released.get(str(ref.get("uid")), set()).discard(pod["metadata"].get("uid", ""))
            self.enqueue(key)

    def _check_orphan(self, pod: Obj, key: str | None) -> None:
        """A pod holding our finalizer whose job is gone (enqueueOrphanPod): release it."""
        if not js.has_finalizer(pod):
            return
        job = self.jobs.get(key) if key is not None else None
        ref = get_controller_of(pod) or {}
        if job is None or job["metadata"].get("uid") != ref.get("uid"):
            self.enqueue(ORPHAN_PREFIX + meta_key(pod))

    # -- sync ------------------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        if key.startswith(ORPHAN_PREFIX):
            await self._sync_orphan(key.removeprefix(ORPHAN_PREFIX))
            return
        job = self.jobs.get(key)
        if job is None:
            self.expectations.delete(key)
            return
        pods = self._job_pods(job)
        if js.is_finished(job) or job["metadata"].get("deletionTimestamp"):
            await self._release_all(job, pods)
            await self._expire(key, job)
            return
        job, status = await self._count(key, job, pods)
        active = js.active_pods(pods)
        now = self.clock.now()
        start = parse_rfc3339(status["startTime"]) if status.get("startTime") else None
        finish = self._finish_of(job, status, active, now, start)
        if finish is not None:
            await self._finish(key, job, status, finish, active, pods)
        elif (job.get("spec") or {}).get("suspend"):
            await self._delete_pods(key, job, active)
            active = []
            js.set_suspended(status, True, rfc3339(now))
        else:
            if js.set_suspended(status, False, rfc3339(now)):
                status["startTime"] = rfc3339(now)  # a resumed job's deadline counts from now
            active = await self._manage(key, job, status, active)
            self._requeue_deadline(key, job, now, start)
        status["active"] = len(active)
        status["ready"] = js.ready_count(active)
        await self._write_status(job, status)

    async def _sync_orphan(self, key: str) -> None:
        """syncOrphanPod: remove the tracking finalizer once the pod's job is really gone (or another job)."""
        pod = self.pods.get(key)
        if pod is None or not js.has_finalizer(pod):
            return
        ref = get_controller_of(pod) or {}
        if ref.get("kind") == KIND:
            try:
                job = await self.client.get(JOBS, str(ref.get("name")), pod["metadata"].get("namespace"))
            except ApiError as err:
                if err.code != 404:
                    raise
            else:
                if job["metadata"].get("uid") == ref.get("uid"):
                    return  # the job exists: its own sync counts and releases the pod
        await self._remove_finalizers(str(ref.get("uid") or ""), [pod])
        self._released.pop(str(ref.get("uid") or ""), None)

    def _job_pods(self, job: Obj) -> list[Obj]:
        selector = label_selector_from_structured((job.get("spec") or {}).get("selector"))
        owned = self.pods.by_index(CONTROLLER_UID_INDEX, job["metadata"]["uid"])
        return [p for p in owned if selector.matches(p["metadata"].get("labels") or {})]

    async def _count(self, key: str, job: Obj, pods: list[Obj]) -> tuple[Obj, Obj]:
        """Steps of finalizer-based tracking; returns the (possibly rewritten) job and the new status."""
        uid = job["metadata"]["uid"]
        status: Obj = copy.deepcopy(job.get("status") or {})
        if not status.get("startTime") and not (job.get("spec") or {}).get("suspend"):
            status["startTime"] = rfc3339(self.clock.now())
        counting = js.count_finished(job, pods, self._released.get(uid, set()))
        status.setdefault("succeeded", 0)
        status.setdefault("failed", 0)
        if not counting.uncounted_succeeded and not counting.uncounted_failed:
            status["uncountedTerminatedPods"] = {}
            return job, status
        status["uncountedTerminatedPods"] = {
            "succeeded": counting.uncounted_succeeded,
            "failed": counting.uncounted_failed,
        }
        job = await self._write_status(job, status)
        uncounted = set(counting.uncounted_succeeded) | set(counting.uncounted_failed)
        await self._remove_finalizers(uid, [p for p in pods if p["metadata"].get("uid") in uncounted])
        status = copy.deepcopy(job.get("status") or {})
        status["succeeded"] = int(status.get("succeeded") or 0) + len(counting.uncounted_succeeded)
        status["failed"] = int(status.get("failed") or 0) + len(counting.uncounted_failed)
        if counting.uncounted_failed:
            self._last_failure[key] = self.clock.now()
        if counting.new_indexes:
            done = js.parse_indexes(status.get("completedIndexes")) | counting.new_indexes
            status["completedIndexes"] = js.format_indexes(done)
        status["uncountedTerminatedPods"] = {}
        return job, status

    async def _remove_finalizers(self, job_uid: str, pods: list[Obj]) -> None:
        released = self._released.setdefault(job_uid, set())
        for pod in pods:
            finalizers = pod["metadata"].get("finalizers") or []
            if js.TRACKING_FINALIZER not in finalizers:
                continue
            index = finalizers.index(js.TRACKING_FINALIZER)
            path = f"/metadata/finalizers/{index}"
            patch = [{"op": "test", "path": path, "value": js.TRACKING_FINALIZER}, {"op": "remove", "path": path}]
            try:
                await self.client.patch(
                    PODS, pod["metadata"]["name"], patch, pod["metadata"].get("namespace"), patch_type="json"
                )
            except ApiError as err:
                if err.code != 404:
                    raise
            released.add(pod["metadata"]["uid"])

    async def _release_all(self, job: Obj, pods: list[Obj]) -> None:
        """A finished job keeps no pod behind its finalizer."""
        await self._remove_finalizers(job["metadata"]["uid"], [p for p in pods if js.has_finalizer(p)])

    def _finish_of(self, job: Obj, status: Obj, active: list[Obj], now: float, start: float | None) -> js.Finish | None:
        for cond in status.get("conditions") or []:
            if cond.get("status") == "True" and cond.get("type") in ("FailureTarget", "SuccessCriteriaMet"):
                terminal = "Failed" if cond["type"] == "FailureTarget" else "Complete"
                return js.Finish(cond["type"], terminal, cond.get("reason", ""), cond.get("message", ""))
        completed = js.parse_indexes(status.get("completedIndexes"))
        succeeded, failed = int(status.get("succeeded") or 0), int(status.get("failed") or 0)
        return js.decide_finish(job, succeeded, failed, completed, active, now, start)

    async def _finish(
        self, key: str, job: Obj, status: Obj, finish: js.Finish, active: list[Obj], pods: list[Obj]
    ) -> None:
        now_text = rfc3339(self.clock.now())
        conditions = status.setdefault("conditions", [])
        if not js.has_condition({"status": status}, finish.interim):
            conditions.append(js.condition(finish.interim, finish.reason, finish.message, now_text))
        await self._delete_pods(key, job, active)
        if any(js.has_finalizer(p) and js.finished_as(p) is None for p in pods) or active:
            return  # wait for the pods to go before the terminal condition
        conditions.append(js.condition(finish.terminal, finish.reason, finish.message, now_text))
        if finish.terminal == "Complete":
            status["completionTime"] = now_text
        kind = "Normal" if finish.terminal == "Complete" else "Warning"
        self.recorder.event(job, kind, "Completed" if kind == "Normal" else finish.reason, finish.message)

    async def _manage(self, key: str, job: Obj, status: Obj, active: list[Obj]) -> list[Obj]:
        """Create or delete pods toward the wanted parallelism; returns the active pods afterwards."""
        if not self.expectations.satisfied(key):
            return active
        succeeded = int(status.get("succeeded") or 0)
        completed = js.parse_indexes(status.get("completedIndexes"))
        want = js.wanted_active(job, succeeded, len(active), completed)
        if want < len(active):
            ranked = sorted(active, key=lambda p: (is_pod_ready(p), p["metadata"].get("creationTimestamp") or ""))
            await self._delete_pods(key, job, ranked[: len(active) - want])
            return ranked[len(active) - want :]
        if want == len(active):
            return active
        delay = js.backoff_delay(int(status.get("failed") or 0), self.backoff_base_s)
        remaining = self._last_failure.get(key, 0.0) + delay - self.clock.now()
        if remaining > 0:
            self.queue.add_after(key, remaining)
            return active
        return active + await self._create_pods(key, job, active, want - len(active), completed)

    async def _create_pods(self, key: str, job: Obj, active: list[Obj], count: int, completed: set[int]) -> list[Obj]:
        spec = job.get("spec") or {}
        indexed = spec.get("completionMode") == "Indexed"
        indexes: list[int | None] = (
            list(js.pending_indexes(job, completed, active, count)) if indexed else [None] * count
        )
        self.expectations.expect_creations(key, len(indexes))
        ref = new_controller_ref(job, API_VERSION, KIND)
        created: list[Obj] = []
        errors: list[ApiError] = []
        for index in indexes:
            pod = pod_from_template(spec.get("template") or {}, job, ref)
            pod["metadata"]["finalizers"] = [*pod["metadata"].get("finalizers", []), js.TRACKING_FINALIZER]
            if index is not None:
                indexed_pod(pod, job["metadata"]["name"], index)
            try:
                created.append(await create_pod(self.client, self.recorder, job, pod))
            except ApiError as err:
                self.expectations.creation_observed(key)
                errors.append(err)
        if errors:
            raise errors[0]
        return created

    async def _delete_pods(self, key: str, job: Obj, pods: list[Obj]) -> None:
        if not pods:
            return
        self.expectations.expect_deletions(key, [pod_key(p) for p in pods])
        namespace = str(job["metadata"].get("namespace") or "")
        for pod in pods:
            try:
                await delete_pod(self.client, self.recorder, job, namespace, pod["metadata"]["name"])
            except ApiError:
                self.expectations.deletion_observed(key, pod_key(pod))
                raise

    def _requeue_deadline(self, key: str, job: Obj, now: float, start: float | None) -> None:
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is not None and start is not None:
            self.queue.add_after(key, max(0.0, start + int(deadline) - now))

    async def _write_status(self, job: Obj, status: Obj) -> Obj:
        if status == (job.get("status") or {}):
            return job
        body = {**job, "status": status}
        updated: Obj = await self.client.update_status(JOBS, body)
        return updated

    async def _expire(self, key: str, job: Obj) -> None:
        """ttlSecondsAfterFinished: delete the job (and, in the background, its pods) once it expires."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        status = job.get("status") or {}
        finished = status.get("completionTime")
        for cond in status.get("conditions") or []:
            if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
                finished = finished or cond.get("lastTransitionTime")
        if not finished:
            return
        remaining = parse_rfc3339(str(finished)) + int(ttl) - self.clock.now()
        if remaining > 0:
            self.queue.add_after(key, remaining)
            return
        meta = job["metadata"]
        try:
            await self.client.delete(
                JOBS,
                meta["name"],
                meta.get("namespace"),
                propagation_policy="Background",
                preconditions={"uid": meta["uid"]},
            )
        except ApiError as err:
            if err.code != 404:
                raise


CONTROLLERS = [ControllerSpec("job", JobController, service_account="job-controller")]
