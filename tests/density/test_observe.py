"""The density observers' pure parts: percentiles, PromQL's histogram_quantile, pod timing, throughput, /proc."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from skiff.apiserver.metrics import ApiMetrics
from skiff.client import ApiError, WatchEvent
from skiff.density.api_latency import WATCH_DELAY, ApiLatency, histogram_quantile, parse_metrics
from skiff.density.observe import (
    PodTracker,
    ProcessSampler,
    is_running,
    percentile,
    read_usage,
    scheduler_throughput,
)


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def pod(uid: str, node: str | None = None, running: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending"}
    if running:
        status = {"phase": "Running", "containerStatuses": [{"name": "c", "started": True, "ready": True}]}
    return {
        "metadata": {"uid": uid, "name": uid, "namespace": "density-0", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": node} if node else {},
        "status": status,
    }


# -- percentiles -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        pytest.param([], 99, math.nan, id="empty"),
        pytest.param([3.0], 50, 3.0, id="one"),
        pytest.param([5.0, 1.0, 3.0, 2.0, 4.0], 50, 3.0, id="unsorted-median"),
        pytest.param([float(i) for i in range(1, 101)], 99, 99.0, id="nearest-rank-p99"),
        pytest.param([float(i) for i in range(1, 101)], 100, 100.0, id="max"),
        pytest.param([1.0, 2.0], 1, 1.0, id="low-rank-is-first"),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float) -> None:
    got = percentile(values, p)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected


def test_percentiles_are_ordered() -> None:
    values = [((i * 7919) % 1000) / 100 for i in range(1000)]
    assert percentile(values, 50) <= percentile(values, 90) <= percentile(values, 99) <= max(values)


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        pytest.param(0.5, {0.1: 10, 0.2: 20, math.inf: 20}, 0.1, id="rank-at-bucket-top"),
        pytest.param(0.75, {0.1: 10, 0.2: 20, math.inf: 20}, 0.15, id="interpolated"),
        pytest.param(0.25, {0.1: 10, 0.2: 20, math.inf: 20}, 0.05, id="first-bucket-from-zero"),
        pytest.param(0.99, {0.1: 5, 0.2: 5, math.inf: 10}, 0.2, id="rank-in-inf-bucket-gives-highest-bound"),
        pytest.param(0.5, {0.1: 0, 0.2: 0, math.inf: 0}, math.nan, id="no-observations"),
        pytest.param(0.5, {0.1: 3}, math.nan, id="no-inf-bucket"),
        pytest.param(0.0, {0.1: 0, 0.2: 4, math.inf: 4}, 0.0, id="q0"),
    ],
)
def test_histogram_quantile_matches_promql(q: float, buckets: dict[float, float], expected: float) -> None:
    got = histogram_quantile(q, buckets)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


# -- /metrics --------------------------------------------------------------------------------------


def observe_request(
    metrics: ApiMetrics, verb: str, resource: str, scope: str, seconds: float, version: str = "v1"
) -> None:
    labels = {"verb": verb, "group": "", "version": version, "resource": resource, "subresource": "", "scope": scope}
    metrics.latency.labels(**labels).observe(seconds)


def exposition(metrics: ApiMetrics, watch_delays: Sequence[float] = ()) -> bytes:
    """The request histograms of one ApiMetrics plus a watch-delay histogram of our own."""
    registry = CollectorRegistry()
    delay = Histogram(WATCH_DELAY, "watch delay", buckets=(0.001, 0.01, 0.1, 1), registry=registry)
    for d in watch_delays:
        delay.observe(d)
    return generate_latest(metrics.registry) + generate_latest(registry)


def test_parse_metrics_reads_the_apiserver_histograms() -> None:
    metrics = ApiMetrics()
    observe_request(metrics, "CREATE", "pods", "namespace", 0.03)
    observe_request(metrics, "CREATE", "pods", "namespace", 0.03, version="v2")  # versions are summed
    observe_request(metrics, "LIST", "pods", "cluster", 2.0)
    requests, watch_delay = parse_metrics(exposition(metrics, [0.005]).decode())
    create = requests[("", "pods", "", "CREATE", "namespace")]
    assert create[math.inf] == 2 and create[0.025] == 0 and create[0.05] == 2
    assert requests[("", "pods", "", "LIST", "cluster")][math.inf] == 1
    assert watch_delay[math.inf] == 1 and watch_delay[0.001] == 0 and watch_delay[0.01] == 1


class MetricsClient:
    """Answers GET /metrics with the current exposition of an ApiMetrics, or a failure."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self.metrics = metrics
        self.watch_delays: list[float] = []
        self.fail = False

    async def request(self, method: str, path: str, **_: Any) -> tuple[int, dict[str, str], bytes]:
        assert (method, path) == ("GET", "/metrics")
        if self.fail:
            return 503, {}, b"down"
        return 200, {}, exposition(self.metrics, self.watch_delays)


async def test_api_latency_reports_the_run_minus_the_baseline() -> None:
    metrics, clock = ApiMetrics(), FakeClock()
    client = MetricsClient(metrics)
    observe_request(metrics, "CREATE", "pods", "namespace", 50.0)  # before the run: not counted
    latency = ApiLatency(client, interval_s=3600, clock=clock)  # type: ignore[arg-type]
    await latency.start()
    for _ in range(20):
        observe_request(metrics, "CREATE", "pods", "namespace", 0.01)
        observe_request(metrics, "LIST", "pods", "namespace", 0.3)
    observe_request(metrics, "DELETECOLLECTION", "pods", "namespace", 9.0)  # not a single-object call
    observe_request(metrics, "GET", "pods", "resource", 0.01)
    client.watch_delays = [0.005] * 10
    clock.t += 10
    await latency.scrape()
    client.fail = True
    await latency.stop()  # the final scrape fails: logged, counted, figures from the last good one
    assert latency.scrape_errors == 1

    rows = {(r["verb"], r["scope"]): r for r in latency.per_call()}
    assert set(rows) == {
        ("CREATE", "namespace"),
        ("LIST", "namespace"),
        ("DELETECOLLECTION", "namespace"),
        ("GET", "resource"),
    }
    create = rows[("CREATE", "namespace")]
    assert create["count"] == 20 and create["mutating"] and create["p99"] <= 0.025
    assert not rows[("DELETECOLLECTION", "namespace")]["mutating"]
    assert latency.mutating_p99() == create["p99"]
    assert latency.list_p99() == rows[("LIST", "namespace")]["p99"]
    assert 0.2 < latency.list_p99() <= 0.4
    assert 0.001 < latency.watch_delay_p99() <= 0.01
    ((t, mutating, listing),) = latency.timeline()
    assert (t, mutating, listing) == (110.0, latency.mutating_p99(), latency.list_p99())


async def test_api_latency_without_calls_has_no_figures() -> None:
    latency = ApiLatency(MetricsClient(ApiMetrics()), clock=FakeClock())  # type: ignore[arg-type]
    assert latency.per_call() == [] and math.isnan(latency.mutating_p99()) and math.isnan(latency.watch_delay_p99())


# -- pods ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param({"phase": "Pending"}, False, id="pending"),
        pytest.param({"phase": "Running"}, False, id="no-container-statuses"),
        pytest.param(
            {"phase": "Running", "containerStatuses": [{"started": True}, {"started": False}]},
            False,
            id="one-not-started",
        ),
        pytest.param(
            {"phase": "Running", "containerStatuses": [{"started": True}, {"state": {"running": {}}}]},
            True,
            id="all-started",
        ),
    ],
)
def test_is_running_needs_every_container_started(status: dict[str, Any], expected: bool) -> None:
    assert is_running({"status": status}) is expected


def test_pod_tracker_times_each_pods_life() -> None:
    clock = FakeClock()
    tracker = PodTracker(None, clock=clock)  # type: ignore[arg-type]
    tracker.observe("ADDED", pod("old", "n1", running=True), listed=True)  # existed before: not timed
    for i, uid in enumerate(("a", "b")):
        clock.t = 100.0 + i
        tracker.observe("ADDED", pod(uid))
    clock.t = 102.0
    tracker.observe("MODIFIED", pod("a", "n1"))
    tracker.observe("MODIFIED", pod("b", "n2"))
    clock.t = 103.5
    tracker.observe("MODIFIED", pod("a", "n1", running=True))
    clock.t = 104.0
    tracker.observe("MODIFIED", pod("a", "n1", running=True))  # later events do not move the times
    tracker.observe("MODIFIED", pod("b", "n2", running=True))

    assert sorted(tracker.startup_latencies()) == [3.0, 3.5]
    assert tracker.bind_times() == [100.0, 102.0, 102.0]
    assert tracker.count_running() == 3 and tracker.count_live() == 3
    assert tracker.time_when_running_reached(2) == 103.5
    assert tracker.time_when_running_reached(2, after=101.0) == 104.0
    assert tracker.time_when_running_reached(3, after=101.0) is None

    clock.t = 110.0
    tracker.observe("DELETED", pod("a", "n1", running=True))
    clock.t = 111.0
    tracker.observe("MODIFIED", pod("a", "n1"))  # after deletion: ignored
    tracker.observe("DELETED", pod("gone-before-seen"))
    assert tracker.snapshot() == {"created": 4, "bound": 3, "running_now": 2, "deleted": 2, "live": 2}
    assert tracker.count_ever_running() == 3
    assert tracker.time_when_deleted_reached(2) == 111.0 and tracker.time_when_deleted_reached(3) is None


class PodsClient:
    """A LIST answer per call and one scripted watch: events, then 410 Gone; later watches park."""

    def __init__(self, lists: list[list[dict[str, Any]]], events: list[WatchEvent]) -> None:
        self.lists = lists
        self.events = events
        self.watches: list[str | None] = []

    async def list_all(self, res: Any, namespace: Any = None, **_: Any) -> dict[str, Any]:
        return {"metadata": {"resourceVersion": str(10 * len(self.watches) + 1)}, "items": self.lists.pop(0)}

    async def watch(self, res: Any, namespace: Any = None, **kw: Any) -> AsyncIterator[WatchEvent]:
        self.watches.append(kw.get("resource_version"))
        if len(self.watches) > 1:
            await asyncio.Event().wait()
        for event in self.events:
            yield event
        raise ApiError(410, "Expired", "too old resource version")


async def test_pod_tracker_relists_after_410_and_counts_missed_deletions() -> None:
    clock = FakeClock()
    created = pod("a")
    created["metadata"]["resourceVersion"] = "5"
    client = PodsClient(lists=[[], [pod("b", "n1", running=True)]], events=[WatchEvent("ADDED", created)])
    tracker = PodTracker(client, clock=clock)  # type: ignore[arg-type]
    await tracker.start()
    try:
        for _ in range(100):
            if len(client.watches) == 2:
                break
            await asyncio.sleep(0)
        assert client.watches == ["1", "11"]  # the first from the LIST's version, then from the relist's
        assert tracker.relists == 1
        assert tracker.snapshot() == {"created": 2, "bound": 1, "running_now": 1, "deleted": 1, "live": 1}
        assert tracker.startup_latencies() == []  # "b" was first seen in a LIST
    finally:
        await tracker.stop()


# -- throughput ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        pytest.param([], {"average": 0.0, "peak": 0.0, "sustained": 0.0}, id="none"),
        pytest.param([5.0], {"average": 1.0, "peak": 1.0, "sustained": 1.0}, id="one"),
        # windows from 0.0: [0,1) 3, [1,2) 0, [2,3) 1  -> average 4/3, peak 3, median of (3, 1) nearest rank 1
        pytest.param([0.0, 0.2, 0.9, 2.5], {"average": 4 / 3, "peak": 3.0, "sustained": 1.0}, id="gap"),
        pytest.param([0.0, 0.5, 1.0, 1.5], {"average": 2.0, "peak": 2.0, "sustained": 2.0}, id="steady"),
    ],
)
def test_scheduler_throughput_windows(times: list[float], expected: dict[str, float]) -> None:
    assert scheduler_throughput(times) == pytest.approx(expected)


def test_scheduler_average_never_exceeds_peak() -> None:
    times = sorted(((i * 7919) % 10007) / 997 for i in range(500))
    got = scheduler_throughput(times, window_s=0.5)
    assert 0 < got["average"] <= got["peak"] and got["sustained"] <= got["peak"]


# -- processes -------------------------------------------------------------------------------------


def test_read_usage_of_this_process() -> None:
    rss_mib, cpu_s = read_usage(os.getpid())
    assert rss_mib > 10 and cpu_s > 0


async def test_process_sampler_keeps_peaks_and_cpu_between_samples() -> None:
    clock = FakeClock()
    sampler = ProcessSampler({"me": os.getpid(), "ghost": 2**22 + 1}, clock=clock)
    await sampler.sample()
    sum(i * i for i in range(200_000))  # burn a little CPU between the samples
    clock.t += 1.0
    await sampler.sample()
    (t0, rss0, cpu0), (t1, rss1, cpu1) = sampler.samples
    assert (t0, t1) == (100.0, 101.0) and set(rss0) == {"me"} and cpu0 == {}
    assert sampler.gone == {"ghost"}
    assert cpu1["me"] >= 0
    assert sampler.peak_rss_mib() == {"me": max(rss0["me"], rss1["me"])}
    assert sampler.peak_rss_sum_mib() == max(rss0["me"], rss1["me"])
    assert sampler.cpu_seconds()["me"] == pytest.approx(cpu1["me"] / 100)
