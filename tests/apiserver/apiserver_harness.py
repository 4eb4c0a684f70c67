"""A real ``skiff apiserver`` process for the HTTP-level suites, one per test module.

Import the fixtures (``apiserver``, ``kubectl``) into a test module.  The
server starts on port 0 with a fresh data dir and a static token file; the
bound URL is read from its stdout, ``/readyz`` is polled (with the generated
CA) until a deadline, and a kubeconfig for the generated admin certificate is
written.  At the end it gets SIGTERM and must exit 0; its logs are printed
when it fails to start or to stop cleanly.  Tests of a module share the
server, so each uses its own object names.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from skiff.apiserver import kubeconfig
from skiff.apiserver.pki import Pki

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


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    base = tmp_path_factory.mktemp("apiserver")
    tokens = base / "tokens.csv"
    tokens.write_text(f'{TOKEN},token-user,42,"team-a,team-b"\n')
    with running_apiserver(base, "--token-auth-file", str(tokens)) as server:
        yield server


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
