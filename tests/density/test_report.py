"""The density report: every required figure, consistent with its parts, the same in JSON, Markdown and charts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_observe import FakeClock, exposition, observe_request, pod

from skiff.apiserver.metrics import ApiMetrics
from skiff.density.api_latency import ApiLatency, Scrape, parse_metrics
from skiff.density.config import DensityConfig
from skiff.density.observe import PodTracker, ProcessSampler
from skiff.density.report import REQUIRED_KEYS, build_report, render_markdown, write_report

PHASES = {"nodes_ready": 12.5, "create": 25.0, "running": 1.5, "pods_running": 26.5, "churn": 10.0, "delete": 8.0}


def observers(pods: int = 20) -> tuple[PodTracker, ProcessSampler, ApiLatency]:
    """Observers fed by hand: pod i first seen at 1000 + i/2, bound 0.2 s later, running 1.2-1.6 s after it
    was seen (so bindings, startups and deletions each come in time order), deleted from deletion_start()."""
    clock = FakeClock(1000.0)
    tracker = PodTracker(None, clock=clock)  # type: ignore[arg-type]
    for i in range(pods):
        clock.t = 1000.0 + i / 2
        tracker.observe("ADDED", pod(f"p{i}"))
        clock.t += 0.2
        tracker.observe("MODIFIED", pod(f"p{i}", "n1"))
        clock.t += 1 + (i % 5) / 10
        tracker.observe("MODIFIED", pod(f"p{i}", "n1", running=True))
    for i in range(pods):
        clock.t = deletion_start(pods) + i / 100
        tracker.observe("DELETED", pod(f"p{i}", "n1", running=True))

    sampler = ProcessSampler({}, clock=clock)
    sampler.samples = [
        (1000.0, {"apiserver": 100.0, "scheduler": 40.0}, {}),
        (1001.0, {"apiserver": 150.0, "scheduler": 30.0}, {"apiserver": 80.0, "scheduler": 5.0}),
    ]
    sampler._cpu_first, sampler._cpu_last = {"apiserver": 1.0, "scheduler": 0.5}, {"apiserver": 1.8, "scheduler": 0.55}

    metrics = ApiMetrics()
    latency = ApiLatency(None, clock=clock)  # type: ignore[arg-type]
    latency.add(scrape(metrics, 1000.0, []))
    for _ in range(30):
        observe_request(metrics, "CREATE", "pods", "namespace", 0.03)
        observe_request(metrics, "PATCH", "pods", "resource", 0.3)
        observe_request(metrics, "LIST", "nodes", "cluster", 1.1)
    latency.add(scrape(metrics, 1010.0, [0.002] * 5))
    return tracker, sampler, latency


def deletion_start(pods: int) -> float:
    return 1000.0 + pods / 2 + 10


def scrape(metrics: ApiMetrics, t: float, watch_delays: list[float]) -> Scrape:
    requests, watch_delay = parse_metrics(exposition(metrics, watch_delays).decode())
    return Scrape(t, requests, watch_delay)


def report_of(tmp_path: Path, pods: int = 20, **kw: Any) -> dict[str, Any]:
    tracker, sampler, latency = observers(pods)
    config = DensityConfig(nodes=2, pods_per_node=pods // 2, out=tmp_path)
    return build_report(
        config=config,
        tracker=tracker,
        sampler=sampler,
        latency=latency,
        phases=PHASES,
        churn={"scale": 3, "update": 2, "recreate": 1, "errors": 0},
        extra={"failure": None},
        **kw,
    )


def test_every_required_figure_is_there(tmp_path: Path) -> None:
    report = report_of(tmp_path)
    assert {key: report[key] for key in REQUIRED_KEYS if report[key] is None} == {}
    assert (report["nodes"], report["pods"], report["store"]) == (2, 20, "sqlite")
    assert report["nodes_ready_s"] == 12.5 and report["pods_running_s"] == 26.5
    assert report["peak_rss_mb"] == 180.0
    assert report["peak_rss_mb_by_process"] == {"apiserver": 150.0, "scheduler": 40.0}
    assert report["cpu_seconds_by_process"] == {"apiserver": 0.8, "scheduler": 0.05}
    assert report["pod_counts"] == {
        "created": 20,
        "bound": 20,
        "running_now": 0,
        "deleted": 20,
        "live": 0,
        "running": 20,
        "relists": 0,
    }
    assert report["failure"] is None and report["config"]["out"] == str(tmp_path)


def test_figures_agree_with_their_parts(tmp_path: Path) -> None:
    report = report_of(tmp_path)
    assert report["startup_samples"] == 20
    assert 1.2 <= report["pod_startup_p50_s"] <= report["pod_startup_p90_s"] <= report["pod_startup_p99_s"] <= 1.6
    assert report["mutating_p99_s"] == max(r["p99"] for r in report["api_calls"] if r["mutating"])
    assert 0.2 < report["mutating_p99_s"] <= 0.4  # the PATCH, the worse of the two mutating pairs
    assert 1.0 < report["list_p99_s"] <= 1.25
    assert 0.001 < report["watch_delay_p99_s"] <= 0.01
    assert report["scheduler_pods_per_s"] == report["scheduler"]["average"] <= report["scheduler"]["peak"]
    assert report["slo"] == {"pod_startup": True, "mutating": True, "list": True}
    for row in report["api_calls"]:
        assert row["count"] == 30 and row["p50"] <= row["p90"] <= row["p99"]


def test_report_is_exactly_what_json_holds(tmp_path: Path) -> None:
    report = report_of(tmp_path)
    assert orjson.loads(orjson.dumps(report)) == report


def test_missing_figures_are_none_and_unjudged(tmp_path: Path) -> None:
    config = DensityConfig(nodes=1, pods_per_node=1, out=tmp_path)
    clock = FakeClock()
    report = build_report(
        config=config,
        tracker=PodTracker(None, clock=clock),  # type: ignore[arg-type]
        sampler=ProcessSampler({}, clock=clock),
        latency=ApiLatency(None, clock=clock),  # type: ignore[arg-type]
        phases={},
        churn={},
        extra={},
    )
    assert report["pod_startup_p99_s"] is None and report["mutating_p99_s"] is None
    assert report["slo"] == {"pod_startup": None, "mutating": None, "list": None}
    assert report["time_10k_running_s"] is None and report["pods_running_s"] is None


def test_kwok_gates_count_from_their_phase_start(tmp_path: Path) -> None:
    report = report_of(tmp_path, 10_000, phase_starts={"create": 999.0, "delete": deletion_start(10_000) - 2})
    # the 10,000th pod (i = 9999) runs at 1000 + 4999.5 + 1.2 + 0.4, is deleted 99.99 s after deletions began
    assert report["time_10k_running_s"] == pytest.approx(6001.1 - 999.0)
    assert report["time_10k_deleted_s"] == pytest.approx(99.99 + 2)


def test_kwok_gates_need_ten_thousand_pods_and_their_phase_start(tmp_path: Path) -> None:
    few = report_of(tmp_path, 20, phase_starts={"create": 999.0, "delete": deletion_start(20)})
    assert few["time_10k_running_s"] is None and few["time_10k_deleted_s"] is None
    unanchored = report_of(tmp_path, 10_000)
    assert unanchored["time_10k_running_s"] is None and unanchored["time_10k_deleted_s"] is None


def test_markdown_shows_the_figures(tmp_path: Path) -> None:
    report = report_of(tmp_path)
    table = render_markdown(report)
    assert "| nodes | 2 |" in table
    assert f"| pod_startup_p99_s | {report['pod_startup_p99_s']:.3f} |" in table
    assert f"| mutating | 1.000 | {report['mutating_p99_s']:.3f} | PASS |" in table
    assert "| pods |  | PATCH | resource | 30 |" in table
    assert "| apiserver | 150.000 | 0.800 |" in table
    assert "| nodes_ready | 12.500 |" in table


@pytest.mark.parametrize("empty", [False, True], ids=["measured", "nothing-measured"])
async def test_write_report_writes_json_markdown_and_charts(tmp_path: Path, empty: bool) -> None:
    tracker, sampler, latency = observers()
    if empty:
        clock = FakeClock()
        tracker, sampler = PodTracker(None, clock=clock), ProcessSampler({}, clock=clock)  # type: ignore[arg-type]
        latency = ApiLatency(None, clock=clock)  # type: ignore[arg-type]
    report = {"nodes": 2, "pod_startup_p99_s": 1.5, "slo": {"pod_startup": True}}
    out = tmp_path / "out"
    await write_report(report, out, sampler, latency, tracker)
    assert orjson.loads((out / "report.json").read_bytes()) == report
    assert "| pod_startup_p99_s | 1.500 |" in (out / "report.md").read_text()
    for chart in ("latency.png", "rss.png", "startup.png"):
        assert (out / chart).read_bytes().startswith(b"\x89PNG"), chart


def test_importing_the_report_does_not_load_matplotlib() -> None:
    import subprocess
    import sys

    code = "import sys, skiff.density.report; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_nan_never_reaches_the_report(tmp_path: Path) -> None:
    report = report_of(tmp_path)

    def floats(value: Any) -> list[float]:
        if isinstance(value, float):
            return [value]
        if isinstance(value, dict):
            return [f for v in value.values() for f in floats(v)]
        if isinstance(value, list):
            return [f for v in value for f in floats(v)]
        return []

    assert all(math.isfinite(f) for f in floats(report))


def test_a_running_phase_cut_short_gives_no_time_to_all_running(tmp_path: Path) -> None:
    """Interrupted while waiting for pods (SIGINT, a timeout): the phase has a length, but not every pod ran."""
    interrupted = {"nodes_ready": 12.5, "create": 25.0, "running": 3.0}
    tracker, sampler, latency = observers()
    report = build_report(
        config=DensityConfig(nodes=2, pods_per_node=10, out=tmp_path),
        tracker=tracker,
        sampler=sampler,
        latency=latency,
        phases=interrupted,
        churn={},
        extra={"failure": "interrupted by SIGINT"},
    )
    assert report["pods_running_s"] is None
    assert report["phases"]["running"] == 3.0
