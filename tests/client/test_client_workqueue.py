"""The work queue's guarantees: dedupe, no concurrent processing of one key, per-key back-off."""

from __future__ import annotations

import asyncio

from skiff.client.clock import FakeClock
from skiff.client.workqueue import MAX_DELAY_S, WorkQueue


async def test_adds_of_a_waiting_key_collapse_into_one() -> None:
    q = WorkQueue(FakeClock())
    for key in ("a", "b", "a", "a"):
        q.add(key)
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"


async def test_key_added_while_processing_is_handed_out_again_only_after_done() -> None:
    q = WorkQueue(FakeClock())
    q.add("a")
    key = await q.get()
    q.add("a")
    assert len(q) == 0  # not handed to a second worker meanwhile
    q.done(key or "")
    assert len(q) == 1
    assert await q.get() == "a"


async def test_rate_limited_adds_back_off_exponentially_and_forget_resets() -> None:
    clock = FakeClock()
    q = WorkQueue(clock)
    q.add_rate_limited("a")
    await asyncio.sleep(0)
    assert len(q) == 0
    clock.advance(0.005)
    await asyncio.sleep(0)
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    q.add_rate_limited("a")
    await asyncio.sleep(0)
    clock.advance(0.005)
    await asyncio.sleep(0)
    assert len(q) == 0  # second failure waits 10 ms
    clock.advance(0.005)
    await asyncio.sleep(0)
    assert len(q) == 1
    assert q.num_requeues("a") == 2
    q.forget("a")
    assert q.num_requeues("a") == 0


async def test_back_off_stays_at_the_maximum_however_often_a_key_fails() -> None:
    """2**1024 overflows a float: a key failing that often once crashed the etcd operator's workers."""
    clock = FakeClock()
    q = WorkQueue(clock)
    for _ in range(1100):
        q.add_rate_limited("a")  # the first (5 ms) delay is pending; the others only count failures
    await asyncio.sleep(0)
    clock.advance(0.005)
    await asyncio.sleep(0)
    assert await q.get() == "a"
    q.done("a")
    q.add_rate_limited("a")
    await asyncio.sleep(0)
    clock.advance(MAX_DELAY_S - 1)
    await asyncio.sleep(0)
    assert len(q) == 0
    clock.advance(1)
    await asyncio.sleep(0)
    assert len(q) == 1
    assert q.num_requeues("a") == 1101


async def test_shutdown_releases_waiting_workers() -> None:
    q = WorkQueue(FakeClock())
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    assert await waiter is None


async def test_a_shorter_delay_replaces_a_pending_longer_one() -> None:
    clock = FakeClock()
    q = WorkQueue(clock)
    q.add_after("a", 10)
    q.add_after("a", 1)
    q.add_after("a", 5)  # later than the pending 1 s: ignored
    await asyncio.sleep(0)
    clock.advance(1)
    await asyncio.sleep(0)
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    clock.advance(20)
    await asyncio.sleep(0)
    assert len(q) == 0  # the cancelled 10 s timer never fires
