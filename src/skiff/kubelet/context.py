"""What a pod's containers share: the pod object, its sandbox directory, address and node services."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skiff.kubelet.cgroups import Cgroups
from skiff.kubelet.env import NodeResources, SourceLookup
from skiff.kubelet.images import ImageStore

log = logging.getLogger("skiff.kubelet")


@dataclass
class NodeServices:
    """Per-node facilities every pod worker uses (built once by the kubelet)."""

    node_name: str
    node_ip: str
    root_dir: Path
    images: ImageStore
    cgroups: Cgroups
    resources: NodeResources
    lookup: SourceLookup
    services_env: Callable[[dict[str, Any]], dict[str, str]]
    isolate: bool
    record: Callable[[dict[str, Any], str, str, str], None] = lambda *_: None  # (pod, type, reason, message)
    cluster_dns: str = "127.253.0.10"
    cluster_domain: str = "cluster.local"


@dataclass
class PodContext:
    node: NodeServices
    pod: dict[str, Any]
    pod_dir: Path
    pod_ip: str
    notify: Callable[[], None]
    volume_paths: dict[str, Path] = field(default_factory=dict)

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    @property
    def key(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    def pod_with_addresses(self) -> dict[str, Any]:
        """The pod as the downward API sees it: the addresses the kubelet assigned, even before they are published."""
        status = dict(self.pod.get("status") or {})
        status.update(
            podIP=self.pod_ip,
            podIPs=[{"ip": self.pod_ip}],
            hostIP=self.node.node_ip,
            hostIPs=[{"ip": self.node.node_ip}],
        )
        return {**self.pod, "status": status}

    def event(self, type_: str, reason: str, message: str) -> None:
        self.node.record(self.pod, type_, reason, message)

    def grace_seconds(self) -> float:
        meta_grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if meta_grace is not None:
            return float(meta_grace)
        return float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
