"""``skiff up``: store, etcd v3 API and API server in one process, and a kubeconfig kubectl can use."""

from __future__ import annotations

import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from apiserver_harness import KUBECTL

from conftest import etcd_binary

START_DEADLINE_S = 60.0


def _start_up(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    out = tmp_path / "up.out"
    cmd = [sys.executable, "-m", "skiff.cli.main", "up", "--data-dir", str(tmp_path / "data")]
    cmd += ["--api-port", "0", "--listen", "127.0.0.1:0", *extra]
    with out.open("wb") as stdout, (tmp_path / "up.err").open("wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, env={**os.environ, **(env or {})})
    return proc, out


def _wait_for_kubeconfig_line(proc: subprocess.Popen[bytes], out: Path) -> str:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        text = out.read_text()
        if "kubeconfig" in text:
            return text
        assert proc.poll() is None, f"skiff up exited early: {(out.parent / 'up.err').read_text()}"
        time.sleep(0.05)
    raise TimeoutError("skiff up did not report its kubeconfig in time")


def _stop(proc: subprocess.Popen[bytes], tmp_path: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    assert code == 0, (tmp_path / "up.err").read_text()


def _kubectl(kubeconfig: Path, *args: str) -> str:
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_up_writes_a_working_kubeconfig(tmp_path: Path) -> None:
    target = tmp_path / "kubeconfig"
    proc, out = _start_up(tmp_path, "--kubeconfig", str(target))
    try:
        text = _wait_for_kubeconfig_line(proc, out)
        assert re.search(r"Kubernetes API on https://127(\.\d+){3}:\d+", text)
        assert f"kubeconfig written to {target} (context skiff)" in text
        config = yaml.safe_load(target.read_text())
        assert config["current-context"] == "skiff"
        _kubectl(target, "create", "configmap", "up-cm", "--from-literal=a=b")
        assert _kubectl(target, "get", "configmap", "up-cm", "-o", "jsonpath={.data.a}") == "b"
        _check_etcd_api_is_tls_only(text, tmp_path / "data")
        # Secure by default: secrets are encrypted at rest with a key made on first start.
        encryption = tmp_path / "data" / "pki" / "encryption-config.yaml"
        assert encryption.stat().st_mode & 0o777 == 0o600
        assert yaml.safe_load(encryption.read_text())["resources"][0]["resources"] == ["secrets"]
        _kubectl(target, "create", "secret", "generic", "up-secret", "--from-literal=p=up-plaintext-4b1e")
        assert _kubectl(target, "get", "secret", "up-secret", "-o", "jsonpath={.data.p}") == "dXAtcGxhaW50ZXh0LTRiMWU="
        conn = sqlite3.connect(f"file:{tmp_path / 'data' / 'skiff.db'}?mode=ro", uri=True, timeout=10)
        try:
            key = b"/registry/core/secrets/default/up-secret"
            (value,) = conn.execute(
                "SELECT log.value FROM current JOIN log ON log.id = current.id WHERE current.key = ?", (key,)
            ).fetchone()
        finally:
            conn.close()
        assert bytes(value).startswith(b"k8s:enc:aescbc:v1:key1:") and b"dXAtcGxhaW50ZXh0LTRiMWU=" not in value
    finally:
        _stop(proc, tmp_path)


def _check_etcd_api_is_tls_only(text: str, data_dir: Path) -> None:
    """The printed etcdctl command works (real etcdctl 3.5.1); without the client certificate nothing does."""
    found = re.search(r"etcd v3 API on https://(127(?:\.\d+){3}:\d+); try: (etcdctl .*)", text)
    assert found, text
    endpoint, command = found.group(1), shlex.split(found.group(2))
    pki = data_dir / "pki" / "etcd"
    assert command[1:] == [
        *("--cacert", str(pki / "ca.crt"), "--cert", str(pki / "client.crt"), "--key", str(pki / "client.key")),
        *("--endpoints", f"https://{endpoint}", "member", "list"),
    ]
    etcdctl = str(etcd_binary("3.5.1").etcdctl)
    env = {**os.environ, "ETCDCTL_API": "3"}
    done = subprocess.run([etcdctl, *command[1:]], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0 and f"https://{endpoint}, false" in done.stdout, done.stderr
    keys = [*command[1:-2], "get", "--prefix", "/registry/core/configmaps/default/", "--keys-only"]
    done = subprocess.run([etcdctl, *keys], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert "/registry/core/configmaps/default/up-cm" in done.stdout.split(), done.stderr
    quick = ["--dial-timeout=2s", "--command-timeout=3s", "--endpoints", endpoint]
    for refused in ([], ["--cacert", str(pki / "ca.crt")]):
        done = subprocess.run(
            [etcdctl, *quick, *refused, "get", "--prefix", "/"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert done.returncode == 1 and done.stdout == "", done.stdout


def test_up_merges_into_the_users_kubeconfig(tmp_path: Path) -> None:
    home = tmp_path / "home"
    existing = home / ".kube" / "config"
    existing.parent.mkdir(parents=True)
    existing.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "other", "cluster": {"server": "https://192.0.2.1"}}],
                "users": [{"name": "other", "user": {}}],
                "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}],
                "current-context": "other",
            }
        )
    )
    env = {"HOME": str(home), "KUBECONFIG": ""}
    proc, out = _start_up(tmp_path, env=env)
    try:
        text = _wait_for_kubeconfig_line(proc, out)
        assert f"kubeconfig merged into {existing} (context skiff)" in text
        merged = yaml.safe_load(existing.read_text())
        assert [c["name"] for c in merged["contexts"]] == ["other", "skiff"]
        assert merged["current-context"] == "skiff"
        assert _kubectl(existing, "get", "namespaces", "-o", "name") is not None
    finally:
        _stop(proc, tmp_path)


@pytest.mark.parametrize("command", ["apiserver", "up"])
def test_help_lists_the_flags(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "skiff.cli.main", command, "--help"], capture_output=True, text=True, check=True
    )
    assert "--token-auth-file" in done.stdout
    assert "--encryption-provider-config" in done.stdout
    assert ("--api-port" if command == "up" else "--secure-port") in done.stdout
