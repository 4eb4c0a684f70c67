"""The cluster's certificates: a CA, the API server's serving cert, an admin client cert.

Made on first start in ``DATA_DIR/pki/`` and reused afterwards (a restart keeps
every kubeconfig valid).  Leaf certificates are re-issued from the same CA when
they are missing, expire within a day, or lack a requested SAN; the CA is made
once.  ECDSA P-256 keys: Go, OpenSSL and Python all accept them and they are
quick to make.

Names follow kubeadm/kind: the serving cert covers 127.0.0.1, ::1, localhost
and the in-cluster ``kubernetes.default.svc...`` names; the admin cert is
``CN=kubernetes-admin, O=system:masters`` (user and group, as client-cert
authentication maps them).  ``issue_client_cert`` issues more client
certificates from the same CA (a kubelet's ``CN=system:node:<name>,
O=system:nodes``); ``ensure_client_cert`` does so only when the pair is
missing, due, or names another subject (the component identities of ``skiff
up``, kept like the other leaf certs; the API server's own towards kubelets,
``CN=kube-apiserver-kubelet-client`` as kubeadm's).
``ensure_kubelet_serving_cert`` signs a kubelet's HTTPS serving certificate
(``skiff up``'s local kubelet), so API servers can verify kubelets.

The store's etcd v3 API has a PKI of its own in ``pki/etcd/`` (see
:func:`ensure_etcd_pki`).

``sa.key``/``sa.pub`` sign and verify ServiceAccount tokens (kubeadm's names);
made once like the CA, because replacing them would invalidate every issued
token.  ``encryption-config.yaml`` (``skiff up``'s encryption at rest) is made
once too: losing its key would lose every secret.

Blocking (file I/O, key generation): call through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from skiff.api.certificates import (
    CaFiles,
    ServingPki,
    ensure_ca,
    ensure_serving_pki,
    issue_cert,
    load_ca,
    needs_issue,
    write_atomic,
)
from skiff.registry.encryption import default_config_text, new_key

ADMIN_USER = "kubernetes-admin"
ADMIN_GROUP = "system:masters"
#: kubeadm's identity of the API server towards kubelets (``apiserver-kubelet-client.crt``).  Since kubeadm
#: v1.36.1 (kubernetes PR 138957) it carries no group: the ``kubeadm:apiserver-kubelet-client``
#: ClusterRoleBinding grants it ``system:kubelet-api-admin``.
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
KUBELET_CLIENT_NAME = "apiserver-kubelet-client"

DEFAULT_HOSTS = (
    "127.0.0.1",
    "::1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True, slots=True)
class Pki(CaFiles):
    """The cluster's PKI: its CA, the API server's serving cert, the admin's, the ServiceAccount keys."""

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.directory / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.directory / "admin.key"

    @property
    def sa_key(self) -> Path:
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"

    @property
    def encryption_config(self) -> Path:
        return self.directory / "encryption-config.yaml"


def ensure_encryption_config(data_dir: Path) -> Path:
    """``skiff up``'s default EncryptionConfiguration: made once (aescbc, a fresh key, identity fallback)."""
    pki = Pki(data_dir / "pki")
    path = pki.encryption_config
    if not path.exists():
        pki.directory.mkdir(parents=True, exist_ok=True)
        text = default_config_text("key1", new_key())
        write_atomic(path, text.encode(), 0o600)
    return path


def ensure_pki(data_dir: Path, hosts: Sequence[str] = ()) -> Pki:
    """Create what is missing or due in ``data_dir/pki`` and return its paths."""
    pki = Pki(data_dir / "pki")
    ensure_ca(pki.ca_cert, pki.ca_key, "skiff-ca")
    ca_cert, ca_key = load_ca(pki)
    wanted_hosts = list(dict.fromkeys([*DEFAULT_HOSTS, *hosts]))
    if needs_issue(pki.serving_cert, wanted_hosts):
        issue_cert(pki.serving_cert, pki.serving_key, ca_cert, ca_key, "kube-apiserver", [], wanted_hosts, server=True)
    if needs_issue(pki.admin_cert, []):
        issue_cert(pki.admin_cert, pki.admin_key, ca_cert, ca_key, ADMIN_USER, [ADMIN_GROUP], [], server=False)
    if not (pki.sa_key.exists() and pki.sa_pub.exists()):
        _make_sa_keys(pki)
    return pki


def _make_sa_keys(pki: Pki) -> None:
    """The ServiceAccount token signing pair (ES256), private key 0600."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_atomic(pki.sa_key, private, 0o600)
    write_atomic(pki.sa_pub, public, 0o644)


def issue_client_cert(
    pki: Pki,
    path_prefix: Path,
    common_name: str,
    organizations: Sequence[str] = (),
    *,
    lifetime: datetime.timedelta | None = None,
) -> tuple[Path, Path]:
    """A client certificate from the cluster CA: ``CN=common_name`` (the user), one ``O`` per group.

    Written to ``<path_prefix>.crt`` and ``<path_prefix>.key``; returns (cert, key).  E.g. a kubelet's
    ``CN=system:node:<name>, O=system:nodes``.  Valid from five minutes ago for ``lifetime`` from now
    (default a year; a negative one makes an already expired certificate, for tests).
    """
    ca_cert, ca_key = load_ca(pki)
    cert_path, key_path = (
        path_prefix.with_name(path_prefix.name + ".crt"),
        path_prefix.with_name(path_prefix.name + ".key"),
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    issue_cert(cert_path, key_path, ca_cert, ca_key, common_name, organizations, [], server=False, lifetime=lifetime)
    return cert_path, key_path


@dataclass(frozen=True, slots=True)
class EtcdPki(ServingPki):
    """The store's own PKI in ``DATA_DIR/pki/etcd`` (kubeadm's layout): a CA, a serving cert, a client cert."""

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"


def ensure_etcd_pki(data_dir: Path, hosts: Sequence[str] = ()) -> EtcdPki:
    """Create what is missing or due in ``data_dir/pki/etcd`` and return its paths.

    A CA of its own (``skiff-etcd-ca``), as kubeadm's ``etcd/ca.crt``: the
    store trusts every certificate its CA signs, and the cluster CA signs
    whatever CSRs get approved (every kubelet's client certificate), which must
    not open the raw store.  ``server.crt`` covers 127.0.0.1, ::1, localhost and
    ``hosts``, with serverAuth and clientAuth (kubeadm's etcd server cert: a
    real etcd dials itself with it).  ``client.crt`` (``CN=skiff-etcd-client``)
    is what API servers and etcdctl present.
    """
    pki = EtcdPki(data_dir / "pki" / "etcd")
    ensure_serving_pki(pki.directory, "skiff-etcd-ca", "skiff-etcd-server", hosts, client_too=True)
    if needs_issue(pki.client_cert, []):
        ca_cert, ca_key = load_ca(pki)
        issue_cert(pki.client_cert, pki.client_key, ca_cert, ca_key, "skiff-etcd-client", [], [], server=False)
    return pki


def ensure_client_cert(
    pki: Pki, path_prefix: Path, common_name: str, organizations: Sequence[str] = ()
) -> tuple[Path, Path]:
    """``issue_client_cert`` unless ``<path_prefix>.crt``/``.key`` exist, are not due and name this subject."""
    cert_path = path_prefix.with_name(path_prefix.name + ".crt")
    key_path = cert_path.with_suffix(".key")
    if not needs_issue(cert_path, []) and _subject_of(cert_path) == (common_name, sorted(organizations)):
        return cert_path, key_path
    return issue_client_cert(pki, path_prefix, common_name, organizations)


def _subject_of(cert_path: Path) -> tuple[str, list[str]]:
    subject = x509.load_pem_x509_certificate(cert_path.read_bytes()).subject
    common = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = sorted(str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return (common[0] if common else ""), orgs


def ensure_kubelet_serving_cert(pki: Pki, path_prefix: Path, node_name: str, hosts: Sequence[str]) -> tuple[Path, Path]:
    """A kubelet's HTTPS serving certificate from the cluster CA, (re)made when missing, due or lacking a host.

    The subject a ``kubernetes.io/kubelet-serving`` CSR must carry (``CN=system:node:<name>,
    O=system:nodes``), serverAuth, SANs ``hosts`` (the node's IP and names): what the API server
    checks when it dials the kubelet with ``--kubelet-certificate-authority``.  Written to
    ``<path_prefix>.crt``/``.key``; returns (cert, key).
    """
    cert_path = path_prefix.with_name(path_prefix.name + ".crt")
    key_path = cert_path.with_suffix(".key")
    wanted = list(dict.fromkeys(hosts))
    if needs_issue(cert_path, wanted) or _subject_of(cert_path) != (f"system:node:{node_name}", ["system:nodes"]):
        ca_cert, ca_key = load_ca(pki)
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        subject = f"system:node:{node_name}"
        issue_cert(cert_path, key_path, ca_cert, ca_key, subject, ["system:nodes"], wanted, server=True)
    return cert_path, key_path
