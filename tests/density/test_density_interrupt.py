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


def _children(parent: int) -> list[int]:
    """PIDs whose parent is ``parent``: the run's components (each runs in a session of its own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def _stop(process: subprocess.Popen[str], children: list[int]) -> None:
    """The test's own cleanup when it failed early: the harness gets SIGINT (it stops its cluster), then
    anything left is killed by PID."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for pid in children:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


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
    children: list[int] = []
    try:
        deadline = time.monotonic() + 300
        churning = re.compile(r"^\[\s*[0-9.]+s\] churn", re.M)
        while not churning.search(log.read_text()) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert process.poll() is None, log.read_text()[-3000:]
        assert churning.search(log.read_text()), log.read_text()[-3000:]
        children = _children(process.pid)
        assert len(children) >= 4, children  # API server, controller-manager, scheduler, hollow nodes
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 1
    finally:
        _stop(process, children or _children(process.pid))
    text = log.read_text()
    assert "SIGINT: ending the run" in text
    report = orjson.loads((out / "report.json").read_bytes())
    assert report["failure"] == "interrupted by SIGINT"
    assert all(key in report for key in REQUIRED_KEYS)
    assert report["pods"] == 10 and report["nodes_ready_s"] is not None
    assert (out / "report.md").exists()
    left = [pid for pid in children if _alive(pid)]
    assert not left, f"processes of the run still alive: {left}"
