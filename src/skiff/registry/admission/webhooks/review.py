"""AdmissionReview: what a webhook is sent about a request, and what its answer must be.

``request_facts(attrs, views)`` fixes, once per admission call, the parts of
an ``admission.k8s.io/v1`` AdmissionRequest that do not change while
mutating webhooks run (kind, resource, subResource, name, namespace,
operation, user, dryRun, options); ``review_request`` adds a fresh uid and
the objects.  Objects are sent as the webhook would read them from the API:
a subresource with a view of its own (``scale``: an ``autoscaling/v1``
Scale, given by the API server as a ``SubresourceView``) is sent as that
view; a subresource create (``pods/eviction``) as the body it posted.  For
a Namespace, ``namespace`` is its own name, as upstream's attributes carry it.

``verify_response`` is upstream's ``VerifyAdmissionResponse``: the answer
must be an AdmissionReview of the version sent, for the uid sent, and only a
mutating webhook may return a patch (RFC 6902, ``patchType: JSONPatch``,
base64 in the JSON).  Anything else is a ``CallError``
``received invalid webhook response: ...`` (the failurePolicy applies).
Only ``v1`` and ``v1beta1`` reviews exist; their wire forms are the same.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.api.field_errors import go_quote
from skiff.registry.admission.chain import Attributes, Operation, object_name
from skiff.registry.admission.webhooks.errors import CallError
from skiff.registry.request_user import RequestUser
from skiff.registry.resource import Obj, ResourceInfo

ADMISSION_GROUP = "admission.k8s.io"
REVIEW_VERSIONS = ("v1", "v1beta1")
JSON_PATCH = "JSONPatch"
#: Who the API server's own writes (no request user) are made as: its loopback identity.
APISERVER_USER = {"username": "system:apiserver", "groups": ["system:masters", "system:authenticated"]}
_OPTIONS_KINDS = {Operation.CREATE: "CreateOptions", Operation.UPDATE: "UpdateOptions",
                  Operation.DELETE: "DeleteOptions"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str

    def to_dict(self) -> dict[str, str]:
        return {"group": self.group, "version": self.version, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class SubresourceView:
    """A subresource whose wire object is not its resource's: how to read it and write it back."""

    kind: GroupVersionKind
    #: (resource info, the resource's object) → the subresource's object.
    read: Callable[[ResourceInfo, Obj], Obj]
    #: (resource info, the resource's object, a changed subresource object) → the changed resource object.
    write: Callable[[ResourceInfo, Obj, Obj], Obj]


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """An AdmissionRequest without its uid and objects."""

    operation: Operation
    kind: GroupVersionKind
    group: str
    version: str
    resource: str
    subresource: str
    name: str
    namespace: str
    dry_run: bool
    user: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_namespace(self) -> bool:
        return self.group == "" and self.resource == "namespaces"

    def to_dict(self) -> dict[str, Any]:
        """The request's fields in AdmissionRequest's order, empty ones omitted as Go's omitempty does."""
        kind = self.kind.to_dict()
        resource = {"group": self.group, "version": self.version, "resource": self.resource}
        out: dict[str, Any] = {"kind": kind, "resource": resource}
        if self.subresource:
            out["subResource"] = self.subresource
        out["requestKind"] = kind
        out["requestResource"] = resource
        if self.subresource:
            out["requestSubResource"] = self.subresource
        if self.name:
            out["name"] = self.name
        if self.namespace:
            out["namespace"] = self.namespace
        out["operation"] = self.operation.value
        out["userInfo"] = dict(self.user)
        return out


def request_facts(attrs: Attributes, views: Mapping[str, SubresourceView]) -> RequestFacts:
    info = attrs.info
    name = object_name(attrs)
    namespace = attrs.namespace
    if info.group == "" and info.plural == "namespaces":
        namespace = name
    return RequestFacts(
        operation=attrs.operation,
        kind=_kind(attrs, views),
        group=info.group,
        version=info.version,
        resource=info.plural,
        subresource=attrs.subresource,
        name=name,
        namespace=namespace,
        dry_run=attrs.dry_run,
        user=user_info(attrs.user),
    )


def _kind(attrs: Attributes, views: Mapping[str, SubresourceView]) -> GroupVersionKind:
    info = attrs.info
    if attrs.subresource:
        view = views.get(attrs.subresource)
        if view is not None:
            return view.kind
        body = attrs.obj or {}
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if isinstance(api_version, str) and isinstance(kind, str) and kind and kind != info.kind:
            group, _, version = api_version.rpartition("/")
            return GroupVersionKind(group, version, kind)  # a subresource create's own body (Eviction)
    return GroupVersionKind(info.group, info.version, info.kind)


def user_info(user: RequestUser | None) -> dict[str, Any]:
    """authenticationv1.UserInfo, empty fields omitted."""
    if user is None:
        return dict(APISERVER_USER)
    out: dict[str, Any] = {}
    if user.name:
        out["username"] = user.name
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {key: list(values) for key, values in user.extra.items()}
    return out


def review_version(accepted: tuple[str, ...]) -> str:
    """The first AdmissionReview version the webhook accepts that this server speaks."""
    for version in accepted:
        if version in REVIEW_VERSIONS:
            return version
    raise CallError(
        "could not create admission objects: webhook does not accept known AdmissionReview versions "
        f"{'[' + ' '.join(accepted) + ']'}"
    )


def review_request(uid: str, version: str, facts: RequestFacts, obj: Obj | None, old: Obj | None) -> dict[str, Any]:
    request: dict[str, Any] = {"uid": uid, **facts.to_dict(), "object": obj, "oldObject": old}
    request["dryRun"] = facts.dry_run
    options = _options(facts)
    if options is not None:
        request["options"] = options
    return {"kind": "AdmissionReview", "apiVersion": f"{ADMISSION_GROUP}/{version}", "request": request}


def _options(facts: RequestFacts) -> dict[str, Any] | None:
    kind = _OPTIONS_KINDS.get(facts.operation)
    if kind is None:
        return None
    options: dict[str, Any] = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
    if facts.dry_run:
        options["dryRun"] = ["All"]
    return options


@dataclass(frozen=True, slots=True)
class Response:
    """A verified AdmissionResponse."""

    allowed: bool
    status: Mapping[str, Any] | None = None
    #: The decoded JSON patch operations (mutating webhooks only); empty when there are none.
    patch: tuple[Any, ...] = ()
    warnings: tuple[str, ...] = ()
    audit_annotations: Mapping[str, str] = field(default_factory=dict)


def verify_response(review: Any, uid: str, version: str, *, mutating: bool) -> Response:
    """VerifyAdmissionResponse: the webhook's answer, or CallError."""
    if not isinstance(review, dict):
        raise _invalid("webhook response was not an object")
    response = review.get("response")
    if not isinstance(response, dict):
        raise _invalid("webhook response was absent")
    got_uid = str(response.get("uid") or "")
    if got_uid != uid:
        raise _invalid(f"expected response.uid={go_quote(uid)}, got {go_quote(got_uid)}")
    want = f"{ADMISSION_GROUP}/{version}"
    if review.get("apiVersion") != want or review.get("kind") != "AdmissionReview":
        got = f"{review.get('apiVersion') or ''}, Kind={review.get('kind') or ''}"
        raise _invalid(f"expected webhook response of {want}, Kind=AdmissionReview, got {got}")
    patch_b64 = str(response.get("patch") or "")
    patch_type = str(response.get("patchType") or "")
    if patch_b64 and not patch_type:
        raise _invalid("webhook returned response.patch but not response.patchType")
    if patch_type and not patch_b64:
        raise _invalid("webhook returned response.patchType but not response.patch")
    if not mutating and patch_b64:
        raise _invalid("validating webhook may not return response.patch")
    if not mutating and patch_type:
        raise _invalid("validating webhook may not return response.patchType")
    if patch_type and patch_type != JSON_PATCH:
        raise _invalid(f"webhook returned invalid response.patchType of {go_quote(patch_type)}")
    status = response.get("status")
    annotations = response.get("auditAnnotations")
    return Response(
        allowed=response.get("allowed") is True,
        status=status if isinstance(status, dict) else None,
        patch=_decode_patch(patch_b64) if patch_b64 else (),
        warnings=tuple(str(w) for w in response.get("warnings") or ()),
        audit_annotations={str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
    )


def _invalid(why: str) -> CallError:
    return CallError(f"received invalid webhook response: {why}")


def _decode_patch(encoded: str) -> tuple[Any, ...]:
    try:
        operations = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError) as err:
        raise CallError(f"received undecodable patch in webhook response: {err}") from None
    if not isinstance(operations, list):
        raise CallError(
            "received undecodable patch in webhook response: json: cannot unmarshal "
            f"{type(operations).__name__} into Go value of type jsonpatch.Patch"
        )
    return tuple(operations)
