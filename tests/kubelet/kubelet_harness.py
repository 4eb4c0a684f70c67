"""A real ``skiff kubelet`` process and small async helpers to poll pods through the API."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apiserver_harness import RunningApiServer

from skiff.client import ApiClient, ClientConfig, is_not_found
from skiff.client.resources import PODS


class KubeletProcess:
    def __init__(self, server: RunningApiServer, base: Path, name: str, ip: str, cidr: str, *extra_args: str) -> None:
        self.extra_args = extra_args
        self.server = server
        self.base = base
        self.name = name
        self.ip = ip
        self.cidr = cidr
        self.root = base / "root"
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, stop_pods_on_exit: bool = True) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.runs += 1
        log = (self.base / f"kubelet-{self.runs}.log").open("wb")
        cmd = [
            sys.executable,
            "-m",
            "skiff.cli.main",
            "kubelet",
            "--node-name",
            self.name,
            "--node-ip",
            self.ip,
            "--root-dir",
            str(self.root),
            "--kubeconfig",
            str(self.server.kubeconfig),
            "--port",
            "0",
            "--pod-cidr",
            self.cidr,
            "--labels",
            "node-role.kubernetes.io/worker=",
        ]
        cmd += self.extra_args
        if stop_pods_on_exit:
            cmd.append("--stop-pods-on-exit")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        log.close()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.base.glob("kubelet-*.log")))

    def stop(self) -> int:
        """SIGTERM; whether pods stop too depends on the flag the kubelet was started with."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if code != 0:
            print(self.logs(), file=sys.stderr)
        return code


def client_for(server: RunningApiServer) -> ApiClient:
    return ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig), user_agent="kubelet-tests")


async def wait_pod(
    client: ApiClient,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    deadline_s: float = 90,
    namespace: str = "default",
) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    pod: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            pod = await client.get(PODS, name, namespace)
        except Exception as err:
            if not is_not_found(err):
                raise
            pod = {}
        if pod and check(pod):
            return pod
        await asyncio.sleep(0.2)
    raise AssertionError(f"pod {name} never satisfied the condition; last: {pod.get('status')}")


async def wait_gone(client: ApiClient, name: str, deadline_s: float = 90, namespace: str = "default") -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            await client.get(PODS, name, namespace)
        except Exception as err:
            if is_not_found(err):
                return
            raise
        await asyncio.sleep(0.2)
    raise AssertionError(f"pod {name} was never deleted")


def container_status(pod: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if name is None or status["name"] == name:
            return dict(status)
    return {}


def pod_spec(name: str, node: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": containers, "terminationGracePeriodSeconds": 2, **spec},
    }
