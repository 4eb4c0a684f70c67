"""The operator's snapshot server speaks TLS only, and the seed's fetch script verifies it with the CA it is handed.

A snapshot holds the whole keyspace, Secrets included: these run the real
server (aiohttp on loopback) and the real fetch one-liner in a subprocess.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from skiff.api.certificates import ensure_serving_pki
from skiff.etcdoperator import members as m
from skiff.etcdoperator.snapshot_server import SnapshotServer

SNAPSHOT = b"etcd-snapshot-bytes" * 1000


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[SnapshotServer]:
    snapshots = SnapshotServer()
    await snapshots.start("127.0.0.1", 0, tmp_path / "pki")
    try:
        yield snapshots
    finally:
        await snapshots.stop()


async def fetch(url: str, dest: Path, ca_pem: str | None) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-c", m.FETCH_SNAPSHOT_SCRIPT, url, str(dest), str(dest.parent / "data")]
    if ca_pem is not None:
        argv.append(ca_pem)
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, timeout=60, check=False)


async def test_seed_fetches_the_snapshot_over_verified_tls(server: SnapshotServer, tmp_path: Path) -> None:
    (tmp_path / "snap.db").write_bytes(SNAPSHOT)
    url = server.offer(tmp_path / "snap.db")
    assert url.startswith("https://127.0.0.1:")
    done = await fetch(url, tmp_path / "restore.db", server.ca_pem)
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "restore.db").read_bytes() == SNAPSHOT


async def test_a_server_signed_by_another_ca_is_refused(server: SnapshotServer, tmp_path: Path) -> None:
    (tmp_path / "snap.db").write_bytes(SNAPSHOT)
    url = server.offer(tmp_path / "snap.db")
    other = ensure_serving_pki(tmp_path / "other", "someone-else", "someone-else")
    done = await fetch(url, tmp_path / "restore.db", other.ca_cert.read_text())
    assert done.returncode != 0
    assert b"CERTIFICATE_VERIFY_FAILED" in done.stderr
    assert not (tmp_path / "restore.db").exists()
    # No CA handed over: the system trust store does not know the operator's CA either.
    done = await fetch(url, tmp_path / "restore.db", None)
    assert done.returncode != 0 and not (tmp_path / "restore.db").exists()


async def test_plaintext_and_unknown_tokens_get_nothing(server: SnapshotServer, tmp_path: Path) -> None:
    (tmp_path / "snap.db").write_bytes(SNAPSHOT)
    url = server.offer(tmp_path / "snap.db")
    plain = url.replace("https://", "http://")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        await asyncio.to_thread(urllib.request.urlopen, plain, timeout=10)
    context = ssl.create_default_context(cadata=server.ca_pem)
    unknown = server.url("not-a-token")
    with pytest.raises(urllib.error.HTTPError) as err:
        await asyncio.to_thread(urllib.request.urlopen, unknown, timeout=10, context=context)
    assert err.value.code == 404
    err.value.close()  # else the server's TLS shutdown waits on this client past the test's end
    token = url.rsplit("/", 1)[1]
    server.withdraw(token)
    with pytest.raises(urllib.error.HTTPError) as err:
        await asyncio.to_thread(urllib.request.urlopen, url, timeout=10, context=context)
    assert err.value.code == 404
    err.value.close()  # else the server's TLS shutdown waits on this client past the test's end
    with await asyncio.to_thread(urllib.request.urlopen, server.base_url + "/healthz", context=context) as health:
        assert health.read() == b"ok"


async def test_the_ca_survives_a_restart(tmp_path: Path) -> None:
    """A seed pod created before an operator restart carries the old CA: the restarted server must match it."""
    first = SnapshotServer()
    await first.start("127.0.0.1", 0, tmp_path / "pki")
    ca = first.ca_pem
    await first.stop()
    second = SnapshotServer()
    await second.start("127.0.0.1", 0, tmp_path / "pki")
    try:
        assert second.ca_pem == ca
        (tmp_path / "snap.db").write_bytes(SNAPSHOT)
        done = await fetch(second.offer(tmp_path / "snap.db"), tmp_path / "restore.db", ca)
        assert done.returncode == 0, done.stderr.decode()
    finally:
        await second.stop()


def test_restoring_seed_pods_carry_the_ca() -> None:
    cluster = {"metadata": {"name": "demo", "namespace": "default", "uid": "u"}, "spec": {"size": 1}}
    pod = m.member_pod(
        cluster,
        "demo-rrrrrrrrrr",
        version="3.5.1",
        state="new",
        peers=[],
        token="t",
        snapshot_url="https://127.0.0.1:1/v1/snapshots/x",
        snapshot_ca="-----BEGIN CERTIFICATE-----\n...",
    )
    fetch_container = pod["spec"]["initContainers"][0]
    assert fetch_container["command"][-1].startswith("-----BEGIN CERTIFICATE-----")
