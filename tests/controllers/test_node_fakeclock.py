"""Node lifecycle and taint eviction syncs driven by a FakeClock over in-memory caches (no server, no sleeps)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skiff.client.clock import FakeClock
from skiff.client.controller import ControllerContext
from skiff.client.resources import NODES, PODS, Resource
from skiff.client.timefmt import rfc3339, rfc3339_micro
from skiff.controllers.nodelifecycle import NodeLifecycleController
from skiff.controllers.taint_eviction import TaintEvictionController

Obj = dict[str, Any]
T0 = 1_800_000_000.0


class FakeInformer:
    def __init__(self) -> None:
        self.items: dict[str, Obj] = {}
        self.index_funcs: dict[str, Callable[[Obj], list[str]]] = {}

    def put(self, key: str, obj: Obj) -> None:
        self.items[key] = obj

    def get(self, key: str) -> Obj | None:
        return self.items.get(key)

    def list(self) -> list[Obj]:
        return list(self.items.values())

    def keys(self) -> list[str]:
        return list(self.items)

    def by_index(self, name: str, value: str) -> list[Obj]:
        return [o for o in self.items.values() if value in self.index_funcs[name](o)]

    def add_index(self, name: str, func: Callable[[Obj], list[str]]) -> None:
        self.index_funcs[name] = func

    def add_handler(self, **_: Any) -> None:
        pass


class FakeFactory:
    def __init__(self) -> None:
        self.made: dict[tuple[str, str | None], FakeInformer] = {}

    def informer(self, res: Resource, namespace: str | None = None, **_: Any) -> FakeInformer:
        return self.made.setdefault((res.plural, namespace), FakeInformer())


class FakeClient:
    """Records writes; returns what was written (with a bumped resourceVersion)."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, str, Any]] = []

    async def update_status(self, res: Resource, body: Obj) -> Obj:
        self.writes.append(("status", body["metadata"]["name"], body["status"]))
        return dict(body, metadata=dict(body["metadata"], resourceVersion="2"))

    async def patch(self, res: Resource, name: str, patch: Obj, namespace: str | None = None, **kw: Any) -> Obj:
        self.writes.append((f"patch-{res.plural}", name, patch))
        return {}

    async def delete(self, res: Resource, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        self.writes.append(("delete", name, kw))
        return {}


class SilentRecorder:
    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        pass


def context(clock: FakeClock, options: dict[str, Any]) -> tuple[ControllerContext, FakeFactory, FakeClient]:
    factory, client = FakeFactory(), FakeClient()
    ctx = ControllerContext(
        client=client,  # type: ignore[arg-type]
        informers=factory,  # type: ignore[arg-type]
        clock=clock,
        options=options,
        recorder_factory=lambda _: SilentRecorder(),  # type: ignore[arg-type,return-value]
    )
    return ctx, factory, client


def node(taints: list[Obj] | None = None) -> Obj:
    ready = {"type": "Ready", "status": "True", "lastHeartbeatTime": rfc3339(T0), "lastTransitionTime": rfc3339(T0)}
    return {
        "metadata": {"name": "n1", "resourceVersion": "1", "creationTimestamp": rfc3339(T0)},
        "spec": {"taints": taints or []},
        "status": {"conditions": [ready]},
    }


async def test_node_goes_unknown_only_after_the_grace_period() -> None:
    clock = FakeClock(T0)
    ctx, factory, client = context(clock, {"node-monitor-grace-period": 40.0})
    ctrl = NodeLifecycleController(ctx)
    try:
        factory.informer(NODES).put("n1", node())
        leases = factory.made[("leases", "kube-node-lease")]
        leases.put("kube-node-lease/n1", {"metadata": {"name": "n1"}, "spec": {"renewTime": rfc3339_micro(T0)}})
        await ctrl.sync("n1")
        clock.advance(30)
        leases.put("kube-node-lease/n1", {"metadata": {"name": "n1"}, "spec": {"renewTime": rfc3339_micro(T0 + 30)}})
        await ctrl.sync("n1")
        clock.advance(39)  # 39 s since the last renewal: still fine
        await ctrl.sync("n1")
        assert client.writes == []
        clock.advance(2)
        await ctrl.sync("n1")
        kinds = [w[0] for w in client.writes]
        assert kinds == ["status", "patch-nodes"]
        conditions = {c["type"]: c for c in client.writes[0][2]["conditions"]}
        assert conditions["Ready"]["status"] == "Unknown"
        assert conditions["Ready"]["lastTransitionTime"] == rfc3339(T0 + 71)
        taints = client.writes[1][2]["spec"]["taints"]
        assert {(t["key"], t["effect"]) for t in taints} == {
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoSchedule"),
        }
        assert client.writes[1][2]["metadata"] == {"resourceVersion": "2"}  # guarded by the status write's version
    finally:
        ctrl.shutdown()


def pod(tolerations: list[Obj]) -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
        "spec": {"nodeName": "n1", "tolerations": tolerations},
    }


async def test_eviction_waits_for_toleration_seconds() -> None:
    clock = FakeClock(T0)
    ctx, factory, client = context(clock, {})
    ctrl = TaintEvictionController(ctx)
    try:
        taint = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": rfc3339(T0)}
        factory.informer(NODES).put("n1", node([taint]))
        toleration = {"key": taint["key"], "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        factory.informer(PODS).put("ns/p", pod([toleration]))
        await ctrl.sync("ns/p")
        clock.advance(299)
        await ctrl.sync("ns/p")
        assert client.writes == []
        clock.advance(1)
        await ctrl.sync("ns/p")
        assert [w[0] for w in client.writes] == ["patch-pods", "delete"]
        assert client.writes[0][2]["status"]["conditions"][0]["reason"] == "DeletionByTaintManager"
        assert client.writes[1][2]["preconditions"] == {"uid": "u1"}
    finally:
        ctrl.shutdown()


async def test_untolerated_taint_evicts_at_once_and_recovery_cancels() -> None:
    clock = FakeClock(T0)
    ctx, factory, client = context(clock, {})
    ctrl = TaintEvictionController(ctx)
    try:
        nodes, pods = factory.informer(NODES), factory.informer(PODS)
        nodes.put("n1", node([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]))
        pods.put("ns/p", pod([]))
        await ctrl.sync("ns/p")
        assert [w[0] for w in client.writes] == ["patch-pods", "delete"]
        client.writes.clear()
        toleration = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 10}
        pods.put("ns/p", pod([toleration]))
        await ctrl.sync("ns/p")
        nodes.put("n1", node())  # the taint goes away before the 10 s are up
        clock.advance(11)
        await ctrl.sync("ns/p")
        assert client.writes == []
    finally:
        ctrl.shutdown()
