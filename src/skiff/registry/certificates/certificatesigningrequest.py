"""CertificateSigningRequests (certificates.k8s.io/v1): who asked, the three endpoints' rules, the table.

pkg/registry/certificates/certificates/strategy.go, as upstream:

* create: spec.username, uid, groups and extra are the requesting user's
  (``request_user.current_user()``, upstream's ``UserFrom(ctx)``), whatever
  the client sent; status starts empty (no pre-approved requests);
* main-resource update: spec and status are carried over from the stored
  object (a CSR is immutable but for metadata);
* ``/approval`` (``ApprovalStrategy``): only status.conditions change, and
  only there may Approved or Denied be added;
* ``/status`` (``StatusStrategy``): spec is carried over and the stored
  Approved/Denied conditions are kept as they were; status.certificate may
  be set, once;
* conditions written through ``/approval`` or ``/status`` get lastUpdateTime
  and lastTransitionTime when they lack them (``populate_condition_timestamps``;
  the registry passes the time in, strategies keep no clock).

Field selector: ``spec.signerName``.  Any name is accepted
(ValidateCertificateRequestName); the generic path-segment rule still applies.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from skiff.api import certificate_requests as csrs
from skiff.api.status import Cause
from skiff.registry.certificates import csr_validation
from skiff.registry.request_user import current_user
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import NameRule, SpecStatusStrategy, carry
from skiff.registry.table_format import human_duration

#: The fields the server fills in from the requesting user on create.
REQUESTER_FIELDS = ("username", "uid", "groups", "extra")


def any_name(name: str, prefix: bool) -> list[str]:
    """ValidateCertificateRequestName: "We don't care what you call your certificate requests"."""
    return []


class CertificateSigningRequestStrategy(SpecStatusStrategy):
    name_rule: NameRule = staticmethod(any_name)
    tracks_generation = False
    #: Which update rules this endpoint's writes get (csr_validation.Options).
    update_options = csr_validation.MAIN
    columns = (
        NAME_COLUMN,
        AGE_COLUMN,
        Column("SignerName", description="signerName indicates the requested signer, and is a qualified name."),
        Column("Requestor", description="request contains an x509 certificate signing request encoded in a "
               '"CERTIFICATE REQUEST" PEM block.'),
        Column("RequestedDuration", description="expirationSeconds is the requested duration of validity of "
               "the issued certificate."),
        Column("Condition", description='conditions applied to the request. Known conditions are "Approved", '
               '"Denied", and "Failed".'),
    )  # fmt: skip
    field_selectors = ("spec.signerName",)

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = obj["spec"] = {}
        for key in REQUESTER_FIELDS:
            spec.pop(key, None)
        user = current_user()
        if user is not None:
            spec["username"] = user.name
            if user.uid:
                spec["uid"] = user.uid
            if user.groups:
                spec["groups"] = list(user.groups)
            if user.extra:
                spec["extra"] = {key: list(values) for key, values in user.extra.items()}
        obj["status"] = {}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        carry(new, old, "spec")
        carry(new, old, "status")

    def validate_spec(self, obj: Obj) -> list[Cause]:
        return csr_validation.validate(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return csr_validation.validate_update(new, old, self.update_options)

    def field_values(self, obj: Obj) -> dict[str, str]:
        return {"spec.signerName": str(csrs.spec_of(obj).get("signerName") or "")}

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        spec = csrs.spec_of(obj)
        seconds = spec.get("expirationSeconds")
        return [
            spec.get("signerName") or "<none>",
            str(spec.get("username") or ""),
            human_duration(seconds) if isinstance(seconds, int) else "<none>",
            csrs.display_status(obj),
        ]


class ApprovalStrategy(CertificateSigningRequestStrategy):
    """csrApprovalStrategy: an update through ``/approval`` changes status.conditions only."""

    update_options = csr_validation.APPROVAL

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        given = new.get("status")
        conditions = given.get("conditions") if isinstance(given, dict) else None
        carry(new, old, "spec")
        carry(new, old, "status")
        status = new.setdefault("status", {})
        if conditions:
            status["conditions"] = conditions
        else:
            status.pop("conditions", None)


class StatusStrategy(CertificateSigningRequestStrategy):
    """csrStatusStrategy: spec kept; the stored Approved/Denied conditions kept as they were."""

    update_options = csr_validation.STATUS

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        carry(new, old, "spec")
        for kind in (csrs.APPROVED, csrs.DENIED):
            preserve_condition_instances(new, old, kind)


def _condition_list(obj: Obj) -> list[Any]:
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    return conditions if isinstance(conditions, list) else []


def preserve_condition_instances(new: Obj, old: Obj, kind: str) -> None:
    """preserveConditionInstances: same count of ``kind`` on both sides → the stored ones replace the new."""
    new_list, old_list = _condition_list(new), _condition_list(old)
    new_at = [i for i, c in enumerate(new_list) if isinstance(c, Mapping) and c.get("type") == kind]
    old_at = [i for i, c in enumerate(old_list) if isinstance(c, Mapping) and c.get("type") == kind]
    if len(new_at) != len(old_at):
        return  # added or removed: validation reports it
    for i, j in zip(new_at, old_at, strict=True):
        new_list[i] = copy.deepcopy(old_list[j])


def populate_condition_timestamps(new: Obj, old: Obj, now: str) -> None:
    """populateConditionTimestamps: lastUpdateTime = now where unset; lastTransitionTime kept from a stored
    condition of the same type and status, else now."""
    previous = [c for c in _condition_list(old) if isinstance(c, Mapping)]
    for condition in _condition_list(new):
        if not isinstance(condition, dict):
            continue
        if not condition.get("lastUpdateTime"):
            condition["lastUpdateTime"] = now
        if not condition.get("lastTransitionTime"):
            condition["lastTransitionTime"] = next(
                (
                    c["lastTransitionTime"]
                    for c in previous
                    if c.get("type") == condition.get("type")
                    and c.get("status") == condition.get("status")
                    and c.get("lastTransitionTime")
                ),
                now,
            )
