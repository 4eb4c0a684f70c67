"""CertificateSigningRequest facts shared by the registry, the CSR controllers and the kubelet.

Upstream keeps these in pkg/apis/certificates (ParseCSR, the kubelet
client/serving checks), k8s.io/api certificates/v1 (signer names, usages,
condition types) and the signer's authority package (usage → X.509 bits).
Here they are plain functions over ``cryptography`` objects and the JSON
dicts of the wire:

* ``pem_blocks`` reads PEM as Go's ``pem.Decode`` does in a loop (junk
  between blocks is skipped, a block whose body is not base64 is skipped);
* ``parse_request`` is ``ParseCSR`` + ``CheckSignature``: the first PEM block
  must be ``CERTIFICATE REQUEST`` and its signature must verify; failures
  raise ``RequestError`` worded as Go's;
* ``kubelet_client_problem`` / ``kubelet_serving_problem`` /
  ``apiserver_client_problem`` are ``ValidateKubeletClientCSR``,
  ``ValidateKubeletServingCSR`` and ``validAPIServerClientUsages``: the
  reason a request is not one the signer will sign, or None;
* ``certificate_problem`` is the validation of ``status.certificate``.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

GROUP = "certificates.k8s.io"

# Well-known signers (k8s.io/api certificates/v1).
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"

# Condition types.
APPROVED = "Approved"
DENIED = "Denied"
FAILED = "Failed"

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"

REQUEST_BLOCK = "CERTIFICATE REQUEST"
CERTIFICATE_BLOCK = "CERTIFICATE"

#: Usages that are KeyUsage bits (authority.keyUsageDict): usage → cryptography's KeyUsage argument.
KEY_USAGE_BITS: Mapping[str, str] = {
    "signing": "digital_signature",
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "key agreement": "key_agreement",
    "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
    "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}

#: Usages that are extended key usages (authority.extKeyUsageDict), in Go's x509.ExtKeyUsage order.
EXT_KEY_USAGE_OIDS: Mapping[str, str] = {
    "any": "2.5.29.37.0",
    "server auth": "1.3.6.1.5.5.7.3.1",
    "client auth": "1.3.6.1.5.5.7.3.2",
    "code signing": "1.3.6.1.5.5.7.3.3",
    "email protection": "1.3.6.1.5.5.7.3.4",
    "s/mime": "1.3.6.1.5.5.7.3.4",
    "ipsec end system": "1.3.6.1.5.5.7.3.5",
    "ipsec tunnel": "1.3.6.1.5.5.7.3.6",
    "ipsec user": "1.3.6.1.5.5.7.3.7",
    "timestamping": "1.3.6.1.5.5.7.3.8",
    "ocsp signing": "1.3.6.1.5.5.7.3.9",
    "microsoft sgc": "1.3.6.1.4.1.311.10.3.3",
    "netscape sgc": "2.16.840.1.113730.4.1",
}

#: allValidUsages.List(): every usage the API accepts, sorted.
ALL_USAGES: tuple[str, ...] = tuple(sorted({*KEY_USAGE_BITS, *EXT_KEY_USAGE_OIDS}))

KUBELET_CLIENT_USAGES = frozenset({"digital signature", "key encipherment", "client auth"})
KUBELET_CLIENT_USAGES_NO_RSA = frozenset({"digital signature", "client auth"})
KUBELET_SERVING_USAGES = frozenset({"digital signature", "key encipherment", "server auth"})
KUBELET_SERVING_USAGES_NO_RSA = frozenset({"digital signature", "server auth"})

_PEM_BEGIN = re.compile(rb"-----BEGIN (?P<type>[^\r\n]*?)-----[ \t]*\r?\n")


class RequestError(ValueError):
    """A request that does not parse or whose signature does not verify (the text is Go's)."""


@dataclass(frozen=True, slots=True)
class PemBlock:
    type: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


def pem_blocks(data: bytes) -> list[PemBlock]:
    """Every PEM block in ``data``, in order, as repeated ``pem.Decode`` calls find them."""
    blocks: list[PemBlock] = []
    pos = 0
    while (begin := _PEM_BEGIN.search(data, pos)) is not None:
        if begin.start() > 0 and data[begin.start() - 1 : begin.start()] != b"\n":
            pos = begin.end()
            continue  # BEGIN must start a line
        kind = begin["type"].decode("latin-1")
        end_marker = b"-----END " + begin["type"] + b"-----"
        end = data.find(end_marker, begin.end())
        if end < 0:
            break
        block = _block(kind, data[begin.end() : end])
        if block is not None:
            blocks.append(block)
        pos = end + len(end_marker)
    return blocks


def _block(kind: str, body: bytes) -> PemBlock | None:
    lines = body.decode("latin-1").splitlines()
    headers: dict[str, str] = {}
    if lines and ":" in lines[0]:
        while lines and lines[0].strip():
            key, _, value = lines.pop(0).partition(":")
            headers[key.strip()] = value.strip()
        if lines:
            lines.pop(0)  # the blank line after the headers
    try:
        der = base64.b64decode("".join(line.strip() for line in lines), validate=True)
    except (binascii.Error, ValueError):
        return None
    return PemBlock(kind, der, headers)


def decode_base64(value: Any) -> bytes:
    """A ``[]byte`` field's JSON value (base64 text) as bytes; RequestError when it is not base64."""
    if not isinstance(value, str):
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise RequestError(f"illegal base64 data: {err}") from None


def parse_request(pem: bytes) -> x509.CertificateSigningRequest:
    """ParseCSR and CheckSignature: the CSR of the first PEM block, its signature verified."""
    blocks = pem_blocks(pem)
    if not blocks or blocks[0].type != REQUEST_BLOCK:
        raise RequestError("PEM block type must be CERTIFICATE REQUEST")
    try:
        csr = x509.load_der_x509_csr(blocks[0].data)
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as err:
        raise RequestError(f"x509: malformed certificate request: {err}") from None
    if not valid:
        raise RequestError(_verification_failure(csr))
    return csr


def _verification_failure(csr: x509.CertificateSigningRequest) -> str:
    """What Go's CheckSignature says for a bad signature, by key type."""
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "x509: cannot verify signature: algorithm unimplemented"
    if isinstance(key, rsa.RSAPublicKey):
        return "crypto/rsa: verification error"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "x509: ECDSA verification failure"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "x509: Ed25519 verification failure"
    return "x509: cannot verify signature: algorithm unimplemented"


@dataclass(frozen=True, slots=True)
class Subject:
    """The parts of a request the well-known signers look at (Go's x509.CertificateRequest fields)."""

    common_name: str
    organizations: tuple[str, ...]
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    emails: tuple[str, ...]
    uris: tuple[str, ...]
    rsa_key: bool


def subject_of(csr: x509.CertificateSigningRequest) -> Subject:
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = tuple(str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    return Subject(
        common_name=str(names[-1].value) if names else "",  # pkix.Name keeps the last CN
        organizations=orgs,
        dns_names=tuple(san.get_values_for_type(x509.DNSName)),
        ip_addresses=tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        emails=tuple(san.get_values_for_type(x509.RFC822Name)),
        uris=tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
        rsa_key=isinstance(csr.public_key(), rsa.RSAPublicKey),
    )


def _go_list(values: Iterable[str]) -> str:
    """Go's ``%v`` of a sorted []string."""
    return "[" + " ".join(sorted(values)) + "]"


def kubelet_client_problem(subject: Subject, usages: Sequence[str]) -> str | None:
    """ValidateKubeletClientCSR: why this is no kubelet client certificate request, or None."""
    if list(subject.organizations) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    if subject.dns_names:
        return "DNS subjectAltNames are not allowed"
    if subject.emails:
        return "Email subjectAltNames are not allowed"
    if subject.ip_addresses:
        return "IP subjectAltNames are not allowed"
    if subject.uris:
        return "URI subjectAltNames are not allowed"
    if not subject.common_name.startswith(NODE_USER_PREFIX):
        return "subject common name does not begin with system:node:"
    if set(usages) not in (KUBELET_CLIENT_USAGES, KUBELET_CLIENT_USAGES_NO_RSA):
        return f"usages did not match {_go_list(KUBELET_CLIENT_USAGES)}"
    return None


def kubelet_serving_problem(subject: Subject, usages: Sequence[str]) -> str | None:
    """ValidateKubeletServingCSR: why this is no kubelet serving certificate request, or None."""
    if list(subject.organizations) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    if not subject.dns_names and not subject.ip_addresses:
        return "DNS or IP subjectAltName is required"
    if subject.emails:
        return "Email subjectAltNames are not allowed"
    if subject.uris:
        return "URI subjectAltNames are not allowed"
    if set(usages) not in (KUBELET_SERVING_USAGES, KUBELET_SERVING_USAGES_NO_RSA):
        return f"usages did not match {_go_list(KUBELET_SERVING_USAGES)}"
    if not subject.common_name.startswith(NODE_USER_PREFIX):
        return "subject common name does not begin with system:node:"
    return None


def apiserver_client_problem(usages: Sequence[str]) -> str | None:
    """validAPIServerClientUsages: client auth required; digital signature and key encipherment allowed."""
    has_client_auth = False
    for usage in usages:
        if usage == "client auth":
            has_client_auth = True
        elif usage not in ("digital signature", "key encipherment"):
            return f"invalid usage for client certificate: {usage}"
    if not has_client_auth:
        return "missing required usage for client certificate: client auth"
    return None


def signer_problem(signer_name: str, subject: Subject, usages: Sequence[str]) -> str | None:
    """The signing controller's per-signer check (signerUsagesOK)."""
    if signer_name == KUBE_APISERVER_CLIENT_KUBELET:
        return kubelet_client_problem(subject, usages)
    if signer_name == KUBE_APISERVER_CLIENT:
        return apiserver_client_problem(usages)
    if signer_name == KUBELET_SERVING:
        return kubelet_serving_problem(subject, usages)
    return f'unrecognized signerName: "{signer_name}"'


def certificate_problem(pem: bytes) -> str | None:
    """validateCertificate: ``status.certificate`` is empty or only well-formed CERTIFICATE blocks."""
    if not pem:
        return None
    blocks = pem_blocks(pem)
    for block in blocks:
        if block.type != CERTIFICATE_BLOCK:
            return f'only CERTIFICATE PEM blocks are allowed, found "{block.type}"'
        if block.headers:
            return "no PEM block headers are permitted"
        try:
            x509.load_der_x509_certificate(block.data)
        except ValueError as err:
            return f"x509: malformed certificate: {err}"
    if not blocks:
        return "must contain at least one CERTIFICATE PEM block"
    return None


def first_certificate(pem: bytes) -> x509.Certificate | None:
    """The first certificate of a PEM bundle, or None when there is none that parses."""
    blocks = pem_blocks(pem)
    if not blocks:
        return None
    try:
        return x509.load_der_x509_certificate(blocks[0].data)
    except ValueError:
        return None


def certificate_not_after(pem: bytes) -> datetime | None:
    cert = first_certificate(pem)
    return cert.not_valid_after_utc if cert is not None else None


# -- the JSON object ----------------------------------------------------------------------------


def spec_of(csr: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = csr.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def conditions_of(csr: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = csr.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    return [c for c in conditions or [] if isinstance(c, Mapping)]


def has_condition(csr: Mapping[str, Any], kind: str) -> bool:
    """A condition of ``kind`` is present (Approved/Denied/Failed may only be True)."""
    return any(c.get("type") == kind for c in conditions_of(csr))


def has_true_condition(csr: Mapping[str, Any], kind: str) -> bool:
    """HasTrueCondition: a condition of ``kind`` whose status is True (or, from old clients, unset)."""
    return any(c.get("type") == kind and c.get("status") in ("True", "", None) for c in conditions_of(csr))


def is_approved(csr: Mapping[str, Any]) -> bool:
    """IsCertificateRequestApproved: Approved and not Denied."""
    return has_condition(csr, APPROVED) and not has_condition(csr, DENIED)


def certificate_of(csr: Mapping[str, Any]) -> bytes:
    """status.certificate as PEM bytes (empty when unset or not base64)."""
    status = csr.get("status")
    try:
        return decode_base64(status.get("certificate") if isinstance(status, Mapping) else None)
    except RequestError:
        return b""


def is_issued(csr: Mapping[str, Any]) -> bool:
    status = csr.get("status")
    return bool(status.get("certificate")) if isinstance(status, Mapping) else False


def display_status(csr: Mapping[str, Any]) -> str:
    """kubectl's CONDITION column (printers.go extractCSRStatus): Denied > Approved > Pending, then flags."""
    types = {c.get("type") for c in conditions_of(csr)}
    text = DENIED if DENIED in types else APPROVED if APPROVED in types else "Pending"
    if FAILED in types:
        text += ",Failed"
    if is_issued(csr):
        text += ",Issued"
    return text
