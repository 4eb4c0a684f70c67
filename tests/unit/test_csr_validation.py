"""CertificateSigningRequest rules: PEM and CSR parsing, field validation, update rules, strategies, admission."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from skiff.api import certificate_requests as csrs
from skiff.api.status import ApiError
from skiff.registry import builtin
from skiff.registry.admission.certificates import (
    CertificateApproval,
    CertificateSigning,
    CertificateSubjectRestriction,
    approval_allowed,
)
from skiff.registry.admission.chain import Attributes, Operation
from skiff.registry.certificates import csr_validation
from skiff.registry.certificates.certificatesigningrequest import (
    ApprovalStrategy,
    CertificateSigningRequestStrategy,
    StatusStrategy,
    populate_condition_timestamps,
)
from skiff.registry.request_user import CURRENT_USER

KEY = ec.generate_private_key(ec.SECP256R1())
NODE = "system:node:n1"


def request_pem(cn: str = NODE, orgs: tuple[str, ...] = ("system:nodes",), dns: tuple[str, ...] = ()) -> bytes:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    return builder.sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def tampered(pem: bytes) -> bytes:
    """The same request with its signature's last byte flipped."""
    der = bytearray(csrs.pem_blocks(pem)[0].data)
    der[-1] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n".encode()


def certificate_pem() -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(KEY, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def csr(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request": b64(request_pem()),
        "signerName": csrs.KUBE_APISERVER_CLIENT_KUBELET,
        "usages": ["digital signature", "client auth"],
    }
    body.update(spec)
    return {"metadata": {"name": "c"}, "spec": {k: v for k, v in body.items() if v is not None}}


def with_conditions(obj: dict[str, Any], *conditions: Mapping[str, Any], certificate: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [dict(c) for c in conditions]}
    if certificate:
        status["certificate"] = certificate
    return {**obj, "status": status}


APPROVED = {"type": "Approved", "status": "True", "reason": "R"}
DENIED = {"type": "Denied", "status": "True", "reason": "R"}
FAILED = {"type": "Failed", "status": "True", "reason": "R"}


def fields(causes: list[Any]) -> list[tuple[str, str]]:
    return [(c.field, c.reason) for c in causes]


# -- PEM and requests ----------------------------------------------------------------------------


def test_pem_blocks_reads_like_pem_decode() -> None:
    cert = certificate_pem()
    text = b"leading junk\n" + cert + b"between\n" + cert.replace(b"CERTIFICATE", b"OTHER")
    blocks = csrs.pem_blocks(text)
    assert [b.type for b in blocks] == ["CERTIFICATE", "OTHER"]
    assert blocks[0].data == blocks[1].data
    headed = b"-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END X-----\n"
    assert csrs.pem_blocks(headed)[0].headers == {"Proc-Type": "4,ENCRYPTED"}
    assert csrs.pem_blocks(b"-----BEGIN X-----\n!!not base64!!\n-----END X-----\n") == []


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        pytest.param(b"", "PEM block type must be CERTIFICATE REQUEST", id="empty"),
        pytest.param(certificate_pem(), "PEM block type must be CERTIFICATE REQUEST", id="certificate-block"),
        pytest.param(tampered(request_pem()), "x509: ECDSA verification failure", id="bad-signature"),
        pytest.param(
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "x509: malformed certificate request",
            id="garbage-der",
        ),
    ],
)
def test_parse_request_refuses(pem: bytes, message: str) -> None:
    with pytest.raises(csrs.RequestError, match=message):
        csrs.parse_request(pem)


def test_parse_request_reads_the_subject() -> None:
    subject = csrs.subject_of(csrs.parse_request(request_pem(dns=("a.example",))))
    assert (subject.common_name, subject.organizations, subject.dns_names) == (NODE, ("system:nodes",), ("a.example",))
    assert not subject.rsa_key


NODE_SUBJECT = csrs.Subject(NODE, ("system:nodes",), (), (), (), (), False)


@pytest.mark.parametrize(
    ("changes", "usages", "problem"),
    [
        pytest.param({}, ["digital signature", "client auth"], None, id="ecdsa-usages"),
        pytest.param({}, ["client auth", "key encipherment", "digital signature"], None, id="rsa-usages"),
        pytest.param({"organizations": ("evil",)}, ["digital signature", "client auth"],
                     "subject organization is not system:nodes", id="wrong-org"),
        pytest.param({"organizations": ("system:nodes", "x")}, ["digital signature", "client auth"],
                     "subject organization is not system:nodes", id="two-orgs"),
        pytest.param({"dns_names": ("a",)}, ["digital signature", "client auth"],
                     "DNS subjectAltNames are not allowed", id="dns-san"),
        pytest.param({"ip_addresses": ("127.0.0.1",)}, ["digital signature", "client auth"],
                     "IP subjectAltNames are not allowed", id="ip-san"),
        pytest.param({"common_name": "n1"}, ["digital signature", "client auth"],
                     "subject common name does not begin with system:node:", id="wrong-cn"),
        pytest.param({}, ["client auth"], "usages did not match [client auth digital signature key encipherment]",
                     id="missing-usage"),
        pytest.param({}, ["digital signature", "client auth", "server auth"],
                     "usages did not match [client auth digital signature key encipherment]", id="extra-usage"),
    ],
)  # fmt: skip
def test_kubelet_client_problem(changes: dict[str, Any], usages: list[str], problem: str | None) -> None:
    assert csrs.kubelet_client_problem(replace(NODE_SUBJECT, **changes), usages) == problem


@pytest.mark.parametrize(
    ("changes", "usages", "problem"),
    [
        pytest.param({"dns_names": ("n1",)}, ["digital signature", "server auth"], None, id="ok"),
        pytest.param({}, ["digital signature", "server auth"], "DNS or IP subjectAltName is required", id="no-san"),
        pytest.param({"ip_addresses": ("127.0.0.1",)}, ["server auth"],
                     "usages did not match [digital signature key encipherment server auth]", id="usages"),
    ],
)  # fmt: skip
def test_kubelet_serving_problem(changes: dict[str, Any], usages: list[str], problem: str | None) -> None:
    assert csrs.kubelet_serving_problem(replace(NODE_SUBJECT, **changes), usages) == problem


@pytest.mark.parametrize(
    ("usages", "problem"),
    [
        pytest.param(["client auth"], None, id="client-auth"),
        pytest.param(["digital signature", "key encipherment", "client auth"], None, id="all-allowed"),
        pytest.param(["digital signature"], "missing required usage for client certificate: client auth", id="none"),
        pytest.param(["client auth", "server auth"], "invalid usage for client certificate: server auth", id="server"),
    ],
)
def test_apiserver_client_problem(usages: list[str], problem: str | None) -> None:
    assert csrs.apiserver_client_problem(usages) == problem


@pytest.mark.parametrize(
    ("conditions", "certificate", "text"),
    [
        pytest.param([], "", "Pending", id="pending"),
        pytest.param([APPROVED], "", "Approved", id="approved"),
        pytest.param([APPROVED], "eA==", "Approved,Issued", id="issued"),
        pytest.param([APPROVED, FAILED], "", "Approved,Failed", id="failed"),
        pytest.param([APPROVED, DENIED], "", "Denied", id="denied-wins"),
    ],
)
def test_display_status(conditions: list[dict[str, str]], certificate: str, text: str) -> None:
    assert csrs.display_status(with_conditions(csr(), *conditions, certificate=certificate)) == text


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(csr(), [], id="valid"),
        pytest.param(csr(request=b64(b"not pem")), [("spec.request", "FieldValueInvalid")], id="not-pem"),
        pytest.param(csr(request="%%%"), [("spec.request", "FieldValueInvalid")], id="not-base64"),
        pytest.param(csr(request=b64(tampered(request_pem()))), [("spec.request", "FieldValueInvalid")],
                     id="bad-signature"),
        pytest.param(csr(usages=None), [("spec.usages", "FieldValueRequired")], id="no-usages"),
        pytest.param(csr(usages=["client auth", "flying"]), [("spec.usages[1]", "FieldValueNotSupported")],
                     id="unknown-usage"),
        pytest.param(csr(usages=["client auth", "client auth"]), [("spec.usages[1]", "FieldValueDuplicate")],
                     id="duplicate-usage"),
        pytest.param(csr(signerName=None), [("spec.signerName", "FieldValueRequired")], id="no-signer"),
        pytest.param(csr(signerName="kubernetes.io/legacy-unknown"), [("spec.signerName", "FieldValueInvalid")],
                     id="legacy-signer"),
        pytest.param(csr(signerName="example/x"), [("spec.signerName", "FieldValueInvalid")], id="one-label-domain"),
        pytest.param(csr(signerName="example.com"), [("spec.signerName", "FieldValueInvalid")], id="no-path"),
        pytest.param(csr(expirationSeconds=599), [("spec.expirationSeconds", "FieldValueInvalid")], id="599s"),
        pytest.param(csr(expirationSeconds=600), [], id="600s"),
        pytest.param(with_conditions(csr(), {"type": "Approved", "status": "False"}),
                     [("status.conditions[0].status", "FieldValueNotSupported")], id="approved-false"),
        pytest.param(with_conditions(csr(), APPROVED, DENIED),
                     [("status.conditions[1].type", "FieldValueInvalid")], id="approved-and-denied"),
        pytest.param(with_conditions(csr(), APPROVED, APPROVED),
                     [("status.conditions[1].type", "FieldValueDuplicate")], id="duplicate-type"),
        pytest.param(with_conditions(csr(), {"type": "", "status": "True"}),
                     [("status.conditions[0].type", "FieldValueRequired")], id="empty-type"),
        pytest.param(with_conditions(csr(), {"type": "Custom"}),
                     [("status.conditions[0].status", "FieldValueRequired")], id="no-status"),
        pytest.param(with_conditions(csr(), APPROVED, certificate=b64(b"junk")),
                     [("status.certificate", "FieldValueInvalid")], id="certificate-not-pem"),
        pytest.param(with_conditions(csr(), APPROVED, certificate=b64(request_pem())),
                     [("status.certificate", "FieldValueInvalid")], id="certificate-wrong-block"),
        pytest.param(with_conditions(csr(), APPROVED, certificate=b64(certificate_pem())), [], id="certificate"),
    ],
)  # fmt: skip
def test_validate(obj: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert fields(csr_validation.validate(obj)) == expected


def test_invalid_messages_read_as_upstream() -> None:
    (cause,) = csr_validation.validate(csr(request=b64(b"-x")))
    assert cause.message == "Invalid value: []byte{0x2d, 0x78}: PEM block type must be CERTIFICATE REQUEST"
    (cause,) = csr_validation.validate(csr(expirationSeconds=599))
    assert cause.message == "Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)"
    (cause,) = csr_validation.validate(csr(signerName="example.com"))
    assert cause.message == (
        'Invalid value: "example.com": must be a fully qualified domain and path of the form '
        "'example.com/signer-name'"
    )
    (cause,) = csr_validation.validate(with_conditions(csr(), APPROVED, certificate=b64(request_pem())))
    assert cause.message == (
        'Invalid value: "<certificate data>": only CERTIFICATE PEM blocks are allowed, found "CERTIFICATE REQUEST"'
    )


@pytest.mark.parametrize(
    ("old", "new", "options", "message"),
    [
        pytest.param([APPROVED], [], csr_validation.APPROVAL, 'updates may not remove a condition of type "Approved"',
                     id="remove-approved"),
        pytest.param([DENIED], [], csr_validation.STATUS, 'updates may not remove a condition of type "Denied"',
                     id="remove-denied"),
        pytest.param([APPROVED, FAILED], [APPROVED], csr_validation.STATUS,
                     'updates may not remove a condition of type "Failed"', id="remove-failed"),
        pytest.param([], [APPROVED], csr_validation.MAIN, 'updates may not add a condition of type "Approved"',
                     id="add-through-main"),
        pytest.param([], [DENIED], csr_validation.STATUS, 'updates may not add a condition of type "Denied"',
                     id="add-through-status"),
        pytest.param([APPROVED], [{**APPROVED, "reason": "Other"}], csr_validation.STATUS,
                     'updates may not modify a condition of type "Approved"', id="modify-through-status"),
        pytest.param([], [APPROVED], csr_validation.APPROVAL, None, id="approve"),
        pytest.param([APPROVED], [APPROVED, FAILED], csr_validation.STATUS, None, id="fail"),
    ],
)  # fmt: skip
def test_validate_update_conditions(
    old: list[dict[str, str]], new: list[dict[str, str]], options: csr_validation.Options, message: str | None
) -> None:
    causes = csr_validation.validate_update(with_conditions(csr(), *new), with_conditions(csr(), *old), options)
    if message is None:
        assert causes == []
    else:
        assert [c.message.split("\n")[0] for c in causes] == [f"Forbidden: {message}"]
        assert causes[0].field == "status.conditions"


@pytest.mark.parametrize(
    ("before", "after", "options", "message"),
    [
        pytest.param("", "Y2VydA==", csr_validation.MAIN, "updates may not set certificate content", id="main"),
        pytest.param("", "Y2VydA==", csr_validation.APPROVAL, "updates may not set certificate content", id="approval"),
        pytest.param("", "Y2VydA==", csr_validation.STATUS, None, id="status-sets"),
        pytest.param("Y2VydA==", "b3RoZXI=", csr_validation.STATUS, "updates may not modify existing certificate "
                     "content", id="status-resets"),
    ],
)  # fmt: skip
def test_validate_update_certificate(
    before: str, after: str, options: csr_validation.Options, message: str | None
) -> None:
    old = with_conditions(csr(), APPROVED, certificate=before)
    new = with_conditions(csr(), APPROVED, certificate=after)
    causes = csr_validation.validate_update(new, old, options)
    assert [c.message for c in causes] == ([f"Forbidden: {message}"] if message else [])


# -- strategies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


STRATEGY = CertificateSigningRequestStrategy(False)


def test_create_records_the_requester_and_clears_status() -> None:
    obj = with_conditions(csr(username="mallory", groups=["system:masters"]), APPROVED)
    token = CURRENT_USER.set(User("system:bootstrap:abcdef", "", ("system:bootstrappers",), {"k": ("v",)}))
    try:
        STRATEGY.prepare_for_create(obj)
    finally:
        CURRENT_USER.reset(token)
    assert obj["spec"]["username"] == "system:bootstrap:abcdef"
    assert obj["spec"]["groups"] == ["system:bootstrappers"]
    assert obj["spec"]["extra"] == {"k": ["v"]}
    assert "uid" not in obj["spec"]
    assert obj["status"] == {}


def test_create_without_a_user_records_nobody() -> None:
    obj = csr(username="mallory")
    STRATEGY.prepare_for_create(obj)
    assert "username" not in obj["spec"]


def test_main_update_keeps_spec_and_status() -> None:
    old = with_conditions(csr(), APPROVED)
    new = with_conditions(csr(usages=["server auth"]), APPROVED, DENIED)
    new["metadata"]["labels"] = {"a": "b"}
    STRATEGY.prepare_for_update(new, old)
    assert new["spec"] == old["spec"] and new["status"] == old["status"]
    assert new["metadata"]["labels"] == {"a": "b"}


def test_approval_update_changes_conditions_only() -> None:
    old = with_conditions(csr(), certificate="")
    new = with_conditions(csr(usages=["server auth"]), APPROVED, certificate="Y2VydA==")
    ApprovalStrategy(False).prepare_for_update(new, old)
    assert new["spec"] == old["spec"]
    assert new["status"] == {"conditions": [APPROVED]}


def test_status_update_keeps_stored_approval_conditions() -> None:
    stored_approval = {**APPROVED, "lastUpdateTime": "2025-01-01T00:00:00Z"}
    old = with_conditions(csr(), stored_approval)
    new = with_conditions(csr(usages=["server auth"]), {**APPROVED, "message": "rewritten"}, FAILED)
    StatusStrategy(False).prepare_for_status_update(new, old)
    assert new["spec"] == old["spec"]
    assert new["status"]["conditions"] == [stored_approval, FAILED]


def test_condition_timestamps() -> None:
    old = with_conditions(csr(), {**APPROVED, "lastTransitionTime": "2025-01-01T00:00:00Z"})
    new = with_conditions(csr(), APPROVED, {"type": "Custom", "status": "False"}, {**FAILED, "lastUpdateTime": "T"})
    populate_condition_timestamps(new, old, "NOW")
    got = [(c.get("lastUpdateTime"), c.get("lastTransitionTime")) for c in new["status"]["conditions"]]
    assert got == [("NOW", "2025-01-01T00:00:00Z"), ("NOW", "NOW"), ("T", "NOW")]


def test_table_row() -> None:
    info = builtin.find("certificates.k8s.io", "v1", "certificatesigningrequests")
    assert info is not None
    obj = with_conditions(csr(username="u", expirationSeconds=3600), APPROVED)
    now = datetime.datetime.now(datetime.UTC)
    assert info.strategy.row(obj, now) == [csrs.KUBE_APISERVER_CLIENT_KUBELET, "u", "60m", "Approved"]
    assert info.strategy.row({"metadata": {}}, now) == ["<none>", "", "<none>", "Pending"]
    assert info.strategy.field_values(obj) == {"spec.signerName": csrs.KUBE_APISERVER_CLIENT_KUBELET}


# -- admission ------------------------------------------------------------------------------------


class Grants:
    """An authorizer hook that allows only the (verb, signers name) pairs given, and records the questions."""

    def __init__(self, *allowed: tuple[str, str]) -> None:
        self.allowed = set(allowed)
        self.asked: list[tuple[str, str, str]] = []

    def __call__(self, user: Any, verb: str, name: str) -> bool:
        self.asked.append((user.name, verb, name))
        return (verb, name) in self.allowed


@pytest.mark.parametrize(
    ("allowed", "ok"),
    [
        pytest.param([("approve", "example.com/signer")], True, id="exact"),
        pytest.param([("approve", "example.com/*")], True, id="wildcard"),
        pytest.param([("approve", "example.com/other")], False, id="other-signer"),
        pytest.param([("sign", "example.com/signer")], False, id="other-verb"),
    ],
)
async def test_approval_allowed_exact_then_domain_wildcard(allowed: list[tuple[str, str]], ok: bool) -> None:
    grants = Grants(*allowed)
    assert await approval_allowed(grants, User("u"), "example.com/signer") is ok
    assert grants.asked[0] == ("u", "approve", "example.com/signer")


def _attrs(op: Operation, sub: str, obj: dict[str, Any], old: dict[str, Any] | None, user: Any) -> Attributes:
    info = builtin.find("certificates.k8s.io", "v1", "certificatesigningrequests")
    assert info is not None
    return Attributes(op, info, "", "c", obj, old, sub, False, user)


async def test_approval_plugin_checks_the_stored_signer() -> None:
    old = csr(signerName="example.com/a")
    new = with_conditions(csr(signerName="example.com/b"), APPROVED)
    plugin = CertificateApproval(Grants(("approve", "example.com/b")))
    with pytest.raises(ApiError) as err:
        await plugin.validate(_attrs(Operation.UPDATE, "approval", new, old, User("u")))
    assert err.value.code == 403
    assert err.value.message == (
        'certificatesigningrequests.certificates.k8s.io "c" is forbidden: '
        'user not permitted to approve requests with signerName "example.com/a"'
    )
    await CertificateApproval(Grants(("approve", "example.com/a"))).validate(
        _attrs(Operation.UPDATE, "approval", new, old, User("u"))
    )


async def test_signing_plugin_only_when_status_changes() -> None:
    old = with_conditions(csr(), APPROVED)
    plugin = CertificateSigning(Grants())
    await plugin.validate(_attrs(Operation.UPDATE, "status", with_conditions(csr(), APPROVED), old, User("u")))
    issued = with_conditions(csr(), APPROVED, certificate="Y2VydA==")
    with pytest.raises(ApiError, match="user not permitted to sign requests with signerName"):
        await plugin.validate(_attrs(Operation.UPDATE, "status", issued, old, User("u")))


async def test_subject_restriction_refuses_system_masters() -> None:
    plugin = CertificateSubjectRestriction()
    masters = csr(signerName=csrs.KUBE_APISERVER_CLIENT, request=b64(request_pem("me", ("system:masters",))))
    with pytest.raises(ApiError, match=r"use of kubernetes\.io/kube-apiserver-client signer with system:masters"):
        await plugin.validate(_attrs(Operation.CREATE, "", masters, None, User("u")))
    fine = csr(signerName=csrs.KUBE_APISERVER_CLIENT, request=b64(request_pem("me", ("team",))))
    await plugin.validate(_attrs(Operation.CREATE, "", fine, None, User("u")))
