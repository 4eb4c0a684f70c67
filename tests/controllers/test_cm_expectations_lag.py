"""The ReplicaSet controller under watch lag, deterministically: a fake API client, informers fed by hand."""

from __future__ import annotations

from typing import Any

from skiff.client.clock import FakeClock
from skiff.client.controller import ControllerContext
from skiff.client.informer import InformerFactory
from skiff.controllers.replicaset import ReplicaSetController


class FakeClient:
    """Records writes; never delivers watch events (the test does, when it chooses)."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    async def create(self, res: Any, body: dict[str, Any], namespace: str | None = None, **_: Any) -> dict[str, Any]:
        n = len(self.created)
        meta = {**body["metadata"], "name": f"{body['metadata']['generateName']}{n}", "uid": f"pod-{n}"}
        obj = {**body, "metadata": {**meta, "resourceVersion": str(100 + n), "namespace": namespace}}
        self.created.append(obj)
        return obj

    async def delete(self, res: Any, name: str, namespace: str | None = None, **_: Any) -> dict[str, Any]:
        self.deleted.append(name)
        return {}

    async def update_status(self, res: Any, body: dict[str, Any]) -> dict[str, Any]:
        return body


class SilentRecorder:
    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        pass


def controller(clock: FakeClock) -> tuple[ReplicaSetController, FakeClient]:
    client = FakeClient()
    context = ControllerContext(
        client=client,  # type: ignore[arg-type]
        informers=InformerFactory(client),  # type: ignore[arg-type]
        clock=clock,
        recorder_factory=lambda _: SilentRecorder(),  # type: ignore[arg-type,return-value]
    )
    return ReplicaSetController(context), client


RS = {
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "metadata": {"name": "web", "namespace": "ns", "uid": "rs-uid", "generation": 1, "resourceVersion": "1"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    },
}


async def test_no_over_creation_while_events_lag_and_ttl_unblocks() -> None:
    clock = FakeClock()
    ctrl, client = controller(clock)
    ctrl.owners._upsert("ns/web", RS)
    await ctrl.sync("ns/web")
    assert len(client.created) == 3
    await ctrl.sync("ns/web")  # no pod has been seen yet: the expectations hold the controller back
    assert len(client.created) == 3
    for pod in client.created[:2]:
        ctrl.pods._upsert(f"ns/{pod['metadata']['name']}", pod)
    await ctrl.sync("ns/web")  # two seen, one still expected: still nothing new
    assert len(client.created) == 3
    third = client.created[2]
    ctrl.pods._upsert(f"ns/{third['metadata']['name']}", third)
    await ctrl.sync("ns/web")
    assert len(client.created) == 3 and not client.deleted
    ctrl.pods._delete(f"ns/{third['metadata']['name']}")  # someone deleted a pod: replace it once
    await ctrl.sync("ns/web")
    await ctrl.sync("ns/web")
    assert len(client.created) == 4
    clock.advance(301)  # the replacement's ADDED event never came: after the TTL the controller acts again
    await ctrl.sync("ns/web")
    assert len(client.created) == 5


async def test_scale_down_waits_for_deletions_to_be_observed() -> None:
    clock = FakeClock()
    ctrl, client = controller(clock)
    ctrl.owners._upsert("ns/web", RS)
    await ctrl.sync("ns/web")
    for pod in client.created:
        ctrl.pods._upsert(f"ns/{pod['metadata']['name']}", pod)
    ctrl.owners._upsert(
        "ns/web", {**RS, "metadata": {**RS["metadata"], "resourceVersion": "2"}, "spec": {**RS["spec"], "replicas": 1}}
    )
    await ctrl.sync("ns/web")
    assert len(client.deleted) == 2
    await ctrl.sync("ns/web")  # the deletions are not observed yet: no second round of deletes
    assert len(client.deleted) == 2
    for name in client.deleted:
        ctrl.pods._delete(f"ns/{name}")
    await ctrl.sync("ns/web")
    assert len(client.deleted) == 2 and len(client.created) == 3
