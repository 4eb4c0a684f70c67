"""A real ``skiff apiserver`` process for the HTTP-level suites, one per test module.

Import the fixtures (``apiserver``, ``kubectl``) into a test module.  The
server starts on port 0 with a fresh data dir and a static token file; the
bound URL is read from its stdout, ``/readyz`` is polled (with the generated
CA) until a deadline, and a kubeconfig for the generated admin certificate is
written.  At the end it gets SIGTERM and must exit 0; its logs are printed
when it fails to start or to stop cleanly.  Tests of a module share the
server, so each uses its own object names.

``in_process_apiserver`` serves the same API from the test process instead,
for tests that hand the server a Python object (an ``Authorizer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from skiff.apiserver import kubeconfig
from skiff.apiserver.auth import Authorizer
from skiff.apiserver.pki import Pki

T = TypeVar("T")

START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0
TOKEN = "t0ken-for-tests"
KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"


@dataclass(frozen=True)
class RunningApiServer:
    url: str
    host: str
    port: int
    data_dir: Path
    kubeconfig: Path
    pki: Pki
    log_out: Path
    log_err: Path

    def ssl_context(self, client_cert: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        if client_cert:
            ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return ctx

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        client_cert: bool = True,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTPS request: (status, headers, exact body bytes)."""
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ssl_context(client_cert), timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def logs(self) -> str:
        return f"--- stdout ---\n{self.log_out.read_text()}\n--- stderr ---\n{self.log_err.read_text()}"


def _wait_for_url(proc: subprocess.Popen[bytes], out: Path, deadline: float) -> str:
    while time.monotonic() < deadline:
        match = re.search(r"on (https://\S+)", out.read_text())
        if match:
            return match.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"skiff apiserver exited with {proc.returncode} before listening")
        time.sleep(0.05)
    raise TimeoutError("skiff apiserver did not report its address in time")


def _wait_ready(server: RunningApiServer, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            status, _, _ = server.request("GET", "/readyz", client_cert=False)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("skiff apiserver did not become ready in time")


@contextlib.contextmanager
def running_apiserver(base: Path, *extra_args: str, data_dir: Path | None = None) -> Iterator[RunningApiServer]:
    """``skiff apiserver --secure-port 0 [extra_args]`` with logs and kubeconfig in ``base``.

    ``data_dir`` defaults to ``base/data`` and may be reused across runs (the PKI
    is kept, the port is new, the kubeconfig rewritten).  Stopped by SIGTERM to
    its PID at the end; a clean exit 0 is asserted, and logs are printed on failure.
    """
    data_dir = data_dir or base / "data"
    base.mkdir(parents=True, exist_ok=True)
    out, err = base / "stdout.log", base / "stderr.log"
    cmd = [
        sys.executable,
        "-m",
        "skiff.cli.main",
        "apiserver",
        "--data-dir",
        str(data_dir),
        "--secure-port",
        "0",
        *extra_args,
    ]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        url = _wait_for_url(proc, out, deadline)
        host, port = url.removeprefix("https://").rsplit(":", 1)
        pki = Pki(data_dir / "pki")
        config_path = base / "kubeconfig"
        kubeconfig.write(config_path, kubeconfig.build(url, pki), merge_existing=False)
        server = RunningApiServer(url, host, int(port), data_dir, config_path, pki, out, err)
        _wait_ready(server, deadline)
        yield server
    except BaseException:
        print(f"--- stdout ---\n{out.read_text()}\n--- stderr ---\n{err.read_text()}", file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if code != 0:
            print(f"--- stdout ---\n{out.read_text()}\n--- stderr ---\n{err.read_text()}", file=sys.stderr)
        assert code == 0, f"skiff apiserver exited with {code} after SIGTERM"


@contextlib.contextmanager
def in_process_apiserver(base: Path, authorizer: Authorizer | None = None, **config: Any) -> Iterator[RunningApiServer]:
    """An ``ApiServer`` (port 0, sqlite in ``base/data``) served from this process, for what cannot
    cross a process boundary: ``authorizer`` replaces the --authorization-mode chain.

    It runs on an event loop of its own in a background thread (each test has its own loop; the
    server outlives them), so tests drive it only over its port.  ``config`` adds ApiServerConfig
    fields.  Warnings and errors the server logs go to ``base/stderr.log``; stop() must succeed.
    """
    from skiff.apiserver.server import ApiServer, ApiServerConfig  # heavy: only tests that serve in-process pay

    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    out, err = base / "stdout.log", base / "stderr.log"
    out.touch()
    handler = logging.FileHandler(err)
    handler.setLevel(logging.WARNING)
    logging.getLogger("skiff").addHandler(handler)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="in-process-apiserver", daemon=True)
    thread.start()

    def call(coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    settings = ApiServerConfig(f"sqlite://{data_dir / 'skiff.db'}", data_dir, secure_port=0, **config)
    server = ApiServer(settings, authorizer=authorizer)
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        call(server.start(), START_DEADLINE_S)
        assert server.secure_address is not None and server.pki is not None
        host, port = server.secure_address
        config_path = base / "kubeconfig"
        kubeconfig.write(config_path, kubeconfig.build(server.url, server.pki), merge_existing=False)
        running = RunningApiServer(server.url, host, port, data_dir, config_path, server.pki, out, err)
        _wait_ready(running, deadline)
        yield running
    except BaseException:
        print(f"--- server log ---\n{err.read_text()}", file=sys.stderr)
        raise
    finally:
        try:
            call(server.stop(), STOP_DEADLINE_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(STOP_DEADLINE_S)
            loop.close()
            logging.getLogger("skiff").removeHandler(handler)
            handler.close()


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    base = tmp_path_factory.mktemp("apiserver")
    tokens = base / "tokens.csv"
    tokens.write_text(f'{TOKEN},token-user,42,"team-a,team-b"\n')
    with running_apiserver(base, "--token-auth-file", str(tokens)) as server:
        bind_cluster_admin(server, "token-user")
        yield server


def bind_cluster_admin(server: RunningApiServer, user: str) -> None:
    """A ClusterRoleBinding making ``user`` an administrator (RBAC is on by default), written with the admin cert."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"test-{user}-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    path = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"
    status, _, body = server.request("POST", path, json.dumps(binding).encode(), {"Content-Type": "application/json"})
    assert status == 201, body
    # RBAC reads its watch cache: wait until the binding counts.
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": user, "resourceAttributes": {"verb": "delete", "resource": "nodes"}},
    }
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, _, answer = server.request(
            "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", json.dumps(review).encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        if json.loads(answer)["status"]["allowed"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"{user} did not become an administrator")


@pytest.fixture
def kubectl(apiserver: RunningApiServer, tmp_path: Path) -> Kubectl:
    return Kubectl(apiserver, tmp_path / "kube-cache")


class Kubectl:
    """Runs the real kubectl 1.32 against the server; ``run`` returns (exit code, stdout, stderr)."""

    def __init__(self, server: RunningApiServer, cache_dir: Path) -> None:
        self.server = server
        self.cache_dir = cache_dir

    def run(self, *args: str, stdin: str | None = None, timeout: float = 60) -> tuple[int, str, str]:
        cmd = [KUBECTL, "--kubeconfig", str(self.server.kubeconfig), "--cache-dir", str(self.cache_dir), *args]
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        return done.returncode, done.stdout, done.stderr

    def ok(self, *args: str, stdin: str | None = None) -> str:
        code, out, err = self.run(*args, stdin=stdin)
        assert code == 0, f"kubectl {' '.join(args)} failed ({code}): {err}\n{self.server.logs()}"
        return out
