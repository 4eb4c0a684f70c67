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

Skiff's own addition, not upstream's: kubelet serving certificates.
Upstream never approves ``kubernetes.io/kubelet-serving`` requests itself
(an administrator, or a separate approver such as the community's
kubelet-csr-approver, does).  Skiff promises a secure cluster with nothing to
configure, so this controller approves them too, as conservatively as
kubelet-csr-approver, when everything holds (``serving_refusal``):

* the requester (spec.username, recorded by the API server) is
  ``system:node:<n>``, equal to the request's CN, and spec.groups include
  ``system:nodes``: a node asking for itself;
* the request is one the signer accepts (ValidateKubeletServingCSR:
  O=system:nodes, CN system:node:..., DNS or IP SANs only, usages digital
  signature + server auth [+ key encipherment]);
* the Node ``<n>`` exists, every IP SAN is a loopback address (127.0.0.0/8,
  ::1) listed in its status.addresses, and every DNS SAN is the node name
  or one of its Hostname addresses.

The Node is read from an informer; a Node added or changed re-queues its
pending serving requests, so a request posted before its Node registered is
decided once it has.  Approval reads "AutoApproved" with a message saying
why; a request that fails a rule stays pending, logged, for an
administrator.  Loopback only: a Node writes its own addresses, so a node
could name another node's loopback address, but never anything off this
machine.  The option ``auto-approve-kubelet-serving`` (the controller
manager's ``--auto-approve-kubelet-serving``, default true) set to false
leaves them all to an administrator, as upstream.  Approving needs
``approve`` on the signer, which upstream's certificate-controller role
lacks: Skiff binds it system:certificates.k8s.io:kubelet-serving-approver
(apiserver/rbac_policy/skiff-roles.yaml).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from skiff.api import certificate_requests as csrs
from skiff.client import ApiError, is_not_found
from skiff.client.controller import Controller, ControllerContext
from skiff.client.informer import Informer
from skiff.client.resources import CERTIFICATESIGNINGREQUESTS, NODES, SUBJECTACCESSREVIEWS
from skiff.controllers.manager import ControllerSpec

log = logging.getLogger(__name__)

Obj = dict[str, Any]
REASON = "AutoApproved"
SERVING_MESSAGE = "Auto approving kubelet serving certificate for the node's own loopback addresses and names."
#: ControllerContext.options key (the controller manager's --auto-approve-kubelet-serving).
AUTO_APPROVE_SERVING = "auto-approve-kubelet-serving"


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


def serving_refusal(csr: Mapping[str, Any], subject: csrs.Subject, node: Mapping[str, Any] | None) -> str | None:
    """Why a kubelet-serving request is left to an administrator, or None to approve it (Skiff's rules, above)."""
    spec = csrs.spec_of(csr)
    user = str(spec.get("username") or "")
    if not user.startswith(csrs.NODE_USER_PREFIX):
        return f"requester {user!r} is not a node"
    if user != subject.common_name:
        return f"requester {user!r} is not the subject {subject.common_name!r}"
    if csrs.NODES_GROUP not in (spec.get("groups") or []):
        return f"requester is not in group {csrs.NODES_GROUP}"
    problem = csrs.kubelet_serving_problem(subject, list(spec.get("usages") or []))
    if problem is not None:
        return problem
    node_name = user.removeprefix(csrs.NODE_USER_PREFIX)
    if node is None:
        return f"node {node_name!r} not found"
    addresses = [a for a in (node.get("status") or {}).get("addresses") or [] if isinstance(a, Mapping)]
    node_ips = {_ip(str(a.get("address") or "")) for a in addresses} - {None}
    for text in subject.ip_addresses:
        ip = _ip(text)
        if ip is None or not ip.is_loopback:
            return f"IP address {text} is not a loopback address"
        if ip not in node_ips:
            return f"IP address {text} is not one of node {node_name!r}'s addresses"
    hostnames = {node_name} | {str(a.get("address")) for a in addresses if a.get("type") == "Hostname"}
    for name in subject.dns_names:
        if name not in hostnames:
            return f"DNS name {name!r} is neither node {node_name!r}'s name nor one of its Hostname addresses"
    return None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_enabled(value: Any) -> bool:
    """An on/off option: a bool from the flag, or text from --controller-option."""
    return value if isinstance(value, bool) else str(value).strip().lower() not in ("false", "0", "no", "f")


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
        self.nodes: Informer | None = None
        if is_enabled(context.options.get(AUTO_APPROVE_SERVING, True)):
            self.nodes = self.informers.informer(NODES)
            self.nodes.add_handler(on_add=self._node_changed, on_update=lambda old, new: self._node_changed(new))

    def _node_changed(self, node: Obj) -> None:
        """Re-queue the node's pending serving requests: its addresses decide them."""
        user = csrs.NODE_USER_PREFIX + str(node["metadata"]["name"])
        for csr in self.csrs.list():
            spec = csrs.spec_of(csr)
            if spec.get("signerName") == csrs.KUBELET_SERVING and spec.get("username") == user and needs_decision(csr):
                self.enqueue_obj(csr)

    async def sync(self, key: str) -> None:
        csr = self.csrs.get(key)
        if csr is None or not needs_decision(csr):
            return
        signer = csrs.spec_of(csr).get("signerName")
        if signer == csrs.KUBELET_SERVING and self.nodes is not None:
            await self._sync_serving(key, csr)
            return
        if signer != csrs.KUBE_APISERVER_CLIENT_KUBELET:
            return  # no recognizer handles other signers: skip parsing the request
        request = _parse(key, csr)
        tried = []
        for recognizer in recognizers_for(csr, csrs.subject_of(request)):
            tried.append(recognizer.subresource)
            review = await self.client.create(SUBJECTACCESSREVIEWS, access_review(csr, recognizer.subresource))
            if (review.get("status") or {}).get("allowed"):
                await self._approve(csr, recognizer.message)
                return
        if tried:
            raise NotApproved(f"recognized csr {key!r} as {tried} but subject access review was not approved")

    async def _sync_serving(self, key: str, csr: Obj) -> None:
        assert self.nodes is not None
        node_name = str(csrs.spec_of(csr).get("username") or "").removeprefix(csrs.NODE_USER_PREFIX)
        refusal = serving_refusal(csr, csrs.subject_of(_parse(key, csr)), self.nodes.get(node_name))
        if refusal is not None:
            log.info("csrapproving: leaving kubelet-serving csr %s to an administrator: %s", key, refusal)
            return
        await self._approve(csr, SERVING_MESSAGE)

    async def _approve(self, csr: Obj, message: str) -> None:
        try:
            await self.client.update(CERTIFICATESIGNINGREQUESTS, approved(csr, message), subresource="approval")
        except ApiError as err:
            if is_not_found(err):
                return  # deleted meanwhile
            raise  # a conflict re-reads from the informer on retry
        log.info("csrapproving: approved %s (%s)", csr["metadata"]["name"], message)


def _parse(key: str, csr: Mapping[str, Any]) -> x509.CertificateSigningRequest:
    try:
        return csrs.parse_request(csrs.decode_base64(csrs.spec_of(csr).get("request")))
    except csrs.RequestError as err:
        raise ValueError(f"unable to parse csr {key!r}: {err}") from None


CONTROLLERS = [
    ControllerSpec("csrapproving", CSRApprovingController, workers=2, service_account="certificate-controller")
]
