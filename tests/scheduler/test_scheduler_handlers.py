"""Scheduler's informer handlers on their own: what reaches the queue and the cache (no API calls)."""

from __future__ import annotations

import asyncio

import pytest
from scheduler_objects import make_node, make_pod

from skiff.client import ApiClient, ClientConfig
from skiff.client.clock import FakeClock
from skiff.scheduler.queue import ACTIVE, IN_FLIGHT, UNSCHEDULABLE
from skiff.scheduler.scheduler import Scheduler


@pytest.fixture
def scheduler() -> Scheduler:
    client = ApiClient(ClientConfig(server="https://127.0.0.1:1"))  # never contacted by these tests
    return Scheduler(client, clock=FakeClock())


def test_only_our_pending_pods_are_queued(scheduler: Scheduler) -> None:
    scheduler._on_pod_add(make_pod("ours"))
    scheduler._on_pod_add(make_pod("other", schedulerName="my-scheduler"))
    scheduler._on_pod_add(make_pod("bound", node_name="n1"))
    done = make_pod("done")
    done["status"]["phase"] = "Succeeded"
    scheduler._on_pod_add(done)
    assert scheduler.queue.counts()[ACTIVE] == 1
    assert scheduler.queue.where("default/ours") == ACTIVE
    assert scheduler.cache.node_of("default/bound") == "n1"


def test_named_scheduler_serves_its_own_pods() -> None:
    named = Scheduler(ApiClient(ClientConfig(server="https://127.0.0.1:1")), scheduler_name="my-scheduler")
    named._on_pod_add(make_pod("default-one"))
    named._on_pod_add(make_pod("mine", schedulerName="my-scheduler"))
    assert named.queue.where("default/mine") == ACTIVE
    assert named.queue.where("default/default-one") is None


async def test_stale_event_for_an_assumed_pod_is_not_requeued(scheduler: Scheduler) -> None:
    pod = make_pod("p")
    scheduler._on_node_add(make_node("n1"))
    scheduler._on_pod_add(pod)
    queued = await asyncio.wait_for(scheduler.queue.pop(), 1)
    assert queued is not None
    scheduler.cache.assume_pod(pod, "n1")
    scheduler.queue.done(queued.key)  # binding succeeded
    scheduler._on_pod_update(pod, {**pod, "status": {"phase": "Pending", "conditions": []}})  # older, unbound view
    assert scheduler.queue.where("default/p") is None
    bound = {**pod, "spec": {**pod["spec"], "nodeName": "n1"}}
    scheduler._on_pod_update(pod, bound)
    assert not scheduler.cache.is_assumed("default/p") and scheduler.cache.node_of("default/p") == "n1"


async def test_cluster_events_move_unschedulable_pods(scheduler: Scheduler) -> None:
    clock = scheduler.clock
    assert isinstance(clock, FakeClock)
    scheduler._on_pod_add(make_pod("p", cpu="64"))
    queued = await asyncio.wait_for(scheduler.queue.pop(), 1)
    assert queued is not None and scheduler.queue.where(queued.key) == IN_FLIGHT
    scheduler.queue.add_unschedulable(queued)
    clock.advance(1)  # past the first back-off
    node = make_node("n1")
    scheduler._on_node_add(node)
    assert scheduler.queue.where(queued.key) == ACTIVE
    again = await asyncio.wait_for(scheduler.queue.pop(), 1)
    assert again is not None
    scheduler.queue.add_unschedulable(again)
    heartbeat = {**node, "status": {**node["status"], "conditions": [{"type": "Ready", "status": "True", "x": 1}]}}
    scheduler._on_node_update(node, heartbeat)  # nothing a filter reads changed
    assert scheduler.queue.where(queued.key) == UNSCHEDULABLE
    scheduler._on_pod_delete(make_pod("gone", node_name="n1"))
    assert scheduler.queue.where(queued.key) != UNSCHEDULABLE
