"""The scheduling queue: activeQ, backoffQ and unschedulable pods (kube-scheduler's PriorityQueue).

* activeQ pops the highest ``spec.priority`` first, then the pod queued earliest.
* A failed attempt backs the pod off 1 s, doubling per attempt up to 10 s.
* A pod no node fits waits in the unschedulable set until a cluster event that
  may help (node added or changed, pod deleted, ...) moves it back: to activeQ
  when its back-off has passed, otherwise to backoffQ.  If such an event arrived
  while the pod's attempt was running, it goes straight to backoffQ instead
  (upstream's moveRequestCycle), so no event is lost.  Pods unschedulable for
  longer than five minutes are retried anyway.
* A pod is in at most one place; an update to a queued pod replaces the object
  it carries, and a spec/label update of an unschedulable pod retries it.

``flush`` and ``pop`` take time from the injected Clock, so tests drive it with
a FakeClock and no real sleeps.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass
from typing import Any

from skiff.client.clock import Clock, RealClock
from skiff.scheduler.cache import pod_key

Obj = dict[str, Any]

INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 10.0
MAX_UNSCHEDULABLE_S = 300.0
FLUSH_BACKOFF_EVERY_S = 1.0
FLUSH_UNSCHEDULABLE_EVERY_S = 30.0

ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT = "active", "backoff", "unschedulable", "in-flight"


@dataclass(slots=True)
class QueuedPod:
    key: str
    pod: Obj
    priority: int
    timestamp: float
    attempts: int = 0
    last_attempt: float = 0.0
    unschedulable_since: float = 0.0
    #: The scheduling cycle of this pod's last pop.
    cycle: int = 0
    generation: int = 0


def _priority(pod: Obj) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)


def _scheduling_relevant(pod: Obj) -> tuple[Any, Any]:
    return (pod.get("spec"), (pod.get("metadata") or {}).get("labels"))


class SchedulingQueue:
    def __init__(
        self,
        clock: Clock | None = None,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        max_unschedulable_s: float = MAX_UNSCHEDULABLE_S,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_unschedulable_s = max_unschedulable_s
        self._pods: dict[str, QueuedPod] = {}
        self._where: dict[str, str] = {}
        self._active: list[tuple[int, float, int, str, int]] = []
        self._seq = itertools.count()
        self._cycle = 0
        self._move_request_cycle = -1
        self._wakeup = asyncio.Event()
        self._closed = False

    # --- inspection (tests, metrics) ---------------------------------------------------------

    def where(self, key: str) -> str | None:
        return self._where.get(key)

    def counts(self) -> dict[str, int]:
        result = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
        for place in self._where.values():
            result[place] += 1
        return result

    @property
    def scheduling_cycle(self) -> int:
        return self._cycle

    # --- informer side -----------------------------------------------------------------------

    def add(self, pod: Obj) -> None:
        """A pending pod was added or updated."""
        key = pod_key(pod)
        queued = self._pods.get(key)
        if queued is None:
            self._pods[key] = queued = QueuedPod(key, pod, _priority(pod), self.clock.monotonic())
            self._to_active(queued)
            return
        changed = _scheduling_relevant(queued.pod) != _scheduling_relevant(pod)
        queued.pod = pod
        if changed and self._where.get(key) == UNSCHEDULABLE:
            self._to_active_or_backoff(queued)

    def delete(self, key: str) -> None:
        self._pods.pop(key, None)
        self._where.pop(key, None)

    def move_all_to_active_or_backoff(self, event: str = "") -> None:
        """A cluster event that may make unschedulable pods fit (``event`` names it, for logs)."""
        for key, place in list(self._where.items()):
            if place == UNSCHEDULABLE:
                self._to_active_or_backoff(self._pods[key])
        self._move_request_cycle = self._cycle

    # --- scheduler side ----------------------------------------------------------------------

    async def pop(self) -> QueuedPod | None:
        """The next pod to schedule; waits while activeQ is empty; None once closed."""
        while True:
            while self._active:
                _, _, _, key, generation = heapq.heappop(self._active)
                queued = self._pods.get(key)
                if queued is None or queued.generation != generation or self._where.get(key) != ACTIVE:
                    continue
                self._cycle += 1
                queued.cycle = self._cycle
                queued.attempts += 1
                queued.last_attempt = self.clock.monotonic()
                self._where[key] = IN_FLIGHT
                return queued
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()

    def done(self, key: str) -> None:
        """The attempt for ``key`` ended with the pod bound (or gone): forget it."""
        if self._where.get(key) == IN_FLIGHT:
            self.delete(key)

    def add_unschedulable(self, queued: QueuedPod) -> None:
        """No node fitted: park the pod, or back it off if a move request came during its attempt."""
        if self._pods.get(queued.key) is not queued:
            return  # deleted (or replaced) meanwhile
        if self._move_request_cycle >= queued.cycle:
            self._to_backoff(queued)
            return
        queued.unschedulable_since = self.clock.monotonic()
        self._where[queued.key] = UNSCHEDULABLE

    def add_backoff(self, queued: QueuedPod) -> None:
        """The attempt failed for another reason (e.g. binding): retry after the back-off."""
        if self._pods.get(queued.key) is queued:
            self._to_backoff(queued)

    def backoff_duration(self, queued: QueuedPod) -> float:
        if queued.attempts <= 0:
            return 0.0
        return float(min(self.initial_backoff_s * 2.0 ** (queued.attempts - 1), self.max_backoff_s))

    def flush(self) -> None:
        """Move pods whose back-off passed to activeQ, and long-unschedulable pods back as well."""
        now = self.clock.monotonic()
        for key, place in list(self._where.items()):
            queued = self._pods[key]
            if place == BACKOFF and now >= queued.last_attempt + self.backoff_duration(queued):
                self._to_active(queued)
            elif place == UNSCHEDULABLE and now - queued.unschedulable_since >= self.max_unschedulable_s:
                self._to_active_or_backoff(queued)

    async def run(self) -> None:
        """Flush every second until closed."""
        while not self._closed:
            await self.clock.sleep(FLUSH_BACKOFF_EVERY_S)
            self.flush()

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    # --- moves -------------------------------------------------------------------------------

    def _to_active(self, queued: QueuedPod) -> None:
        queued.generation += 1
        self._where[queued.key] = ACTIVE
        entry = (-queued.priority, queued.timestamp, next(self._seq), queued.key, queued.generation)
        heapq.heappush(self._active, entry)
        self._wakeup.set()

    def _to_backoff(self, queued: QueuedPod) -> None:
        self._where[queued.key] = BACKOFF

    def _to_active_or_backoff(self, queued: QueuedPod) -> None:
        if self.clock.monotonic() >= queued.last_attempt + self.backoff_duration(queued):
            self._to_active(queued)
        else:
            self._to_backoff(queued)
