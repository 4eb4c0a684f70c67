"""PacedEvents: bounded backlog, a few writes in flight, overflow dropped, drain on shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

from skiff.scheduler.events import PacedEvents


class StubRecorder:
    def __init__(self) -> None:
        self.written: list[str] = []
        self.pending: list[str] = []
        self.max_pending = 0
        self.ten = asyncio.Event()

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.pending.append(message)
        self.max_pending = max(self.max_pending, len(self.pending))

    async def flush(self) -> None:
        await asyncio.sleep(0)
        self.written += self.pending
        self.pending.clear()
        if len(self.written) >= 10:
            self.ten.set()


async def test_events_written_in_order_few_at_a_time() -> None:
    recorder = StubRecorder()
    paced = PacedEvents(recorder, in_flight=3, backlog=100)  # type: ignore[arg-type]
    for i in range(10):
        paced.event({}, "Normal", "Scheduled", str(i))
    writer = asyncio.create_task(paced.run())
    await asyncio.wait_for(recorder.ten.wait(), 5)
    writer.cancel()
    assert recorder.written == [str(i) for i in range(10)]
    assert recorder.max_pending == 3


async def test_overflow_is_dropped_and_drain_writes_the_rest() -> None:
    recorder = StubRecorder()
    paced = PacedEvents(recorder, in_flight=2, backlog=5)  # type: ignore[arg-type]
    for i in range(8):
        paced.event({}, "Warning", "FailedScheduling", str(i))
    assert paced.dropped == 3
    await paced.drain()
    assert recorder.written == ["0", "1", "2", "3", "4"]
