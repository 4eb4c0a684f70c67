"""What one density run does: the cluster's size, the store under it and the pace of the workload."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SQLITE = "sqlite"
ETCD = "etcd"
STORES = (SQLITE, ETCD)


@dataclass(frozen=True)
class DensityConfig:
    nodes: int
    pods_per_node: int
    out: Path
    store: str = SQLITE
    #: API server processes; more than one share the store over etcd's v3 API.
    apiservers: int = 1
    #: Pods created per second; ClusterLoader2's density test creates 20/s.
    create_qps: float = 20.0
    #: Changes per second in the churn phase; 20/s is the SLOs' churn prerequisite.
    churn_qps: float = 20.0
    churn_s: float = 60.0
    #: Deployments deleted per second in the teardown phase.
    delete_qps: float = 20.0
    namespace_prefix: str = "density"
    #: ClusterLoader2 puts one namespace per 100 nodes.
    nodes_per_namespace: int = 100
    #: Longest any one phase may take before the run is declared failed.
    timeout_s: float = 3600.0
    #: Hollow node Lease renewal period (a kubelet's is 10 s).
    lease_interval_s: float = 10.0

    @property
    def total_pods(self) -> int:
        return self.nodes * self.pods_per_node

    def problems(self) -> list[str]:
        """Why this configuration cannot run (empty when it can)."""
        out = []
        if self.nodes < 1:
            out.append("--nodes must be at least 1")
        if not 1 <= self.pods_per_node <= 110:
            out.append("--pods-per-node must be 1..110 (a node holds at most 110 pods)")
        if not 1 <= self.apiservers <= 8:
            out.append("--apiservers must be 1..8")
        if self.store not in STORES:
            out.append(f"--store must be one of {', '.join(STORES)}")
        for name, value in (("--create-qps", self.create_qps), ("--churn-qps", self.churn_qps)):
            if value <= 0:
                out.append(f"{name} must be positive")
        if self.churn_s < 0:
            out.append("--churn-seconds must not be negative")
        return out
