"""The work queue every controller drains: client-go's rate-limited, de-duplicating queue.

Guarantees: a key waiting in the queue is held once however often it is
added; a key being processed is never handed to a second worker — adding it
meanwhile marks it dirty, and ``done`` puts it back; ``add_rate_limited``
delays a key by its own exponential back-off (5 ms doubling to 1000 s, as
client-go's default item limiter) until ``forget`` resets it.
"""

from __future__ import annotations

import asyncio
from collections import deque

from skiff.client.clock import Clock, RealClock

BASE_DELAY_S = 0.005
MAX_DELAY_S = 1000.0


class WorkQueue:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or RealClock()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._waiting: dict[str, tuple[float, asyncio.Task[None]]] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._notify()

    def add_after(self, key: str, seconds: float) -> None:
        """Add once ``seconds`` have passed; of two pending delays for a key, the earlier wins."""
        if self._shutting_down:
            return
        if seconds <= 0:
            self.add(key)
            return
        due = self.clock.monotonic() + seconds
        pending = self._waiting.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._waiting[key] = (due, asyncio.create_task(self._delayed(key, seconds)))

    async def _delayed(self, key: str, seconds: float) -> None:
        await self.clock.sleep(seconds)
        self._waiting.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # The exponent is capped (client-go: above 62 means the maximum): 2**1024 no longer fits a float.
        self.add_after(key, min(BASE_DELAY_S * 2 ** min(failures, 62), MAX_DELAY_S))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str | None:
        """The next key to process, or None once shut down."""
        while not self._queue and not self._shutting_down:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._getters:
                    self._getters.remove(waiter)
        if self._shutting_down:
            return None
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._notify()

    def shutdown(self) -> None:
        self._shutting_down = True
        for _, task in self._waiting.values():
            task.cancel()
        self._waiting.clear()
        self._notify()

    def _notify(self) -> None:
        """Wake one waiting worker per queued key; everyone on shutdown."""
        while self._getters:
            waiter = self._getters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not self._shutting_down:
                    return
