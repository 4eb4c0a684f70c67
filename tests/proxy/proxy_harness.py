"""A real ``skiff proxy`` process and real backends for the proxy integration suites.

Address choice: the test machine runs other suites at the same time, and all
of them share the loopback network, so each run takes a random /24 for its
cluster IPs, a random node IP and random backend addresses (all inside
127.0.0.0/8) instead of the cluster defaults.  Every process started here is
stopped by PID (SIGTERM, then SIGKILL after a deadline); the proxy must exit 0.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from apiserver_harness import RunningApiServer

START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0
WAIT_S = 30.0

T = TypeVar("T")


def random_net(first: int) -> str:
    """``127.<first>.<random>`` : a /24 prefix unlikely to collide with a parallel run."""
    return f"127.{first}.{random.randint(1, 254)}"


@dataclass
class RunningProxy:
    proc: subprocess.Popen[bytes]
    dns: tuple[str, int]
    healthz: tuple[str, int]
    node_ip: str
    lb_range: str
    out: Path
    err: Path

    def logs(self) -> str:
        return f"--- proxy stdout ---\n{self.out.read_text()}\n--- proxy stderr ---\n{self.err.read_text()}"


def stop_process(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@contextmanager
def running_proxy(
    server: RunningApiServer, base: Path, node_ip: str, lb_range: str, *, pass_node_ip: bool = True
) -> Iterator[RunningProxy]:
    """``skiff proxy`` with DNS on ``node_ip`` (any port); NodePorts on ``node_ip`` or, without
    ``pass_node_ip``, on the Nodes' InternalIPs."""
    base.mkdir(parents=True, exist_ok=True)
    out, err = base / "proxy.out", base / "proxy.err"
    cmd = [
        sys.executable,
        "-m",
        "skiff.cli.main",
        "proxy",
        "--kubeconfig",
        str(server.kubeconfig),
        *(["--node-ip", node_ip] if pass_node_ip else []),
        "--cluster-dns",
        f"{node_ip}",
        "--dns-port",
        "0",
        "--healthz-port",
        "0",
        "--load-balancer-range",
        lb_range,
    ]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    running: RunningProxy | None = None
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            text = out.read_text()
            dns = re.search(r"cluster DNS on (\S+):(\d+)", text)
            health = re.search(r"health on http://(\S+):(\d+)", text)
            if dns and health:
                break
            assert proc.poll() is None, f"skiff proxy exited with {proc.returncode}\n{err.read_text()}"
            assert time.monotonic() < deadline, "skiff proxy did not start in time"
            time.sleep(0.05)
        running = RunningProxy(
            proc,
            (dns.group(1), int(dns.group(2))),
            (health.group(1), int(health.group(2))),
            node_ip,
            lb_range,
            out,
            err,
        )
        yield running
    except BaseException:
        print(f"--- proxy stdout ---\n{out.read_text()}\n--- proxy stderr ---\n{err.read_text()}", file=sys.stderr)
        raise
    finally:
        code = stop_process(proc)
        if code != 0:
            print(f"--- proxy stderr ---\n{err.read_text()}", file=sys.stderr)
        assert code == 0, f"skiff proxy exited with {code} after SIGTERM"


HTTP_BACKEND = """
import http.server, sys
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((host, port), Handler).serve_forever()
"""

UDP_ECHO = """
import socket, sys
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((host, port))
while True:
    data, addr = sock.recvfrom(65535)
    sock.sendto(name.encode() + b":" + data, addr)
"""


@contextmanager
def backends(kind: str, addresses: list[tuple[str, str, int]]) -> Iterator[None]:
    """Start one backend per (name, ip, port): ``kind`` "http" answers GET with its name, "udp" echoes."""
    script = HTTP_BACKEND if kind == "http" else UDP_ECHO
    procs = [
        subprocess.Popen([sys.executable, "-c", script, name, ip, str(port)], stdout=subprocess.DEVNULL)
        for name, ip, port in addresses
    ]
    try:
        if kind == "http":
            for _, ip, port in addresses:
                wait_for(lambda ip=ip, port=port: _connects(ip, port), "backend listening")  # type: ignore[misc]
        else:
            time.sleep(0.3)  # UDP bind gives no readiness signal we can probe without side effects
        yield
    finally:
        for proc in procs:
            stop_process(proc)


def _connects(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], T], what: str, timeout: float = WAIT_S) -> T:
    """Poll ``predicate`` until it returns something truthy (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except (OSError, AssertionError, KeyError) as err:
            last = err
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Api:
    """Just enough JSON-over-HTTPS to create, read, update and delete objects."""

    def __init__(self, server: RunningApiServer) -> None:
        self.server = server

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200, 201),
        content_type: str = "application/json",
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        status, _, raw = self.server.request(method, path, data, {"Content-Type": content_type})
        assert status in ok, f"{method} {path}: {status} {raw[:500]!r}"
        return json.loads(raw) if raw else None

    def create_service(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}
        result: dict[str, Any] = self.call("POST", "/api/v1/namespaces/default/services", body)
        return result

    def patch_service(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        path = f"/api/v1/namespaces/default/services/{name}"
        result: dict[str, Any] = self.call("PATCH", path, patch, content_type="application/merge-patch+json")
        return result

    def get_service(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/api/v1/namespaces/default/services/{name}")
        return result

    def put_slice(self, service: str, ports: list[dict[str, Any]], endpoints: list[dict[str, Any]]) -> None:
        path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
        name = f"{service}-manual"
        body: dict[str, Any] = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": ports,
            "endpoints": endpoints,
        }
        status, _, _ = self.server.request("GET", f"{path}/{name}")
        if status == 404:
            self.call("POST", path, body)
        else:
            self.call("PUT", f"{path}/{name}", body)

    def delete(self, path: str) -> None:
        self.call("DELETE", path, ok=(200, 202, 404))
