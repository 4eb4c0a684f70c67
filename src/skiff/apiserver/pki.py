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
O=system:nodes``).

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
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.api.certificates import normal_host, subject_alt_names, write_atomic, write_pair
from skiff.registry.encryption import default_config_text, new_key

ADMIN_USER = "kubernetes-admin"
ADMIN_GROUP = "system:masters"

DEFAULT_HOSTS = (
    "127.0.0.1",
    "::1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

_CA_DAYS = 3650
_LEAF_DAYS = 365
_RENEW_BEFORE = datetime.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Pki:
    """Paths of the PEM files in ``directory``."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

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
    pki.directory.mkdir(parents=True, exist_ok=True)
    if not (pki.ca_cert.exists() and pki.ca_key.exists()):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skiff-ca")])
        cert = (
            _builder(name, name, key.public_key(), _CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_pair(pki.ca_cert, pki.ca_key, cert, key)
    ca_cert, ca_key = _load_ca(pki)
    wanted_hosts = list(dict.fromkeys([*DEFAULT_HOSTS, *hosts]))
    if _needs_issue(pki.serving_cert, wanted_hosts):
        _issue(pki.serving_cert, pki.serving_key, ca_cert, ca_key, "kube-apiserver", [], wanted_hosts, server=True)
    if _needs_issue(pki.admin_cert, []):
        _issue(pki.admin_cert, pki.admin_key, ca_cert, ca_key, ADMIN_USER, [ADMIN_GROUP], [], server=False)
    if not (pki.sa_key.exists() and pki.sa_pub.exists()):
        _make_sa_keys(pki)
    return pki


def _load_ca(pki: Pki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pki.ca_key}: expected an EC private key")
    return ca_cert, ca_key


def _make_sa_keys(pki: Pki) -> None:
    """The ServiceAccount token signing pair (ES256), private key 0600."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    write_atomic(pki.sa_key, private, 0o600)
    write_atomic(pki.sa_pub, public, 0o644)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _needs_issue(cert_path: Path, hosts: Sequence[str]) -> bool:
    key_path = cert_path.with_suffix(".key")
    if not (cert_path.exists() and key_path.exists()):
        return True
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.not_valid_after_utc - _RENEW_BEFORE < datetime.datetime.now(datetime.UTC):
        return True
    if not hosts:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    present = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))
    return any(normal_host(h) not in present for h in hosts)


def _issue(
    cert_path: Path,
    key_path: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    organizations: Sequence[str],
    hosts: Sequence[str],
    *,
    server: bool,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    subject = x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), _LEAF_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if hosts:
        names = subject_alt_names(hosts)
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    write_pair(cert_path, key_path, builder.sign(ca_key, hashes.SHA256()), key)


def issue_client_cert(
    pki: Pki, path_prefix: Path, common_name: str, organizations: Sequence[str] = ()
) -> tuple[Path, Path]:
    """A client certificate from the cluster CA: ``CN=common_name`` (the user), one ``O`` per group.

    Written to ``<path_prefix>.crt`` and ``<path_prefix>.key``; returns (cert, key).  E.g. a kubelet's
    ``CN=system:node:<name>, O=system:nodes``.
    """
    ca_cert, ca_key = _load_ca(pki)
    cert_path, key_path = (
        path_prefix.with_name(path_prefix.name + ".crt"),
        path_prefix.with_name(path_prefix.name + ".key"),
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    _issue(cert_path, key_path, ca_cert, ca_key, common_name, organizations, [], server=False)
    return cert_path, key_path
