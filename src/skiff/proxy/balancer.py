"""Endpoint choice per service port: round-robin with optional ClientIP affinity.

Follows the userspace kube-proxy's ``LoadBalancerRR``: each service port keeps
its endpoint list and a round-robin cursor; with sessionAffinity ClientIP a
client address is pinned to the endpoint it was last given until it has been
idle for the affinity timeout or that endpoint goes away.  The cursor and the
pins survive endpoint updates when the endpoints they refer to are still there.
Time comes from an injected clock; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skiff.client.clock import Clock
from skiff.proxy.endpoints import Endpoint, ServicePortName


@dataclass
class _Pin:
    endpoint: Endpoint
    last_used: float


@dataclass
class _PortState:
    endpoints: list[Endpoint] = field(default_factory=list)
    cursor: int = 0
    affinity_s: float | None = None
    pins: dict[str, _Pin] = field(default_factory=dict)


class Balancer:
    """Picks the next endpoint for a connection or UDP session of one service port."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._ports: dict[ServicePortName, _PortState] = {}

    def update(self, name: ServicePortName, endpoints: list[Endpoint], affinity_s: float | None) -> None:
        """Set the usable endpoints and affinity of a port; stale pins are dropped."""
        state = self._ports.setdefault(name, _PortState())
        if state.endpoints != endpoints:
            state.endpoints = list(endpoints)
            state.cursor = state.cursor % len(endpoints) if endpoints else 0
        if affinity_s != state.affinity_s:
            state.affinity_s = affinity_s
            state.pins.clear()
        live = set(endpoints)
        state.pins = {ip: pin for ip, pin in state.pins.items() if pin.endpoint in live}

    def remove(self, name: ServicePortName) -> None:
        self._ports.pop(name, None)

    def endpoints(self, name: ServicePortName) -> list[Endpoint]:
        state = self._ports.get(name)
        return list(state.endpoints) if state else []

    def has_endpoints(self, name: ServicePortName) -> bool:
        state = self._ports.get(name)
        return bool(state and state.endpoints)

    def next_endpoint(
        self, name: ServicePortName, client_ip: str, exclude: frozenset[Endpoint] = frozenset()
    ) -> Endpoint | None:
        """The endpoint for a new connection from ``client_ip``; None when there is none.

        ``exclude`` lists endpoints that just refused this connection, so a retry
        moves on (and re-pins the client) instead of hitting the same one.
        """
        state = self._ports.get(name)
        if state is None:
            return None
        candidates = [e for e in state.endpoints if e not in exclude]
        if not candidates:
            return None
        now = self._clock.monotonic()
        if state.affinity_s is not None:
            pin = state.pins.get(client_ip)
            if pin is not None and pin.endpoint not in exclude and now - pin.last_used <= state.affinity_s:
                pin.last_used = now
                return pin.endpoint
        chosen = self._round_robin(state, exclude)
        if state.affinity_s is not None:
            state.pins[client_ip] = _Pin(chosen, now)
        return chosen

    @staticmethod
    def _round_robin(state: _PortState, exclude: frozenset[Endpoint]) -> Endpoint:
        count = len(state.endpoints)
        for _ in range(count):
            endpoint = state.endpoints[state.cursor % count]
            state.cursor = (state.cursor + 1) % count
            if endpoint not in exclude:
                return endpoint
        raise LookupError("no endpoint left to try")  # unreachable: the caller checked candidates
