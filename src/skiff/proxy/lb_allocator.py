"""Load-balancer address allocation from a loopback pool (pure).

Plays the part of a cloud provider or MetalLB: each Service of type
LoadBalancer gets one address from ``--load-balancer-range``: the next free
one after the last handed out (so a just-released address is not reused at
once), never two Services the same address.  The allocator keeps no state of
its own across restarts: the proxy rebuilds it from the addresses already
written to Services' ``status.loadBalancer.ingress`` before allocating
anything new, so a restart keeps every Service's address.
"""

from __future__ import annotations

import ipaddress


class PoolExhausted(Exception):
    """Every address of the pool is taken."""


class LoadBalancerAllocator:
    def __init__(self, cidr: str) -> None:
        network = ipaddress.ip_network(cidr)
        if not isinstance(network, ipaddress.IPv4Network) or not network.subnet_of(
            ipaddress.IPv4Network("127.0.0.0/8")
        ):
            raise ValueError(f"load-balancer range {cidr} must be an IPv4 network inside 127.0.0.0/8")
        self.network = network
        self._owner: dict[str, str] = {}  # ip -> "namespace/name"
        self._by_service: dict[str, str] = {}
        self._next = 0

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    def owner(self, ip: str) -> str | None:
        return self._owner.get(ip)

    def address_of(self, service: str) -> str | None:
        return self._by_service.get(service)

    def claim(self, service: str, ip: str) -> bool:
        """Record that ``service`` holds ``ip``; False when another Service already does."""
        holder = self._owner.get(ip)
        if holder is not None and holder != service:
            return False
        previous = self._by_service.get(service)
        if previous is not None and previous != ip:
            self._owner.pop(previous, None)
        self._owner[ip] = service
        self._by_service[service] = ip
        return True

    def allocate(self, service: str) -> str:
        """The Service's address, allocating the lowest free one on first use."""
        held = self._by_service.get(service)
        if held is not None:
            return held
        hosts = self.network.num_addresses - 2 if self.network.prefixlen < 31 else self.network.num_addresses
        first = 1 if self.network.prefixlen < 31 else 0
        for step in range(hosts):
            offset = first + (self._next + step) % hosts
            ip = str(self.network.network_address + offset)
            if ip not in self._owner:
                self._next = (offset - first + 1) % hosts
                self.claim(service, ip)
                return ip
        raise PoolExhausted(f"no free address left in {self.network}")

    def release(self, service: str) -> None:
        ip = self._by_service.pop(service, None)
        if ip is not None and self._owner.get(ip) == service:
            del self._owner[ip]
