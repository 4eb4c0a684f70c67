"""The scheduling queue on a fake clock: ordering, back-off, unschedulable pods and cluster events."""

from __future__ import annotations

import asyncio

import pytest
from scheduler_objects import make_pod

from skiff.client.clock import FakeClock
from skiff.scheduler.queue import ACTIVE, BACKOFF, IN_FLIGHT, UNSCHEDULABLE, QueuedPod, SchedulingQueue


async def pop(queue: SchedulingQueue) -> QueuedPod:
    popped = await asyncio.wait_for(queue.pop(), timeout=1)
    assert popped is not None
    return popped


def new_queue() -> tuple[SchedulingQueue, FakeClock]:
    clock = FakeClock()
    return SchedulingQueue(clock), clock


async def test_priority_then_arrival_order() -> None:
    queue, clock = new_queue()
    for name, priority in (("low-1", 0), ("high", 100), ("low-2", 0), ("mid", 10)):
        queue.add(make_pod(name, priority=priority))
        clock.advance(0.01)
    assert [(await pop(queue)).key for _ in range(4)] == [
        "default/high",
        "default/mid",
        "default/low-1",
        "default/low-2",
    ]


@pytest.mark.parametrize(("attempts", "want"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)])
def test_backoff_doubles_from_one_to_ten_seconds(attempts: int, want: float) -> None:
    queue, _ = new_queue()
    assert queue.backoff_duration(QueuedPod("k", {}, 0, 0.0, attempts=attempts)) == want


async def test_unschedulable_waits_for_a_cluster_event_then_backoff() -> None:
    queue, clock = new_queue()
    queue.add(make_pod("p"))
    queued = await pop(queue)
    assert queue.where(queued.key) == IN_FLIGHT
    queue.add_unschedulable(queued)
    assert queue.where(queued.key) == UNSCHEDULABLE
    clock.advance(60)
    queue.flush()
    assert queue.where(queued.key) == UNSCHEDULABLE  # no event, no retry (until the 5 min leftover flush)
    queue.move_all_to_active_or_backoff("NodeAdd")
    assert queue.where(queued.key) == ACTIVE  # its 1 s back-off long passed
    again = await pop(queue)
    queue.add_unschedulable(again)
    queue.move_all_to_active_or_backoff("NodeAdd")
    assert queue.where(queued.key) == BACKOFF  # second attempt: 2 s back-off not over yet
    clock.advance(1.5)
    queue.flush()
    assert queue.where(queued.key) == BACKOFF
    clock.advance(0.5)
    queue.flush()
    assert queue.where(queued.key) == ACTIVE


async def test_event_during_attempt_sends_pod_to_backoff_not_unschedulable() -> None:
    queue, clock = new_queue()
    queue.add(make_pod("p"))
    queued = await pop(queue)
    queue.move_all_to_active_or_backoff("NodeAdd")  # a node appeared while the attempt ran
    queue.add_unschedulable(queued)
    assert queue.where(queued.key) == BACKOFF
    clock.advance(1)
    queue.flush()
    assert queue.where(queued.key) == ACTIVE


async def test_leftover_unschedulable_pods_retried_after_five_minutes() -> None:
    queue, clock = new_queue()
    queue.add(make_pod("p"))
    queue.add_unschedulable(await pop(queue))
    clock.advance(299)
    queue.flush()
    assert queue.where("default/p") == UNSCHEDULABLE
    clock.advance(1)
    queue.flush()
    assert queue.where("default/p") == ACTIVE


async def test_spec_update_retries_but_status_update_does_not() -> None:
    queue, clock = new_queue()
    pod = make_pod("p")
    queue.add(pod)
    queue.add_unschedulable(await pop(queue))
    clock.advance(5)
    queue.add({**pod, "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}})
    assert queue.where("default/p") == UNSCHEDULABLE
    queue.add({**pod, "spec": {**pod["spec"], "tolerations": [{"operator": "Exists"}]}})
    assert queue.where("default/p") == ACTIVE


async def test_deleted_pods_leave_the_queue() -> None:
    queue, _ = new_queue()
    queue.add(make_pod("gone"))
    queue.add(make_pod("stays"))
    queue.delete("default/gone")
    assert (await pop(queue)).key == "default/stays"
    queued = QueuedPod("default/x", {}, 0, 0.0)
    queue.add_unschedulable(queued)  # never queued (or deleted meanwhile): ignored
    assert queue.where("default/x") is None


async def test_done_forgets_and_pop_waits_until_close() -> None:
    queue, _ = new_queue()
    queue.add(make_pod("p"))
    queued = await pop(queue)
    queue.done(queued.key)
    assert queue.counts() == {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
    waiter = asyncio.create_task(queue.pop())
    await asyncio.sleep(0)
    assert not waiter.done()
    queue.close()
    assert await waiter is None
