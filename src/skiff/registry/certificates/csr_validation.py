"""CertificateSigningRequest validation (pkg/apis/certificates/validation), field errors as upstream words them.

``validate`` is ``validateCertificateSigningRequest`` without ObjectMeta (the
strategy adds that): spec.request is a PEM ``CERTIFICATE REQUEST`` whose
signature verifies, usages are given, known and unique, signerName is
well-formed (and not the legacy one), expirationSeconds is at least 600,
conditions are well-formed (Approved, Denied and Failed only ``True``;
Approved and Denied exclusive; one of each type) and status.certificate
holds only CERTIFICATE blocks.

``validate_update`` adds what an update may not do, per endpoint
(``Options``): remove an Approved, Denied or Failed condition (never); add
or change Approved/Denied (only through ``/approval``); set
status.certificate (only through ``/status``, and only once).

Upstream relaxes several rules for objects stored by older API versions
(``getValidationOptions``: legacy signer, duplicate usages, ...); every
object Skiff stores passed the strict rules, so only the strict ones are
kept.  The kubelet-client subject rules are the signer's (the signing
controller fails a request that breaks them), not the API's, as upstream.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.api import certificate_requests as csrs
from skiff.api import field_errors as fe
from skiff.api.name_rules import (
    DNS1123_LABEL_MAX_LENGTH,
    DNS1123_SUBDOMAIN_MAX_LENGTH,
    is_dns1123_label,
    is_dns1123_subdomain,
)
from skiff.api.status import Cause
from skiff.registry.resource import Obj

#: Condition types that may only be True, and that can never be removed once added.
TRUE_ONLY_TYPES = (csrs.APPROVED, csrs.DENIED, csrs.FAILED)
ALL_STATUS_VALUES = ("False", "True", "Unknown")
MIN_EXPIRATION_SECONDS = 600
_MAX_SIGNER_PATH = DNS1123_SUBDOMAIN_MAX_LENGTH + DNS1123_LABEL_MAX_LENGTH + 1
MAX_SIGNER_NAME_LENGTH = DNS1123_SUBDOMAIN_MAX_LENGTH + _MAX_SIGNER_PATH + 1


@dataclass(frozen=True, slots=True)
class Options:
    """What the endpoint lets an update change (certificateValidationOptions' subresource switches)."""

    allow_setting_approval_conditions: bool = False
    allow_setting_certificate: bool = False


MAIN = Options()
APPROVAL = Options(allow_setting_approval_conditions=True)
STATUS = Options(allow_setting_certificate=True)


def go_bytes(data: bytes) -> str:
    """Go's ``%#v`` of a []byte, as ``field.Invalid`` prints spec.request."""
    return "[]byte{" + ", ".join(f"0x{b:x}" for b in data) + "}"


def validate(obj: Obj) -> list[Cause]:
    spec = obj.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    causes = _validate_request(spec.get("request"))
    usages = list(spec.get("usages") or [])
    if not usages:
        causes.append(fe.required("spec.usages"))
    for i, usage in enumerate(usages):
        if usage not in csrs.ALL_USAGES:
            causes.append(fe.not_supported(f"spec.usages[{i}]", usage, csrs.ALL_USAGES))
    seen: set[Any] = set()
    for i, usage in enumerate(usages):
        if usage in seen:
            causes.append(fe.duplicate(f"spec.usages[{i}]", usage))
        seen.add(usage)
    signer = str(spec.get("signerName") or "")
    if signer == csrs.LEGACY_UNKNOWN:
        causes.append(
            fe.invalid("spec.signerName", signer, "the legacy signerName is not allowed via this API version")
        )
    else:
        causes += validate_signer_name("spec.signerName", signer)
    seconds = spec.get("expirationSeconds")
    if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds < MIN_EXPIRATION_SECONDS:
        causes.append(
            fe.invalid(
                "spec.expirationSeconds", seconds, "may not specify a duration less than 600 seconds (10 minutes)"
            )
        )
    causes += _validate_conditions(obj)
    status = obj.get("status")
    try:
        problem = csrs.certificate_problem(
            csrs.decode_base64(status.get("certificate") if isinstance(status, Mapping) else None)
        )
    except csrs.RequestError as err:
        problem = str(err)
    if problem:
        causes.append(fe.invalid("status.certificate", "<certificate data>", problem))
    return causes


def _validate_request(value: Any) -> list[Cause]:
    try:
        pem = csrs.decode_base64(value)
    except csrs.RequestError as err:
        return [fe.invalid("spec.request", value, str(err))]
    try:
        csrs.parse_request(pem)
    except csrs.RequestError as err:
        return [Cause(fe.INVALID, f"Invalid value: {go_bytes(pem)}: {err}", "spec.request")]
    return []


def validate_signer_name(path: str, signer: str) -> list[Cause]:
    """ValidateSignerName: ``<DNS subdomain with a dot>/<dot-separated DNS subdomains>``, at most 571 bytes."""
    if not signer:
        return [fe.required(path)]
    segments = signer.split("/")
    if len(segments) != 2:
        return [
            fe.invalid(path, signer, "must be a fully qualified domain and path of the form 'example.com/signer-name'")
        ]
    causes: list[Cause] = []
    domain, rest = segments
    if len(domain.encode()) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        causes.append(fe.too_long(path, DNS1123_SUBDOMAIN_MAX_LENGTH))
    labels = domain.split(".")
    for label in labels:
        errors = is_dns1123_label(label)
        if errors:
            causes += [fe.invalid(path, domain, f'validating label "{label}": {e}') for e in errors]
            break
    if len(labels) < 2:
        causes.append(fe.invalid(path, domain, "should be a domain with at least two segments separated by dots"))
    for label in rest.split("."):
        errors = is_dns1123_subdomain(label)
        if errors:
            causes += [fe.invalid(path, rest, f'validating label "{label}": {e}') for e in errors]
            break
    if len(signer.encode()) > MAX_SIGNER_NAME_LENGTH:
        causes.append(fe.too_long(path, MAX_SIGNER_NAME_LENGTH))
    return causes


def _validate_conditions(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[Any] = set()
    approved = denied = False
    for i, condition in enumerate(csrs.conditions_of(obj)):
        path = f"status.conditions[{i}]"
        kind, status = condition.get("type") or "", condition.get("status") or ""
        if not kind:
            causes.append(fe.required(f"{path}.type"))
        allowed = ("True",) if kind in TRUE_ONLY_TYPES else ALL_STATUS_VALUES
        if not status:
            causes.append(fe.required(f"{path}.status"))
        elif status not in allowed:
            causes.append(fe.not_supported(f"{path}.status", status, allowed))
        if kind == csrs.APPROVED:
            approved = True
            if denied:
                causes.append(fe.invalid(f"{path}.type", kind, "Approved and Denied conditions are mutually exclusive"))
        elif kind == csrs.DENIED:
            denied = True
            if approved:
                causes.append(fe.invalid(f"{path}.type", kind, "Approved and Denied conditions are mutually exclusive"))
        if kind in seen:
            causes.append(fe.duplicate(f"{path}.type", kind))
        seen.add(kind)
    return causes


def _of_type(obj: Obj, kind: str) -> list[Mapping[str, Any]]:
    return [c for c in csrs.conditions_of(obj) if c.get("type") == kind]


def validate_update(new: Obj, old: Obj, options: Options) -> list[Cause]:
    """validateCertificateSigningRequestUpdate's update-only rules for one endpoint."""
    causes: list[Cause] = []
    for kind in TRUE_ONLY_TYPES:
        if len(_of_type(new, kind)) < len(_of_type(old, kind)):
            causes.append(fe.forbidden("status.conditions", f'updates may not remove a condition of type "{kind}"'))
    if not options.allow_setting_approval_conditions:
        for kind in (csrs.APPROVED, csrs.DENIED):
            before, after = _of_type(old, kind), _of_type(new, kind)
            if len(after) > len(before):
                causes.append(fe.forbidden("status.conditions", f'updates may not add a condition of type "{kind}"'))
            elif len(after) == len(before) and after != before:
                diff = f"- {_compact(before)}\n+ {_compact(after)}"
                causes.append(
                    fe.forbidden("status.conditions", f'updates may not modify a condition of type "{kind}"\n{diff}')
                )
    before_cert, after_cert = _certificate_text(old), _certificate_text(new)
    if after_cert != before_cert:
        if not options.allow_setting_certificate:
            causes.append(fe.forbidden("status.certificate", "updates may not set certificate content"))
        elif before_cert:
            causes.append(fe.forbidden("status.certificate", "updates may not modify existing certificate content"))
    return causes


def _compact(conditions: list[Mapping[str, Any]]) -> str:
    return json.dumps(conditions, sort_keys=True, separators=(",", ":"))


def _certificate_text(obj: Obj) -> str:
    status = obj.get("status")
    value = status.get("certificate") if isinstance(status, Mapping) else None
    return value if isinstance(value, str) else ""
