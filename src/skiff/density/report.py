"""The density run's report: one dict of figures, written as report.json, report.md and three charts.

``build_report`` only reads the observers; every float in the result is
rounded to microseconds and a figure that could not be measured is ``None``
(never NaN), so the dict equals what report.json holds.  Time values are
seconds, memory values MiB (the ``_mb`` keys keep the names the docs use).
Charts are drawn with matplotlib's Agg canvas, imported only when drawing,
in a worker thread like the file writes.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from skiff.density.api_latency import ApiLatency
from skiff.density.config import DensityConfig
from skiff.density.observe import PodTracker, ProcessSampler, percentile, scheduler_throughput

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REQUIRED_KEYS = (
    "nodes",
    "pods",
    "pod_startup_p99_s",
    "mutating_p99_s",
    "list_p99_s",
    "scheduler_pods_per_s",
    "watch_delay_p99_s",
    "peak_rss_mb",
    "nodes_ready_s",
    "pods_running_s",
)
#: Kubernetes' official SLOs (sig-scalability/slos): p99 pod startup, mutating call, LIST of a namespace/cluster.
SLO_THRESHOLDS_S = {"pod_startup": 5.0, "mutating": 1.0, "list": 30.0}
#: kwok's CI gates time 10,000 pods running (60 s) and deleted (90 s).
KWOK_GATE_PODS = 10_000


def build_report(
    *,
    config: DensityConfig,
    tracker: PodTracker,
    sampler: ProcessSampler,
    latency: ApiLatency,
    phases: Mapping[str, float],
    churn: Mapping[str, int],
    extra: Mapping[str, Any],
    phase_starts: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Every figure of the run.  ``extra`` entries are added last (and win on a name clash).

    ``phase_starts`` (monotonic start of "create" and "delete") anchors the kwok-style gates
    time_10k_running_s / time_10k_deleted_s; they are None without it or with fewer than 10,000 pods.
    """
    startup = tracker.startup_latencies()
    scheduler = scheduler_throughput(tracker.bind_times())
    figures = {
        "pod_startup": percentile(startup, 99),
        "mutating": latency.mutating_p99(),
        "list": latency.list_p99(),
    }
    pods_running = phases.get("pods_running")  # set only when the running phase ended with every pod Running
    starts = phase_starts or {}
    report: dict[str, Any] = {
        "nodes": config.nodes,
        "pods": config.total_pods,
        "pod_startup_p99_s": figures["pod_startup"],
        "mutating_p99_s": figures["mutating"],
        "list_p99_s": figures["list"],
        "scheduler_pods_per_s": scheduler["average"],
        "watch_delay_p99_s": latency.watch_delay_p99(),
        "peak_rss_mb": sampler.peak_rss_sum_mib(),
        "nodes_ready_s": phases.get("nodes_ready"),
        "pods_running_s": pods_running,
        "pod_startup_p50_s": percentile(startup, 50),
        "pod_startup_p90_s": percentile(startup, 90),
        "startup_samples": len(startup),
        "time_10k_running_s": _gate(tracker.time_when_running_reached, starts.get("create")),
        "time_10k_deleted_s": _gate(tracker.time_when_deleted_reached, starts.get("delete")),
        "slo": {
            name: None if math.isnan(figures[name]) else figures[name] <= limit
            for name, limit in SLO_THRESHOLDS_S.items()
        },
        # "running" counts pods that ever ran; snapshot()'s running_now those running at the end.
        "pod_counts": {
            **tracker.snapshot(),
            "running": tracker.count_ever_running(),
            "relists": tracker.relists,
        },
        "scheduler": scheduler,
        "api_calls": latency.per_call(),
        "api_scrape_errors": latency.scrape_errors,
        "peak_rss_mb_by_process": sampler.peak_rss_mib(),
        "cpu_seconds_by_process": sampler.cpu_seconds(),
        "processes_gone": sorted(sampler.gone),
        "phases": dict(phases),
        "churn": dict(churn),
        "store": config.store,
        "create_qps": config.create_qps,
        "config": asdict(config),
        "started_at": _started_at(sampler, latency),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        **extra,
    }
    tidy: dict[str, Any] = _tidy(report)
    return tidy


def _gate(reached: Callable[[int, float], float | None], start: float | None) -> float | None:
    if start is None:
        return None
    t = reached(KWOK_GATE_PODS, start)
    return None if t is None else t - start


def _started_at(sampler: ProcessSampler, latency: ApiLatency) -> str:
    """When measuring began, as UTC wall time (the observers keep monotonic times)."""
    firsts = [sampler.samples[0][0]] if sampler.samples else []
    firsts += [latency.first.t] if latency.first is not None else []
    ago = time.monotonic() - min(firsts) if firsts else 0.0
    return datetime.fromtimestamp(time.time() - ago, UTC).isoformat(timespec="seconds")


def _tidy(value: Any) -> Any:
    """Floats rounded to 1 µs, NaN/inf -> None, paths -> str, tuples -> lists: exactly what JSON will hold."""
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _tidy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_tidy(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# -- files -----------------------------------------------------------------------------------------


async def write_report(
    report: dict[str, Any], out: Path, sampler: ProcessSampler, latency: ApiLatency, tracker: PodTracker
) -> None:
    """out/report.json, out/report.md, out/latency.png, out/rss.png, out/startup.png (written in a thread)."""
    startup, samples, timeline = tracker.startup_latencies(), list(sampler.samples), latency.timeline()
    starts = [samples[0][0]] if samples else []
    starts += [timeline[0][0]] if timeline else []
    origin = min(starts, default=0.0)
    await asyncio.to_thread(_write_files, report, out, startup, samples, timeline, origin)


def _write_files(
    report: dict[str, Any],
    out: Path,
    startup: list[float],
    samples: list[tuple[float, dict[str, float], dict[str, float]]],
    timeline: list[tuple[float, float, float]],
    origin: float,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    (out / "report.md").write_text(render_markdown(report))
    plot_latency(timeline, origin, out / "latency.png")
    plot_rss(samples, origin, out / "rss.png")
    plot_startup(startup, out / "startup.png")


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "PASS" if value else "MISS"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _pairs(values: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k} {_fmt(v)}" for k, v in (values or {}).items()) or "n/a"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]


def render_markdown(report: Mapping[str, Any]) -> str:
    """The same figures as report.json, as tables: figures, SLOs, phases, processes, API calls."""
    figures = [*REQUIRED_KEYS, "pod_startup_p50_s", "pod_startup_p90_s", "time_10k_running_s", "time_10k_deleted_s"]
    slo = report.get("slo") or {}
    sched = report.get("scheduler") or {}
    rss, cpu = report.get("peak_rss_mb_by_process") or {}, report.get("cpu_seconds_by_process") or {}
    machine = report.get("machine") or {}
    lines = [
        f"# Density: {report.get('nodes')} nodes, {report.get('pods')} pods, {report.get('store')} store",
        "",
        f"Started {report.get('started_at')} on {machine.get('cpus')} CPUs, {_fmt(machine.get('memory_gib'))} GiB, "
        f"Python {machine.get('python')}, {machine.get('system')}.",
        "",
        *_table(("figure", "value"), [(key, report.get(key)) for key in figures]),
        "",
        "## SLOs (p99)",
        "",
        *_table(
            ("SLO", "threshold s", "measured s", "verdict"),
            [(name, limit, report.get(f"{name}_p99_s"), slo.get(name)) for name, limit in SLO_THRESHOLDS_S.items()],
        ),
        "",
        f"Scheduler throughput (pods/s, 1 s windows): average {_fmt(sched.get('average'))}, "
        f"peak {_fmt(sched.get('peak'))}, sustained (median) {_fmt(sched.get('sustained'))}.",
        "",
        f"Pods: {_pairs(report.get('pod_counts'))}.  Churn: {_pairs(report.get('churn'))}.",
        "",
        "## Phases",
        "",
        *_table(("phase", "seconds"), list((report.get("phases") or {}).items())),
        "",
        "## Processes",
        "",
        *_table(("process", "peak RSS MiB", "CPU s"), [(name, rss[name], cpu.get(name)) for name in rss]),
        "",
        "## API calls (whole run)",
        "",
        *_table(
            ("resource", "subresource", "verb", "scope", "calls", "p50 s", "p90 s", "p99 s"),
            [
                (r["resource"], r["subresource"], r["verb"], r["scope"], r["count"], r["p50"], r["p90"], r["p99"])
                for r in report.get("api_calls") or []
            ],
        ),
        "",
    ]
    return "\n".join(lines)


# -- charts ----------------------------------------------------------------------------------------


def _figure(title: str) -> Figure:
    """A figure on the Agg canvas, without pyplot's global state (safe in a worker thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title)
    return fig


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def plot_latency(timeline: list[tuple[float, float, float]], origin: float, path: Path) -> None:
    fig = _figure("API call latency, worst pair's p99 per scrape interval")
    ax = fig.add_subplot()
    if timeline:
        ts = [t - origin for t, _, _ in timeline]
        ax.plot(ts, [m for _, m, _ in timeline], marker=".", color="tab:red", label="mutating p99")
        ax.plot(ts, [li for _, _, li in timeline], marker=".", color="tab:blue", label="LIST p99")
        ax.axhline(SLO_THRESHOLDS_S["mutating"], color="tab:red", linestyle="--", label="mutating SLO")
        ax.axhline(SLO_THRESHOLDS_S["list"], color="tab:blue", linestyle="--", label="LIST SLO")
        ax.set_yscale("log")
        ax.legend()
    else:
        _no_data(ax)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("seconds")
    fig.savefig(path, dpi=100)


def plot_rss(samples: list[tuple[float, dict[str, float], dict[str, float]]], origin: float, path: Path) -> None:
    fig = _figure("Resident memory of the control plane")
    ax = fig.add_subplot()
    names = sorted({name for _, rss, _ in samples for name in rss})
    if names:
        ts = [t - origin for t, _, _ in samples]
        for name in names:
            ax.plot(ts, [rss.get(name, math.nan) for _, rss, _ in samples], label=name)
        ax.plot(ts, [sum(rss.values()) for _, rss, _ in samples], color="black", linestyle="--", label="total")
        ax.legend()
    else:
        _no_data(ax)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("MiB")
    fig.savefig(path, dpi=100)


def plot_startup(latencies: list[float], path: Path) -> None:
    fig = _figure("Pod startup latency (first watch event to running), CDF")
    ax = fig.add_subplot()
    if latencies:
        ordered = sorted(latencies)
        ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], color="tab:green")
        ax.axvline(SLO_THRESHOLDS_S["pod_startup"], color="tab:red", linestyle="--", label="SLO (p99)")
        ax.axhline(0.99, color="grey", linestyle=":", label="p99")
        ax.legend()
    else:
        _no_data(ax)
    ax.set_xlabel("seconds")
    ax.set_ylabel("fraction of pods")
    fig.savefig(path, dpi=100)
