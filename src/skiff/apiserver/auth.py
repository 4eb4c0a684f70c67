"""Who is asking (authentication) and may they (the authorizer seam).

Authentication, as kube-apiserver's union authenticator:

1. a TLS client certificate verified against the cluster CA (the TLS layer
   verifies it; an invalid or expired one fails the handshake): CN → user
   name, each O → a group.  A Skiff extension: a certificate whose serial the
   ``revoked`` callable lists (``DATA_DIR/pki/revoked-serials``, see
   ``apiserver.dynamic_certs``) does not authenticate; like upstream's x509
   authenticator failing, the request is then 401 unless a bearer token
   authenticates it (never anonymous);
2. ``Authorization: Bearer <token>`` looked up in the static token file
   (``--token-auth-file``: CSV ``token,user,uid,"group1,group2"``), then
   asked of each further ``TokenAuthenticator`` (bootstrap tokens,
   ``apiserver.bootstrap_tokens``), which read the API and so are async;
3. otherwise anonymous (``system:anonymous`` in ``system:unauthenticated``,
   kube-apiserver's default --anonymous-auth): the public-info paths
   upstream's ``system:public-info-viewer`` role grants — /version, /healthz,
   /livez, /readyz and their sub-checks — are always served; anything else
   goes to the authorizer like any request, so with RBAC it is 403 unless a
   binding grants ``system:anonymous`` or ``system:unauthenticated`` more.
   Offered credentials that do not authenticate are 401.

Authenticated users also get ``system:authenticated``, as upstream adds.

Authorization goes through one ``Authorizer``: by default ``Node,RBAC``
(kube-apiserver's ``--authorization-mode``), a ``UnionAuthorizer`` of the
Node authorizer (``apiserver.node_authorizer``) and RBAC (``apiserver.rbac``);
``AlwaysAllow`` lets every authenticated user do everything.  The access and
rules reviews ask the same object.
"""

from __future__ import annotations

import csv
import functools
import io
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from skiff.api.status import ApiError, Details, forbidden

ANONYMOUS_USER = "system:anonymous"
UNAUTHENTICATED_GROUP = "system:unauthenticated"
AUTHENTICATED_GROUP = "system:authenticated"

#: Paths anonymous users may read (system:public-info-viewer).
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return self.name == ANONYMOUS_USER

    def to_user_info(self) -> dict[str, Any]:
        """authentication.k8s.io/v1 UserInfo, as SelfSubjectReview returns it."""
        out: dict[str, Any] = {"username": self.name}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ANONYMOUS = UserInfo(ANONYMOUS_USER, groups=(UNAUTHENTICATED_GROUP,))


def is_public_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PUBLIC_PATHS)


class TokenFileError(ValueError):
    pass


def load_token_file(path: Path) -> dict[str, UserInfo]:
    """Parse a static token file (upstream's tokenfile format); raise TokenFileError on bad rows."""
    return parse_token_file(path.read_text())


def parse_token_file(text: str) -> dict[str, UserInfo]:
    users: dict[str, UserInfo] = {}
    for number, record in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) < 3:
            raise TokenFileError(
                f"token file line {number}: expected token,user,uid[,groups], got {len(record)} fields"
            )
        token, user, uid = (r.strip() for r in record[:3])
        if not token:
            raise TokenFileError(f"token file line {number}: empty token")
        groups = tuple(g.strip() for g in record[3].split(",") if g.strip()) if len(record) > 3 else ()
        users[token] = _with_authenticated(UserInfo(user, uid, groups))
    return users


def _with_authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED_GROUP in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, AUTHENTICATED_GROUP), user.extra)


def user_from_peercert(peercert: Mapping[str, Any] | None) -> UserInfo | None:
    """The user of a verified client certificate (``ssl.SSLSocket.getpeercert()`` form)."""
    if not peercert:
        return None
    name = ""
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                name = value
            elif key == "organizationName":
                groups.append(value)
    if not name:
        return None
    return _with_authenticated(UserInfo(name, groups=tuple(groups)))


def certificate_current(peercert: Mapping[str, Any], now: float | None = None) -> bool:
    """Is the client certificate within its notBefore..notAfter?

    The TLS layer checks the chain but leaves time to this check (``server.tls_context``), so an expired
    certificate is answered 401 per request, as kube-apiserver's x509 authenticator does, rather than
    failing the handshake.
    """
    try:
        not_before = cert_time(str(peercert["notBefore"]))
        not_after = cert_time(str(peercert["notAfter"]))
    except (KeyError, ValueError):
        return False
    moment = time.time() if now is None else now
    return not_before <= moment <= not_after


@functools.lru_cache(maxsize=16_384)
def cert_time(text: str) -> float:
    """``ssl.cert_time_to_seconds``, remembered: it is strptime, ~2 % of an API server's CPU when asked on
    every request (the same few thousand certificates ask again and again)."""
    return ssl.cert_time_to_seconds(text)


class TokenAuthenticator(Protocol):
    async def authenticate_token(self, token: str) -> UserInfo | None:
        """The token's user, or None when the token is not valid here."""
        ...


@runtime_checkable
class AudienceAware(Protocol):
    async def authenticate_for(self, token: str, audiences: tuple[str, ...]) -> tuple[UserInfo, tuple[str, ...]] | None:
        """The token's user and which of ``audiences`` it is valid for (at least one), or None."""
        ...


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, None for any other scheme."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True, slots=True)
class Authenticator:
    tokens: Mapping[str, UserInfo] = field(default_factory=dict)
    #: Asked in order after the static tokens.
    token_authenticators: tuple[TokenAuthenticator, ...] = ()
    #: The API server's own audiences (TokenReview's default; what non-audience-aware tokens are valid for).
    api_audiences: tuple[str, ...] = ()
    #: Is this client certificate serial (hex, as ``getpeercert()`` gives it) revoked?  None revokes nothing.
    revoked: Callable[[str], bool] | None = None

    def authenticate(self, peercert: Mapping[str, Any] | None, authorization: str | None) -> UserInfo | None:
        """Client certificate and static tokens only: the user, ANONYMOUS when no credentials were
        offered, None when offered credentials are not among them (``authenticate_request`` asks on)."""
        user = user_from_peercert(peercert)
        if user is not None and peercert is not None:
            if certificate_current(peercert) and not self._is_revoked(peercert):
                return user
            if not authorization:
                return None
        if authorization:
            token = bearer_token(authorization)
            return self.tokens.get(token) if token is not None else None
        return ANONYMOUS

    def _is_revoked(self, peercert: Mapping[str, Any] | None) -> bool:
        if self.revoked is None or not peercert:
            return False
        return self.revoked(str(peercert.get("serialNumber", "")))

    async def authenticate_request(
        self, peercert: Mapping[str, Any] | None, authorization: str | None
    ) -> UserInfo | None:
        """The whole chain: as ``authenticate``, then the token authenticators for an unknown bearer token."""
        user = self.authenticate(peercert, authorization)
        if user is not None or not authorization or not self.token_authenticators:
            return user
        token = bearer_token(authorization)
        return await self.authenticate_token(token) if token is not None else None

    async def authenticate_token(self, token: str) -> UserInfo | None:
        """A bearer token's user, None when no authenticator knows it."""
        found = self.tokens.get(token)
        if found is not None:
            return found
        for authenticator in self.token_authenticators:
            user = await authenticator.authenticate_token(token)
            if user is not None:
                return user
        return None

    async def review_token(self, token: str, audiences: tuple[str, ...]) -> tuple[UserInfo, tuple[str, ...]] | None:
        """TokenReview: the user and the audiences (of those asked; the API server's when none) the token is for.

        As upstream, authenticators that know no audiences (static and bootstrap tokens) count as valid for the
        API server's own audiences only, so a review asking for another audience does not accept them.
        """
        wanted = audiences or self.api_audiences
        for authenticator in self.token_authenticators:
            if wanted and isinstance(authenticator, AudienceAware):
                found = await authenticator.authenticate_for(token, wanted)
                if found is not None:
                    return found
        implicit = tuple(a for a in wanted if a in self.api_audiences) if self.api_audiences else wanted
        if self.api_audiences and not implicit:
            return None
        found_user = self.tokens.get(token)
        for authenticator in self.token_authenticators:
            if found_user is None and not (wanted and isinstance(authenticator, AudienceAware)):
                found_user = await authenticator.authenticate_token(token)
        return (found_user, implicit) if found_user is not None else None


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request does (upstream authorizer.Attributes)."""

    verb: str
    path: str = ""
    resource_request: bool = False
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""

    @classmethod
    def from_resource_attributes(cls, attrs: Mapping[str, Any]) -> Attributes:
        """From a SubjectAccessReview's spec.resourceAttributes."""
        return cls(
            verb=str(attrs.get("verb", "")),
            resource_request=True,
            namespace=str(attrs.get("namespace", "")),
            api_group=str(attrs.get("group", "")),
            api_version=str(attrs.get("version", "")),
            resource=str(attrs.get("resource", "")),
            subresource=str(attrs.get("subresource", "")),
            name=str(attrs.get("name", "")),
        )

    @classmethod
    def from_non_resource_attributes(cls, attrs: Mapping[str, Any]) -> Attributes:
        return cls(verb=str(attrs.get("verb", "")), path=str(attrs.get("path", "")))


#: A SelfSubjectRulesReview answer: (resourceRules, nonResourceRules, incomplete).
Rules = tuple[list[dict[str, Any]], list[dict[str, Any]], bool]


class Authorizer(Protocol):
    def authorize(self, user: UserInfo, attributes: Attributes) -> tuple[bool, str]:
        """(allowed, reason); the reason is shown in Forbidden messages and access reviews."""
        ...

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        """What ``user`` may do in ``namespace`` (SelfSubjectRulesReview, ``kubectl auth can-i --list``)."""
        ...


class AllowAuthenticated:
    """Every authenticated user may do everything (``--authorization-mode AlwaysAllow``)."""

    def authorize(self, user: UserInfo, attributes: Attributes) -> tuple[bool, str]:
        if AUTHENTICATED_GROUP in user.groups:
            return True, "skiff: every authenticated user is allowed"
        return False, "skiff: anonymous requests are not allowed"

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        if AUTHENTICATED_GROUP not in user.groups:
            return [], [], False
        return (
            [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            False,
        )


class UnionAuthorizer:
    """Asks each authorizer in turn; the first that allows decides (upstream's union of modes).

    No authorizer denies outright (Node and RBAC only allow or have no
    opinion), so a refusal carries every reason given, comma-joined."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = tuple(authorizers)

    def authorize(self, user: UserInfo, attributes: Attributes) -> tuple[bool, str]:
        reasons: list[str] = []
        for authorizer in self.authorizers:
            allowed, reason = authorizer.authorize(user, attributes)
            if allowed:
                return True, reason
            if reason:
                reasons.append(reason)
        return False, ", ".join(reasons)

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        resource_rules: list[dict[str, Any]] = []
        non_resource_rules: list[dict[str, Any]] = []
        incomplete = False
        for authorizer in self.authorizers:
            rules, non_resource, partial = authorizer.rules_for(user, namespace)
            resource_rules += rules
            non_resource_rules += non_resource
            incomplete = incomplete or partial
        return resource_rules, non_resource_rules, incomplete


def forbidden_message(user: UserInfo, attributes: Attributes, reason: str) -> str:
    """Upstream's Forbidden wording: ``User "u" cannot list resource "pods" in API group "" ...``."""
    if attributes.resource_request:
        resource = attributes.resource + (f"/{attributes.subresource}" if attributes.subresource else "")
        text = (
            f'User "{user.name}" cannot {attributes.verb} resource "{resource}" in API group "{attributes.api_group}"'
        )
        text += f' in the namespace "{attributes.namespace}"' if attributes.namespace else " at the cluster scope"
    else:
        text = f'User "{user.name}" cannot {attributes.verb} path "{attributes.path}"'
    return f"{text}: {reason}" if reason else text


def forbidden_error(user: UserInfo, attributes: Attributes, reason: str) -> ApiError:
    """The 403 kube-apiserver answers a refused request with (``pods "x" is forbidden: User ...``)."""
    message = forbidden_message(user, attributes, reason)
    if not attributes.resource_request or not attributes.resource:
        return ApiError(403, "Forbidden", f"forbidden: {message}", Details())
    return forbidden(attributes.resource, attributes.api_group, attributes.name, message)
