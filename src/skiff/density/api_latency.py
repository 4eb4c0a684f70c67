"""The API servers' own latency histograms, scraped from /metrics, as ClusterLoader2 reads them from Prometheus.

Percentiles are interpolated within buckets as PromQL's ``histogram_quantile``
does; histograms of several API servers are summed (a cluster-wide SLI).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from skiff.client import ApiClient, ApiError
from skiff.client.errors import from_response
from skiff.density.observe import Clock, Periodic

log = logging.getLogger(__name__)


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


class ApiLatency(Periodic):
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

    async def _first(self) -> None:
        await self.scrape()  # the baseline: errors propagate, without it there is nothing to subtract

    async def _tick(self) -> None:
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
