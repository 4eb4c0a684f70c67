"""Review kinds: create-only virtual resources answered from authn/authz, never stored.

The answer is the posted object with ``status`` filled in, returned 201:

* ``selfsubjectaccessreviews`` ("may I?", ``kubectl auth can-i``),
  ``subjectaccessreviews`` and ``localsubjectaccessreviews`` ("may they?")
  ask the same ``Authorizer`` every request goes through;
* ``selfsubjectrulesreviews`` (``kubectl auth can-i --list``) asks it for
  the rules of the requester;
* ``selfsubjectreviews`` (``kubectl auth whoami``) returns the requester's
  UserInfo; ``tokenreviews`` authenticates a bearer token.

kubectl posts these as protobuf; bodies are decoded like any other.
"""

from __future__ import annotations

from typing import Any

from skiff.api.status import Cause, invalid
from skiff.apiserver.auth import Attributes, Authenticator, Authorizer, UserInfo
from skiff.registry.resource import Obj

AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"
#: (group, plural) of every review kind this module answers.
REVIEWS = frozenset(
    {
        (AUTHORIZATION, "selfsubjectaccessreviews"),
        (AUTHORIZATION, "subjectaccessreviews"),
        (AUTHORIZATION, "localsubjectaccessreviews"),
        (AUTHORIZATION, "selfsubjectrulesreviews"),
        (AUTHENTICATION, "selfsubjectreviews"),
        (AUTHENTICATION, "tokenreviews"),
    }
)


def _metadata(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    out = dict(meta) if isinstance(meta, dict) else {}
    out.setdefault("creationTimestamp", None)
    return out


async def review(
    resource: str,
    version: str,
    namespace: str,
    body: Obj,
    user: UserInfo,
    authenticator: Authenticator,
    authorizer: Authorizer,
) -> Obj:
    """The answered review for a POST to ``resource`` (one of REVIEWS)."""
    spec = body.get("spec")
    spec = dict(spec) if isinstance(spec, dict) else {}
    if resource == "selfsubjectreviews":
        return _answer(
            body, "SelfSubjectReview", f"{AUTHENTICATION}/{version}", None, {"userInfo": user.to_user_info()}
        )
    if resource == "tokenreviews":
        asked = tuple(str(a) for a in spec.get("audiences") or ())
        found = await authenticator.review_token(str(spec.get("token", "")), asked)
        status: dict[str, Any] = {"user": found[0].to_user_info() if found else {}}
        if found:
            status["authenticated"] = True
            status["audiences"] = list(found[1])
        return _answer(body, "TokenReview", f"{AUTHENTICATION}/{version}", spec, status)
    api_version = f"{AUTHORIZATION}/{version}"
    if resource == "selfsubjectrulesreviews":
        ns = str(spec.get("namespace", ""))
        rules, non_resource_rules, incomplete = authorizer.rules_for(user, ns)
        status = {"resourceRules": rules, "nonResourceRules": non_resource_rules, "incomplete": incomplete}
        return _answer(body, "SelfSubjectRulesReview", api_version, spec, status)
    kind = {
        "selfsubjectaccessreviews": "SelfSubjectAccessReview",
        "subjectaccessreviews": "SubjectAccessReview",
        "localsubjectaccessreviews": "LocalSubjectAccessReview",
    }[resource]
    subject = user
    if resource != "selfsubjectaccessreviews":
        subject = _subject(kind, spec)
    if resource == "localsubjectaccessreviews" and isinstance(spec.get("resourceAttributes"), dict):
        spec["resourceAttributes"] = {**spec["resourceAttributes"], "namespace": namespace}
    return _answer(body, kind, api_version, spec, _access(kind, spec, subject, authorizer))


def _answer(body: Obj, kind: str, api_version: str, spec: dict[str, Any] | None, status: dict[str, Any]) -> Obj:
    out: Obj = {"kind": kind, "apiVersion": api_version, "metadata": _metadata(body)}
    if spec is not None:
        out["spec"] = spec
    out["status"] = status
    return out


def _subject(kind: str, spec: dict[str, Any]) -> UserInfo:
    name, groups = str(spec.get("user", "")), tuple(str(g) for g in spec.get("groups") or ())
    if not name and not groups:
        raise invalid(
            kind,
            AUTHORIZATION,
            "",
            [
                Cause(
                    "FieldValueInvalid",
                    'Invalid value: "": at least one of user or group must be specified',
                    "spec.user",
                )
            ],
        )
    extra = {str(k): tuple(str(x) for x in v) for k, v in (spec.get("extra") or {}).items()}
    return UserInfo(name, str(spec.get("uid", "")), groups, extra)


def _access(kind: str, spec: dict[str, Any], user: UserInfo, authorizer: Authorizer) -> dict[str, Any]:
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(resource) == bool(non_resource):
        raise invalid(
            kind,
            AUTHORIZATION,
            "",
            [
                Cause(
                    "FieldValueRequired",
                    "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                    "spec.resourceAttributes",
                )
            ],
        )
    attributes = (
        Attributes.from_resource_attributes(resource)
        if isinstance(resource, dict)
        else Attributes.from_non_resource_attributes(non_resource if isinstance(non_resource, dict) else {})
    )
    allowed, reason = authorizer.authorize(user, attributes)
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return status
