"""Prometheus metrics of the API server, named as kube-apiserver names them.

* ``apiserver_request_total{verb, group, version, resource, subresource, scope, component, code}``
* ``apiserver_request_duration_seconds{verb, group, version, resource, subresource, scope}``
  (watches are excluded, as upstream excludes long-running requests)
* ``apiserver_current_inflight_requests{request_kind}`` — readOnly / mutating
* ``apiserver_longrunning_requests{verb, group, version, resource, subresource, scope}`` — open watches
* ``skiff_watch_event_delay_seconds`` — watch cache → watch stream (skiff.registry.cache_watcher)

Each ``ApiMetrics`` has its own CollectorRegistry, so two servers in one
process (tests) do not collide.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from skiff.apiserver.request_info import RequestInfo
from skiff.registry.cache_watcher import WATCH_METRICS

_LABELS = ("verb", "group", "version", "resource", "subresource", "scope")
#: Upstream's buckets for apiserver_request_duration_seconds.
_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60)
MUTATING = frozenset({"create", "update", "patch", "delete", "deletecollection"})
CONTENT_TYPE = CONTENT_TYPE_LATEST


def labels_of(ri: RequestInfo | None, method: str) -> dict[str, str]:
    if ri is None:
        verb = method.upper()
        return {"verb": verb, "group": "", "version": "", "resource": "", "subresource": "", "scope": ""}
    if ri.name:
        scope = "resource"
    elif ri.namespace:
        scope = "namespace"
    else:
        scope = "cluster"
    return {
        "verb": {"watch": "WATCH", "list": "LIST"}.get(ri.verb, ri.verb.upper()),
        "group": ri.group,
        "version": ri.version,
        "resource": ri.resource,
        "subresource": ri.subresource,
        "scope": scope,
    }


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, group, version, resource, scope, "
            "component, and HTTP response code.",
            (*_LABELS, "component", "code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, group, version, resource, subresource and scope.",
            _LABELS,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.inflight = Gauge(
            "apiserver_current_inflight_requests",
            "Maximal number of currently used inflight request limit of this apiserver per request kind.",
            ("request_kind",),
            registry=self.registry,
        )
        self.longrunning = Gauge(
            "apiserver_longrunning_requests",
            "Gauge of all active long-running apiserver requests broken out by verb, group, version, "
            "resource, scope and component.",
            _LABELS,
            registry=self.registry,
        )

        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Counter | Gauge | Histogram, *values: str) -> Any:
        """``metric.labels(*values)``, remembered: prometheus-client validates and locks on every
        ``labels`` call, a few percent of the API server's CPU at thousands of requests a second."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def exposition(self) -> bytes:
        return generate_latest(self.registry) + generate_latest(WATCH_METRICS)
