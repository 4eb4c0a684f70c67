"""``skiff store serve`` serves TLS and requires client certificates unless ``--listen http://`` asks otherwise.

Real etcdctl 3.5.1 against the facade and against a real etcd 3.5.1 started
with the same certificates, ``--client-cert-auth`` and a https listener:
plaintext, TLS without a client certificate, and a client certificate from
another CA (the cluster CA, which signs kubelets' certificates) are refused by
both alike (etcdctl gives up with "context deadline exceeded"; etcd sends a
``bad certificate`` alert first, grpcio just closes); the client pair made in
``DATA_DIR/pki/etcd`` works for put, get and watch.  The command-line rules:
plaintext is announced on stderr, TLS files with ``http://`` and a partial set
of them are refused with exit code 2.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from facade_harness import ETCD_PROCESS_TOKEN, FacadeProcess, etcdctl, etcdctl_watch

from conftest import etcd_binary
from skiff.apiserver.pki import EtcdPki, ensure_pki
from skiff.etcd_binaries import EtcdBinary
from skiff.store.errors import Unavailable
from skiff.store.etcd import EtcdStore
from skiff.store.etcd_process import EtcdMember
from skiff.store.tls import TlsFiles

pytestmark = pytest.mark.timeout(180)

PEER_URL = "http://localhost:2380"
#: What etcdctl prints last when it cannot get through (the same for every refusal, from both servers).
REFUSED = "Error: context deadline exceeded"
#: Give up on a refused connection in seconds, not etcdctl's default 5 s dial timeout and retries.
QUICK = ("--dial-timeout=2s", "--command-timeout=3s")


@pytest.fixture
def etcdctl351() -> EtcdBinary:
    return etcd_binary("3.5.1")


async def test_tls_facade_refuses_what_etcd_refuses_and_serves_the_client_pair(
    tmp_path: Path, etcdctl351: EtcdBinary
) -> None:
    # A bare HOST:PORT means TLS; the certificates are made in DATA_DIR/pki/etcd on first start.
    facade = await FacadeProcess.start(
        tmp_path / "facade", peer_url=PEER_URL, token=ETCD_PROCESS_TOKEN, listen="127.0.0.1:0"
    )
    try:
        pki = EtcdPki(tmp_path / "facade" / "pki" / "etcd")
        assert facade.url == f"https://{facade.endpoint}"
        assert f"etcdctl --cacert {pki.ca_cert} --cert {pki.client_cert} --key {pki.client_key}" in facade.banner
        cluster = await asyncio.to_thread(ensure_pki, tmp_path / "cluster")
        serving = TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key)
        async with await EtcdMember.start(etcdctl351, tmp_path / "etcd", tls=serving) as etcd:
            refused = {
                "plaintext": (),
                "no client certificate": (f"--cacert={pki.ca_cert}",),
                "certificate of another CA": (
                    f"--cacert={pki.ca_cert}",
                    f"--cert={cluster.admin_cert}",
                    f"--key={cluster.admin_key}",
                ),
            }
            servers = {"facade": facade.endpoint, "etcd": etcd.endpoint}
            keys = [(case, server) for case in refused for server in servers]
            outputs = await asyncio.gather(
                *(
                    etcdctl(etcdctl351, servers[server], *QUICK, *refused[case], "put", "k", "v")
                    for case, server in keys
                )
            )
            seen = {key: (out.rc, out.stderr.strip().splitlines()[-1]) for key, out in zip(keys, outputs, strict=True)}
            assert seen == {key: (1, REFUSED) for key in seen}

        with pytest.raises(Unavailable):
            await EtcdStore.connect([facade.endpoint], timeout=2.0)
        with pytest.raises(Unavailable):
            await EtcdStore.connect([facade.endpoint], ca_file=pki.ca_cert, timeout=2.0)

        client = (f"--cacert={pki.ca_cert}", f"--cert={pki.client_cert}", f"--key={pki.client_key}")
        put = await etcdctl(etcdctl351, facade.endpoint, *client, "put", "greeting", "hello")
        assert (put.rc, put.stdout) == (0, "OK\n"), put.text()
        got = await etcdctl(etcdctl351, facade.endpoint, *client, "get", "greeting")
        assert (got.rc, got.stdout) == (0, "greeting\nhello\n"), got.text()
        watched = await etcdctl_watch(etcdctl351, facade.endpoint, "--rev=1", "greeting", *client, until_line="hello")
        assert watched == "PUT\ngreeting\nhello\n"
        members = await etcdctl(etcdctl351, facade.endpoint, *client, "member", "list")
        assert members.stdout.rstrip().endswith(f", {PEER_URL}, {facade.url}, false"), members.text()
    finally:
        assert await facade.stop() == 0, facade.log()


async def test_plaintext_only_when_asked_for_and_announced(tmp_path: Path, etcdctl351: EtcdBinary) -> None:
    facade = await FacadeProcess.start(tmp_path / "facade", peer_url=PEER_URL, token=ETCD_PROCESS_TOKEN)
    try:
        assert facade.url == f"http://{facade.endpoint}"
        assert f"try: etcdctl --endpoints {facade.url} put" in facade.banner
        assert (await etcdctl(etcdctl351, facade.endpoint, "put", "k", "v")).rc == 0
    finally:
        assert await facade.stop() == 0
    assert "WARNING: serving the store in plaintext without client authentication" in facade.log()
    assert not (tmp_path / "facade" / "pki").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(
            ("--listen=http://127.0.0.1:0", "--cert-file=a", "--key-file=b", "--trusted-ca-file=c"),
            "is plaintext: drop the TLS files",
            id="tls-files-with-http",
        ),
        pytest.param(
            ("--listen=https://127.0.0.1:0", "--cert-file=a"),
            "--cert-file, --key-file and --trusted-ca-file go together",
            id="partial-tls-files",
        ),
    ],
)
def test_contradictory_flags_are_refused(tmp_path: Path, flags: tuple[str, ...], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "skiff.cli.main", "store", "serve", f"--data-dir={tmp_path / 'data'}", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr
