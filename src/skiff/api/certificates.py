"""X.509 pieces shared by every part of Skiff that makes certificates (the API server's PKI, kubelets).

Subject alternative names from host strings (IP addresses as IP SANs, the
rest as DNS names), the canonical text of a host for SAN comparison, and the
crash-safe way to store a key pair: key first with mode 0600, each file
written to a temp name, fsynced and renamed, so a reader never sees half a
PEM or a certificate without its key.

And the making of CAs and the certificates they issue (ECDSA P-256; leaves
re-issued when missing, due within a day, or lacking a SAN): the cluster's
PKI (``skiff.apiserver.pki``) and listeners with a CA of their own
(``ensure_serving_pki``: the store, the etcd operator's snapshot server).
Blocking (file I/O, key generation): call through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def normal_host(host: str) -> str:
    """An IP address in its canonical text, or the name unchanged (how SAN values compare)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def subject_alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def write_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    """Write key (0600) then cert, each atomically."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(key_path, key_pem, 0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


CA_DAYS = 3650
LEAF_DAYS = 365
LEAF_LIFETIME = datetime.timedelta(days=LEAF_DAYS)
RENEW_BEFORE = datetime.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CaFiles:
    """A directory holding a CA (``ca.crt``, ``ca.key``) and what it issued."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"


def ensure_ca(cert_path: Path, key_path: Path, common_name: str) -> None:
    """Make a self-signed CA at these paths (and their directory) unless both files exist."""
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    if cert_path.exists() and key_path.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        cert_builder(name, name, key.public_key(), datetime.timedelta(days=CA_DAYS))
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
    write_pair(cert_path, key_path, cert, key)


def all_current(bundle: Path) -> bool:
    """Is every certificate in the PEM ``bundle`` within its validity period now?"""
    now = datetime.datetime.now(datetime.UTC)
    certs = x509.load_pem_x509_certificates(bundle.read_bytes())
    return all(c.not_valid_before_utc <= now <= c.not_valid_after_utc for c in certs)


def load_ca(pki: CaFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pki.ca_key}: expected an EC private key")
    return ca_cert, ca_key


def cert_builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, lifetime: datetime.timedelta
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
    )


def needs_issue(cert_path: Path, hosts: Sequence[str]) -> bool:
    key_path = cert_path.with_suffix(".key")
    if not (cert_path.exists() and key_path.exists()):
        return True
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.not_valid_after_utc - RENEW_BEFORE < datetime.datetime.now(datetime.UTC):
        return True
    if not hosts:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    present = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))
    return any(normal_host(h) not in present for h in hosts)


def issue_cert(
    cert_path: Path,
    key_path: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    organizations: Sequence[str],
    hosts: Sequence[str],
    *,
    server: bool,
    client_too: bool = False,
    lifetime: datetime.timedelta | None = None,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    subject = x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usages = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    if server and client_too:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        cert_builder(subject, ca_cert.subject, key.public_key(), LEAF_LIFETIME if lifetime is None else lifetime)
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
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if hosts:
        names = subject_alt_names(hosts)
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    write_pair(cert_path, key_path, builder.sign(ca_key, hashes.SHA256()), key)


@dataclass(frozen=True, slots=True)
class ServingPki(CaFiles):
    """A CA of its own and one serving certificate from it, in ``directory``."""

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"


def ensure_serving_pki(
    directory: Path, ca_name: str, server_name: str, hosts: Sequence[str] = (), *, client_too: bool = False
) -> ServingPki:
    """Create what is missing or due: a self-signed CA and a serving cert for loopback and ``hosts``.

    For a listener whose clients are handed the CA out of band (the store's API
    servers, the etcd operator's restoring seeds) rather than trusting the
    cluster CA, which signs whatever CSRs get approved.
    """
    pki = ServingPki(directory)
    ensure_ca(pki.ca_cert, pki.ca_key, ca_name)
    ca_cert, ca_key = load_ca(pki)
    wanted_hosts = list(dict.fromkeys(["127.0.0.1", "::1", "localhost", *hosts]))
    if needs_issue(pki.server_cert, wanted_hosts):
        issue_cert(
            pki.server_cert,
            pki.server_key,
            ca_cert,
            ca_key,
            server_name,
            [],
            wanted_hosts,
            server=True,
            client_too=client_too,
        )
    return pki
