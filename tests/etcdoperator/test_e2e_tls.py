"""A static-TLS EtcdCluster end to end: real etcd members serving https to clients and to each other.

One ``skiff up --no-etcd-operator`` cluster plus ``skiff etcd-operator`` (``operator_harness``).  The
three secrets are upstream's (``peer.crt``/``peer.key``/``peer-ca.crt``, ``server.*``,
``etcd-client.*``), certificates as upstream's TLS guide asks (``tls_secrets``).  The EtcdCluster is
applied before its operatorSecret exists: the operator reports that and creates nothing; once the
secret is there, three members come up over https.  Checked from the test process, as etcd sees it:
peer and client URLs are https; with the client certificate keys are written and read back; a
plaintext client and a TLS client without a certificate are refused by every member.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from operator_harness import (
    FAST_RECONNECT,
    EtcdOperatorEnv,
    MemberClient,
    assert_keys,
    condition,
    etcd_cluster_manifest,
    etcd_env,
    write_keys,
)
from tls_secrets import ClusterCerts, make_cluster_certs

__all__ = ["etcd_env"]

pytestmark = pytest.mark.timeout(600)

NAME, NAMESPACE = "secure", "default"
TLS = {
    "static": {
        "member": {"peerSecret": "etcd-peer-tls", "serverSecret": "etcd-server-tls"},
        "operatorSecret": "etcd-operator-tls",
    }
}


class TlsMemberClient(MemberClient):
    """MemberClient over TLS: the members' certificates are checked under the client Service's name."""

    def __init__(self, endpoints: list[str], credentials: grpc.ChannelCredentials) -> None:
        super().__init__(endpoints)
        self.credentials = credentials

    def _channel(self, endpoint: str) -> grpc.Channel:
        if endpoint not in self._channels:
            options = [*FAST_RECONNECT, ("grpc.ssl_target_name_override", f"{NAME}-client.{NAMESPACE}.svc")]
            self._channels[endpoint] = grpc.secure_channel(endpoint, self.credentials, options=options)
        return self._channels[endpoint]


def secret(name: str, files: dict[str, bytes]) -> dict[str, Any]:
    data = {k: base64.b64encode(v).decode() for k, v in files.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}


def client_credentials(certs: ClusterCerts) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(certs.ca, certs.operator.key, certs.operator.cert)


def secure_ready(env: EtcdOperatorEnv, certs: ClusterCerts, size: int) -> bool:
    obj = env.etcd_cluster(NAME)
    ready = ((obj.get("status") or {}).get("members") or {}).get("ready") or []
    if len(ready) != size or condition(obj, "Available").get("status") != "True":
        return False
    try:
        with TlsMemberClient(env.endpoints(NAME), client_credentials(certs)) as client:
            members = client.member_list(timeout=2)
    except AssertionError:
        return False
    return len(members) == size and all(m.name and m.client_urls and not m.is_learner for m in members)


@pytest.fixture(scope="module")
def secure_cluster(etcd_env: EtcdOperatorEnv) -> Iterator[ClusterCerts]:
    env = etcd_env
    certs = make_cluster_certs(NAME, NAMESPACE)
    secrets = certs.secrets()
    env.apply(*(secret(name, files) for name, files in secrets.items() if name != "etcd-operator-tls"))
    env.apply(etcd_cluster_manifest(NAME, 3, TLS=TLS))
    env.wait(
        "the missing operatorSecret reported",
        lambda: condition(env.etcd_cluster(NAME), "Degraded").get("reason") == "OperatorSecretInvalid",
    )
    message = condition(env.etcd_cluster(NAME), "Degraded")["message"]
    assert message == "spec.TLS.static.operatorSecret: secret etcd-operator-tls not found", message
    assert env.member_pods(NAME) == []  # nothing is created that the operator could not then talk to
    started = time.monotonic()
    env.apply(secret("etcd-operator-tls", secrets["etcd-operator-tls"]))
    env.wait(f"EtcdCluster {NAME} ready at 3 over TLS", lambda: secure_ready(env, certs, 3), timeout=180)
    print(f"FIGURE: time to a healthy 3-member TLS cluster once its secrets exist: {time.monotonic() - started:.1f}s")
    yield certs


def test_members_speak_tls_to_clients_and_to_each_other(
    etcd_env: EtcdOperatorEnv, secure_cluster: ClusterCerts
) -> None:
    env = etcd_env
    endpoints = env.endpoints(NAME)
    assert len(endpoints) == 3
    with TlsMemberClient(endpoints, client_credentials(secure_cluster)) as client:
        members = client.member_list()
        assert len(members) == 3
        for member in members:
            assert member.peer_urls == (f"https://{member.name}.{NAME}.{NAMESPACE}.svc.cluster.local:2380",)
            [url] = member.client_urls
            assert url.startswith("https://") and url.removeprefix("https://") in endpoints
        written = write_keys(client, "/secure/", 20)
        assert_keys(client, "/secure/", written)
        # Raft over https: every member has applied the writes (a follower's serializable view of them).
        statuses = [client.status(endpoint) for endpoint in endpoints]
        assert len({s.leader for s in statuses}) == 1 and all(s.raftAppliedIndex > 0 for s in statuses)

    refused = {
        "plaintext": None,
        "TLS without a client certificate": grpc.ssl_channel_credentials(secure_cluster.ca),
    }
    for what, credentials in refused.items():
        for endpoint in endpoints:
            with (
                MemberClient([endpoint]) if credentials is None else TlsMemberClient([endpoint], credentials)
            ) as client:
                with pytest.raises(grpc.RpcError) as caught:
                    client.status(endpoint, timeout=3)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, (what, endpoint, caught.value)
    obj = env.etcd_cluster(NAME)
    assert condition(obj, "Degraded") == {} or condition(obj, "Degraded").get("status") != "True", obj["status"]


def wait_backup(env: EtcdOperatorEnv, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any]:
        status = (env.get("etcdbackup", name) or {}).get("status") or {}
        assert not (status.get("succeeded") is False and status.get("reason")), f"backup {name} failed: {status}"
        return status if status.get("succeeded") is True else {}

    return env.wait(f"EtcdBackup {name} succeeded", done, timeout=60)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param({"etcdCluster": {"name": NAME}}, id="cluster-by-name-with-its-operator-secret"),
        pytest.param(
            {"etcdEndpoints": [f"https://{NAME}-client:2379"], "clientTLSSecret": "etcd-operator-tls"},
            id="endpoints-with-client-tls-secret",
        ),
    ],
)
def test_backups_of_a_tls_cluster(
    etcd_env: EtcdOperatorEnv, secure_cluster: ClusterCerts, source: dict[str, Any]
) -> None:
    env = etcd_env
    name = f"secure-{len(source)}"
    path = f"{name}/etcd.backup"
    manifest = {
        "apiVersion": "etcd.database.coreos.com/v1beta2",
        "kind": "EtcdBackup",
        "metadata": {"name": name},
        "spec": {**source, "storageType": "Local", "local": {"path": path}},
    }
    env.apply(manifest)
    status = wait_backup(env, name)
    assert status["etcdVersion"].startswith("3.5.") and int(status["etcdRevision"]) > 0, status
    assert (env.backup_dir / path).stat().st_size > 0
