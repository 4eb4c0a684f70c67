"""The load-balancer controller against an in-memory informer and a recording client."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from skiff.client.clock import FakeClock
from skiff.client.controller import ControllerContext
from skiff.client.errors import ApiError
from skiff.proxy.lb_allocator import LoadBalancerAllocator
from skiff.proxy.loadbalancer import LoadBalancerController

Obj = dict[str, Any]


class FakeInformer:
    def __init__(self, *objs: Obj) -> None:
        self.items = {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in objs}
        self.handlers: list[tuple[Callable[..., None], ...]] = []

    def add_handler(self, on_add: Any = None, on_update: Any = None, on_delete: Any = None) -> None:
        self.handlers.append((on_add, on_update, on_delete))

    def has_synced(self) -> bool:
        return True

    def get(self, key: str) -> Obj | None:
        return self.items.get(key)

    def list(self) -> list[Obj]:
        return list(self.items.values())


class RecordingClient:
    def __init__(self, informer: FakeInformer, conflicts: int = 0) -> None:
        self.informer = informer
        self.writes: list[Obj] = []
        self.conflicts = conflicts

    async def update_status(self, _res: Any, body: Obj) -> Obj:
        if self.conflicts:
            self.conflicts -= 1
            raise ApiError(409, "Conflict", "the object has been modified")
        self.writes.append(copy.deepcopy(body))
        key = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
        self.informer.items[key] = body
        return body


def svc(name: str, kind: str = "LoadBalancer", ingress: list[str] | None = None, created: str = "", **spec: Any) -> Obj:
    status: Obj = {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ingress]} if ingress else {}}
    return {
        "metadata": {"namespace": "default", "name": name, "creationTimestamp": created, "resourceVersion": "1"},
        "spec": {"type": kind, "clusterIP": "127.254.0.9", **spec},
        "status": status,
    }


def build(*objs: Obj, conflicts: int = 0) -> tuple[LoadBalancerController, RecordingClient, FakeInformer]:
    informer = FakeInformer(*objs)
    client = RecordingClient(informer, conflicts)
    context = ControllerContext(client, None, clock=FakeClock())  # type: ignore[arg-type]
    controller = LoadBalancerController(context, informer, LoadBalancerAllocator("127.252.0.0/24"))  # type: ignore[arg-type]
    return controller, client, informer


def ingress_of(informer: FakeInformer, key: str) -> list[Obj]:
    return informer.items[key]["status"]["loadBalancer"].get("ingress") or []


async def test_allocates_and_writes_status() -> None:
    controller, client, informer = build(svc("a"), svc("plain", kind="ClusterIP"))
    controller.rebuild()
    await controller.sync("default/a")
    await controller.sync("default/plain")
    assert ingress_of(informer, "default/a") == [{"ip": "127.252.0.1", "ipMode": "VIP"}]
    assert len(client.writes) == 1


async def test_rebuild_keeps_existing_addresses_and_resolves_duplicates_by_age() -> None:
    controller, client, informer = build(
        svc("old", ingress=["127.252.0.7"], created="2026-01-01T00:00:00Z"),
        svc("new", ingress=["127.252.0.7"], created="2026-02-01T00:00:00Z"),
        svc("fresh", created="2026-03-01T00:00:00Z"),
    )
    controller.rebuild()
    for key in ("default/old", "default/new", "default/fresh"):
        await controller.sync(key)
    assert ingress_of(informer, "default/old")[0]["ip"] == "127.252.0.7"
    new_ip = ingress_of(informer, "default/new")[0]["ip"]
    fresh_ip = ingress_of(informer, "default/fresh")[0]["ip"]
    assert len({"127.252.0.7", new_ip, fresh_ip}) == 3
    assert [w["metadata"]["name"] for w in client.writes] == ["new", "fresh"]


async def test_type_change_releases_and_clears_status() -> None:
    controller, _, informer = build(svc("a", kind="ClusterIP", ingress=["127.252.0.1"]))
    controller.rebuild()
    await controller.sync("default/a")
    assert ingress_of(informer, "default/a") == []
    assert controller.allocator.owner("127.252.0.1") is None


async def test_foreign_ingress_and_classes_are_left_alone() -> None:
    controller, client, informer = build(
        svc("other-class", loadBalancerClass="example.com/lb"),
        svc("foreign", ingress=["10.1.2.3"]),
    )
    controller.rebuild()
    await controller.sync("default/other-class")
    await controller.sync("default/foreign")
    assert [w["metadata"]["name"] for w in client.writes] == ["foreign"]
    assert [i["ip"] for i in ingress_of(informer, "default/foreign")] == ["10.1.2.3", "127.252.0.1"]


async def test_requested_load_balancer_ip_is_honoured() -> None:
    controller, _, informer = build(svc("a", loadBalancerIP="127.252.0.42"))
    controller.rebuild()
    await controller.sync("default/a")
    assert ingress_of(informer, "default/a")[0]["ip"] == "127.252.0.42"


async def test_conflict_releases_the_address_and_retries() -> None:
    controller, _, informer = build(svc("a"), conflicts=1)
    controller.rebuild()
    with pytest.raises(ApiError):
        await controller.sync("default/a")
    assert controller.allocator.address_of("default/a") is None
    await controller.sync("default/a")
    assert len(ingress_of(informer, "default/a")) == 1


async def test_deleted_service_frees_its_address() -> None:
    controller, _, informer = build(svc("a"))
    controller.rebuild()
    await controller.sync("default/a")
    del informer.items["default/a"]
    await controller.sync("default/a")
    assert controller.allocator.owner("127.252.0.1") is None
