"""Secrets encrypted at rest, checked in the raw SQLite file under a real ``skiff apiserver``.

One data dir, four starts: without encryption (a plaintext secret), with
aescbc ``key1`` + identity (old data reads, new data is ciphertext, configmaps
stay plaintext), rotated to ``key2`` with ``key1`` second (old secrets read;
``kubectl get secrets -o json | kubectl replace -f -`` rewrites them under
``key2``), and finally with neither key (a read is a clean 500, not a crash).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from apiserver_harness import Kubectl, RunningApiServer, running_apiserver

NS = "enc"
SECRET_KEY = b"/registry/core/secrets/enc/"
PLAIN = {"s0": "before-encryption-9f1c", "s1": "under-key-one-5d2a", "s2": "under-key-two-77be"}
CM_PLAIN = "configmap-stays-plain-31ce"
WIDGET_PLAIN = "widget-sealed-too-a07f"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.enc.example.com"},
    "spec": {
        "group": "enc.example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}
WIDGET = {
    "apiVersion": "enc.example.com/v1",
    "kind": "Widget",
    "metadata": {"name": "w1", "namespace": NS},
    "spec": {"v": WIDGET_PLAIN},
}


def key(seed: int) -> str:
    return base64.b64encode(bytes([seed]) * 32).decode()


def write_config(path: Path, *providers: dict[str, Any]) -> Path:
    """``providers`` for secrets; custom resources of the test's group always under aesgcm ``key9``."""
    widgets = {"aesgcm": {"keys": [{"name": "key9", "secret": key(9)}]}}
    document = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {"resources": ["secrets"], "providers": list(providers)},
            {"resources": ["*.enc.example.com"], "providers": [widgets]},
        ],
    }
    path.write_text(yaml.safe_dump(document))
    return path


def aescbc(*names: str) -> dict[str, Any]:
    return {"aescbc": {"keys": [{"name": name, "secret": key(int(name[-1]))} for name in names]}}


IDENTITY: dict[str, Any] = {"identity": {}}


def raw_values(data_dir: Path, prefix: bytes) -> dict[str, bytes]:
    """Current values under ``prefix``, read straight from the SQLite file (read-only)."""
    conn = sqlite3.connect(f"file:{data_dir / 'skiff.db'}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT current.key, log.value FROM current JOIN log ON log.id = current.id"
            " WHERE current.key >= ? AND current.key < ?",
            (prefix, prefix[:-1] + bytes([prefix[-1] + 1])),
        ).fetchall()
    finally:
        conn.close()
    return {bytes(k)[len(prefix) :].decode(): bytes(v) for k, v in rows}


def every_logged_value(data_dir: Path) -> bytes:
    conn = sqlite3.connect(f"file:{data_dir / 'skiff.db'}?mode=ro", uri=True, timeout=10)
    try:
        return b"\n".join(
            bytes(v) for (v,) in conn.execute("SELECT value FROM log WHERE key LIKE '/registry/core/secrets/%'")
        )
    finally:
        conn.close()


@contextmanager
def started(tmp_path: Path, phase: str, *args: str) -> Iterator[tuple[RunningApiServer, Kubectl]]:
    with running_apiserver(tmp_path / phase, *args, data_dir=tmp_path / "data") as server:
        yield server, Kubectl(server, tmp_path / phase / "kube-cache")


def secret_value(kubectl: Kubectl, name: str) -> str:
    encoded = kubectl.ok("get", "secret", name, "-n", NS, "-o", "jsonpath={.data.password}")
    return base64.b64decode(encoded).decode()


def assert_sealed(value: bytes, prefix: bytes) -> None:
    assert value.startswith(prefix), value[:40]
    for plain in PLAIN.values():
        assert plain.encode() not in value
        assert base64.b64encode(plain.encode()) not in value


def test_secrets_encrypted_at_rest_and_rotated(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with started(tmp_path, "plain") as (_, kubectl):
        kubectl.ok("create", "namespace", NS)
        kubectl.ok("create", "secret", "generic", "s0", "-n", NS, f"--from-literal=password={PLAIN['s0']}")
    assert base64.b64encode(PLAIN["s0"].encode()) in raw_values(data_dir, SECRET_KEY)["s0"]

    first = write_config(tmp_path / "key1.yaml", aescbc("key1"), IDENTITY)
    with started(tmp_path, "key1", "--encryption-provider-config", str(first)) as (_, kubectl):
        assert secret_value(kubectl, "s0") == PLAIN["s0"]  # plaintext from before reads through identity
        kubectl.ok("create", "secret", "generic", "s1", "-n", NS, f"--from-literal=password={PLAIN['s1']}")
        kubectl.ok("create", "configmap", "c1", "-n", NS, f"--from-literal=k={CM_PLAIN}")
        raw = raw_values(data_dir, SECRET_KEY)
        assert_sealed(raw["s1"], b"k8s:enc:aescbc:v1:key1:")
        assert raw["s0"].startswith(b"{")  # untouched until rewritten
        assert secret_value(kubectl, "s1") == PLAIN["s1"]
        assert kubectl.ok("get", "secrets", "-n", NS, "-o", "name").split() == ["secret/s0", "secret/s1"]
        assert CM_PLAIN.encode() in raw_values(data_dir, b"/registry/core/configmaps/enc/")["c1"]

        kubectl.ok("create", "-f", "-", stdin=json.dumps(CRD))
        kubectl.ok("wait", "--for=condition=Established", "crd/widgets.enc.example.com", "--timeout=20s")
        kubectl.ok("create", "-f", "-", stdin=json.dumps(WIDGET))  # custom resources are covered too
        sealed = raw_values(data_dir, b"/registry/enc.example.com/widgets/enc/")["w1"]
        assert sealed.startswith(b"k8s:enc:aesgcm:v1:key9:") and WIDGET_PLAIN.encode() not in sealed
        assert kubectl.ok("get", "widget", "w1", "-n", NS, "-o", "jsonpath={.spec.v}") == WIDGET_PLAIN

    rotated = write_config(tmp_path / "key2.yaml", aescbc("key2", "key1"))
    with started(tmp_path, "key2", "--encryption-provider-config", str(rotated)) as (_, kubectl):
        assert secret_value(kubectl, "s1") == PLAIN["s1"]  # the old key, listed second, still reads
        raw = raw_values(data_dir, SECRET_KEY)
        assert raw["s1"].startswith(b"k8s:enc:aescbc:v1:key1:")
        assert raw["s0"].startswith(b"{")
        code, _, err = kubectl.run("get", "secret", "s0", "-n", NS)
        assert code != 0 and "no matching prefix found" in err  # no identity any more: plaintext refused

        kubectl.ok("create", "secret", "generic", "s2", "-n", NS, f"--from-literal=password={PLAIN['s2']}")
        listed = kubectl.ok("get", "secrets", "s1", "s2", "-n", NS, "-o", "json")
        kubectl.ok("replace", "-f", "-", stdin=listed)  # unchanged objects, rewritten under the first key
        raw = raw_values(data_dir, SECRET_KEY)
        assert_sealed(raw["s1"], b"k8s:enc:aescbc:v1:key2:")
        assert_sealed(raw["s2"], b"k8s:enc:aescbc:v1:key2:")
        assert secret_value(kubectl, "s1") == PLAIN["s1"]
        assert secret_value(kubectl, "s2") == PLAIN["s2"]
    history = every_logged_value(data_dir)
    for name in ("s1", "s2"):
        assert base64.b64encode(PLAIN[name].encode()) not in history  # no version of them was ever plaintext

    lost = write_config(tmp_path / "key3.yaml", aescbc("key3"))
    with started(tmp_path, "key3", "--encryption-provider-config", str(lost)) as (server, kubectl):
        code, _, err = kubectl.run("get", "secret", "s1", "-n", NS)
        assert code != 0 and "Internal error occurred: unable to transform key" in err
        assert "Traceback" not in server.logs()
        assert kubectl.ok("get", "configmap", "c1", "-n", NS, "-o", "jsonpath={.data.k}") == CM_PLAIN


def test_bad_config_refuses_to_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration"}))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "skiff.cli.main",
            "apiserver",
            "--data-dir",
            str(tmp_path / "data"),
            "--secure-port",
            "0",
            "--encryption-provider-config",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "encryption provider config" in done.stderr and "resources" in done.stderr
    assert "Traceback" not in done.stderr
