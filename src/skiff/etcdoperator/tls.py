"""An EtcdCluster's static TLS (``spec.TLS.static``), laid out as coreos/etcd-operator lays it out.

* ``member.peerSecret`` holds ``peer.crt``, ``peer.key`` and ``peer-ca.crt``,
  mounted at ``/etc/etcdtls/member/peer-tls``: members talk to each other over
  https (``--peer-cert-file``, ``--peer-key-file``, ``--peer-trusted-ca-file``,
  ``--peer-client-cert-auth``) and peer URLs are
  ``https://<member>.<cluster>.<ns>.svc<domain>:2380``.
* ``member.serverSecret`` holds ``server.crt``, ``server.key`` and
  ``server-ca.crt``, mounted at ``/etc/etcdtls/member/server-tls``: the client
  port serves https only and requires a client certificate signed by
  ``server-ca.crt`` (``--cert-file``, ``--key-file``, ``--trusted-ca-file``,
  ``--client-cert-auth``).
* ``operatorSecret`` holds ``etcd-client.crt``, ``etcd-client.key`` and
  ``etcd-client-ca.crt``: what the operator presents, and the CA it checks
  members against.  It is read through the API on each pass (the operator
  runs outside the pods), never mounted.

The original's rule stays: ``operatorSecret`` is set if and only if
``member.serverSecret`` is (``versions.spec_problems``).

Certificates, as upstream's TLS guide has them: the server certificate names
``*.<cluster>.<ns>.svc`` and ``<cluster>-client.<ns>.svc``; the peer
certificate ``*.<cluster>.<ns>.svc<domain>`` (Skiff's peer URLs carry the
cluster domain, ``.cluster.local`` unless ``spec.pod.ClusterDomain`` says
otherwise).  The operator dials pod IPs, which no certificate names, so it
checks a member's certificate under ``<cluster>-client.<ns>.svc``
(:func:`server_name`).  Peer certificates are client certificates too: etcd
3.4/3.5 check a client certificate that has SANs against the address it
connects from (its ``checkSAN``), and pods on one machine connect from
127.0.0.1, so a peer certificate with SANs needs the IP SAN 127.0.0.1.

With client TLS the readiness probe moves to ``GET /health`` on
``--listen-metrics-urls=http://<pod IP>:2381`` (kubeadm's way): the kubelet
has no client certificate for the https port.  That port serves only
``/health`` and ``/metrics``, never data.

Pure: no I/O.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PEER_TLS_DIR = "/etc/etcdtls/member/peer-tls"
SERVER_TLS_DIR = "/etc/etcdtls/member/server-tls"
PEER_TLS_VOLUME = "member-peer-tls"
SERVER_TLS_VOLUME = "member-server-tls"
METRICS_PORT = 2381
#: The operatorSecret's keys: certificate, key, CA (upstream's names).
OPERATOR_CERT, OPERATOR_KEY, OPERATOR_CA = "etcd-client.crt", "etcd-client.key", "etcd-client-ca.crt"


@dataclass(frozen=True)
class StaticTls:
    """The secret names of ``spec.TLS.static``; None where not set."""

    peer_secret: str | None = None
    server_secret: str | None = None
    operator_secret: str | None = None

    @property
    def secure_peer(self) -> bool:
        return self.peer_secret is not None

    @property
    def secure_client(self) -> bool:
        return self.server_secret is not None


#: No TLS anywhere (a cluster without ``spec.TLS``).
PLAINTEXT = StaticTls()


def static_tls(spec: Mapping[str, Any]) -> StaticTls:
    """The cluster's static TLS secrets (an empty StaticTls: plaintext everywhere)."""
    tls = spec.get("TLS")
    static = tls.get("static") if isinstance(tls, dict) else None
    if not isinstance(static, dict):
        return PLAINTEXT
    raw_member = static.get("member")
    member: dict[str, Any] = raw_member if isinstance(raw_member, dict) else {}
    return StaticTls(
        peer_secret=str(member["peerSecret"]) if member.get("peerSecret") else None,
        server_secret=str(member["serverSecret"]) if member.get("serverSecret") else None,
        operator_secret=str(static["operatorSecret"]) if static.get("operatorSecret") else None,
    )


def server_name(cluster: Mapping[str, Any]) -> str:
    """The name the operator checks members' server certificates under: the client Service's, as upstream's guide."""
    meta = cluster["metadata"]
    return f"{meta['name']}-client.{meta.get('namespace') or 'default'}.svc"


def member_flags(tls: StaticTls) -> list[str]:
    """etcd's TLS flags for the mounted secrets (upstream's k8sutil adds the same)."""
    flags: list[str] = []
    if tls.secure_peer:
        flags += [
            f"--peer-cert-file={PEER_TLS_DIR}/peer.crt",
            f"--peer-key-file={PEER_TLS_DIR}/peer.key",
            f"--peer-trusted-ca-file={PEER_TLS_DIR}/peer-ca.crt",
            "--peer-client-cert-auth",
        ]
    if tls.secure_client:
        flags += [
            f"--cert-file={SERVER_TLS_DIR}/server.crt",
            f"--key-file={SERVER_TLS_DIR}/server.key",
            f"--trusted-ca-file={SERVER_TLS_DIR}/server-ca.crt",
            "--client-cert-auth",
        ]
    return flags


def member_volumes(tls: StaticTls) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(pod volumes, etcd container volumeMounts) for the member secrets, read-only."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for secret, volume, path in (
        (tls.peer_secret, PEER_TLS_VOLUME, PEER_TLS_DIR),
        (tls.server_secret, SERVER_TLS_VOLUME, SERVER_TLS_DIR),
    ):
        if secret:
            volumes.append({"name": volume, "secret": {"secretName": secret, "defaultMode": 0o400}})
            mounts.append({"name": volume, "mountPath": path, "readOnly": True})
    return volumes, mounts


def operator_files(secret: Mapping[str, Any]) -> tuple[bytes, bytes, bytes]:
    """(CA, certificate, key) from a fetched operatorSecret; ValueError naming what is missing."""
    data = secret.get("data") or {}
    missing = [k for k in (OPERATOR_CA, OPERATOR_CERT, OPERATOR_KEY) if not data.get(k)]
    if missing:
        raise ValueError(f"secret {secret['metadata']['name']} has no {', '.join(missing)}")
    ca, cert, key = (base64.b64decode(data[k]) for k in (OPERATOR_CA, OPERATOR_CERT, OPERATOR_KEY))
    return ca, cert, key
