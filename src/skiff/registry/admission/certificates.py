"""The CertificateSigningRequest admission plugins (plugin/pkg/admission/certificates).

* CertificateApproval: an update through ``certificatesigningrequests/approval``
  needs verb ``approve`` on the virtual resource ``signers`` of
  certificates.k8s.io, named after the stored request's signerName or its
  domain wildcard (``kubernetes.io/*``);
* CertificateSigning: an update through ``.../status`` that changes
  status.certificate or the conditions needs verb ``sign`` on the same;
* CertificateSubjectRestriction: no ``kubernetes.io/kube-apiserver-client``
  request for the ``system:masters`` group.

Refusals are 403 Forbidden worded as upstream's.  The authorizer is a hook
(``SignerAuthorizer``): until the API server passes its own, ``allow_all``
answers, so approving and signing are open to every user who may write the
subresource at all.  Writes without a user (the API server's own) are not
checked.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from skiff.api import certificate_requests as csrs
from skiff.registry.admission.chain import Attributes, Operation, PluginBase, admission_forbidden
from skiff.registry.request_user import RequestUser

PLURAL = "certificatesigningrequests"
SIGNERS = "signers"
MASTERS_GROUP = "system:masters"

#: May ``user`` do ``verb`` on ``signers`` named ``name`` in certificates.k8s.io?  Sync or async.
SignerAuthorizer = Callable[[RequestUser, str, str], bool | Awaitable[bool]]


def allow_all(user: RequestUser, verb: str, name: str) -> bool:
    """The authorizer until RBAC is wired in: everything is allowed."""
    return True


async def _ask(authorize: SignerAuthorizer, user: RequestUser, verb: str, name: str) -> bool:
    answer = authorize(user, verb, name)
    if inspect.isawaitable(answer):
        answer = await answer
    return bool(answer)


async def is_authorized_for_signer_name(
    authorize: SignerAuthorizer, user: RequestUser, verb: str, signer_name: str
) -> bool:
    """IsAuthorizedForSignerName: ``verb`` on the signer itself, else on ``<domain>/*``."""
    if await _ask(authorize, user, verb, signer_name):
        return True
    domain = signer_name.split("/", 1)[0]
    return await _ask(authorize, user, verb, f"{domain}/*")


async def approval_allowed(authorize: SignerAuthorizer, user: RequestUser, signer_name: str) -> bool:
    """May ``user`` approve (or deny) requests for ``signer_name``?  CertificateApproval's question."""
    return await is_authorized_for_signer_name(authorize, user, "approve", signer_name)


async def signing_allowed(authorize: SignerAuthorizer, user: RequestUser, signer_name: str) -> bool:
    """May ``user`` issue certificates (write status) for ``signer_name``?  CertificateSigning's question."""
    return await is_authorized_for_signer_name(authorize, user, "sign", signer_name)


def _is_csr(attrs: Attributes) -> bool:
    return attrs.info.group == csrs.GROUP and attrs.info.plural == PLURAL


def _signer_of(obj: Mapping[str, Any] | None) -> str:
    return str(csrs.spec_of(obj or {}).get("signerName") or "")


class CertificateApproval(PluginBase):
    def __init__(self, authorize: SignerAuthorizer = allow_all) -> None:
        self.authorize = authorize

    async def validate(self, attrs: Attributes) -> None:
        if not _is_csr(attrs) or attrs.subresource != "approval" or attrs.operation is not Operation.UPDATE:
            return
        if attrs.user is None:
            return
        # The stored object's signer: an approval cannot dodge the check by changing spec.signerName.
        signer = _signer_of(attrs.old)
        if not await approval_allowed(self.authorize, attrs.user, signer):
            raise admission_forbidden(attrs, f'user not permitted to approve requests with signerName "{signer}"')


class CertificateSigning(PluginBase):
    def __init__(self, authorize: SignerAuthorizer = allow_all) -> None:
        self.authorize = authorize

    async def validate(self, attrs: Attributes) -> None:
        if not _is_csr(attrs) or attrs.subresource != "status" or attrs.operation is not Operation.UPDATE:
            return
        if attrs.user is None:
            return
        new_status, old_status = (attrs.obj or {}).get("status") or {}, (attrs.old or {}).get("status") or {}
        if new_status.get("certificate") == old_status.get("certificate") and (new_status.get("conditions") or []) == (
            old_status.get("conditions") or []
        ):
            return
        signer = _signer_of(attrs.old)
        if not await signing_allowed(self.authorize, attrs.user, signer):
            raise admission_forbidden(attrs, f'user not permitted to sign requests with signerName "{signer}"')


class CertificateSubjectRestriction(PluginBase):
    async def validate(self, attrs: Attributes) -> None:
        if not _is_csr(attrs) or attrs.subresource or attrs.operation is not Operation.CREATE:
            return
        signer = _signer_of(attrs.obj)
        if signer != csrs.KUBE_APISERVER_CLIENT:
            return
        try:
            request = csrs.parse_request(csrs.decode_base64(csrs.spec_of(attrs.obj or {}).get("request")))
        except csrs.RequestError as err:
            raise admission_forbidden(attrs, f"failed to parse CSR: {err}") from None
        if MASTERS_GROUP in csrs.subject_of(request).organizations:
            raise admission_forbidden(attrs, f"use of {signer} signer with system:masters group is not allowed")
