"""`skiff bench density` end to end, small: 50 hollow nodes x 10 pods on a real control plane.

Asserts that the report is complete and consistent — every pod counted,
percentiles ordered, the phases all ran, the files written — never timings
(those are figures for docs/scale.md, from bigger runs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from skiff.density.report import REQUIRED_KEYS

NODES, PODS_PER_NODE = 50, 10


@pytest.fixture(
    scope="module",
    params=[
        pytest.param([], id="one-apiserver-embedded-store"),
        pytest.param(["--apiservers", "2"], id="two-apiservers-over-skiff-store-serve"),
    ],
)
def density_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("density")
    argv = [
        *(sys.executable, "-m", "skiff.cli.main", "bench", "density", *request.param),
        *("--nodes", str(NODES), "--pods-per-node", str(PODS_PER_NODE)),
        *("--create-qps", "100", "--churn-qps", "10", "--churn-seconds", "10", "--delete-qps", "50"),
        *("--timeout", "240", "--out", str(out)),
    ]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr), out


@pytest.fixture(scope="module")
def report(density_run: tuple[subprocess.CompletedProcess[str], Path]) -> dict:
    done, out = density_run
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return orjson.loads((out / "report.json").read_bytes())


def test_the_report_has_every_required_figure(report: dict) -> None:
    missing = [key for key in REQUIRED_KEYS if report.get(key) is None]
    assert not missing
    assert report["nodes"] == NODES
    assert report["pods"] == NODES * PODS_PER_NODE


def test_every_pod_is_counted(report: dict) -> None:
    pods = report["pod_counts"]
    # Churn replaces pods (rolling updates, recreated Deployments), so more pods than planned lived and died.
    assert pods["created"] >= NODES * PODS_PER_NODE
    assert pods["running"] >= NODES * PODS_PER_NODE
    assert pods["deleted"] == pods["created"]
    assert pods["live"] == 0
    assert report["startup_samples"] >= NODES * PODS_PER_NODE


def test_percentiles_are_ordered(report: dict) -> None:
    assert 0 < report["pod_startup_p50_s"] <= report["pod_startup_p90_s"] <= report["pod_startup_p99_s"]
    for row in report["api_calls"]:
        assert row["p50"] <= row["p90"] <= row["p99"], row
        assert row["count"] > 0
    assert report["mutating_p99_s"] == max(r["p99"] for r in report["api_calls"] if r["mutating"])


def test_throughput_and_resources_are_measured(
    density_run: tuple[subprocess.CompletedProcess[str], Path], report: dict
) -> None:
    scheduler = report["scheduler"]
    assert 0 < scheduler["average"] <= scheduler["peak"]
    assert report["scheduler_pods_per_s"] == scheduler["average"]
    by_process = report["peak_rss_mb_by_process"]
    assert max(by_process.values()) <= report["peak_rss_mb"] <= sum(by_process.values()) + 0.01  # rounding
    processes = {"apiserver", "controller-manager", "scheduler"}
    if "--apiservers" in density_run[0].args:
        processes |= {"apiserver-1", "store"}
        # Every API server's requests are counted: the hollow nodes (Leases) talk to the second one.
        assert any(row["resource"] == "leases" and row["verb"] == "UPDATE" for row in report["api_calls"])
    assert processes <= set(report["peak_rss_mb_by_process"])
    assert all(v > 0 for v in report["cpu_seconds_by_process"].values())


def test_every_phase_ran(report: dict) -> None:
    assert {"nodes_ready", "create", "running", "churn", "settle", "delete"} <= set(report["phases"])
    assert report["churn"]["scale"] + report["churn"]["update"] + report["churn"]["recreate"] > 0
    assert report["failure"] is None
    assert not any(report["restarts"].values())


def test_report_files_are_written(density_run: tuple[subprocess.CompletedProcess[str], Path], report: dict) -> None:
    done, out = density_run
    table = (out / "report.md").read_text()
    assert f"| nodes | {NODES} |" in table
    assert f"{report['pod_startup_p99_s']:.3f}" in table
    for chart in ("latency.png", "rss.png", "startup.png"):
        assert (out / chart).read_bytes().startswith(b"\x89PNG"), chart
    assert "running" in done.stdout  # progress lines while it ran
