"""Signing of approved requests for the well-known kubernetes.io signers with the cluster CA.

Upstream: pkg/controller/certificates/signer (one controller per signer name)
and its authority package (PermissiveSigningPolicy).  For
``kubernetes.io/kube-apiserver-client-kubelet``,
``kubernetes.io/kube-apiserver-client`` and ``kubernetes.io/kubelet-serving``:

* only requests that are Approved (and not Denied), not Failed and not yet
  issued are looked at;
* a request the signer does not accept (``signer_problem``: e.g. a kubelet
  client request whose subject is not O=system:nodes, CN=system:node:...)
  gets a Failed condition, reason SignerValidationFailure, through ``/status``;
* otherwise the CA signs a certificate for the request's subject, SANs and
  public key: usages as asked (key usage bits critical, extended key usages
  in Go's order), not a CA, NotBefore backdated 5 minutes, lifetime
  ``min(spec.expirationSeconds, cluster-signing-duration)`` (never under 10
  minutes), NotAfter backdated too for lifetimes of 8 hours or more, and
  never past the CA's own NotAfter.  The PEM goes to status.certificate
  through ``/status``.

Options (kube-controller-manager's flags): ``cluster-signing-cert-file`` and
``cluster-signing-key-file`` (the CA; without them nothing is signed, as
upstream does not start the signer), ``cluster-signing-duration`` (seconds,
default one year).  The CA files are read once, when first needed.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ObjectIdentifier

from skiff.api import certificate_requests as csrs
from skiff.client import ApiError, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import CERTIFICATESIGNINGREQUESTS
from skiff.client.timefmt import rfc3339
from skiff.controllers.manager import ControllerSpec

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SIGNERS = (csrs.KUBE_APISERVER_CLIENT_KUBELET, csrs.KUBE_APISERVER_CLIENT, csrs.KUBELET_SERVING)
DEFAULT_DURATION_S = 365 * 24 * 3600.0
BACKDATE = timedelta(minutes=5)
#: Lifetimes under this are "short": their NotAfter is not backdated (5 minutes is ~1% of 8 hours).
SHORT = timedelta(hours=8)
#: The least lifetime the signer grants, whatever expirationSeconds asks (twice the backdate).
MIN_DURATION = timedelta(minutes=10)
FAILURE_REASON = "SignerValidationFailure"

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class Authority:
    """The CA: its certificate and key."""

    certificate: x509.Certificate
    key: SigningKey

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> Authority:
        """Blocking file reads: call through ``asyncio.to_thread``."""
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
            raise ValueError(f"{key_file}: unsupported CA key type {type(key).__name__}")
        return cls(certificate, key)


def duration(expiration_seconds: Any, max_duration: timedelta) -> timedelta:
    """signer.duration: the request's expirationSeconds within [10 minutes, max_duration]."""
    if not isinstance(expiration_seconds, int) or isinstance(expiration_seconds, bool):
        return max_duration
    requested = timedelta(seconds=expiration_seconds)
    if requested > max_duration:
        return max_duration
    return max(requested, MIN_DURATION)


def validity(now: datetime, ttl: timedelta, ca_not_after: datetime) -> tuple[datetime, datetime]:
    """PermissiveSigningPolicy's NotBefore/NotAfter; raises ValueError when the CA has expired."""
    not_before = now - BACKDATE
    not_after = now + ttl if ttl < SHORT else now + ttl - BACKDATE
    not_after = min(not_after, ca_not_after)
    if now >= ca_not_after:
        raise ValueError(f"refusing to sign a certificate that expired in the past: NotAfter={ca_not_after}")
    return not_before, not_after


def key_usage(usages: Sequence[str]) -> x509.KeyUsage | None:
    bits = {csrs.KEY_USAGE_BITS[u] for u in usages if u in csrs.KEY_USAGE_BITS}
    if not bits:
        return None
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")  # fmt: skip
    return x509.KeyUsage(**{name: name in bits for name in names})


def extended_key_usage(usages: Sequence[str]) -> x509.ExtendedKeyUsage | None:
    order = list(csrs.EXT_KEY_USAGE_OIDS.values())
    oids = sorted({csrs.EXT_KEY_USAGE_OIDS[u] for u in usages if u in csrs.EXT_KEY_USAGE_OIDS}, key=order.index)
    return x509.ExtendedKeyUsage([ObjectIdentifier(oid) for oid in oids]) if oids else None


def sign(
    authority: Authority,
    request: x509.CertificateSigningRequest,
    usages: Sequence[str],
    ttl: timedelta,
    now: datetime,
) -> bytes:
    """The PEM certificate the CA issues for ``request`` (CertificateAuthority.Sign)."""
    unknown = [u for u in usages if u not in csrs.KEY_USAGE_BITS and u not in csrs.EXT_KEY_USAGE_OIDS]
    if unknown:
        raise ValueError(f"unrecognized usage values: {unknown}")
    not_before, not_after = validity(now, ttl, authority.certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(authority.certificate.subject)
        .public_key(request.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    bits = key_usage(usages)
    if bits is not None:
        builder = builder.add_extension(bits, critical=True)
    extended = extended_key_usage(usages)
    if extended is not None:
        builder = builder.add_extension(extended, critical=False)
    try:
        san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        builder = builder.add_extension(san, critical=False)
    except x509.ExtensionNotFound:
        pass
    builder = builder.add_extension(_authority_key_id(authority.certificate), critical=False)
    algorithm = None if isinstance(authority.key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = builder.sign(authority.key, algorithm)
    return cert.public_bytes(serialization.Encoding.PEM)


def _authority_key_id(ca: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """Go sets AuthorityKeyId to the parent's SubjectKeyId (computed from its key when it has none)."""
    try:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key())  # type: ignore[arg-type]


def is_signable(csr: Mapping[str, Any]) -> bool:
    """Approved (not Denied), not Failed, not issued, and for one of our signers."""
    if csrs.is_issued(csr) or not csrs.is_approved(csr) or csrs.has_true_condition(csr, csrs.FAILED):
        return False
    return csrs.spec_of(csr).get("signerName") in SIGNERS


def with_status(csr: Obj, **changes: Any) -> Obj:
    out = dict(csr)
    out["status"] = {**(csr.get("status") or {}), **changes}
    return out


def failed(csr: Obj, message: str, now: float) -> Obj:
    condition = {
        "type": csrs.FAILED,
        "status": "True",
        "reason": FAILURE_REASON,
        "message": message,
        "lastUpdateTime": rfc3339(now),
    }
    return with_status(csr, conditions=[*csrs.conditions_of(csr), condition])


class CSRSigningController(Controller):
    name = "csrsigning"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        options = context.options
        self.cert_file = options.get("cluster-signing-cert-file")
        self.key_file = options.get("cluster-signing-key-file")
        self.max_duration = timedelta(seconds=float(options.get("cluster-signing-duration", DEFAULT_DURATION_S)))
        self._authority: Authority | None = None
        self.csrs = self.informers.informer(CERTIFICATESIGNINGREQUESTS)
        if self.cert_file and self.key_file:
            self.csrs.add_handler(on_add=self.enqueue_obj, on_update=lambda old, new: self.enqueue_obj(new))
        else:
            log.warning("csrsigning: no --cluster-signing-cert-file/--cluster-signing-key-file; signing nothing")

    async def authority(self) -> Authority:
        if self._authority is None:
            assert self.cert_file and self.key_file
            self._authority = await asyncio.to_thread(Authority.load, Path(self.cert_file), Path(self.key_file))
        return self._authority

    async def sync(self, key: str) -> None:
        csr = self.csrs.get(key)
        if csr is None or not is_signable(csr):
            return
        spec = csrs.spec_of(csr)
        try:
            request = csrs.parse_request(csrs.decode_base64(spec.get("request")))
        except csrs.RequestError as err:
            raise ValueError(f"unable to parse csr {key!r}: {err}") from None
        usages = list(spec.get("usages") or [])
        problem = csrs.signer_problem(str(spec["signerName"]), csrs.subject_of(request), usages)
        if problem is not None:
            await self._write_status(failed(csr, problem, self.clock.now()))
            return
        authority = await self.authority()
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        pem = sign(authority, request, usages, duration(spec.get("expirationSeconds"), self.max_duration), now)
        await self._write_status(with_status(csr, certificate=base64.b64encode(pem).decode()))
        log.info("csrsigning: issued a certificate for %s", key)

    async def _write_status(self, csr: Obj) -> None:
        try:
            await self.client.update_status(CERTIFICATESIGNINGREQUESTS, csr)
        except ApiError as err:
            if not is_not_found(err):
                raise  # a conflict re-reads from the informer on retry


CONTROLLERS = [ControllerSpec("csrsigning", CSRSigningController, workers=2, service_account="certificate-controller")]
