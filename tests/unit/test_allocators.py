"""Cluster-IP and node-port allocation over a real SqliteStore: ranges, races, hooks, repair."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from skiff.api.status import ApiError
from skiff.registry.admission import AdmissionChain
from skiff.registry.allocators import (
    NODE_PORTS_PREFIX,
    SERVICE_IPS_PREFIX,
    Allocated,
    IPRange,
    NotInRange,
    PortRange,
    RangeFull,
    StoreAllocator,
)
from skiff.registry.builtin import find
from skiff.registry.core.service_allocation import ServiceAllocations
from skiff.registry.generic import GenericRegistry
from skiff.registry.resource import Obj
from skiff.registry.watch_cache import WatchCache
from skiff.store.sqlite import SqliteStore

CIDR = "127.254.0.0/16"
PORTS = "30000-32767"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(tmp_path / "store.db")
    yield opened
    await opened.close()


# -- ranges ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "value", "offset"),
    [
        pytest.param(CIDR, "127.254.0.1", 0, id="first"),
        pytest.param(CIDR, "127.254.255.254", 65533, id="last"),
        pytest.param(CIDR, "127.254.0.0", None, id="network"),
        pytest.param(CIDR, "127.254.255.255", None, id="broadcast"),
        pytest.param(CIDR, "10.0.0.1", None, id="outside"),
        pytest.param(CIDR, "not-an-ip", None, id="garbage"),
    ],
)
def test_ip_range_offsets(cidr: str, value: str, offset: int | None) -> None:
    assert IPRange(cidr).offset(value) == offset


def test_range_bands() -> None:
    assert (IPRange(CIDR).size, IPRange(CIDR).band) == (65534, 256)
    assert (IPRange("127.254.0.0/24").size, IPRange("127.254.0.0/24").band) == (254, 16)
    assert (PortRange(PORTS).size, PortRange(PORTS).band) == (2768, 86)
    assert str(IPRange(CIDR).not_in_range("10.0.0.1")) == (
        "the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 127.254.0.0/16"
    )
    assert str(PortRange(PORTS).not_in_range("80")) == (
        "provided port is not in the valid range. The range of valid ports is 30000-32767"
    )


@pytest.mark.parametrize("bad", ["127.254.0.1/16", "127.254.0.0/31", "nonsense"])
def test_bad_cidrs_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        IPRange(bad)


# -- the store allocator ------------------------------------------------------------------------


async def test_explicit_allocation_and_release(store: SqliteStore) -> None:
    ips = StoreAllocator(store, SERVICE_IPS_PREFIX, IPRange(CIDR))
    await ips.allocate("127.254.0.10", "default/a")
    with pytest.raises(Allocated, match=r"^provided IP is already allocated$"):
        await ips.allocate("127.254.0.10", "default/b")
    with pytest.raises(NotInRange):
        await ips.allocate("10.0.0.1", "default/b")
    assert not await ips.release("127.254.0.10", "default/b")  # not its holder
    assert await ips.release("127.254.0.10", "default/a")
    await ips.allocate("127.254.0.10", "default/b")
    assert set(await ips.allocated()) == {"127.254.0.10"}


async def test_dynamic_allocation_prefers_the_upper_band(store: SqliteStore) -> None:
    ips = StoreAllocator(store, SERVICE_IPS_PREFIX, IPRange("127.254.0.0/24"), rng=random.Random(1))
    values = [await ips.allocate_next("ns/s") for _ in range(238)]
    offsets = sorted(IPRange("127.254.0.0/24").offset(v) or 0 for v in values)
    assert offsets == list(range(16, 254))  # the upper band, exactly, before any static address
    assert IPRange("127.254.0.0/24").offset(await ips.allocate_next("ns/s")) in range(16)


async def test_concurrent_allocations_are_distinct_until_full(store: SqliteStore) -> None:
    # Two allocators over one store stand for two API servers.
    small = IPRange("127.254.0.0/27")  # 30 addresses
    one = StoreAllocator(store, SERVICE_IPS_PREFIX, small, rng=random.Random(1))
    two = StoreAllocator(store, SERVICE_IPS_PREFIX, small, rng=random.Random(1))
    results = await asyncio.gather(
        *(a.allocate_next(f"ns/s{i}") for i, a in enumerate([one, two] * 15)), return_exceptions=True
    )
    assert all(isinstance(r, str) for r in results)
    assert len(set(results)) == 30
    with pytest.raises(RangeFull):
        await one.allocate_next("ns/late")


async def test_dry_run_takes_nothing(store: SqliteStore) -> None:
    ports = StoreAllocator(store, NODE_PORTS_PREFIX, PortRange(PORTS))
    value = await ports.allocate_next("ns/s", dry_run=True)
    assert PortRange(PORTS).offset(value) is not None
    assert await ports.allocated() == {}


# -- the service hooks ---------------------------------------------------------------------


def svc(name: str = "s", **spec: Any) -> Obj:
    base: dict[str, Any] = {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}
    base.update(spec)
    return {"metadata": {"name": name, "namespace": "default"}, "spec": base}


async def held(hooks: ServiceAllocations) -> tuple[set[str], set[str]]:
    return set(await hooks.ips.allocated()), set(await hooks.ports.allocated())


async def test_create_allocates_cluster_ip_and_node_ports(store: SqliteStore) -> None:
    hooks = ServiceAllocations(store, CIDR, PORTS)
    obj = svc(
        type="NodePort", ports=[{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP", "nodePort": 30080}]
    )
    finish = await hooks.begin_create(obj, False)
    await finish(True)
    spec = obj["spec"]
    assert spec["clusterIPs"] == [spec["clusterIP"]] and spec["clusterIP"].startswith("127.254.")
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv4"], "SingleStack")
    assert spec["ports"][1]["nodePort"] == 30080 and 30000 <= spec["ports"][0]["nodePort"] <= 32767
    assert await held(hooks) == ({spec["clusterIP"]}, {str(p["nodePort"]) for p in spec["ports"]})
    await hooks.after_delete(obj)
    assert await held(hooks) == (set(), set())


@pytest.mark.parametrize(
    ("spec", "ips"),
    [
        pytest.param({"clusterIP": "None"}, set(), id="headless"),
        pytest.param({"type": "ExternalName", "externalName": "x.example"}, set(), id="external-name"),
        pytest.param({"clusterIP": "127.254.3.4"}, {"127.254.3.4"}, id="requested"),
        pytest.param({"clusterIPs": ["127.254.3.5"]}, {"127.254.3.5"}, id="requested-plural"),
    ],
)
async def test_create_cluster_ip_kinds(store: SqliteStore, spec: Obj, ips: set[str]) -> None:
    hooks = ServiceAllocations(store, CIDR, PORTS)
    obj = svc(**spec)
    await (await hooks.begin_create(obj, False))(True)
    assert (await held(hooks))[0] == ips
    if spec.get("clusterIP") == "None":
        assert obj["spec"]["clusterIPs"] == ["None"]


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        pytest.param(
            {"clusterIP": "127.254.0.9"}, {"clusterIP": "127.254.0.9"},
            'Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"127.254.0.9"}: '
            "failed to allocate IP 127.254.0.9: provided IP is already allocated",
            id="ip-taken",
        ),
        pytest.param(
            None, {"clusterIP": "10.96.0.1"},
            'Service "b" is invalid: spec.clusterIPs: Invalid value: []string{"10.96.0.1"}: failed to allocate IP '
            "10.96.0.1: the provided IP (10.96.0.1) is not in the valid range. "
            "The range of valid IPs is 127.254.0.0/16",
            id="ip-outside",
        ),
        pytest.param(
            None, {"clusterIP": "abc"},
            'Service "b" is invalid: spec.clusterIPs[0]: Invalid value: "abc": '
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            id="ip-garbage",
        ),
        pytest.param(
            {"type": "NodePort", "ports": [{"port": 1, "nodePort": 30001}]},
            {"type": "NodePort", "ports": [{"port": 1, "nodePort": 30001}]},
            'Service "b" is invalid: spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated',
            id="port-taken",
        ),
        pytest.param(
            None, {"type": "NodePort", "ports": [{"port": 1}, {"port": 2, "nodePort": 80}]},
            'Service "b" is invalid: spec.ports[1].nodePort: Invalid value: 80: provided port is not in the valid '
            "range. The range of valid ports is 30000-32767",
            id="port-outside",
        ),
    ],
)  # fmt: skip
async def test_create_refusals_leave_nothing_behind(
    store: SqliteStore, first: Obj | None, second: Obj, message: str
) -> None:
    hooks = ServiceAllocations(store, CIDR, PORTS)
    if first is not None:
        await (await hooks.begin_create(svc("a", **first), False))(True)
    before = await held(hooks)
    with pytest.raises(ApiError) as caught:
        await hooks.begin_create(svc("b", **second), False)
    assert (caught.value.code, caught.value.message) == (422, message)
    assert await held(hooks) == before


async def test_failed_write_gives_back(store: SqliteStore) -> None:
    hooks = ServiceAllocations(store, CIDR, PORTS)
    finish = await hooks.begin_create(svc(type="NodePort"), False)
    assert await held(hooks) != (set(), set())
    await finish(False)
    assert await held(hooks) == (set(), set())


async def test_update_type_changes(store: SqliteStore) -> None:
    hooks = ServiceAllocations(store, CIDR, PORTS)
    old = svc(type="NodePort")
    await (await hooks.begin_create(old, False))(True)
    ip, port = old["spec"]["clusterIP"], str(old["spec"]["ports"][0]["nodePort"])
    # NodePort → ClusterIP: the node port goes once the write succeeded, not before.
    new = svc(clusterIP=ip, clusterIPs=[ip])
    finish = await hooks.begin_update(new, old, False)
    assert await held(hooks) == ({ip}, {port})
    await finish(True)
    assert await held(hooks) == ({ip}, set())
    # ClusterIP → ExternalName frees the address; back to ClusterIP takes a new one.
    external = svc(type="ExternalName", externalName="x.example", ports=[])
    await (await hooks.begin_update(external, new, False))(True)
    assert await held(hooks) == (set(), set())
    back = svc()
    await (await hooks.begin_update(back, external, False))(True)
    assert await held(hooks) == ({back["spec"]["clusterIP"]}, set())
    # A failed update gives back only what it took.
    more = svc(clusterIP=back["spec"]["clusterIP"], type="NodePort")
    finish = await hooks.begin_update(more, back, False)
    await finish(False)
    assert await held(hooks) == ({back["spec"]["clusterIP"]}, set())


async def test_repair(store: SqliteStore) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    old = StoreAllocator(store, SERVICE_IPS_PREFIX, IPRange(CIDR), clock=lambda: now - timedelta(hours=1))
    young = StoreAllocator(store, SERVICE_IPS_PREFIX, IPRange(CIDR), clock=lambda: now)
    await old.allocate("127.254.0.7", "default/leaked")
    await young.allocate("127.254.0.8", "default/in-flight")
    await old.allocate("127.254.0.9", "default/live")
    hooks = ServiceAllocations(store, CIDR, PORTS)
    live = svc("live", clusterIP="127.254.0.9", clusterIPs=["127.254.0.9"])
    unrecorded = svc("restored", type="NodePort", clusterIP="127.254.0.10", ports=[{"port": 1, "nodePort": 31000}])
    await hooks.repair([live, unrecorded], now)
    assert await held(hooks) == ({"127.254.0.8", "127.254.0.9", "127.254.0.10"}, {"31000"})


# -- through the generic registry ------------------------------------------------------------


async def test_registry_gives_back_when_the_write_fails(store: SqliteStore) -> None:
    info = find("", "v1", "services")
    assert info is not None
    cache = WatchCache(store, info)
    await cache.start()
    try:
        hooks = ServiceAllocations(store, CIDR, PORTS)
        registry = GenericRegistry(store, info, cache, admission=AdmissionChain(), hooks=hooks)
        body = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}], "type": "NodePort"}}
        created = await registry.create("default", body)
        first = await held(hooks)
        with pytest.raises(ApiError) as caught:
            await registry.create("default", body)  # AlreadyExists after allocating
        assert caught.value.code == 409
        assert await held(hooks) == first
        dry = await registry.create("default", {**body, "metadata": {"name": "dry"}}, dry_run=True)
        assert dry["spec"]["clusterIP"].startswith("127.254.") and await held(hooks) == first
        await registry.delete("default", "web", None)
        assert await held(hooks) == (set(), set())
        assert created["spec"]["clusterIP"] in first[0]
    finally:
        await cache.stop()
