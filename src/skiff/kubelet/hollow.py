"""Hollow nodes: many simulated nodes in one process, kwok-style, for scale tests and benchmarks.

Each hollow node registers a Ready Node (capacity configurable: 32 CPUs, 256Gi,
110 pods by default), holds a Lease in kube-node-lease renewed every 10 s (the
renewals of all nodes are spread evenly over the interval), and plays kubelet
for the pods bound to it without running anything: one pod watch for all
nodes, and a pod bound to a hollow node is marked Running and Ready with a
made-up pod IP.  A pod being deleted (deletionTimestamp set) is deleted with
grace period 0, as a kubelet does once its containers stopped.

Addresses stay inside 127.0.0.0/8 though nothing listens on them: node i gets
127.64.0.0/12 + i + 1, and its pods come from node.spec.podCIDR when node IPAM
set one, else from a /24 per node inside 127.128.0.0/10.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from skiff.api.status import ApiError
from skiff.client import ApiClient, cluster_defaults, is_already_exists, is_conflict, is_not_found
from skiff.client.clock import Clock, RealClock
from skiff.client.informer import Informer, InformerFactory
from skiff.client.resources import LEASES, NODES, PODS
from skiff.client.timefmt import rfc3339, rfc3339_micro
from skiff.client.workqueue import WorkQueue

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NODE_LEASE_NAMESPACE = "kube-node-lease"
HOLLOW_NODE_CIDR = ipaddress.IPv4Network(cluster_defaults.HOLLOW_NODE_CIDR)
HOLLOW_POD_CIDR = ipaddress.IPv4Network(cluster_defaults.HOLLOW_POD_CIDR)
#: Fake pod /24s handed out round-robin (the addresses are only reported, never bound).
HOLLOW_POD_SUBNETS = HOLLOW_POD_CIDR.num_addresses // 256
HOLLOW_LABEL = "node.skiff.io/hollow"
KUBELET_VERSION = "v1.30.0-skiff-hollow"
Errors = (ApiError, OSError, aiohttp.ClientError, asyncio.TimeoutError)


@dataclass
class HollowConfig:
    cpu: str = "32"
    memory: str = "256Gi"
    pods: str = "110"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    lease_interval_s: float = 10.0
    lease_duration_s: int = 40
    #: Mark bound pods Running (False: register and renew only).
    run_pods: bool = True
    pod_workers: int = 8
    register_concurrency: int = 32


class HollowNodes:
    def __init__(
        self,
        client: ApiClient,
        count: int,
        name_prefix: str = "hollow-",
        config: HollowConfig | None = None,
        *,
        first_index: int = 0,
        names: list[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        """``names`` (e.g. ``skiff kubelet --hollow --node-name X``) overrides PREFIX+index naming."""
        self.client = client
        self.config = config or HollowConfig()
        self.clock = clock or RealClock()
        self.names = list(names) if names is not None else [f"{name_prefix}{first_index + i}" for i in range(count)]
        self.index = {name: first_index + i for i, name in enumerate(self.names)}
        self._leases: dict[str, Obj] = {}
        self._pod_counter: dict[str, int] = {}
        self._nodes: dict[str, Obj] = {}
        self.informers = InformerFactory(client)
        self.pods: Informer = self.informers.informer(PODS)
        self.queue = WorkQueue(self.clock)
        self._stopping = asyncio.Event()
        #: Set once every Node and Lease exists.
        self.registered = asyncio.Event()
        self.pods_started = 0

    # --- nodes and leases ----------------------------------------------------------------------

    def node_ip(self, name: str) -> str:
        return str(HOLLOW_NODE_CIDR.network_address + self.index[name] + 1)

    def node_body(self, name: str) -> Obj:
        cfg = self.config
        capacity = {"cpu": cfg.cpu, "memory": cfg.memory, "pods": cfg.pods}
        now = rfc3339(self.clock.now())
        conditions = [
            _condition("Ready", "True", "KubeletReady", "hollow kubelet is posting ready status", now),
            *(
                _condition(kind, "False", f"KubeletHas{reason}", f"hollow kubelet has {reason.lower()}", now)
                for kind, reason in (
                    ("MemoryPressure", "SufficientMemory"),
                    ("DiskPressure", "NoDiskPressure"),
                    ("PIDPressure", "SufficientPID"),
                )
            ),
        ]
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            HOLLOW_LABEL: "true",
            **cfg.labels,
        }
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": list(cfg.taints)} if cfg.taints else {},
            "status": {
                "capacity": capacity,
                "allocatable": dict(capacity),
                "conditions": conditions,
                "addresses": [
                    {"type": "InternalIP", "address": self.node_ip(name)},
                    {"type": "Hostname", "address": name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                "nodeInfo": {
                    "kubeletVersion": KUBELET_VERSION,
                    "kubeProxyVersion": KUBELET_VERSION,
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "containerRuntimeVersion": "hollow://0",
                    "osImage": "Skiff hollow node",
                    "kernelVersion": "",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                },
                "phase": "Running",
            },
        }

    async def register(self) -> None:
        """Create every Node (an existing one gets our status) and its Lease, ``register_concurrency`` at a time."""
        slots = asyncio.Semaphore(self.config.register_concurrency)

        async def one(name: str) -> None:
            async with slots:
                await self._register_node(name)
                await self._renew_lease(name)

        await asyncio.gather(*(one(name) for name in self.names))

    async def _register_node(self, name: str) -> None:
        body = self.node_body(name)
        try:
            self._nodes[name] = await self.client.create(NODES, body)
            return
        except ApiError as err:
            if not is_already_exists(err):
                raise
        current = await self.client.get(NODES, name)
        current["status"] = body["status"]
        self._nodes[name] = await self.client.update_status(NODES, current)

    async def _renew_lease(self, name: str) -> None:
        now = rfc3339_micro(self.clock.now())
        lease = self._leases.get(name)
        try:
            if lease is None:
                lease, created = await self._create_or_get_lease(name, now)
                if created:
                    self._leases[name] = lease
                    return
            lease["spec"] = {**lease["spec"], "holderIdentity": name, "renewTime": now}
            self._leases[name] = await self.client.update(LEASES, lease)
        except Errors as err:
            if isinstance(err, ApiError) and (is_conflict(err) or is_not_found(err)):
                self._leases.pop(name, None)  # re-read next round
            log.debug("lease of hollow node %s not renewed: %s", name, err)

    async def _create_or_get_lease(self, name: str, now: str) -> tuple[Obj, bool]:
        node = self._nodes.get(name) or {}
        owner = node.get("metadata") or {}
        body: Obj = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": self.config.lease_duration_s, "renewTime": now},
        }
        if owner.get("uid"):
            ref = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": owner["uid"]}
            body["metadata"]["ownerReferences"] = [ref]
        try:
            return await self.client.create(LEASES, body), True
        except ApiError as err:
            if not is_already_exists(err):
                raise
        return await self.client.get(LEASES, name, NODE_LEASE_NAMESPACE), False

    async def _lease_loop(self) -> None:
        """Renew every lease once per interval, a slice of them each second, on a fixed cadence.

        Each second starts on time whatever the previous slice's renewals are still doing, as each
        real kubelet renews on its own timer: waiting for a slice before sleeping again stretched the
        period by the API server's latency (at 5,000 nodes every lease was renewed every ~32 s, not 10,
        close to the 40 s after which the node is NotReady).  A lease whose last renewal has not
        answered yet is not sent again, so a slow API server is not handed a growing backlog.
        """
        tick = min(1.0, self.config.lease_interval_s)
        per_tick = max(1, round(len(self.names) * tick / self.config.lease_interval_s))
        position = 0
        slots = asyncio.Semaphore(64)
        pending: set[str] = set()
        running: set[asyncio.Task[None]] = set()

        async def renew(name: str) -> None:
            try:
                async with slots:
                    await self._renew_lease(name)
            finally:
                pending.discard(name)

        deadline = self.clock.monotonic()
        try:
            while not self._stopping.is_set():
                deadline += tick
                await self.clock.sleep(max(0.0, deadline - self.clock.monotonic()))
                count = min(per_tick, len(self.names))
                batch = [self.names[(position + i) % len(self.names)] for i in range(count)]
                position = (position + len(batch)) % max(1, len(self.names))
                for name in batch:
                    if name not in pending:
                        pending.add(name)
                        task = asyncio.create_task(renew(name))
                        running.add(task)
                        task.add_done_callback(running.discard)
        finally:
            for task in list(running):
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    # --- pods ----------------------------------------------------------------------------------

    def _on_pod(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName") in self.index:
            meta = pod.get("metadata") or {}
            self.queue.add(f"{meta.get('namespace')}/{meta.get('name')}")

    def _pod_ip(self, node_name: str) -> str:
        count = self._pod_counter.get(node_name, 0)
        self._pod_counter[node_name] = count + 1
        cidr = (self._nodes.get(node_name) or {}).get("spec", {}).get("podCIDR")
        network = (
            ipaddress.IPv4Network(cidr)
            if cidr
            else ipaddress.IPv4Network(
                (int(HOLLOW_POD_CIDR.network_address) + 256 * (self.index[node_name] % HOLLOW_POD_SUBNETS), 24)
            )
        )
        return str(network.network_address + 1 + count % max(1, network.num_addresses - 2))

    async def sync_pod(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None:
            return
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            try:
                await self.client.delete(PODS, meta["name"], meta.get("namespace"), grace_period_seconds=0)
            except ApiError as err:
                if not is_not_found(err):
                    raise
            return
        if _is_running(pod):
            return
        node_name = pod["spec"]["nodeName"]
        status = running_status(pod, self.node_ip(node_name), self._pod_ip(node_name), rfc3339(self.clock.now()))
        try:
            await self.client.patch(PODS, meta["name"], {"status": status}, meta.get("namespace"), subresource="status")
            self.pods_started += 1
        except ApiError as err:
            if not is_not_found(err):
                raise

    async def _worker(self) -> None:
        while (key := await self.queue.get()) is not None:
            try:
                await self.sync_pod(key)
                self.queue.forget(key)
            except Errors as err:
                log.warning("hollow pod %s: %s", key, err)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    # --- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Register, then keep leases and pods going until ``stop()``."""
        await self.register()
        self.registered.set()
        tasks = [asyncio.create_task(self._lease_loop(), name="hollow-leases")]
        if self.config.run_pods:
            self.pods.add_handler(self._on_pod, lambda _old, new: self._on_pod(new), None)
            await self.informers.start()
            tasks += [asyncio.create_task(self._worker()) for _ in range(self.config.pod_workers)]
        try:
            await self._stopping.wait()
        finally:
            self.queue.shutdown()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.informers.stop()

    def stop(self) -> None:
        self._stopping.set()

    async def delete_nodes(self) -> None:
        """Remove every hollow Node and Lease (best effort; NotFound is fine)."""
        slots = asyncio.Semaphore(self.config.register_concurrency)

        async def one(name: str) -> None:
            async with slots:
                for res, ns in ((NODES, None), (LEASES, NODE_LEASE_NAMESPACE)):
                    try:
                        await self.client.delete(res, name, ns)
                    except Errors as err:
                        log.debug("deleting hollow %s %s: %s", res.kind, name, err)

        await asyncio.gather(*(one(name) for name in self.names))


def _condition(kind: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }


def _is_running(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and bool(status.get("podIP"))


def running_status(pod: Mapping[str, Any], host_ip: str, pod_ip: str, now: str) -> Obj:
    """The status a kubelet reports once every container started and is ready."""
    spec = pod.get("spec") or {}
    uid = (pod.get("metadata") or {}).get("uid") or ""
    conditions = [
        {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    containers = [
        {
            "name": c.get("name"),
            "image": c.get("image") or "",
            "imageID": "",
            "containerID": f"hollow://{uid}/{c.get('name')}",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": now}},
            "lastState": {},
        }
        for c in spec.get("containers") or []
    ]
    return {
        "phase": "Running",
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now,
        "containerStatuses": containers,
    }
