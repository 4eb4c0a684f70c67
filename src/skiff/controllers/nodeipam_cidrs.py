"""Pod CIDR allocation: carve a cluster CIDR into per-node subnets, never twice.

Upstream's range allocator (pkg/controller/nodeipam/ipam/range_allocator.go
with cidrset): a bitmap over the node-sized subnets of ``--cluster-cidr``;
subnets already on nodes are marked used at start-up, the lowest free one is
handed out next, and a deleted node's subnet is released.  Pure, no I/O.
"""

from __future__ import annotations

import ipaddress

from skiff.client.cluster_defaults import CLUSTER_CIDR, NODE_CIDR_MASK


class CidrSetFull(Exception):
    """Every subnet of the cluster CIDR is in use."""


class CidrSet:
    def __init__(self, cluster_cidr: str = CLUSTER_CIDR, node_mask: int = NODE_CIDR_MASK) -> None:
        self.network = ipaddress.IPv4Network(cluster_cidr, strict=False)
        if node_mask < self.network.prefixlen or node_mask > 32:
            raise ValueError(f"node mask /{node_mask} does not fit in {self.network}")
        self.node_mask = node_mask
        self.size = 1 << (node_mask - self.network.prefixlen)
        self._step = 1 << (32 - node_mask)
        self._used: set[int] = set()
        self._next = 0

    def _index(self, cidr: str) -> int | None:
        try:
            subnet = ipaddress.IPv4Network(cidr, strict=False)
        except ValueError:
            return None
        if subnet.prefixlen != self.node_mask or not subnet.subnet_of(self.network):
            return None
        return (int(subnet.network_address) - int(self.network.network_address)) // self._step

    def _cidr(self, index: int) -> str:
        address = ipaddress.IPv4Address(int(self.network.network_address) + index * self._step)
        return f"{address}/{self.node_mask}"

    def occupy(self, cidr: str) -> bool:
        """Mark ``cidr`` used (a node already has it); False when it is not one of ours."""
        index = self._index(cidr)
        if index is None:
            return False
        self._used.add(index)
        return True

    def release(self, cidr: str) -> None:
        index = self._index(cidr)
        if index is not None:
            self._used.discard(index)

    def allocate_next(self) -> str:
        """The next free subnet, searching round-robin from the last one handed out."""
        for offset in range(self.size):
            index = (self._next + offset) % self.size
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % self.size
                return self._cidr(index)
        raise CidrSetFull(f"no free /{self.node_mask} left in {self.network}")

    def in_use(self, cidr: str) -> bool:
        index = self._index(cidr)
        return index is not None and index in self._used
