"""Scheduler events, written at the pace the API server has room for, after bindings.

client-go's event broadcaster (which kube-scheduler uses) queues events in a
bounded channel (1000) drained by one goroutine that writes them one at a
time, and drops new events while the channel is full.  Bindings therefore
never wait behind events.  This does the same on top of EventRecorder: a
bounded backlog, ``in_flight`` writes at a time, overflow dropped (counted).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from skiff.client.events import EventRecorder

log = logging.getLogger(__name__)

DEFAULT_BACKLOG = 1000
DEFAULT_IN_FLIGHT = 4


class PacedEvents:
    def __init__(
        self, recorder: EventRecorder, in_flight: int = DEFAULT_IN_FLIGHT, backlog: int = DEFAULT_BACKLOG
    ) -> None:
        self.recorder = recorder
        self.in_flight = in_flight
        self.max_backlog = backlog
        self._backlog: collections.deque[tuple[dict[str, Any], str, str, str]] = collections.deque()
        self._wakeup = asyncio.Event()
        self.dropped = 0

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if len(self._backlog) >= self.max_backlog:
            self.dropped += 1
            log.debug("event backlog full, dropping %s %s", reason, (obj.get("metadata") or {}).get("name"))
            return
        self._backlog.append((obj, type_, reason, message))
        self._wakeup.set()

    async def run(self) -> None:
        """Write queued events, ``in_flight`` at a time, until cancelled."""
        while True:
            if not self._backlog:
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._write_some()

    async def drain(self) -> None:
        """Write everything still queued (shutdown, tests)."""
        while self._backlog:
            await self._write_some()
        await self.recorder.flush()

    async def _write_some(self) -> None:
        for _ in range(min(self.in_flight, len(self._backlog))):
            self.recorder.event(*self._backlog.popleft())
        await self.recorder.flush()
