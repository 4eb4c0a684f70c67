"""The kubelet's Node: registration, the kube-node-lease Lease, and status heartbeats.

Registration creates the Node (or, when it exists, refreshes labels,
addresses and status).  The Lease is renewed every 10 s (upstream's
``nodeLeaseRenewIntervalFraction`` of a 40 s lease); node status is written
when it changed or at least every 60 s (upstream ``nodeStatusReportFrequency``),
with Ready and the MemoryPressure/DiskPressure/PIDPressure conditions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from skiff import __version__
from skiff.client import ApiClient, is_already_exists, is_conflict, is_not_found
from skiff.client.resources import LEASES, NODES
from skiff.client.timefmt import rfc3339, rfc3339_micro
from skiff.kubelet.context import log

LEASE_DURATION_S = 40
RENEW_INTERVAL_S = 10.0
STATUS_REPORT_S = 60.0
KUBELET_VERSION = "v1.32.0-skiff"
LEASE_NAMESPACE = "kube-node-lease"


@dataclass(frozen=True)
class NodeConfig:
    name: str
    ip: str
    port: int
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    pod_cidr: str | None = None
    max_pods: int = 110


def machine_memory_bytes() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def node_labels(config: NodeConfig) -> dict[str, str]:
    arch = _arch()
    return {
        "kubernetes.io/hostname": config.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
        **config.labels,
    }


def capacity(config: NodeConfig) -> dict[str, str]:
    disk = shutil.disk_usage("/")
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{machine_memory_bytes() // 1024}Ki",
        "pods": str(config.max_pods),
        "ephemeral-storage": f"{disk.total // 1024}Ki",
    }


def _read(path: str) -> str:
    with contextlib.suppress(OSError), open(path) as f:
        return f.read().strip()
    return ""


def node_info() -> dict[str, str]:
    uname = platform.uname()
    return {
        "machineID": _read("/etc/machine-id"),
        "systemUUID": _read("/sys/class/dmi/id/product_uuid"),
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": uname.release,
        "osImage": platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
        if hasattr(platform, "freedesktop_os_release")
        else "Linux",
        "containerRuntimeVersion": f"skiff://{__version__}",
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": KUBELET_VERSION,
        "operatingSystem": "linux",
        "architecture": _arch(),
    }


def pressure_conditions() -> dict[str, tuple[bool, str, str]]:
    """{type: (under pressure, reason, message)} from free memory, disk and PIDs."""
    available = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    disk = shutil.disk_usage("/")
    pid_max = int(_read("/proc/sys/kernel/pid_max") or 4194304)
    procs = sum(1 for name in os.listdir("/proc") if name.isdigit())
    memory = available < 100 * 1024 * 1024
    disk_low = disk.free < disk.total * 0.10
    pids = procs > pid_max * 0.9
    return {
        "MemoryPressure": (
            memory,
            "KubeletHasInsufficientMemory" if memory else "KubeletHasSufficientMemory",
            "kubelet has insufficient memory available" if memory else "kubelet has sufficient memory available",
        ),
        "DiskPressure": (
            disk_low,
            "KubeletHasDiskPressure" if disk_low else "KubeletHasNoDiskPressure",
            "kubelet has disk pressure" if disk_low else "kubelet has no disk pressure",
        ),
        "PIDPressure": (
            pids,
            "KubeletHasInsufficientPID" if pids else "KubeletHasSufficientPID",
            "kubelet has insufficient PID available" if pids else "kubelet has sufficient PID available",
        ),
    }


def node_conditions(
    previous: list[dict[str, Any]], ready: bool, not_ready_message: str, now: str
) -> list[dict[str, Any]]:
    old = {c["type"]: c for c in previous}
    result = []
    entries = dict(pressure_conditions())
    entries["Ready"] = (
        ready,
        "KubeletReady" if ready else "KubeletNotReady",
        "kubelet is posting ready status" if ready else not_ready_message,
    )
    for kind, (value, reason, message) in entries.items():
        status = "True" if value else "False"
        prior = old.get(kind)
        changed = prior is None or prior.get("status") != status
        result.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now if changed else prior["lastTransitionTime"],  # type: ignore[index]
            }
        )
    return result


def node_addresses(ip: str, name: str) -> list[dict[str, str]]:
    """status.addresses: the node IP, and the node name as its Hostname (what the serving certificate names)."""
    return [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]


class NodeAgent:
    def __init__(self, client: ApiClient, config: NodeConfig) -> None:
        self.client = client
        self.config = config
        self.node: dict[str, Any] = {}
        self._last_written: tuple[Any, ...] | None = None
        self._last_write_at = 0.0
        self.ready_message = ""

    def status(self, previous: list[dict[str, Any]]) -> dict[str, Any]:
        cap = capacity(self.config)
        return {
            "capacity": cap,
            "allocatable": dict(cap),
            "conditions": node_conditions(previous, not self.ready_message, self.ready_message, rfc3339()),
            "addresses": node_addresses(self.config.ip, self.config.name),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.config.port}},
            "nodeInfo": node_info(),
        }

    async def register(self) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.config.pod_cidr:
            spec = {"podCIDR": self.config.pod_cidr, "podCIDRs": [self.config.pod_cidr]}
        if self.config.taints:
            spec["taints"] = self.config.taints
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.config.name,
                "labels": node_labels(self.config),
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": spec,
        }
        try:
            self.node = await self.client.create(NODES, body)
            log.info("registered node %s", self.config.name)
        except Exception as err:
            if not is_already_exists(err):
                raise
            patch: dict[str, Any] = {"metadata": {"labels": node_labels(self.config)}}
            if self.config.pod_cidr:
                patch["spec"] = {"podCIDR": self.config.pod_cidr, "podCIDRs": [self.config.pod_cidr]}
            self.node = await self.client.patch(NODES, self.config.name, patch)
            log.info("node %s already registered; labels refreshed", self.config.name)
        await self.write_status(force=True)
        return self.node

    async def write_status(self, force: bool = False) -> None:
        previous = (self.node.get("status") or {}).get("conditions") or []
        status = self.status(previous)
        summary = (
            tuple((c["type"], c["status"]) for c in status["conditions"]),
            status["capacity"].get("cpu"),
            self.config.port,
        )
        if not force and summary == self._last_written and time.monotonic() - self._last_write_at < STATUS_REPORT_S:
            return
        self.node = await self.client.patch(NODES, self.config.name, {"status": status}, subresource="status")
        self._last_written = summary
        self._last_write_at = time.monotonic()

    async def renew_lease(self) -> None:
        name = self.config.name
        now = rfc3339_micro()
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_S, "renewTime": now}
        try:
            lease = await self.client.get(LEASES, name, LEASE_NAMESPACE)
        except Exception as err:
            if not is_not_found(err):
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.node["metadata"]["uid"]}
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [owner]},
                "spec": spec,
            }
            await self.client.create(LEASES, body)
            return
        lease["spec"] = {**(lease.get("spec") or {}), **spec}
        try:
            await self.client.update(LEASES, lease)
        except Exception as err:
            if not is_conflict(err):
                raise

    async def heartbeat_forever(self) -> None:
        while True:
            for step in (self.renew_lease, self.write_status):
                try:
                    await step()
                except Exception as err:
                    log.warning("node heartbeat (%s) failed: %s", step.__name__, err)
            await asyncio.sleep(RENEW_INTERVAL_S)

    async def refresh(self) -> dict[str, Any]:
        self.node = await self.client.get(NODES, self.config.name)
        return self.node


def hostname() -> str:
    return socket.gethostname()
