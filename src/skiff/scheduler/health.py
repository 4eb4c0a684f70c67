"""``/healthz``, ``/readyz`` and Prometheus ``/metrics`` of ``skiff scheduler`` (plain HTTP, loopback by default).

Metric names follow kube-scheduler's where one exists: ``scheduler_pending_pods``
by queue and ``scheduler_schedule_attempts_total`` by result; the counters are
those of the scheduler instance currently leading (they restart with it).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from skiff.scheduler.queue import ACTIVE, BACKOFF, UNSCHEDULABLE
from skiff.scheduler.scheduler import Scheduler


def render_metrics(scheduler: Scheduler | None) -> str:
    lines = [
        "# HELP skiff_scheduler_leader Whether this process is scheduling (holds the leader lease).",
        "# TYPE skiff_scheduler_leader gauge",
        f"skiff_scheduler_leader {int(scheduler is not None)}",
    ]
    if scheduler is None:
        return "\n".join(lines) + "\n"
    counts = scheduler.queue.counts()
    lines += [
        "# HELP scheduler_pending_pods Number of pending pods, by the queue type.",
        "# TYPE scheduler_pending_pods gauge",
    ]
    lines += [f'scheduler_pending_pods{{queue="{name}"}} {counts[name]}' for name in (ACTIVE, BACKOFF, UNSCHEDULABLE)]
    lines += [
        "# HELP scheduler_schedule_attempts_total Number of attempts to schedule pods, by the result.",
        "# TYPE scheduler_schedule_attempts_total counter",
        f'scheduler_schedule_attempts_total{{result="scheduled"}} {scheduler.scheduled}',
        f'scheduler_schedule_attempts_total{{result="unschedulable"}} {scheduler.failed_attempts}',
        f'scheduler_schedule_attempts_total{{result="error"}} {scheduler.bind_errors}',
        "# HELP skiff_scheduler_events_dropped_total Events dropped because the event backlog was full.",
        "# TYPE skiff_scheduler_events_dropped_total counter",
        f"skiff_scheduler_events_dropped_total {scheduler.events.dropped}",
    ]
    return "\n".join(lines) + "\n"


def health_app(current: Callable[[], Scheduler | None]) -> web.Application:
    """``current`` returns the scheduler while this process leads, None while standing by."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=render_metrics(current()), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
