"""What a density run measures, observed from outside the control plane as ClusterLoader2 observes it.

* ``PodTracker`` — one LIST+WATCH of the pods: when each pod appeared, was
  bound, ran and was deleted (monotonic seconds of this process, taken when
  the event arrives).  Pod startup latency is running - first seen: the
  SLI's "creation timestamp → all containers started, observed via watch",
  with the first watch event standing in for ``creationTimestamp``, which has
  whole-second resolution.
* ``scheduler_throughput`` — bindings per second from the tracker's times.
* ``ProcessSampler`` — RSS and CPU of named processes from /proc.
* The API servers' own request histograms: ``skiff.density.api_latency``.

Observers only read: they never write to the API server.  Every clock is
``time.monotonic`` (injectable for tests), so all times are comparable.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from skiff.client import ApiClient, ApiError
from skiff.client.informer import RETRY_MAX_S, RETRY_MIN_S
from skiff.client.resources import PODS
from skiff.client.timefmt import parse_rfc3339

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Obj = dict[str, Any]


def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank ``p``-th percentile (0 < p <= 100), as bench/storebench does; NaN when there are no values.

    Nearest rank always returns an observed value, so p99 of 100 samples is the 99th smallest, not a blend.
    """
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


# -- pods ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class PodTimes:
    first_seen: float
    created_ts: float | None  # metadata.creationTimestamp, wall clock (whole seconds)
    listed: bool  # first seen in a LIST, not a watch event: first_seen is not a creation time
    bound: float | None = None
    running: float | None = None
    deleted: float | None = None


def is_running(pod: Obj) -> bool:
    """Phase Running and every container reported started (the startup SLI's end point)."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    return (
        status.get("phase") == "Running"
        and bool(containers)
        and all(c.get("started") or "running" in (c.get("state") or {}) for c in containers)
    )


class PodTracker:
    """One watch over all pods (all namespaces, label selector density=true), measuring each pod's life.

    Pods are kept as a few timestamps per uid, not as objects: 150,000 cached
    pod dicts would cost the harness gigabytes and long GC pauses, and a pause
    delays every timestamp taken after it.  Hence this small loop rather than
    an ``Informer``, whose retry and 410 handling it copies.  After a 410
    (events lost) the relist's differences are applied at relist time, so
    those few timestamps are late; ``relists`` counts how often that happened.
    """

    def __init__(self, client: ApiClient, label_selector: str = "density=true", *, clock: Clock = time.monotonic):
        self.client = client
        self.label_selector = label_selector
        self.clock = clock
        self.pods: dict[str, PodTimes] = {}
        self.relists = 0
        self._bind_times: list[float] = []
        self._running_times: list[float] = []  # appended as observed: sorted, since the clock is monotonic
        self._deleted_times: list[float] = []
        self._running_now = 0
        self._resource_version = ""
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Returns after the first LIST: a pod created after that arrives by watch event, so it is timed."""
        self._task = asyncio.create_task(self._run(), name="density-pod-tracker")
        synced = asyncio.create_task(self._synced.wait())
        await asyncio.wait({self._task, synced}, return_when=asyncio.FIRST_COMPLETED)
        synced.cancel()
        if self._task.done():
            self._task.result()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay, need_list = RETRY_MIN_S, True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
                delay = RETRY_MIN_S
            except ApiError as err:
                if err.code == 410:
                    log.warning("pod watch expired; relisting (timestamps of missed changes will be late)")
                    need_list = True
                    continue
                log.warning("pod watch: %s (%s); retrying in %.1fs", err.message, err.code, delay)
            except (TimeoutError, OSError, aiohttp.ClientError) as err:
                log.warning("pod watch: connection failed: %s; retrying in %.1fs", err, delay)
            await asyncio.sleep(delay * (1 + random.random() / 2))
            delay = min(delay * 2, RETRY_MAX_S)

    async def _list(self) -> None:
        listed = await self.client.list_all(PODS, label_selector=self.label_selector)
        self._resource_version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        if self._synced.is_set():
            self.relists += 1
        present = set()
        for pod in listed.get("items") or []:
            present.add(self.observe("ADDED", pod, listed=True))
        now = self.clock()
        for uid, times in self.pods.items():
            if times.deleted is None and uid not in present:
                self._mark_deleted(times, now)
        self._synced.set()

    async def _watch(self) -> None:
        async for event in self.client.watch(
            PODS,
            resource_version=self._resource_version,
            label_selector=self.label_selector,
            timeout_seconds=random.randint(300, 600),
        ):
            if event.type != "BOOKMARK":
                self.observe(event.type, event.object)
            rv = (event.object.get("metadata") or {}).get("resourceVersion")
            if rv:
                self._resource_version = str(rv)

    def observe(self, event_type: str, pod: Obj, *, listed: bool = False) -> str:
        """Record what this event shows first; returns the pod's uid.  Events after deletion are ignored."""
        now = self.clock()
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
        times = self.pods.get(uid)
        if times is None:
            created = meta.get("creationTimestamp")
            times = self.pods[uid] = PodTimes(now, parse_rfc3339(created) if created else None, listed)
        if times.deleted is not None:
            return uid
        if times.bound is None and (pod.get("spec") or {}).get("nodeName"):
            times.bound = now
            self._bind_times.append(now)
        if times.running is None and is_running(pod):
            times.running = now
            self._running_times.append(now)
            self._running_now += 1
        if event_type == "DELETED":
            self._mark_deleted(times, now)
        return uid

    def _mark_deleted(self, times: PodTimes, now: float) -> None:
        times.deleted = now
        self._deleted_times.append(now)
        if times.running is not None:
            self._running_now -= 1

    # -- figures -------------------------------------------------------------------------------------

    def startup_latencies(self) -> list[float]:
        """running - first seen, for pods that ran and were first seen by a watch event."""
        return [t.running - t.first_seen for t in self.pods.values() if t.running is not None and not t.listed]

    def bind_times(self) -> list[float]:
        return list(self._bind_times)

    def count_running(self) -> int:
        """Pods running now (ran and not deleted)."""
        return self._running_now

    def count_live(self) -> int:
        return len(self.pods) - len(self._deleted_times)

    def count_ever_running(self) -> int:
        return len(self._running_times)

    def time_when_running_reached(self, n: int, after: float = -math.inf) -> float | None:
        """When the n-th pod (counting those becoming running at or after ``after``) became running."""
        return _nth_after(self._running_times, n, after)

    def time_when_deleted_reached(self, n: int, after: float = -math.inf) -> float | None:
        return _nth_after(self._deleted_times, n, after)

    def snapshot(self) -> dict[str, int]:
        """Counts for progress lines."""
        return {
            "created": len(self.pods),
            "bound": len(self._bind_times),
            "running_now": self._running_now,
            "deleted": len(self._deleted_times),
            "live": self.count_live(),
        }


def _nth_after(ordered: list[float], n: int, after: float) -> float | None:
    if n < 1:
        raise ValueError("n counts from 1")
    k = bisect.bisect_left(ordered, after) + n - 1
    return ordered[k] if k < len(ordered) else None


def scheduler_throughput(bind_times: list[float], window_s: float = 1.0) -> dict[str, float]:
    """Bindings per second, from consecutive ``window_s`` windows starting at the first binding.

    average: mean rate over every window up to the one holding the last binding (empty ones count),
    i.e. bindings / time spanned; peak: the busiest window; sustained: the median of the windows that
    had any binding (ClusterLoader2's SchedulingThroughput also samples per 1 s).  All 0 without bindings.
    """
    if not bind_times:
        return {"average": 0.0, "peak": 0.0, "sustained": 0.0}
    first = min(bind_times)
    counts: dict[int, int] = {}
    for t in bind_times:
        index = int((t - first) // window_s)
        counts[index] = counts.get(index, 0) + 1
    windows = max(counts) + 1
    return {
        "average": len(bind_times) / (windows * window_s),
        "peak": max(counts.values()) / window_s,
        "sustained": percentile((c / window_s for c in counts.values()), 50),
    }


# -- processes -------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def read_usage(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds user+system so far) of one process, not its children; OSError once it is gone."""
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
            break
    # Fields after the parenthesised command name (which may hold spaces): utime and stime are fields 14, 15.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss_kib / 1024, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Periodic:
    """Runs ``_tick`` every ``interval_s`` between ``start`` (which runs ``_first``) and ``stop`` (a last tick)."""

    interval_s: float
    _task: asyncio.Task[None] | None = None

    async def _first(self) -> None:
        await self._tick()

    async def _tick(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        await self._first()
        self._task = asyncio.create_task(self._loop(), name=f"density-{type(self).__name__}")

    async def stop(self) -> None:
        """Stops ticking and ticks once more, so the figures cover the run to its end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self._tick()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._tick()


class ProcessSampler(Periodic):
    """RSS (MiB, the process itself) and CPU (% of one core, between samples) of named PIDs every interval_s.

    ``samples`` holds (t, rss_mib by name, cpu_pct by name); the first sample has no CPU figure.
    A process that vanished is logged once and listed in ``gone``: for a control plane that is a crash.
    """

    def __init__(self, pids: Mapping[str, int], interval_s: float = 1.0, *, clock: Clock = time.monotonic):
        self.pids = dict(pids)
        self.interval_s = interval_s
        self.clock = clock
        self.samples: list[tuple[float, dict[str, float], dict[str, float]]] = []
        self.gone: set[str] = set()
        self._cpu_first: dict[str, float] = {}
        self._cpu_last: dict[str, float] = {}
        self._last_t = 0.0

    async def _tick(self) -> None:
        await self.sample()

    async def sample(self) -> None:
        t = self.clock()
        usage = await asyncio.to_thread(self._read_all)
        rss, cpu = {}, {}
        for name, (rss_mib, cpu_s) in usage.items():
            rss[name] = rss_mib
            if name in self._cpu_last and t > self._last_t:
                cpu[name] = 100 * (cpu_s - self._cpu_last[name]) / (t - self._last_t)
            self._cpu_first.setdefault(name, cpu_s)
            self._cpu_last[name] = cpu_s
        self._last_t = t
        self.samples.append((t, rss, cpu))

    def _read_all(self) -> dict[str, tuple[float, float]]:
        out = {}
        for name, pid in self.pids.items():
            if name in self.gone:
                continue
            try:
                out[name] = read_usage(pid)
            except OSError:
                log.warning("process %s (pid %d) is gone", name, pid)
                self.gone.add(name)
        return out

    def peak_rss_sum_mib(self) -> float:
        """The largest total of one sample: what the machine had to hold at once."""
        return max((sum(rss.values()) for _, rss, _ in self.samples), default=0.0)

    def peak_rss_mib(self) -> dict[str, float]:
        peaks: dict[str, float] = {}
        for _, rss, _ in self.samples:
            for name, value in rss.items():
                peaks[name] = max(value, peaks.get(name, 0.0))
        return peaks

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time each process used between the first and the last sample."""
        return {name: self._cpu_last[name] - first for name, first in self._cpu_first.items()}


# -- API call latency ------------------------------------------------------------------------------
