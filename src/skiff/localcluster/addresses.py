"""Non-colliding address plans for several local clusters on one machine.

Every range lives in 127.0.0.0/8.  The cluster on the default data dir keeps
the documented defaults (skiff.client.cluster_defaults: API on 127.0.0.1,
nodes 127.0.1.x, services 127.254/16 ...).  Any other data dir gets a *slot*
1-99 derived from its path, and everything of that cluster lives in
127.(100+slot).0.0/16 — API and etcd API on .0.1, DNS on .0.10, nodes in
.1.0/24, LoadBalancers in .2.0/24, services in .64.0/18, pod /24s in .128.0/17
— so two ``skiff up`` runs never share an address, and each can keep the
well-known ports (6443, 2379, 10250, 53).
"""

from __future__ import annotations

import socket
import zlib
from dataclasses import dataclass
from pathlib import Path

from skiff.client import cluster_defaults as defaults

SLOTS = 99
#: Where a data dir remembers its slot: objects store addresses, so a cluster must keep its plan.
SLOT_FILE = "cluster-slot"


@dataclass(frozen=True)
class ClusterAddresses:
    api_address: str
    node_ip: str
    node_cidr: str
    service_cidr: str
    cluster_cidr: str
    cluster_dns: str
    load_balancer_cidr: str

    def extra_node_ip(self, index: int) -> str:
        """Node ``index`` (1 = the first, this machine's own kubelet) of this cluster."""
        base = self.node_cidr.split("/")[0].rsplit(".", 1)[0]
        return f"{base}.{index}"


DEFAULT = ClusterAddresses(
    api_address="127.0.0.1",
    node_ip="127.0.1.1",
    node_cidr=defaults.NODE_CIDR,
    service_cidr=defaults.SERVICE_CIDR,
    cluster_cidr=defaults.CLUSTER_CIDR,
    cluster_dns=defaults.CLUSTER_DNS,
    load_balancer_cidr=defaults.LOAD_BALANCER_CIDR,
)


def slot_for(data_dir: Path, default_data_dir: Path) -> int:
    """0 for the default data dir; otherwise a stable 1..99 from the path."""
    if data_dir.resolve() == default_data_dir.resolve():
        return 0
    return zlib.crc32(str(data_dir.resolve()).encode()) % SLOTS + 1


def choose_slot(data_dir: Path, default_data_dir: Path) -> int:
    """The data dir's remembered slot; on first start the path's slot, or the next one whose
    addresses nobody is using (another cluster may hold the same slot).  Blocking: use a thread."""
    remembered = data_dir / SLOT_FILE
    if remembered.exists():
        return int(remembered.read_text().strip())
    first = slot_for(data_dir, default_data_dir)
    slot = first
    if first != 0:
        candidates = [(first - 1 + i) % SLOTS + 1 for i in range(SLOTS)]
        slot = next((s for s in candidates if _addresses_free(plan(s))), first)
    data_dir.mkdir(parents=True, exist_ok=True)
    remembered.write_text(f"{slot}\n")
    return slot


def _addresses_free(addresses: ClusterAddresses) -> bool:
    """Nobody serves the etcd v3 API port on the plan's API address (every cluster binds it)."""
    with socket.socket() as probe:
        try:
            probe.bind((addresses.api_address, 2379))
        except OSError:
            return False
    return True


def plan(slot: int) -> ClusterAddresses:
    if slot == 0:
        return DEFAULT
    if not 1 <= slot <= SLOTS:
        raise ValueError(f"cluster slot must be 0..{SLOTS}, got {slot}")
    b = f"127.{100 + slot}"
    return ClusterAddresses(
        api_address=f"{b}.0.1",
        node_ip=f"{b}.1.1",
        node_cidr=f"{b}.1.0/24",
        service_cidr=f"{b}.64.0/18",
        cluster_cidr=f"{b}.128.0/17",
        cluster_dns=f"{b}.0.10",
        load_balancer_cidr=f"{b}.2.0/24",
    )
