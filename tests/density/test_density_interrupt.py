"""`skiff bench density` stopped by SIGINT mid-run: it writes the report of what it measured, marks the run
failed, stops its cluster and exits 1 — no process of the run is left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from skiff.density.report import REQUIRED_KEYS


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _run_processes(out: Path) -> list[int]:
    """PIDs whose command line names the run's directory (its components run in sessions of their own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(out).encode() in cmdline:
                found.append(int(entry.name))
    return found


def test_sigint_writes_the_report_and_stops_the_cluster(tmp_path: Path) -> None:
    out = tmp_path / "density"
    argv = [
        *(sys.executable, "-m", "skiff.cli.main", "bench", "density"),
        *("--nodes", "5", "--pods-per-node", "2", "--create-qps", "50"),
        *("--churn-qps", "1", "--churn-seconds", "600", "--timeout", "300", "--out", str(out)),
    ]
    log = tmp_path / "stdout.log"
    with log.open("w") as stdout:
        process = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        churning = re.compile(r"^\[\s*[0-9.]+s\] churn", re.M)
        while not churning.search(log.read_text()) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert process.poll() is None, log.read_text()[-3000:]
        assert churning.search(log.read_text()), log.read_text()[-3000:]
        children = [pid for pid in _run_processes(out) if pid != process.pid]
        assert len(children) >= 3, children  # API server, controller-manager, scheduler
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 1
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = log.read_text()
    assert "SIGINT: ending the run" in text
    report = orjson.loads((out / "report.json").read_bytes())
    assert report["failure"] == "interrupted by SIGINT"
    assert all(key in report for key in REQUIRED_KEYS)
    assert report["pods"] == 10 and report["nodes_ready_s"] is not None
    assert (out / "report.md").exists()
    left = [pid for pid in children if _alive(pid)]
    assert not left, f"processes of the run still alive: {left}"
