"""What a density run measures, observed from outside the control plane as ClusterLoader2 observes it.

* ``PodTracker`` — one LIST+WATCH of the pods: when each pod appeared, was
  bound, ran and was deleted (monotonic seconds of this process, taken when
  the event arrives).  Pod startup latency is running - first seen: the
  SLI's "creation timestamp → all containers started, observed via watch",
  with the first watch event standing in for ``creationTimestamp``, which has
  whole-second resolution.
* ``scheduler_throughput`` — bindings per second from the tracker's times.
* ``ProcessSampler`` — RSS and CPU of named processes from /proc.
* ``ApiLatency`` — the API server's own request histograms, scraped from
  /metrics; percentiles interpolated within buckets as PromQL's
  ``histogram_quantile`` does.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from skiff.client import ApiClient, ApiError
from skiff.client.errors import from_response
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


class ProcessSampler:
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
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.sample()
        self._task = asyncio.create_task(self._loop(), name="density-process-sampler")

    async def stop(self) -> None:
        """Stops sampling and takes a last sample, so the figures cover the run to its end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self.sample()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
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

REQUEST_DURATION = "apiserver_request_duration_seconds"
WATCH_DELAY = "skiff_watch_event_delay_seconds"
#: Mutating verbs as upstream labels them (POST, PUT, ...) and as Skiff does (CREATE, UPDATE, ...).
#: DELETECOLLECTION is left out: the SLO covers calls on single objects.
MUTATING_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "CREATE", "UPDATE", "APPLY"})
#: The read-only SLO's 30 s bound is for LISTs of a namespace or the cluster.
LIST_SCOPES = frozenset({"namespace", "cluster"})

Buckets = dict[float, float]  # upper bound ("le") -> cumulative count
CallKey = tuple[str, str, str, str, str]  # group, resource, subresource, verb, scope


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """PromQL's histogram_quantile (0 <= q <= 1) over cumulative buckets ending in +Inf.

    Linear interpolation inside the bucket holding the rank, from the bucket below's bound (0 for the
    first); a rank in the +Inf bucket answers the highest finite bound.  NaN when there are no observations.
    """
    ordered = sorted(buckets.items())
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]) or ordered[-1][1] <= 0:
        return math.nan
    rank = q * ordered[-1][1]
    b = next(i for i, (_, count) in enumerate(ordered) if count >= rank)
    if b == len(ordered) - 1:
        return ordered[-2][0]
    start, below = (ordered[b - 1][0], ordered[b - 1][1]) if b > 0 else (0.0, 0.0)
    end, count = ordered[b]
    if count == below:
        return start
    return start + (end - start) * (rank - below) / (count - below)


def parse_metrics(text: str) -> tuple[dict[CallKey, Buckets], Buckets]:
    """The request-duration histograms (summed over API versions) and the watch-delay histogram."""
    requests: dict[CallKey, Buckets] = {}
    watch_delay: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (REQUEST_DURATION, WATCH_DELAY):
            continue
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            labels = sample.labels
            if family.name == WATCH_DELAY:
                buckets = watch_delay
            else:
                get = labels.get
                key = (get("group", ""), get("resource", ""), get("subresource", ""), get("verb", ""), get("scope", ""))
                buckets = requests.setdefault(key, {})
            le = float(labels["le"])
            buckets[le] = buckets.get(le, 0.0) + sample.value
    return requests, watch_delay


def _plus(one: Buckets | None, other: Buckets) -> Buckets:
    return {le: (one or {}).get(le, 0.0) + other.get(le, 0.0) for le in {*(one or {}), *other}}


def _minus(later: Buckets, earlier: Buckets | None) -> Buckets:
    return {le: count - (earlier or {}).get(le, 0.0) for le, count in later.items()}


def call_rows(requests: Mapping[CallKey, Buckets]) -> list[dict[str, Any]]:
    """One row per (group, resource, subresource, verb, scope) that had calls, with its percentiles."""
    rows = []
    for key, buckets in sorted(requests.items()):
        count = buckets.get(math.inf, 0.0)
        if count <= 0:
            continue
        group, resource, subresource, verb, scope = key
        rows.append(
            {
                "group": group,
                "resource": resource,
                "subresource": subresource,
                "verb": verb,
                "scope": scope,
                "mutating": verb in MUTATING_VERBS,
                "count": int(count),
                **{f"p{p}": histogram_quantile(p / 100, buckets) for p in (50, 90, 99)},
            }
        )
    return rows


def worst_p99(rows: list[dict[str, Any]], kind: str) -> float:
    """The highest p99 among "mutating" or "list" rows, NaN if none.

    The SLOs hold per (resource, verb) or (resource, scope) pair, so the worst pair decides.  No minimum
    call count: a pair with few calls reports its slowest one, which errs on the side of a visible miss.
    """
    if kind == "mutating":
        chosen = [r["p99"] for r in rows if r["mutating"]]
    else:
        chosen = [r["p99"] for r in rows if r["verb"] == "LIST" and r["scope"] in LIST_SCOPES]
    return max(chosen, default=math.nan)


@dataclass(frozen=True, slots=True)
class Scrape:
    t: float
    requests: dict[CallKey, Buckets]
    watch_delay: Buckets


class ApiLatency:
    """apiserver_request_duration_seconds (and the watch delay) from the API server's /metrics.

    Scraped at start, every interval_s and at stop; figures are the last scrape minus the first (one API
    server lifetime: a restart would reset the counters).  Only the first and latest scrapes are kept,
    plus one timeline point per interval.  A failed scrape is logged and counted in ``scrape_errors``;
    the histograms are cumulative, so the next scrape still covers that interval.
    """

    def __init__(
        self, client: ApiClient | Sequence[ApiClient], interval_s: float = 10.0, *, clock: Clock = time.monotonic
    ):
        #: One client per API server: their histograms are summed, as a cluster-wide SLI is.
        self.clients = list(client) if isinstance(client, Sequence) else [client]
        self.interval_s = interval_s
        self.clock = clock
        self.first: Scrape | None = None
        self.last: Scrape | None = None
        self.scrape_errors = 0
        self._timeline: list[tuple[float, float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Takes the baseline scrape (errors propagate: without it there is nothing to subtract)."""
        await self.scrape()
        self._task = asyncio.create_task(self._loop(), name="density-api-latency")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self._scrape_logged()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._scrape_logged()

    async def _scrape_logged(self) -> None:
        try:
            await self.scrape()
        except (ApiError, TimeoutError, OSError, aiohttp.ClientError) as err:
            self.scrape_errors += 1
            log.warning("scraping /metrics failed: %s", err)

    async def scrape(self) -> None:
        bodies = []
        for client in self.clients:
            code, _, body = await client.request("GET", "/metrics")
            if code != 200:
                raise from_response(code, body)
            bodies.append(body.decode())
        t = self.clock()
        requests: dict[CallKey, Buckets] = {}
        watch_delay: Buckets = {}
        for text in bodies:
            # Parsed off the loop: the pod tracker timestamps events on it.
            one_requests, one_delay = await asyncio.to_thread(parse_metrics, text)
            for key, buckets in one_requests.items():
                requests[key] = _plus(requests.get(key), buckets)
            watch_delay = _plus(watch_delay, one_delay)
        self.add(Scrape(t, requests, watch_delay))

    def add(self, scrape: Scrape) -> None:
        if self.last is not None:
            rows = call_rows({k: _minus(v, self.last.requests.get(k)) for k, v in scrape.requests.items()})
            self._timeline.append((scrape.t, worst_p99(rows, "mutating"), worst_p99(rows, "list")))
        if self.first is None:
            self.first = scrape
        self.last = scrape

    def per_call(self) -> list[dict[str, Any]]:
        """Over the whole run: one row per call kind with count, p50, p90, p99 (seconds) and "mutating"."""
        if self.first is None or self.last is None:
            return []
        first = self.first.requests
        return call_rows({k: _minus(v, first.get(k)) for k, v in self.last.requests.items()})

    def mutating_p99(self) -> float:
        return worst_p99(self.per_call(), "mutating")

    def list_p99(self) -> float:
        return worst_p99(self.per_call(), "list")

    def watch_delay_p99(self) -> float:
        if self.first is None or self.last is None:
            return math.nan
        return histogram_quantile(0.99, _minus(self.last.watch_delay, self.first.watch_delay))

    def timeline(self) -> list[tuple[float, float, float]]:
        """(t, worst mutating p99, worst LIST p99) per scrape interval; NaN where an interval had none."""
        return list(self._timeline)
