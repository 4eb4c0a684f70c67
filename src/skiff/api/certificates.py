"""X.509 pieces shared by every part of Skiff that makes certificates (the API server's PKI, kubelets).

Subject alternative names from host strings (IP addresses as IP SANs, the
rest as DNS names), the canonical text of a host for SAN comparison, and the
crash-safe way to store a key pair: key first with mode 0600, each file
written to a temp name, fsynced and renamed, so a reader never sees half a
PEM or a certificate without its key.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


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
