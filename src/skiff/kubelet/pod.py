"""The per-pod worker: sandbox, volumes, init containers in order, then the regular containers.

``update(pod)`` hands the worker the latest object; the worker publishes
status (merge patch of pods/status) whenever a record changes, rewrites
content volumes periodically so ConfigMap/Secret updates propagate, and on
``deletionTimestamp`` stops every container within the grace period and then
deletes the pod with grace 0 — the last step of graceful deletion, as the
real kubelet does.  ``stop()`` without deletion (kubelet exit) leaves
processes running for the next kubelet to adopt.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from typing import Any, Protocol

from skiff.client.timefmt import parse_rfc3339, rfc3339
from skiff.kubelet import sandbox
from skiff.kubelet.container import ContainerRunner
from skiff.kubelet.context import NodeServices, PodContext, log
from skiff.kubelet.lifecycle import run_init, run_main
from skiff.kubelet.process import ContainerProcess
from skiff.kubelet.status import ContainerRecord, pod_conditions, pod_phase
from skiff.kubelet.volumes import VolumeError, setup_volumes

VOLUME_RESYNC_S = 5.0
STATUS_DEBOUNCE_S = 0.05


class PodApi(Protocol):
    async def patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> bool: ...
    async def delete_now(self, pod: dict[str, Any]) -> None: ...
    async def fetch(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None: ...
    async def request_token(self, pod: dict[str, Any], audience: str, expiration_s: int) -> str: ...


class PodWorker:
    def __init__(
        self, node: NodeServices, api: PodApi, pod: dict[str, Any], pod_ip: str, adopted: dict[str, Any] | None
    ) -> None:
        uid = pod["metadata"]["uid"]
        self.ctx = PodContext(node, pod, sandbox.pod_dir(node.root_dir, uid), pod_ip, self._changed)
        self.api = api
        self.adopted = adopted or {}
        spec = pod["spec"]
        self.init = [ContainerRunner(self.ctx, c) for c in spec.get("initContainers") or []]
        self.main = [ContainerRunner(self.ctx, c) for c in spec.get("containers") or []]
        self._dirty = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []  # [run, status loop, deadline...]: everything, cancelled at the end
        self._supervisors: list[asyncio.Task[Any]] = []  # the flow that starts containers; stopped by terminate()
        self._finishing: asyncio.Task[None] | None = None
        self._published: dict[str, Any] | None = None
        self.start_time = (pod.get("status") or {}).get("startTime") or rfc3339()
        self.sandbox_ready = False
        self.failure: tuple[str, str] | None = None  # (reason, message) when the kubelet failed the pod
        self.terminating = False
        self.detached = False

    @property
    def uid(self) -> str:
        return self.ctx.uid

    def update(self, pod: dict[str, Any]) -> None:
        self.ctx.pod = pod
        self._wake.set()
        self._dirty.set()  # readiness gates and conditions set by others feed into the status; unchanged → no write
        if pod["metadata"].get("deletionTimestamp") and self._finishing is None and not self.detached:
            self._finishing = asyncio.create_task(self._finish_deletion())

    async def _finish_deletion(self) -> None:
        await self.terminate(self.ctx.grace_seconds())
        delay = 0.5
        while True:  # until the API has it gone: a pod stuck in Terminating is the worst outcome
            try:
                await self.api.delete_now(self.ctx.pod)
                return
            except Exception as err:
                log.warning("pod %s: final delete failed (retrying in %.1fs): %s", self.ctx.key, delay, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def stop_all(self) -> None:
        """The pod is gone from the API (or the kubelet stops pods on exit): stop now, then cancel tasks."""
        if self._finishing is not None:
            await asyncio.wait({self._finishing}, timeout=self.ctx.grace_seconds() + 15.0)
            self._finishing.cancel()
            await asyncio.gather(self._finishing, return_exceptions=True)
        elif not self.terminating:
            await self.terminate(self.ctx.grace_seconds())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def republish(self) -> None:
        self._published = None
        self._dirty.set()

    def _changed(self) -> None:
        self._dirty.set()

    def start(self) -> None:
        run = asyncio.create_task(self._run(), name=f"pod {self.ctx.key}")
        self._tasks.append(run)
        self._supervisors.append(run)
        self._tasks.append(asyncio.create_task(self._status_loop()))

    async def detach(self) -> None:
        """Kubelet exit without --stop-pods-on-exit: forget the pod, leave its processes running."""
        self.detached = True
        self._save_state()
        for task in self._tasks:
            task.cancel()
        for runner in [*self.init, *self.main]:
            runner.stopping = True
            runner.stop_probes()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- main flow ------------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._setup_sandbox()
            deadline = self.ctx.pod["spec"].get("activeDeadlineSeconds")
            if deadline is not None:
                self._tasks.append(asyncio.create_task(self._enforce_deadline(float(deadline))))
            if await self._adopt() or await self._run_init():
                supervisors = [asyncio.create_task(self._run_main(r)) for r in self.main]
                self._supervisors.extend(supervisors)
                self._tasks.extend(supervisors)
            await self._resync_volumes_forever()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s: worker failed", self.ctx.key)
            raise

    async def _enforce_deadline(self, seconds: float) -> None:
        """spec.activeDeadlineSeconds: past it the pod fails with reason DeadlineExceeded (upstream behaviour)."""
        await asyncio.sleep(max(0.0, parse_rfc3339(self.start_time) + seconds - time.time()))
        message = "Pod was active on the node longer than the specified deadline"
        self.failure = ("DeadlineExceeded", message)
        self.ctx.event("Normal", "DeadlineExceeded", message)
        await self.terminate(self.ctx.grace_seconds())

    async def _setup_sandbox(self) -> None:
        node = self.ctx.node
        await asyncio.to_thread(
            sandbox.write_sandbox,
            self.ctx.pod_dir,
            self.ctx.pod,
            self.ctx.pod_ip,
            node.cluster_dns,
            node.cluster_domain,
        )
        self.sandbox_ready = True
        while not await self._sync_volumes():
            await self._wait_wake(2.0)
        self._save_state()
        self._dirty.set()

    async def _sync_volumes(self) -> bool:
        try:
            self.ctx.volume_paths = await setup_volumes(
                self.ctx.pod_with_addresses(),
                self.ctx.pod_dir,
                self.api.fetch,
                self.ctx.node.resources,
                self.ctx.node.isolate,
                self.api.request_token,
            )
            return True
        except VolumeError as err:
            for runner in self.main:
                if runner.process is None:
                    runner.record.state = {"waiting": {"reason": "ContainerCreating", "message": str(err)}}
            log.warning("pod %s: volume setup: %s", self.ctx.key, err)
            self.ctx.event("Warning", "FailedMount", f"MountVolume.SetUp failed: {err}")
            self._dirty.set()
            return False

    async def _adopt(self) -> bool:
        """Re-attach to containers a previous kubelet started; True when the pod was past its init phase."""
        states = self.adopted.get("containers") or {}
        if not states:
            return False
        for runner in self.main:
            state = states.get(runner.name) or {}
            process = ContainerProcess.adopt(state) if state.get("pid") else None
            if process is not None:
                runner.adopt(process, state)
                log.info("pod %s: adopted container %s (pid %d)", self.ctx.key, runner.name, process.pid)
            else:
                runner.record.restart_count = int(state.get("restartCount", 0))
        for runner in self.init:
            runner.record.state = {"terminated": {"exitCode": 0, "reason": "Completed"}}
        return True

    async def _run_init(self) -> bool:
        policy = self.ctx.pod["spec"].get("restartPolicy") or "Always"
        for runner in self.init:
            if not await run_init(runner, "OnFailure" if policy == "Always" else policy):
                return False
        return True

    async def _run_main(self, runner: ContainerRunner) -> None:
        policy = self.ctx.pod["spec"].get("restartPolicy") or "Always"
        if runner.process is not None:
            term = await runner.wait_exit()
            if runner.stopping or policy == "Never" or (policy == "OnFailure" and term["exitCode"] == 0):
                return
            runner.record.last_state = {"terminated": term}
            runner.record.restart_count += 1
        await run_main(runner, policy)

    async def _resync_volumes_forever(self) -> None:
        while True:
            await self._wait_wake(VOLUME_RESYNC_S)
            if self.ctx.pod["spec"].get("volumes"):
                await self._sync_volumes()
            self._save_state()

    async def _wait_wake(self, seconds: float) -> None:
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that races the event.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def terminate(self, grace_s: float) -> None:
        """Stop every container (preStop, SIGTERM, SIGKILL after grace) and publish the final status."""
        self.terminating = True
        runners = [*self.init, *self.main]
        for runner in runners:
            runner.stopping = True
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*(r.stop(grace_s) for r in runners))
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        for runner in runners:
            if "running" in runner.record.state:
                runner.record.state = {"terminated": {"exitCode": 137, "reason": "Error"}}
            runner.record.ready = False
        self.ctx.node.cgroups.remove(self.uid)  # every process is gone; nothing is left to account
        self._save_state()
        await self._publish()

    async def cleanup(self) -> None:
        """Remove the pod's directory and cgroups once it is gone from the API."""
        self.ctx.node.cgroups.remove(self.uid)
        await asyncio.to_thread(sandbox.remove_pod_dir, self.ctx.pod_dir)

    # ---- status ---------------------------------------------------------------------------------------
    def _save_state(self) -> None:
        if self.terminating and not self.detached:
            state: dict[str, Any] = {"podIP": self.ctx.pod_ip, "containers": {}}
        else:
            state = {"podIP": self.ctx.pod_ip, "containers": {r.name: r.to_state() for r in self.main}}
        with contextlib.suppress(OSError):
            sandbox.save_state(self.ctx.pod_dir, state)

    def compute_status(self) -> dict[str, Any]:
        pod = self.ctx.pod
        policy = pod["spec"].get("restartPolicy") or "Always"
        init: list[ContainerRecord] = [r.record for r in self.init]
        main: list[ContainerRecord] = [r.record for r in self.main]
        phase = pod_phase(policy, init, main)
        existing = (pod.get("status") or {}).get("conditions") or []
        node_ip = self.ctx.node.node_ip
        status: dict[str, Any] = {
            "phase": phase,
            "conditions": pod_conditions(existing, phase, init, main, self.sandbox_ready, rfc3339(), _gates(pod)),
            "hostIP": node_ip,
            "hostIPs": [{"ip": node_ip}],
            "podIP": self.ctx.pod_ip,
            "podIPs": [{"ip": self.ctx.pod_ip}],
            "startTime": self.start_time,
            "containerStatuses": [r.to_status() for r in main],
            "qosClass": _qos_class(pod),
        }
        if init:
            status["initContainerStatuses"] = [r.to_status() for r in init]
        if self.failure is not None:
            status["phase"] = "Failed"
            status["reason"], status["message"] = self.failure
            status["conditions"] = pod_conditions(existing, "Failed", init, main, self.sandbox_ready, rfc3339())
        return status

    async def _status_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(STATUS_DEBOUNCE_S)
            self._dirty.clear()
            try:
                await self._publish()
            except Exception as err:  # keep publishing; the next change (or retry) writes again
                log.warning("pod %s: status update failed: %s", self.ctx.key, err)
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def _publish(self) -> None:
        status = self.compute_status()
        comparable = _without_times(status)
        if self._published == comparable:
            return
        if await self.api.patch_status(self.ctx.pod, status):
            self._published = comparable
        self._save_state()


def _gates(pod: dict[str, Any]) -> list[str]:
    return [g["conditionType"] for g in pod["spec"].get("readinessGates") or []]


def _without_times(status: dict[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(status)
    for cond in copied.get("conditions", []):
        cond.pop("lastTransitionTime", None)
    return copied


def _qos_class(pod: dict[str, Any]) -> str:
    containers = pod["spec"].get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        if not all(k in limits for k in ("cpu", "memory")) or any(
            requests.get(k, limits[k]) != limits[k] for k in limits
        ):
            return "Burstable"
    return "Guaranteed"
