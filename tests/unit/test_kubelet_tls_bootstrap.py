"""Kubelet TLS bootstrapping's pure pieces: when to ask, what to ask for, what to accept, what to write."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from skiff.api import certificate_requests as csrs
from skiff.kubelet import tls_bootstrap as tb

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
KEY = ec.generate_private_key(ec.SECP256R1())


def cert_pem(not_before: datetime.datetime, not_after: datetime.datetime) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:node:n1")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
        .serial_number(1).not_valid_before(not_before).not_valid_after(not_after).sign(KEY, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("pem", "needed"),
    [
        pytest.param(None, True, id="missing"),
        pytest.param(b"garbage", True, id="unreadable"),
        pytest.param(cert_pem(NOW - DAY, NOW + 9 * DAY), False, id="fresh"),
        pytest.param(cert_pem(NOW - 8 * DAY, NOW + 2 * DAY), False, id="at-80-percent-minus"),
        pytest.param(cert_pem(NOW - 9 * DAY, NOW + DAY), True, id="past-80-percent"),
        pytest.param(cert_pem(NOW - 2 * DAY, NOW - DAY), True, id="expired"),
    ],
)
def test_needs_certificate(pem: bytes | None, needed: bool) -> None:
    assert tb.needs_certificate(pem, NOW.timestamp() - 1) is needed


def test_request_is_a_kubelet_client_request() -> None:
    usages = tb.usages_for(KEY)
    assert usages == ["digital signature", "client auth"]
    assert tb.usages_for(rsa.generate_private_key(65537, 2048)) == [*usages, "key encipherment"]
    request = csrs.parse_request(tb.make_request(KEY, "n1"))
    assert csrs.kubelet_client_problem(csrs.subject_of(request), usages) is None
    body = tb.request_body("node-csr-x", tb.make_request(KEY, "n1"), usages)
    assert body["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert "expirationSeconds" not in body["spec"]


def test_csr_name_is_a_digest_of_key_subject_and_usages() -> None:
    name = tb.csr_name(KEY, "n1", ["digital signature", "client auth"])
    assert name.startswith("node-csr-") and len(name) == len("node-csr-") + 43  # 32 bytes, raw base64url
    assert name == tb.csr_name(KEY, "n1", ["digital signature", "client auth"])
    assert name != tb.csr_name(KEY, "n2", ["digital signature", "client auth"])
    assert name != tb.csr_name(ec.generate_private_key(ec.SECP256R1()), "n1", ["digital signature", "client auth"])


def _stored(key: Any, node: str, usages: list[str], signer: str = csrs.KUBE_APISERVER_CLIENT_KUBELET) -> dict[str, Any]:
    body = tb.request_body("n", tb.make_request(key, node), usages)
    body["spec"]["signerName"] = signer
    return body


def test_is_ours() -> None:
    usages = tb.usages_for(KEY)
    assert tb.is_ours(_stored(KEY, "n1", usages), KEY, "n1", usages)
    assert not tb.is_ours(_stored(KEY, "n2", usages), KEY, "n1", usages)
    assert not tb.is_ours(_stored(ec.generate_private_key(ec.SECP256R1()), "n1", usages), KEY, "n1", usages)
    assert not tb.is_ours(_stored(KEY, "n1", ["client auth"]), KEY, "n1", usages)
    assert not tb.is_ours(_stored(KEY, "n1", usages, "example.com/x"), KEY, "n1", usages)


def _with(conditions: list[dict[str, str]], certificate: bytes = b"") -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": conditions}
    if certificate:
        status["certificate"] = base64.b64encode(certificate).decode()
    return {"metadata": {"name": "n"}, "spec": {}, "status": status}


def test_issued() -> None:
    approved = {"type": "Approved", "status": "True"}
    assert tb.issued(_with([])) is None
    assert tb.issued(_with([approved])) is None
    assert tb.issued(_with([approved], b"PEM")) == b"PEM"
    with pytest.raises(tb.BootstrapError, match="is denied, reason: No, message: go away"):
        tb.issued(_with([{"type": "Denied", "status": "True", "reason": "No", "message": "go away"}]))
    with pytest.raises(tb.BootstrapError, match="failed, reason: SignerValidationFailure"):
        tb.issued(_with([approved, {"type": "Failed", "status": "True", "reason": "SignerValidationFailure"}]))


def test_kubeconfig_uses_the_certificate_not_the_token(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    doc = tb.kubeconfig_document("https://127.0.0.1:6443", str(ca), tmp_path / "pki" / "current.pem")
    assert doc["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:6443", "certificate-authority": str(ca)}
    pem = str(tmp_path / "pki" / "current.pem")
    assert doc["users"] == [{"name": "default-auth", "user": {"client-certificate": pem, "client-key": pem}}]


def test_key_is_kept_until_the_certificate_is_stored(tmp_path: Path) -> None:
    paths = tb.Paths(tmp_path)
    key = tb.load_or_make_key(paths.tmp_key)
    assert paths.tmp_key.stat().st_mode & 0o777 == 0o600
    again = tb.load_or_make_key(paths.tmp_key)
    assert again.private_numbers() == key.private_numbers()  # type: ignore[union-attr]
    tb.store_certificate(paths, cert_pem(NOW, NOW + DAY), key)
    assert not paths.tmp_key.exists()
    assert paths.current.stat().st_mode & 0o777 == 0o600
    assert [b.type for b in csrs.pem_blocks(paths.current.read_bytes())] == ["CERTIFICATE", "PRIVATE KEY"]
