"""The operator process: CRDs installed, a snapshot/metrics server, then the controllers while leading.

It reuses the controller manager (one client, one informer factory, Lease
leader election; here the Lease is ``etcd-operator`` in ``--namespace``) with
the operator's own controllers: etcd-cluster, etcd-backup, etcd-restore.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from skiff.client import ApiClient
from skiff.controllers.manager import ControllerManager, ControllerSpec
from skiff.etcdoperator.backup_controller import CONTROLLERS as BACKUP
from skiff.etcdoperator.cluster_controller import CONTROLLERS as CLUSTER
from skiff.etcdoperator.crds import ensure_crds
from skiff.etcdoperator.restore_controller import CONTROLLERS as RESTORE
from skiff.etcdoperator.snapshot_server import SnapshotServer

log = logging.getLogger(__name__)

LEASE_NAME = "etcd-operator"
SPECS: list[ControllerSpec] = [*CLUSTER, *BACKUP, *RESTORE]


@dataclass(frozen=True)
class OperatorConfig:
    backup_dir: Path
    state_dir: Path
    listen_address: str = "127.0.0.1"
    port: int = 0
    reconcile_interval_s: float = 5.0
    quorum_loss_grace_s: float = 30.0
    create_crd: bool = True
    lease_namespace: str = "kube-system"


def operator_metrics(registry: CollectorRegistry) -> dict[str, Any]:
    return {
        "actions": Counter(
            "etcd_operator_member_actions", "Membership and pod actions taken", ["action"], registry=registry
        ),
        "ready": Gauge("etcd_operator_ready_members", "Ready members per cluster", ["cluster"], registry=registry),
    }


class EtcdOperator:
    def __init__(self, client: ApiClient, config: OperatorConfig, *, identity: str | None = None) -> None:
        self.client = client
        self.config = config
        self.registry = CollectorRegistry()
        self.snapshots = SnapshotServer(self.registry)
        options = {
            "backup_dir": config.backup_dir,
            "staging_dir": config.state_dir / "staging",
            "reconcile_interval": config.reconcile_interval_s,
            "quorum_loss_grace": config.quorum_loss_grace_s,
            "snapshot_server": self.snapshots,
            "metrics": operator_metrics(self.registry),
        }
        self.manager = ControllerManager(
            client,
            SPECS,
            identity=identity,
            lease_name=LEASE_NAME,
            lease_namespace=config.lease_namespace,
            options=options,
        )

    async def start_server(self) -> str:
        for directory in (self.config.backup_dir, self.config.state_dir / "staging"):
            directory.mkdir(parents=True, exist_ok=True)
        return await self.snapshots.start(self.config.listen_address, self.config.port, self.config.state_dir / "pki")

    async def run(self, *, leader_elect: bool = True) -> None:
        if self.config.create_crd:
            await ensure_crds(self.client)
        await self.manager.run(leader_elect=leader_elect)

    async def stop(self) -> None:
        self.manager.stop()

    async def close(self) -> None:
        await self.snapshots.stop()
