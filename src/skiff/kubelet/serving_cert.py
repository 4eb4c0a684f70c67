"""The kubelet's self-signed HTTPS serving certificate.

Like a kubelet started without ``--tls-cert-file``: on first start it writes
``kubelet.crt`` / ``kubelet.key`` into its cert dir (ECDSA P-256, CN
``<host>@<unix time>`` as upstream's self-signed kubelet certs) and reuses them
while they are valid for the requested addresses.  An API server without
``--kubelet-certificate-authority`` (upstream's default) dials kubelets
without verifying, so self-signed is enough there; one with it (``skiff up``)
needs a certificate from the cluster CA, given with ``--tls-cert-file`` (``skiff
up`` issues one for its own kubelet), or asked for with a ``kubelet-serving``
CSR (``--rotate-server-certificates``, on for a kubelet joining with a
bootstrap token: skiff.kubelet.server_certificate); such a kubelet serves
this one until that certificate is issued.

The apiserver's PKI module is not imported: the kubelet sits beside the
apiserver in the layering, not above it.

Blocking (file I/O, key generation): call through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.api.certificates import needs_issue, subject_alt_names, write_pair

CERT_NAME = "kubelet.crt"
KEY_NAME = "kubelet.key"
_DAYS = 365


def ensure_serving_cert(cert_dir: Path, hosts: Sequence[str]) -> tuple[Path, Path]:
    """(cert, key) paths in ``cert_dir``, (re)made when missing, expiring or lacking a host."""
    cert_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = cert_dir / CERT_NAME, cert_dir / KEY_NAME
    wanted = list(dict.fromkeys(["127.0.0.1", "localhost", *hosts]))
    if needs_issue(cert_path, wanted):  # the key is kubelet.key, beside it
        _issue(cert_path, key_path, wanted)
    return cert_path, key_path


def _issue(cert_path: Path, key_path: Path, hosts: Sequence[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{hosts[-1]}@{int(time.time())}")])
    now = datetime.datetime.now(datetime.UTC)
    names = subject_alt_names(hosts)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_pair(cert_path, key_path, cert, key)
