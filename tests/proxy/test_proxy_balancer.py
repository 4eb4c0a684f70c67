"""Round-robin and ClientIP affinity, on a fake clock."""

from __future__ import annotations

from skiff.client.clock import FakeClock
from skiff.proxy.balancer import Balancer
from skiff.proxy.endpoints import Endpoint, ServicePortName

PORT = ServicePortName("default", "web", "http", "TCP")
A, B, C = (Endpoint(f"127.16.0.{i}", 8080) for i in (2, 3, 4))


def test_round_robin_cycles_over_endpoints() -> None:
    balancer = Balancer(FakeClock())
    balancer.update(PORT, [A, B, C], None)
    picks = [balancer.next_endpoint(PORT, "127.0.0.1") for _ in range(6)]
    assert picks == [A, B, C, A, B, C]


def test_no_endpoints_means_none() -> None:
    balancer = Balancer(FakeClock())
    assert balancer.next_endpoint(PORT, "127.0.0.1") is None
    balancer.update(PORT, [], None)
    assert balancer.next_endpoint(PORT, "127.0.0.1") is None
    assert not balancer.has_endpoints(PORT)


def test_exclude_skips_failed_endpoints() -> None:
    balancer = Balancer(FakeClock())
    balancer.update(PORT, [A, B], None)
    assert balancer.next_endpoint(PORT, "127.0.0.1", frozenset({A})) == B
    assert balancer.next_endpoint(PORT, "127.0.0.1", frozenset({A, B})) is None


def test_client_ip_affinity_pins_until_idle_timeout() -> None:
    clock = FakeClock()
    balancer = Balancer(clock)
    balancer.update(PORT, [A, B, C], 100.0)
    first = balancer.next_endpoint(PORT, "127.0.9.1")
    other = balancer.next_endpoint(PORT, "127.0.9.2")
    assert first != other
    for _ in range(5):
        clock.advance(60)  # each use refreshes the pin
        assert balancer.next_endpoint(PORT, "127.0.9.1") == first
    clock.advance(101)
    assert balancer.next_endpoint(PORT, "127.0.9.1") == C  # expired: round-robin moves on


def test_pin_dropped_when_its_endpoint_leaves() -> None:
    balancer = Balancer(FakeClock())
    balancer.update(PORT, [A, B], 10800.0)
    pinned = balancer.next_endpoint(PORT, "127.0.9.1")
    remaining = [e for e in (A, B) if e != pinned]
    balancer.update(PORT, remaining, 10800.0)
    assert balancer.next_endpoint(PORT, "127.0.9.1") == remaining[0]


def test_pin_survives_unrelated_endpoint_changes() -> None:
    balancer = Balancer(FakeClock())
    balancer.update(PORT, [A, B], 10800.0)
    pinned = balancer.next_endpoint(PORT, "127.0.9.1")
    balancer.update(PORT, [A, B, C], 10800.0)
    assert all(balancer.next_endpoint(PORT, "127.0.9.1") == pinned for _ in range(4))


def test_turning_affinity_off_forgets_pins() -> None:
    balancer = Balancer(FakeClock())
    balancer.update(PORT, [A, B], 10800.0)
    balancer.next_endpoint(PORT, "127.0.9.1")
    balancer.update(PORT, [A, B], None)
    picks = {balancer.next_endpoint(PORT, "127.0.9.1") for _ in range(2)}
    assert picks == {A, B}
