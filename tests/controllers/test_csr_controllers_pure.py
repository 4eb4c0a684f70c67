"""The CSR controllers' pure rules: signing (lifetimes, extensions), approval recognition, garbage collection."""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.api import certificate_requests as csrs
from skiff.client.timefmt import rfc3339
from skiff.controllers import csrapproving, csrcleaner, csrsigning

UTC = datetime.UTC
NOW = datetime.datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
T0 = NOW.timestamp()
HOUR = datetime.timedelta(hours=1)
KEY = ec.generate_private_key(ec.SECP256R1())


def ca(not_after: datetime.datetime = NOW + datetime.timedelta(days=3650)) -> csrsigning.Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW - HOUR).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return csrsigning.Authority(cert, key)


def request(cn: str = "system:node:n1", orgs: tuple[str, ...] = ("system:nodes",), dns: tuple[str, ...] = ()) -> Any:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(KEY, hashes.SHA256())


def csr_obj(
    signer: str = csrs.KUBE_APISERVER_CLIENT_KUBELET,
    username: str = "system:bootstrap:abcdef",
    conditions: tuple[dict[str, Any], ...] = (),
    certificate: bytes = b"",
    created: float = T0,
    **spec: Any,
) -> dict[str, Any]:
    pem = request().public_bytes(serialization.Encoding.PEM)
    status: dict[str, Any] = {"conditions": list(conditions)} if conditions else {}
    if certificate:
        status["certificate"] = base64.b64encode(certificate).decode()
    return {
        "metadata": {"name": "c", "uid": "u1", "creationTimestamp": rfc3339(created)},
        "spec": {
            "request": base64.b64encode(pem).decode(),
            "signerName": signer,
            "usages": ["digital signature", "client auth"],
            "username": username,
            "groups": ["system:bootstrappers", "system:authenticated"],
            **spec,
        },
        "status": status,
    }


def condition(kind: str, updated: float = T0) -> dict[str, Any]:
    return {"type": kind, "status": "True", "reason": "R", "lastUpdateTime": rfc3339(updated)}


# -- signing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expiration", "maximum", "want"),
    [
        pytest.param(None, HOUR * 24, HOUR * 24, id="unset-is-max"),
        pytest.param(3600, HOUR * 24, HOUR, id="asked"),
        pytest.param(3600 * 48, HOUR * 24, HOUR * 24, id="capped"),
        pytest.param(60, HOUR * 24, datetime.timedelta(minutes=10), id="floor"),
    ],
)
def test_duration(expiration: int | None, maximum: datetime.timedelta, want: datetime.timedelta) -> None:
    assert csrsigning.duration(expiration, maximum) == want


@pytest.mark.parametrize(
    ("ttl", "ca_not_after", "want"),
    [
        pytest.param(HOUR, NOW + HOUR * 1000, (NOW - csrsigning.BACKDATE, NOW + HOUR), id="short-not-backdated"),
        pytest.param(HOUR * 24, NOW + HOUR * 1000, (NOW - csrsigning.BACKDATE, NOW + HOUR * 24 - csrsigning.BACKDATE),
                     id="long-backdated"),
        pytest.param(HOUR * 24, NOW + HOUR, (NOW - csrsigning.BACKDATE, NOW + HOUR), id="capped-by-ca"),
    ],
)  # fmt: skip
def test_validity(
    ttl: datetime.timedelta, ca_not_after: datetime.datetime, want: tuple[datetime.datetime, datetime.datetime]
) -> None:
    assert csrsigning.validity(NOW, ttl, ca_not_after) == want


def test_validity_refuses_an_expired_ca() -> None:
    with pytest.raises(ValueError, match="expired in the past"):
        csrsigning.validity(NOW, HOUR, NOW - HOUR)


def test_sign_issues_what_was_asked() -> None:
    authority = ca()
    pem = csrsigning.sign(
        authority, request(dns=("n1.example",)), ["digital signature", "server auth", "client auth"], HOUR, NOW
    )
    cert = x509.load_pem_x509_certificate(pem)
    cert.verify_directly_issued_by(authority.certificate)
    assert cert.subject == request().subject
    assert cert.not_valid_before_utc == NOW - csrsigning.BACKDATE and cert.not_valid_after_utc == NOW + HOUR
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_encipherment
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]  # Go's order
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["n1.example"]
    assert cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(
    ("obj", "signable"),
    [
        pytest.param(csr_obj(conditions=(condition("Approved"),)), True, id="approved"),
        pytest.param(csr_obj(), False, id="pending"),
        pytest.param(csr_obj(conditions=(condition("Approved"), condition("Denied"))), False, id="denied"),
        pytest.param(csr_obj(conditions=(condition("Approved"), condition("Failed"))), False, id="failed"),
        pytest.param(csr_obj(conditions=(condition("Approved"),), certificate=b"x"), False, id="issued"),
        pytest.param(csr_obj("example.com/x", conditions=(condition("Approved"),)), False, id="foreign-signer"),
        pytest.param(csr_obj(csrs.KUBELET_SERVING, conditions=(condition("Approved"),)), True, id="serving"),
    ],
)
def test_is_signable(obj: dict[str, Any], signable: bool) -> None:
    assert csrsigning.is_signable(obj) is signable


def test_failed_appends_the_signer_failure() -> None:
    out = csrsigning.failed(csr_obj(conditions=(condition("Approved"),)), "no", T0)
    assert [c["type"] for c in out["status"]["conditions"]] == ["Approved", "Failed"]
    assert out["status"]["conditions"][1]["reason"] == "SignerValidationFailure"


# -- approving ----------------------------------------------------------------------------------------


def _subject(obj: dict[str, Any]) -> csrs.Subject:
    return csrs.subject_of(csrs.parse_request(csrs.decode_base64(obj["spec"]["request"])))


@pytest.mark.parametrize(
    ("obj", "subresources"),
    [
        pytest.param(csr_obj(), ["nodeclient"], id="bootstrap-token"),
        pytest.param(csr_obj(username="system:node:n1"), ["selfnodeclient", "nodeclient"], id="node-renewing"),
        pytest.param(csr_obj(csrs.KUBE_APISERVER_CLIENT), [], id="other-signer"),
        pytest.param(csr_obj(usages=["client auth", "server auth"]), [], id="wrong-usages"),
    ],
)
def test_recognizers(obj: dict[str, Any], subresources: list[str]) -> None:
    assert [r.subresource for r in csrapproving.recognizers_for(obj, _subject(obj))] == subresources


def test_access_review_asks_for_the_requester() -> None:
    review = csrapproving.access_review(csr_obj(extra={"k": ["v"]}, uid="7"), "nodeclient")
    assert review["spec"] == {
        "user": "system:bootstrap:abcdef",
        "uid": "7",
        "groups": ["system:bootstrappers", "system:authenticated"],
        "extra": {"k": ["v"]},
        "resourceAttributes": {
            "group": "certificates.k8s.io",
            "resource": "certificatesigningrequests",
            "verb": "create",
            "subresource": "nodeclient",
        },
    }


def test_approval_condition() -> None:
    out = csrapproving.approved(csr_obj(), "msg")
    assert out["status"]["conditions"] == [
        {"type": "Approved", "status": "True", "reason": "AutoApproved", "message": "msg"}
    ]
    assert csrapproving.needs_decision(csr_obj()) and not csrapproving.needs_decision(out)


# -- cleaning -----------------------------------------------------------------------------------------


def _issued_cert(not_after: datetime.datetime) -> bytes:
    return csrsigning.sign(ca(), request(), ["client auth"], not_after - NOW + csrsigning.BACKDATE, NOW)


@pytest.mark.parametrize(
    ("obj", "now", "deleted"),
    [
        pytest.param(csr_obj(), T0 + 23 * 3600, False, id="pending-23h"),
        pytest.param(csr_obj(), T0 + 25 * 3600, True, id="pending-25h"),
        pytest.param(csr_obj(conditions=(condition("Denied"),)), T0 + 1800, False, id="denied-30m"),
        pytest.param(csr_obj(conditions=(condition("Denied"),)), T0 + 3601, True, id="denied-1h"),
        pytest.param(csr_obj(conditions=(condition("Approved"), condition("Failed"))), T0 + 3601, True,
                     id="failed-1h"),
        pytest.param(csr_obj(conditions=(condition("Approved"),)), T0 + 30 * 3600, False, id="approved-not-issued"),
        pytest.param(csr_obj(conditions=(condition("Approved"),), certificate=_issued_cert(NOW + HOUR * 100)),
                     T0 + 1800, False, id="issued-30m"),
        pytest.param(csr_obj(conditions=(condition("Approved"),), certificate=_issued_cert(NOW + HOUR * 100)),
                     T0 + 3601, True, id="issued-1h"),
        pytest.param(csr_obj(conditions=(condition("Approved", T0 + 10_000),),
                             certificate=_issued_cert(NOW + HOUR)), T0 + 2 * 3600, True, id="issued-expired"),
    ],
)  # fmt: skip
def test_cleanup_reason(obj: dict[str, Any], now: float, deleted: bool) -> None:
    assert (csrcleaner.cleanup_reason(obj, now) is not None) is deleted
