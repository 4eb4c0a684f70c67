"""Pods as supervised processes, end to end: logs, exec, port-forward, cp, restarts, limits, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

from cluster_harness import KUBECTL, RunningCluster, cluster
from e2e_manifests import http_get, web_deployment

__all__ = ["cluster"]


def apply(c: RunningCluster, obj: dict[str, object]) -> None:
    c.ok("apply", "-f", "-", stdin=json.dumps(obj))


def pod(
    name: str, command: list[str], *, image: str = "python:3", restart: str = "Always", **container: object
) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 3,
            "containers": [{"name": "main", "image": image, "command": command, **container}],
        },
    }


def status(c: RunningCluster, name: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(c.ok("get", "pod", name, "-o", "json"))["status"]
    return result


def container_status(c: RunningCluster, name: str) -> dict[str, object]:
    statuses = status(c, name).get("containerStatuses") or [{}]
    return statuses[0]  # type: ignore[index,no-any-return]


def pids_with_marker(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return [p for p in found if p != os.getpid()]


def test_logs_follow_exec_port_forward_and_cp(cluster: RunningCluster, tmp_path: Path) -> None:
    c = cluster
    apply(
        c,
        web_deployment("tools")["spec"]["template"]
        | {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tools"}},
    )
    c.wait_for(
        "tools ready",
        lambda: c.ok("get", "pod", "tools", "-o", "jsonpath={.status.containerStatuses[0].ready}") == "true",
    )
    # exec: output and the remote exit code
    code, out, err = c.kubectl("exec", "tools", "--", "sh", "-c", "echo hi; exit 3")
    assert out == "hi\n" and code == 3, (code, out, err)
    # port-forward on a port the kernel picks
    forward = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(c.kubeconfig), "port-forward", "pod/tools", ":8080"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+) -> 8080", line)
        assert match, line
        assert http_get(f"http://127.0.0.1:{match.group(1)}/version") == (200, "v1\n")
    finally:
        forward.terminate()
        forward.wait(timeout=10)
        for pipe in (forward.stdout, forward.stderr):
            if pipe is not None:
                pipe.close()
    # cp in and out (kubectl drives tar inside the container)
    local = tmp_path / "note.txt"
    local.write_text("copied\n")
    c.ok("cp", str(local), "tools:/tmp/skiff-cp-note.txt")
    assert c.ok("exec", "tools", "--", "cat", "/tmp/skiff-cp-note.txt") == "copied\n"
    # logs -f streams new lines as they are written
    apply(
        c,
        pod(
            "ticker", ["python3", "-u", "-c", "import time\nfor i in range(1000):\n print('tick', i); time.sleep(0.2)"]
        ),
    )
    c.wait_for("ticker running", lambda: status(c, "ticker").get("phase") == "Running")
    follow = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(c.kubeconfig), "logs", "-f", "ticker"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert follow.stdout is not None
        lines = [follow.stdout.readline() for _ in range(15)]
    finally:
        follow.terminate()
        follow.wait(timeout=10)
        if follow.stdout is not None:
            follow.stdout.close()
    numbers = [int(x.split()[1]) for x in lines]
    assert numbers == list(range(numbers[0], numbers[0] + 15))


def test_killed_container_restarts_and_crash_loop_backs_off(cluster: RunningCluster) -> None:
    c = cluster
    marker = f"skiff-marker-{uuid.uuid4().hex}"
    apply(c, pod("victim", ["python3", "-c", "import time; time.sleep(3600)", marker]))
    c.wait_for("victim running", lambda: (container_status(c, "victim").get("state") or {}).get("running"))  # type: ignore[union-attr]
    pids = c.wait_for("victim process", lambda: pids_with_marker(marker))
    for pid in pids:  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
    c.wait_for("restartCount 1", lambda: container_status(c, "victim").get("restartCount") == 1)
    c.wait_for("running again", lambda: (container_status(c, "victim").get("state") or {}).get("running"))  # type: ignore[union-attr]
    last = container_status(c, "victim")["lastState"]["terminated"]  # type: ignore[index]
    assert last["exitCode"] == 137 and last["reason"] == "Error", last

    apply(c, pod("crasher", ["sh", "-c", "echo dying; exit 1"], image="busybox"))
    c.wait_for(
        "CrashLoopBackOff",
        lambda: (
            ((container_status(c, "crasher").get("state") or {}).get("waiting") or {}).get("reason")
            == "CrashLoopBackOff"
        ),  # type: ignore[union-attr]
    )
    assert container_status(c, "crasher")["lastState"]["terminated"]["exitCode"] == 1  # type: ignore[index]
    assert "CrashLoopBackOff" in c.ok("get", "pod", "crasher")
    assert c.ok("logs", "crasher", "--previous").strip() == "dying"


def test_memory_limit_kills_with_oomkilled(cluster: RunningCluster) -> None:
    c = cluster
    hog = "x = bytearray(300 * 1024 * 1024); import time; time.sleep(60)"
    apply(c, pod("hog", ["python3", "-c", hog], restart="Never", resources={"limits": {"memory": "64Mi"}}))
    c.wait_for("hog terminated", lambda: (container_status(c, "hog").get("state") or {}).get("terminated"), timeout=60)  # type: ignore[union-attr]
    terminated = container_status(c, "hog")["state"]["terminated"]  # type: ignore[index]
    assert terminated["reason"] == "OOMKilled", terminated
    assert status(c, "hog")["phase"] == "Failed"


def test_bad_input_gets_clear_statuses_and_leaves_nothing_running(cluster: RunningCluster) -> None:
    c = cluster
    apply(c, pod("no-image", ["true"], image="registry.invalid/nothing:1"))
    c.wait_for(
        "image pull failure",
        lambda: (
            ((container_status(c, "no-image").get("state") or {}).get("waiting") or {}).get("reason")  # type: ignore[union-attr]
            in ("ErrImagePull", "ImagePullBackOff")
        ),
    )
    apply(c, pod("too-big", ["true"], resources={"requests": {"cpu": "5000"}}))

    def unschedulable() -> bool:
        conds = status(c, "too-big").get("conditions") or []
        return any(x["type"] == "PodScheduled" and x.get("reason") == "Unschedulable" for x in conds)  # type: ignore[union-attr]

    c.wait_for("Unschedulable", unschedulable)
    events = c.ok("get", "events", "--field-selector", "involvedObject.name=too-big")
    assert "FailedScheduling" in events and "Insufficient cpu" in events
    apply(c, pod("no-command", ["/nonexistent/binary"], restart="Never"))

    def start_failure() -> str:
        st = container_status(c, "no-command")
        state = st.get("state") or {}
        detail = state.get("terminated") or state.get("waiting") or {}  # type: ignore[union-attr]
        return str(detail.get("message", "")) if detail.get("reason") else ""

    message = c.wait_for("start failure", start_failure)
    assert "/nonexistent/binary" in str(message)
    marker = f"skiff-stubborn-{uuid.uuid4().hex}"
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(3600)"
    apply(c, pod("stubborn", ["python3", "-c", stubborn, marker]))
    c.wait_for("stubborn running", lambda: pids_with_marker(marker))
    started = time.monotonic()
    c.ok("delete", "pod", "stubborn", "--wait=true", timeout=60)
    assert not pids_with_marker(marker)
    assert time.monotonic() - started >= 2.5  # the grace period was honoured before SIGKILL
    apply(
        c,
        pod(
            "bad-probe",
            ["python3", "-c", "import time; time.sleep(3600)"],
            livenessProbe={"exec": {"command": ["/nonexistent/probe"]}, "periodSeconds": 1, "failureThreshold": 1},
        ),
    )
    c.wait_for(
        "restarted by its liveness probe", lambda: (container_status(c, "bad-probe").get("restartCount") or 0) >= 1
    )  # type: ignore[operator]
    assert "Unhealthy" in c.ok("get", "events", "--field-selector", "involvedObject.name=bad-probe")
