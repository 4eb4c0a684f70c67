"""Pod addresses: one per pod from the node's pod CIDR (a /24 in 127.0.0.0/8).

Like host-local IPAM the network and the first address (the "gateway") are
skipped.  Allocations are in memory and rebuilt from the pods' state files
when the kubelet restarts.
"""

from __future__ import annotations

import ipaddress


class PodCidrExhausted(Exception):
    pass


class Ipam:
    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self.by_uid: dict[str, str] = {}

    def claim(self, uid: str, ip: str) -> None:
        self.by_uid[uid] = ip

    def allocate(self, uid: str) -> str:
        if uid in self.by_uid:
            return self.by_uid[uid]
        used = set(self.by_uid.values())
        for index, host in enumerate(self.network.hosts()):
            if index == 0:
                continue
            if str(host) not in used:
                self.by_uid[uid] = str(host)
                return str(host)
        raise PodCidrExhausted(f"no free address in {self.network}")

    def release(self, uid: str) -> None:
        self.by_uid.pop(uid, None)
