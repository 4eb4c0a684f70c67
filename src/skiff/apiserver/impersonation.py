"""User impersonation: ``Impersonate-*`` headers, as kube-apiserver's ``WithImpersonation`` filter.

A request may ask to act as someone else (kubectl ``--as``, ``--as-group``,
``--as-uid``; a kubeconfig's ``as-user-extra``).  Follows upstream's
``endpoints/filters/impersonation``:

* **What is asked**, in this order: ``Impersonate-User`` (first value; a name
  ``system:serviceaccount:<ns>:<name>`` with a valid namespace and account
  name means that ServiceAccount), each ``Impersonate-Group`` value, each
  ``Impersonate-Extra-<key>`` value (the key lower-cased, then
  percent-decoded; kept as sent when the escapes are malformed), then
  ``Impersonate-Uid``.  Groups, extras or a uid without a user is 400
  BadRequest ``requested [...] without impersonating a user``, worded as Go
  prints the list of ObjectReferences.
* **Who may**: the authenticated requestor is asked, one request after the
  other, for verb ``impersonate`` on ``users`` (group ""), ``serviceaccounts``
  (in its namespace), ``groups``, ``userextras/<key>`` and ``uids`` (group
  ``authentication.k8s.io``), the name being the value asked for.  The first
  refusal is 403 Forbidden with upstream's wording (``users "bob" is forbidden:
  User "alice" cannot impersonate resource "users" in API group "" at the
  cluster scope``).
* **Who the request then is**: that name, uid and extras (nothing of the
  requestor's is kept); the groups asked for — a ServiceAccount asked for
  without groups is in ``system:serviceaccounts`` and
  ``system:serviceaccounts:<ns>`` — plus ``system:authenticated`` unless
  ``system:authenticated`` or ``system:unauthenticated`` is among them;
  ``system:anonymous`` gets ``system:unauthenticated`` instead.

Pure: reads the headers and asks the authorizer, nothing else.  The HTTP
layer (``app.ApiApp``) calls ``impersonate`` after authentication and before
authorizing the request itself, which is then authorized, admitted, audited
(as ``impersonatedUser``) and served as the impersonated user.  Skiff's
proxies (pods/log, exec, attach, portforward) build their own upstream
requests and forward no client headers, so the impersonation headers go no
further.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from multidict import MultiMapping

from skiff.api.name_rules import is_dns1123_label, is_dns1123_subdomain
from skiff.api.status import bad_request
from skiff.apiserver.auth import (
    ANONYMOUS_USER,
    AUTHENTICATED_GROUP,
    UNAUTHENTICATED_GROUP,
    Attributes,
    Authorizer,
    UserInfo,
    forbidden_error,
)
from skiff.apiserver.serviceaccount_tokens import ALL_GROUP as SERVICE_ACCOUNTS_GROUP
from skiff.apiserver.serviceaccount_tokens import USER_PREFIX as SERVICE_ACCOUNT_PREFIX

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_HEADER_PREFIX = "Impersonate-Extra-"
VERB = "impersonate"
AUTHENTICATION_GROUP = "authentication.k8s.io"
_AUTHENTICATION_V1 = f"{AUTHENTICATION_GROUP}/v1"

#: kind -> the resource the requestor must be allowed to impersonate.
RESOURCES = {
    "ServiceAccount": "serviceaccounts",
    "User": "users",
    "Group": "groups",
    "UserExtra": "userextras",
    "UID": "uids",
}

_MALFORMED_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class ImpersonationRequest:
    """One thing asked to be (upstream's ObjectReference: the extra's key rides in ``field_path``)."""

    kind: str
    name: str
    namespace: str = ""
    api_version: str = ""
    field_path: str = ""

    def attributes(self) -> Attributes:
        """What the requestor must be allowed: ``impersonate`` on this kind's resource, named by the value."""
        group, _, version = self.api_version.rpartition("/")
        return Attributes(
            verb=VERB,
            resource_request=True,
            namespace=self.namespace,
            api_group=group,
            api_version=version,
            resource=RESOURCES[self.kind],
            subresource=self.field_path,
            name=self.name,
        )

    def go_string(self) -> str:
        """Go's ``%v`` of the ObjectReference: its seven string fields, space separated, in braces."""
        fields = (self.kind, self.namespace, self.name, "", self.api_version, "", self.field_path)
        return "{" + " ".join(fields) + "}"


def has_impersonation_headers(headers: MultiMapping[str]) -> bool:
    """Any ``Impersonate-*`` header at all: the cheap test every request pays."""
    return any(name[:12].lower() == "impersonate-" for name in headers)


def split_service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of a ServiceAccount's user name, None for any other name (upstream ``SplitUsername``)."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    parts = username.removeprefix(SERVICE_ACCOUNT_PREFIX).split(":")
    if len(parts) != 2:
        return None
    namespace, name = parts
    if is_dns1123_label(namespace) or is_dns1123_subdomain(name):
        return None
    return namespace, name


def unescape_extra_key(key: str) -> str:
    """Percent-decode as Go's ``url.PathUnescape``; a malformed escape leaves the key as it came."""
    if _MALFORMED_ESCAPE.search(key):
        return key
    return urllib.parse.unquote_to_bytes(key).decode("utf-8", errors="replace")


def requests_from_headers(headers: MultiMapping[str]) -> list[ImpersonationRequest]:
    """What the headers ask to be, in upstream's order; 400 when groups, extras or a uid come without a user."""
    requests: list[ImpersonationRequest] = []
    user = headers.get(USER_HEADER, "")
    if user:
        account = split_service_account(user)
        if account is not None:
            requests.append(ImpersonationRequest("ServiceAccount", account[1], namespace=account[0]))
        else:
            requests.append(ImpersonationRequest("User", user))
    for group in headers.getall(GROUP_HEADER, []):
        requests.append(ImpersonationRequest("Group", group))
    prefix = EXTRA_HEADER_PREFIX.lower()
    for header, value in headers.items():
        if header.lower().startswith(prefix):
            key = unescape_extra_key(header[len(prefix) :].lower())
            requests.append(ImpersonationRequest("UserExtra", value, api_version=_AUTHENTICATION_V1, field_path=key))
    uid = headers.get(UID_HEADER, "")
    if uid:
        requests.append(ImpersonationRequest("UID", uid, api_version=_AUTHENTICATION_V1))
    if not user and requests:
        listed = " ".join(r.go_string() for r in requests)
        raise bad_request(f"requested [{listed}] without impersonating a user")
    return requests


def impersonated_user(requests: list[ImpersonationRequest]) -> UserInfo:
    """The user the (allowed) requests describe."""
    # Groups asked for are the whole list: a ServiceAccount's own groups come only when none are.
    groups_given = any(r.kind == "Group" for r in requests)
    name = uid = ""
    groups: list[str] = []
    extra: dict[str, tuple[str, ...]] = {}
    for request in requests:
        if request.kind == "ServiceAccount":
            name = f"{SERVICE_ACCOUNT_PREFIX}{request.namespace}:{request.name}"
            if not groups_given:
                groups = [SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{request.namespace}"]
        elif request.kind == "User":
            name = request.name
        elif request.kind == "Group":
            groups.append(request.name)
        elif request.kind == "UserExtra":
            extra[request.field_path] = (*extra.get(request.field_path, ()), request.name)
        elif request.kind == "UID":
            uid = request.name
    if name == ANONYMOUS_USER:
        if UNAUTHENTICATED_GROUP not in groups:
            groups.append(UNAUTHENTICATED_GROUP)
    elif AUTHENTICATED_GROUP not in groups and UNAUTHENTICATED_GROUP not in groups:
        groups.append(AUTHENTICATED_GROUP)
    return UserInfo(name, uid, tuple(groups), extra)


def impersonate(requestor: UserInfo, headers: MultiMapping[str], authorizer: Authorizer) -> UserInfo | None:
    """The user ``requestor`` acts as, None when no ``Impersonate-*`` header was sent.

    ``headers`` are looked up case-insensitively (aiohttp's ``CIMultiDictProxy``), as Go canonicalizes names.

    Raises ApiError: 400 for groups, extras or a uid without a user; 403 for the first thing
    the authorizer does not let ``requestor`` impersonate.
    """
    if not has_impersonation_headers(headers):
        return None
    requests = requests_from_headers(headers)
    if not requests:  # empty Impersonate-User / -Uid values, or other Impersonate-* names: upstream ignores them
        return None
    for request in requests:
        attributes = request.attributes()
        allowed, reason = authorizer.authorize(requestor, attributes)
        if not allowed:
            raise forbidden_error(requestor, attributes, reason)
    return impersonated_user(requests)
