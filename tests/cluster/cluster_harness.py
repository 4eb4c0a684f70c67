"""A real ``skiff up`` cluster for end-to-end tests: every component a real process.

``running_cluster`` starts ``skiff up`` on a fresh data dir (its own address
plan in 127.N.0.0/16, API port picked by the kernel), waits for its "ready"
line, and yields a handle with kubectl, the kubeconfig and the addresses.  At
the end it sends SIGTERM, asserts a clean exit 0, and asserts that no process
the cluster started (the whole descendant tree, pods included) survives;
logs are printed when anything fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from skiff.localcluster.addresses import SLOT_FILE, ClusterAddresses, plan

KUBECTL = "/usr/bin/kubectl"
READY_DEADLINE_S = 120.0
STOP_DEADLINE_S = 90.0


@dataclass
class RunningCluster:
    proc: subprocess.Popen[bytes]
    base: Path
    data_dir: Path
    kubeconfig: Path
    addresses: ClusterAddresses
    node_name: str

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> tuple[int, str, str]:
        cmd = [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.base / "kube-cache"), *args]
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        return done.returncode, done.stdout, done.stderr

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        code, out, err = self.kubectl(*args, stdin=stdin, timeout=timeout)
        assert code == 0, f"kubectl {' '.join(args)} failed ({code}): {err}"
        return out

    def wait_for(self, what: str, check: object, timeout: float = 90.0, interval: float = 0.3) -> object:
        """Poll ``check()`` until it returns something truthy; fail with the logs at the deadline."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            last = check()  # type: ignore[operator]
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}\n{self.logs(tail=60)}")

    def logs(self, tail: int = 200) -> str:
        parts = [f"--- skiff up ---\n{_tail(self.base / 'up.out', tail)}\n{_tail(self.base / 'up.err', tail)}"]
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            parts.append(f"--- {log.name} ---\n{_tail(log, tail)}")
        return "\n".join(parts)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1], start time [19])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of every live process whose parent chain leads to ``pid``."""
    stats = {int(e.name): st for e in Path("/proc").iterdir() if e.name.isdigit() and (st := _stat(int(e.name)))}
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {child for child, st in stats.items() if int(st[1]) in frontier and child not in found}
        found |= children
        frontier = children
    return {(child, stats[child][19]) for child in found}


def _alive(pid: int, started: str) -> bool:
    """Still running and not a reused PID (same start time)."""
    st = _stat(pid)
    return st is not None and st[0] != "Z" and st[19] == started


@contextlib.contextmanager
def running_cluster(base: Path, *extra: str, node_name: str = "skiff-e2e") -> Iterator[RunningCluster]:
    base.mkdir(parents=True, exist_ok=True)
    data_dir = base / "data"
    kubeconfig = base / "kubeconfig"
    out, err = base / "up.out", base / "up.err"
    cmd = [sys.executable, "-m", "skiff.cli.main", "up", "--data-dir", str(data_dir), "--kubeconfig", str(kubeconfig)]
    cmd += ["--api-port", "0", "--node-name", node_name, *extra]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            cmd, stdout=stdout, stderr=stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True
        )
    cluster = RunningCluster(proc, base, data_dir, kubeconfig, plan(0), node_name)
    seen: set[tuple[int, str]] = set()
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while not re.search(r"^skiff up: ready", out.read_text(), re.M):
            assert proc.poll() is None, f"skiff up exited with {proc.returncode}\n{cluster.logs()}"
            assert time.monotonic() < deadline, f"skiff up not ready in time\n{cluster.logs()}"
            time.sleep(0.2)
        cluster.addresses = plan(int((data_dir / SLOT_FILE).read_text()))
        yield cluster
        seen = descendants(proc.pid)
    except BaseException:
        print(cluster.logs(), file=sys.stderr)
        raise
    finally:
        seen |= descendants(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
        leftovers = {pid for pid, started in seen if _alive(pid, started)}
        for pid in leftovers:  # never leave them behind, even when the assertion below fails
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if code != 0 or leftovers:
            print(cluster.logs(), file=sys.stderr)
        assert code == 0, f"skiff up exited with {code} after SIGTERM"
        assert not leftovers, f"processes left running after skiff up stopped: {sorted(leftovers)}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@contextlib.contextmanager
def extra_kubelet(
    c: RunningCluster, name: str, index: int, credentials: list[str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Another node on this machine (``skiff kubelet`` at the cluster's node address ``index``).

    ``credentials`` are its flags for reaching the API server (default: the
    admin kubeconfig).  Stopped at the end by SIGTERM to its PID (it stops its
    pods first); if it already exited (a test stopped it), nothing is left to
    do.  Its log is printed when the test fails.
    """
    log = c.base / f"kubelet-{name}.log"
    credentials = credentials or ["--kubeconfig", str(c.data_dir / "admin.kubeconfig")]
    cmd = [sys.executable, "-m", "skiff.cli.main", "kubelet", *credentials]
    cmd += [
        "--node-name",
        name,
        "--node-ip",
        c.addresses.extra_node_ip(index),
        "--cluster-dns",
        c.addresses.cluster_dns,
    ]
    cmd += ["--root-dir", str(c.base / f"kubelet-{name}"), "--stop-pods-on-exit"]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
    try:
        yield proc
    except BaseException:
        print(f"--- kubelet {name} ---\n{_tail(log, 200)}", file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
