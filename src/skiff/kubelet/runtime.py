"""The pod runtime: one worker per pod bound to this node, fed by the pod informer.

Implements ``PodRuntimeView`` for the kubelet's HTTPS server and ``PodApi``
for the workers.  On start it loads the state files a previous kubelet left;
pods still bound here are adopted by their workers, and pods no longer in the
API are stopped and cleaned up once the informer has synced.
"""

from __future__ import annotations

import asyncio
from typing import Any

from skiff.client import ApiClient, is_not_found
from skiff.client.resources import CONFIGMAPS, PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS, SECRETS, Resource
from skiff.kubelet import sandbox
from skiff.kubelet.context import NodeServices, log
from skiff.kubelet.ipam import Ipam, PodCidrExhausted
from skiff.kubelet.pod import PodWorker
from skiff.kubelet.process import ContainerProcess
from skiff.kubelet.sa_tokens import TokenManager
from skiff.kubelet.static_pods import is_mirror
from skiff.kubelet.view import ContainerLogs, ExecTarget

_BY_PLURAL: dict[str, Resource] = {
    r.plural: r for r in (CONFIGMAPS, SECRETS, PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES)
}


class PodRuntime:
    def __init__(self, client: ApiClient, node: NodeServices, ipam: Ipam | None = None) -> None:
        self.client = client
        self.node = node
        self.ipam = ipam
        self.workers: dict[str, PodWorker] = {}  # by uid
        self.by_key: dict[str, str] = {}  # "ns/name" -> uid
        self.states = sandbox.load_states(node.root_dir)
        self._background: set[asyncio.Task[Any]] = set()
        self.tokens = TokenManager(client)

    def set_pod_cidr(self, cidr: str) -> None:
        """Addresses in use by adopted pods stay theirs; new pods get free ones from ``cidr``."""
        self.ipam = Ipam(cidr)
        for uid, worker in self.workers.items():
            if worker.ctx.pod_ip != self.node.node_ip:
                self.ipam.claim(uid, worker.ctx.pod_ip)
        for uid, state in self.states.items():
            if state.get("podIP") and state["podIP"] != self.node.node_ip:
                self.ipam.claim(uid, state["podIP"])

    # ---- informer handlers ----------------------------------------------------------------------------
    def on_pod(self, pod: dict[str, Any]) -> None:
        if is_mirror(pod):
            # The static pod behind it runs from its manifest; a new mirror needs its status written.
            static = self._worker(pod["metadata"]["namespace"], pod["metadata"]["name"])
            if static is not None and not (pod.get("status") or {}).get("containerStatuses"):
                static.republish()
            return
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            # Finished before this kubelet saw it (or before a restart): never run its containers again.
            self.states.pop(uid, None)
            if pod["metadata"].get("deletionTimestamp"):
                self._spawn(self.delete_now(pod))
            return
        self._start_worker(pod)

    def add_static(self, pod: dict[str, Any]) -> None:
        if pod["metadata"]["uid"] not in self.workers:
            self._start_worker(pod)

    async def remove_static(self, uid: str) -> None:
        worker = self.workers.pop(uid, None)
        if worker is not None:
            self.by_key.pop(worker.ctx.key, None)
            await self._forget(worker)

    def _start_worker(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        assert self.ipam is not None, "set_pod_cidr before pods arrive"
        try:
            pod_ip = self.node.node_ip if pod["spec"].get("hostNetwork") else self.ipam.allocate(uid)
        except PodCidrExhausted as err:
            log.error("pod %s/%s: %s", pod["metadata"]["namespace"], pod["metadata"]["name"], err)
            return
        worker = PodWorker(self.node, self, pod, pod_ip, self.states.pop(uid, None))
        self.workers[uid] = worker
        self.by_key[worker.ctx.key] = uid
        worker.start()
        worker.update(pod)

    def on_pod_update(self, _old: dict[str, Any], new: dict[str, Any]) -> None:
        self.on_pod(new)

    def on_pod_delete(self, pod: dict[str, Any]) -> None:
        if is_mirror(pod):
            return
        uid = pod["metadata"]["uid"]
        worker = self.workers.pop(uid, None)
        key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        if self.by_key.get(key) == uid:
            del self.by_key[key]
        if worker is not None:
            self._spawn(self._forget(worker))
        else:
            directory = sandbox.pod_dir(self.node.root_dir, uid)
            self._spawn(asyncio.to_thread(sandbox.remove_pod_dir, directory))

    async def _forget(self, worker: PodWorker) -> None:
        await worker.stop_all()
        await worker.cleanup()
        self.tokens.forget_pod(worker.uid)
        if self.ipam is not None:
            self.ipam.release(worker.uid)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def remove_orphans(self, known_uids: set[str]) -> None:
        """State files of pods the API no longer has: kill what still runs, remove the directories."""
        for uid in [u for u in self.states if u not in known_uids and u not in self.workers]:
            state = self.states.pop(uid)
            for container in (state.get("containers") or {}).values():
                process = ContainerProcess.adopt(container) if container.get("pid") else None
                if process is not None:
                    log.info("stopping orphaned container process %d of pod %s", process.pid, uid)
                    await process.terminate(2.0)
            self.node.cgroups.remove(uid)
            await asyncio.to_thread(sandbox.remove_pod_dir, sandbox.pod_dir(self.node.root_dir, uid))
            if self.ipam is not None:
                self.ipam.release(uid)

    async def shutdown(self, stop_pods: bool) -> None:
        workers = list(self.workers.values())
        if stop_pods:
            await asyncio.gather(*(w.stop_all() for w in workers), return_exceptions=True)
        else:
            await asyncio.gather(*(w.detach() for w in workers), return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # ---- PodApi -------------------------------------------------------------------------------------
    async def patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> bool:
        meta = pod["metadata"]
        try:
            await self.client.patch(PODS, meta["name"], {"status": status}, meta["namespace"], subresource="status")
        except Exception as err:
            if is_not_found(err):
                return False  # deleted meanwhile, or a static pod whose mirror does not exist yet
            raise
        return True

    async def delete_now(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(
                PODS, meta["name"], meta["namespace"], grace_period_seconds=0, preconditions={"uid": meta["uid"]}
            )
        except Exception as err:
            if not is_not_found(err):
                raise

    async def fetch(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(_BY_PLURAL[plural], name, namespace)
        except Exception as err:
            if is_not_found(err):
                return None
            raise

    async def request_token(self, pod: dict[str, Any], audience: str, expiration_s: int) -> str:
        return await self.tokens.token(pod, audience, expiration_s)

    # ---- PodRuntimeView -----------------------------------------------------------------------------
    def _worker(self, namespace: str, pod: str) -> PodWorker | None:
        uid = self.by_key.get(f"{namespace}/{pod}")
        return self.workers.get(uid) if uid else None

    def container_logs(self, namespace: str, pod: str, container: str) -> ContainerLogs | None:
        worker = self._worker(namespace, pod)
        runner = next(
            (r for r in [*(worker.main if worker else []), *(worker.init if worker else [])] if r.name == container),
            None,
        )
        if runner is None:
            return None
        count = runner.record.restart_count
        previous = runner.log_path(count - 1) if count > 0 else None
        return ContainerLogs(
            runner.log_path(count), previous if previous and previous.exists() else None, runner.record.running()
        )

    def exec_target(self, namespace: str, pod: str, container: str) -> ExecTarget | None:
        worker = self._worker(namespace, pod)
        runner = next((r for r in (worker.main if worker else []) if r.name == container), None)
        if runner is None or runner.process is None or not runner.record.running():
            return None
        exec_env = runner.exec_env()
        # With a prefix, nsenter --wdns sets the container's directory inside its namespace; the host-side cwd is /.
        cwd = "/" if exec_env.prefix else runner.cwd
        fifo = runner.stdin_fifo() if runner.spec.get("stdin") else None
        return ExecTarget(exec_env.prefix, dict(runner.env), cwd, runner.process.pid, attach_stdin=fifo)

    def pod_ip(self, namespace: str, pod: str) -> str | None:
        worker = self._worker(namespace, pod)
        return worker.ctx.pod_ip if worker else None
