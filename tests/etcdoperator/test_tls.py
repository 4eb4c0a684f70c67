"""Static TLS of an EtcdCluster: the member pod it builds, the operator's secret, and EtcdClient over TLS.

Pure shapes first (flags, mounts, probe, URLs); then EtcdClient against a real
etcd 3.5.1 serving https with ``--client-cert-auth`` and a certificate made as
upstream's guide asks (no name for the IP the operator dials): it is reached
only with the operator's client certificate and under the client Service's name.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from tls_secrets import make_cluster_certs

from conftest import etcd_binary
from skiff.etcdoperator import members as m
from skiff.etcdoperator.etcdclient import ClientTls, EtcdClient, EtcdError
from skiff.etcdoperator.tls import PLAINTEXT, StaticTls, operator_files, server_name, static_tls
from skiff.store.etcd_process import EtcdMember
from skiff.store.tls import TlsFiles

pytestmark = pytest.mark.timeout(60)

UID = "0f4f3c1e-5d7e-4a5e-9d55-1b2f0e0d3c2a"
STATIC = {"member": {"peerSecret": "peer-s", "serverSecret": "server-s"}, "operatorSecret": "op-s"}


def cluster(tls: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"size": 3, "version": "3.5.1"}
    if tls is not None:
        spec["TLS"] = {"static": tls}
    return {"metadata": {"name": "demo", "namespace": "team-a", "uid": UID}, "spec": spec}


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        pytest.param(None, PLAINTEXT, id="none"),
        pytest.param(STATIC, StaticTls("peer-s", "server-s", "op-s"), id="all"),
        pytest.param({"member": {"peerSecret": "p"}}, StaticTls(peer_secret="p"), id="peer-only"),
        pytest.param({"member": "garbage"}, PLAINTEXT, id="malformed"),
    ],
)
def test_static_tls(tls: dict[str, Any] | None, expected: StaticTls) -> None:
    assert static_tls(cluster(tls)["spec"]) == expected


def test_tls_member_pod_serves_https_with_upstreams_files_and_probes_the_metrics_port() -> None:
    pod = m.member_pod(cluster(STATIC), "demo-aaaaaaaaaa", version="3.5.1", state="new", peers=[], token="t")
    etcd = pod["spec"]["containers"][0]
    args = etcd["command"][1:]
    peer = "https://demo-aaaaaaaaaa.demo.team-a.svc.cluster.local:2380"
    for flag in (
        "--listen-peer-urls=https://$(POD_IP):2380",
        "--listen-client-urls=https://$(POD_IP):2379",
        "--advertise-client-urls=https://$(POD_IP):2379",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=demo-aaaaaaaaaa={peer}",
        "--listen-metrics-urls=http://$(POD_IP):2381",
        "--peer-cert-file=/etc/etcdtls/member/peer-tls/peer.crt",
        "--peer-key-file=/etc/etcdtls/member/peer-tls/peer.key",
        "--peer-trusted-ca-file=/etc/etcdtls/member/peer-tls/peer-ca.crt",
        "--peer-client-cert-auth",
        "--cert-file=/etc/etcdtls/member/server-tls/server.crt",
        "--key-file=/etc/etcdtls/member/server-tls/server.key",
        "--trusted-ca-file=/etc/etcdtls/member/server-tls/server-ca.crt",
        "--client-cert-auth",
    ):
        assert flag in args
    assert etcd["readinessProbe"]["httpGet"] == {"path": "/health", "port": 2381, "scheme": "HTTP"}
    assert {"name": "member-peer-tls", "secret": {"secretName": "peer-s", "defaultMode": 0o400}} in pod["spec"][
        "volumes"
    ]
    assert {"name": "member-server-tls", "secret": {"secretName": "server-s", "defaultMode": 0o400}} in pod["spec"][
        "volumes"
    ]
    assert {"name": "member-server-tls", "mountPath": "/etc/etcdtls/member/server-tls", "readOnly": True} in etcd[
        "volumeMounts"
    ]
    # The operator's secret is never mounted: the operator reads it through the API.
    assert "op-s" not in str(pod)


def test_peer_only_tls_keeps_a_plain_client_port() -> None:
    pod = m.member_pod(
        cluster({"member": {"peerSecret": "p"}}), "demo-bbbbbbbbbb", version="3.5.1", state="new", peers=[]
    )
    etcd = pod["spec"]["containers"][0]
    assert "--listen-client-urls=http://$(POD_IP):2379" in etcd["command"]
    assert "--listen-peer-urls=https://$(POD_IP):2380" in etcd["command"]
    assert "--client-cert-auth" not in etcd["command"] and "--peer-client-cert-auth" in etcd["command"]
    assert etcd["readinessProbe"]["httpGet"]["port"] == 2379


def test_operator_secret_files() -> None:
    keys = ("etcd-client.crt", "etcd-client.key", "etcd-client-ca.crt")
    secret = {"metadata": {"name": "op"}, "data": {k: base64.b64encode(k.encode()).decode() for k in keys}}
    assert operator_files(secret) == (b"etcd-client-ca.crt", b"etcd-client.crt", b"etcd-client.key")
    del secret["data"]["etcd-client.key"]
    with pytest.raises(ValueError, match=r"secret op has no etcd-client\.key"):
        operator_files(secret)
    assert server_name(cluster(STATIC)) == "demo-client.team-a.svc"


def test_endpoint_scheme_must_agree_with_tls() -> None:
    tls = ClientTls(b"ca", b"cert", b"key")
    with pytest.raises(ValueError, match="https needs client TLS"):
        EtcdClient("https://127.0.0.1:2379")
    with pytest.raises(ValueError, match="plaintext URL given with TLS"):
        EtcdClient("http://127.0.0.1:2379", tls=tls)


async def test_client_reaches_a_tls_member_only_with_the_operator_certificate(tmp_path: Path) -> None:
    certs = make_cluster_certs("demo", "team-a")
    files = {}
    for name, data in (("ca.crt", certs.ca), ("server.crt", certs.server.cert), ("server.key", certs.server.key)):
        files[name] = tmp_path / name
        files[name].write_bytes(data)
    serving = TlsFiles(files["ca.crt"], files["server.crt"], files["server.key"])
    async with await EtcdMember.start(etcd_binary("3.5.1"), tmp_path / "etcd", tls=serving) as member:
        url = f"https://{member.endpoint}"
        operator = ClientTls(certs.ca, certs.operator.cert, certs.operator.key, server_name="demo-client.team-a.svc")
        async with EtcdClient(url, tls=operator, timeout=5.0) as client:
            assert (await client.status()).version == "3.5.1"
            assert (await client.member_list())[0].client_urls == (url,)
        wrong_name = ClientTls(certs.ca, certs.operator.cert, certs.operator.key, server_name="other-client.team-a.svc")
        other = make_cluster_certs("demo", "team-a")  # a client certificate from another CA
        other_ca = ClientTls(certs.ca, other.operator.cert, other.operator.key, server_name="demo-client.team-a.svc")
        for refused in (wrong_name, other_ca):
            async with EtcdClient(url, tls=refused, timeout=2.0) as client:
                with pytest.raises(EtcdError):
                    await client.status()
        async with EtcdClient(member.endpoint, timeout=2.0) as plain:
            with pytest.raises(EtcdError):
                await plain.status()
