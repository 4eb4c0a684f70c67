"""Auto-approval of kubelet client certificate requests after a SubjectAccessReview.

Upstream: pkg/controller/certificates/approver (sarApprover).  A pending
request (no certificate, neither Approved nor Denied) for the signer
``kubernetes.io/kube-apiserver-client-kubelet`` that is a kubelet client
request (O=system:nodes, CN=system:node:<name>, no SANs, usages digital
signature + client auth [+ key encipherment]) is approved when its requester
may:

* ``create certificatesigningrequests/selfnodeclient`` (certificates.k8s.io),
  when the requester is the node itself (spec.username == the CN): a kubelet
  renewing its own certificate;
* ``create certificatesigningrequests/nodeclient``: anyone else, typically a
  bootstrap token (``system:bootstrappers``) asking for a new node's first
  certificate.

The question is a SubjectAccessReview posted through the API for the user,
uid, groups and extra the API server recorded on the request.  Approval is
an Approved condition (reason AutoApproved) written through ``/approval``.
A recognised request whose requester may not is retried with back-off (an
RBAC change may allow it later), as upstream's IgnorableError.  Everything
else is left to a human (``kubectl certificate approve``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.api import certificate_requests as csrs
from skiff.client import ApiError, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import CERTIFICATESIGNINGREQUESTS, SUBJECTACCESSREVIEWS
from skiff.controllers.manager import ControllerSpec

log = logging.getLogger(__name__)

Obj = dict[str, Any]
REASON = "AutoApproved"


@dataclass(frozen=True, slots=True)
class Recognizer:
    """A kind of request this approver handles, the permission it asks for, and what approval says."""

    subresource: str
    message: str
    self_only: bool


RECOGNIZERS = (
    Recognizer("selfnodeclient", "Auto approving self kubelet client certificate after SubjectAccessReview.", True),
    Recognizer("nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview.", False),
)


class NotApproved(Exception):
    """A recognised request whose requester lacks the permission (retried with back-off)."""


def is_node_client(csr: Mapping[str, Any], subject: csrs.Subject) -> bool:
    """isNodeClientCert: the kubelet-client signer, and a request that signer will sign."""
    spec = csrs.spec_of(csr)
    if spec.get("signerName") != csrs.KUBE_APISERVER_CLIENT_KUBELET:
        return False
    return csrs.kubelet_client_problem(subject, list(spec.get("usages") or [])) is None


def recognizers_for(csr: Mapping[str, Any], subject: csrs.Subject) -> list[Recognizer]:
    """The recognizers that match, in upstream's order (selfnodeclient first)."""
    if not is_node_client(csr, subject):
        return []
    own = csrs.spec_of(csr).get("username") == subject.common_name
    return [r for r in RECOGNIZERS if own or not r.self_only]


def needs_decision(csr: Mapping[str, Any]) -> bool:
    """Nothing to do for an issued request or one already Approved or Denied."""
    if csrs.is_issued(csr):
        return False
    return not (csrs.has_condition(csr, csrs.APPROVED) or csrs.has_condition(csr, csrs.DENIED))


def access_review(csr: Mapping[str, Any], subresource: str) -> Obj:
    """The SubjectAccessReview asking whether the requester may create ``certificatesigningrequests/<sub>``."""
    spec = csrs.spec_of(csr)
    review: Obj = {
        "user": spec.get("username") or "",
        "groups": list(spec.get("groups") or []),
        "resourceAttributes": {
            "group": csrs.GROUP,
            "resource": "certificatesigningrequests",
            "verb": "create",
            "subresource": subresource,
        },
    }
    if spec.get("uid"):
        review["uid"] = spec["uid"]
    if spec.get("extra"):
        review["extra"] = {key: list(values) for key, values in spec["extra"].items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": review}


def approved(csr: Obj, message: str) -> Obj:
    """``csr`` with the AutoApproved condition appended (the API server stamps its times)."""
    out = dict(csr)
    status = dict(out.get("status") or {})
    condition = {"type": csrs.APPROVED, "status": "True", "reason": REASON, "message": message}
    status["conditions"] = [*(status.get("conditions") or []), condition]
    out["status"] = status
    return out


class CSRApprovingController(Controller):
    name = "csrapproving"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.csrs = self.informers.informer(CERTIFICATESIGNINGREQUESTS)
        self.csrs.add_handler(on_add=self.enqueue_obj, on_update=lambda old, new: self.enqueue_obj(new))

    async def sync(self, key: str) -> None:
        csr = self.csrs.get(key)
        if csr is None or not needs_decision(csr):
            return
        if csrs.spec_of(csr).get("signerName") != csrs.KUBE_APISERVER_CLIENT_KUBELET:
            return  # no recognizer handles other signers: skip parsing the request
        try:
            request = csrs.parse_request(csrs.decode_base64(csrs.spec_of(csr).get("request")))
        except csrs.RequestError as err:
            raise ValueError(f"unable to parse csr {key!r}: {err}") from None
        tried = []
        for recognizer in recognizers_for(csr, csrs.subject_of(request)):
            tried.append(recognizer.subresource)
            review = await self.client.create(SUBJECTACCESSREVIEWS, access_review(csr, recognizer.subresource))
            if (review.get("status") or {}).get("allowed"):
                await self._approve(csr, recognizer.message)
                return
        if tried:
            raise NotApproved(f"recognized csr {key!r} as {tried} but subject access review was not approved")

    async def _approve(self, csr: Obj, message: str) -> None:
        try:
            await self.client.update(CERTIFICATESIGNINGREQUESTS, approved(csr, message), subresource="approval")
        except ApiError as err:
            if is_not_found(err):
                return  # deleted meanwhile
            raise  # a conflict re-reads from the informer on retry
        log.info("csrapproving: approved %s (%s)", csr["metadata"]["name"], message)


CONTROLLERS = [ControllerSpec("csrapproving", CSRApprovingController, workers=2)]
