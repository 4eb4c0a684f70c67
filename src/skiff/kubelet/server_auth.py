"""Who may use the kubelet's HTTPS API: authentication and authorization delegated to the API server.

What a kubeadm-configured kubelet does (upstream pkg/kubelet/server/auth.go and
server.go's InstallAuthFilter over k8s.io/apiserver's delegating authenticator
and webhook authorizer).  Every request is checked before it is routed, so an
unknown path is refused the same way as a known one.

Authentication, the first that succeeds:

1. a TLS client certificate verified against the client CA (``--client-ca-file``;
   the TLS layer verifies it, so one the CA did not sign fails the handshake):
   CN → user, each O → a group (upstream's CommonNameUserConversion);
2. a bearer token — ``Authorization: Bearer <token>``, or the WebSocket
   subprotocol ``base64url.bearer.authorization.k8s.io.<token>`` — sent to the
   API server as a TokenReview (``--authentication-token-webhook``).  Answers,
   authenticated or not, are kept for 2 minutes (upstream's
   ``authentication.webhook.cacheTTL``); a review that fails is not kept;
3. otherwise ``system:anonymous`` in ``system:unauthenticated`` with
   ``--anonymous-auth``, else 401 ``Unauthorized`` (also when a review fails).

Authenticated users get ``system:authenticated`` as upstream adds it.  With no
client CA, no token webhook and no anonymous access nothing could ever be
authenticated: ``KubeletAuth`` refuses that configuration ("No authentication
method configured"), as upstream's kubelet refuses to start.

Authorization (``--authorization-mode Webhook``): a request becomes attributes
on this Node — verb from the HTTP method (GET get, POST create, PUT update,
PATCH patch, DELETE delete), resource ``nodes``, name the node, subresource
from the path: ``/stats`` stats, ``/metrics`` metrics, ``/logs`` log,
``/checkpoint`` checkpoint, anything else proxy; with KubeletFineGrainedAuthz
(on by default since v1.33) ``/pods`` and ``/runningpods`` first ask for pods,
``/healthz`` for healthz and ``/configz`` for configz, then fall back to proxy.
Each is asked of the API server as a SubjectAccessReview until one is
allowed; allowed answers are kept 5 minutes, denied ones 30 seconds
(``authorization.webhook.cacheAuthorizedTTL`` / ``cacheUnauthorizedTTL``).
Denied is 403 ``Forbidden (user=U, verb=V, resource=nodes,
subresource(s)=[S ...])``; a review that fails is 500 ``Authorization error
(...)``.  ``AlwaysAllow`` lets every authenticated request through.

The reviews go out with the kubelet's own credentials (``system:node:<name>``):
upstream's NodeRules let nodes create tokenreviews and subjectaccessreviews.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import aiohttp

from skiff.client import ApiError
from skiff.client.resources import SUBJECTACCESSREVIEWS, TOKENREVIEWS, Resource

log = logging.getLogger(__name__)

WEBHOOK = "Webhook"
ALWAYS_ALLOW = "AlwaysAllow"
AUTHORIZATION_MODES = (WEBHOOK, ALWAYS_ALLOW)
#: KubeletConfiguration defaults (authentication.webhook.cacheTTL, authorization.webhook.cache*TTL).
TOKEN_CACHE_TTL_S = 120.0
AUTHORIZED_TTL_S = 300.0
UNAUTHORIZED_TTL_S = 30.0
CACHE_ENTRIES = 4096
ANONYMOUS_USER = "system:anonymous"
UNAUTHENTICATED_GROUP = "system:unauthenticated"
AUTHENTICATED_GROUP = "system:authenticated"
WEBSOCKET_TOKEN_PREFIX = "base64url.bearer.authorization.k8s.io."
UNAUTHORIZED_TEXT = "Unauthorized"
HTTP_VERBS = {"POST": "create", "GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
#: Paths with a fine-grained subresource asked before ``proxy`` (KubeletFineGrainedAuthz).
FINE_GRAINED = (("/pods", "pods"), ("/healthz", "healthz"), ("/configz", "configz"), ("/runningpods", "pods"))
#: Paths with their own subresource instead of ``proxy``.
COARSE = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"), ("/checkpoint", "checkpoint"))
K = TypeVar("K")
V = TypeVar("V")
ReviewErrors = (ApiError, OSError, aiohttp.ClientError, asyncio.TimeoutError, ValueError)


@dataclass(frozen=True)
class AuthConfig:
    """The kubelet's ``authentication`` and ``authorization`` settings (kubeadm's choices by default)."""

    #: authentication.x509.clientCAFile; None: the CA the kubelet trusts for the API server.
    client_ca_file: Path | None = None
    #: authentication.anonymous.enabled.
    anonymous: bool = False
    #: authentication.webhook.enabled.
    token_webhook: bool = True
    #: authorization.mode.
    authorization_mode: str = WEBHOOK


@dataclass(frozen=True, slots=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeAttributes:
    """One authorization question about this node: may the user ``verb`` ``nodes/<subresource>``?"""

    verb: str
    subresource: str
    name: str
    path: str


class Reviews(Protocol):
    """What is needed of the API client: create a review and read the answer."""

    async def create(self, res: Resource, body: dict[str, Any]) -> dict[str, Any]: ...


class AuthenticationError(Exception):
    """A token could not be reviewed (the API server failed or refused the review)."""


class AuthorizationError(Exception):
    """An access review could not be made."""


def _is_subpath(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def request_attributes(method: str, path: str, node_name: str) -> list[NodeAttributes]:
    """Upstream's GetRequestAttributes: the questions to ask, in order, for a request."""
    verb = HTTP_VERBS.get(method.upper(), "")
    subresources = [sub for prefix, sub in FINE_GRAINED if _is_subpath(path, prefix)][:1]
    subresources += [next((sub for prefix, sub in COARSE if _is_subpath(path, prefix)), "proxy")]
    return [NodeAttributes(verb, sub, node_name, path) for sub in subresources]


def certificate_user(peercert: Mapping[str, Any] | None) -> User | None:
    """The user of a verified client certificate (``ssl`` peercert dict): CN the name, each O a group."""
    if not peercert:
        return None  # no certificate, or one the TLS layer did not verify
    names = [(str(k), str(v)) for rdn in peercert.get("subject") or () for k, v in rdn]
    common = [v for k, v in names if k == "commonName"]
    if not common or not common[0]:
        return None
    return User(common[0], groups=tuple(v for k, v in names if k == "organizationName"))


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of ``Authorization: Bearer`` or of a WebSocket bearer subprotocol, if any."""
    parts = headers.get("Authorization", "").split(" ", 2)
    if len(parts) >= 2 and parts[0].lower() == "bearer" and parts[1]:
        return parts[1]
    for offered in headers.get("Sec-WebSocket-Protocol", "").split(","):
        offered = offered.strip()
        if offered.startswith(WEBSOCKET_TOKEN_PREFIX):
            encoded = offered.removeprefix(WEBSOCKET_TOKEN_PREFIX)
            try:
                token = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            return token or None
    return None


class TtlCache(Generic[K, V]):
    """Answers kept for a while, at most ``size`` of them (the oldest go first)."""

    def __init__(self, clock: Callable[[], float], size: int = CACHE_ENTRIES) -> None:
        self._clock = clock
        self._size = size
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> tuple[bool, V | None]:
        """(True, answer) while one is kept, else (False, None)."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if entry[0] <= self._clock():
            del self._entries[key]
            return False, None
        return True, entry[1]

    def put(self, key: K, value: V, ttl_s: float) -> None:
        self._entries.pop(key, None)
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (self._clock() + ttl_s, value)


def forbidden_text(user: User, attrs: list[NodeAttributes]) -> str:
    """Upstream's 403 body (Go's %v of the subresources list)."""
    subresources = " ".join(a.subresource for a in attrs)
    return f"Forbidden (user={user.name}, verb={attrs[0].verb}, resource=nodes, subresource(s)=[{subresources}])\n"


class KubeletAuth:
    """Authenticates and authorizes requests to one node's kubelet API (see the module docstring)."""

    def __init__(
        self,
        config: AuthConfig,
        node_name: str,
        reviews: Reviews | None,
        *,
        client_ca: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.authorization_mode not in AUTHORIZATION_MODES:
            raise ValueError(f"unknown authorization mode {config.authorization_mode!r}")
        if not (client_ca or config.token_webhook or config.anonymous):
            raise ValueError("No authentication method configured")
        if reviews is None and (config.token_webhook or config.authorization_mode == WEBHOOK):
            raise ValueError("the token webhook and Webhook authorization need an API client")
        self.config = config
        self.node_name = node_name
        self._reviews = reviews
        self._tokens: TtlCache[str, User | None] = TtlCache(clock)
        self._decisions: TtlCache[str, bool] = TtlCache(clock)

    async def refusal(
        self, method: str, path: str, peercert: Mapping[str, Any] | None, headers: Mapping[str, str]
    ) -> tuple[int, str] | None:
        """None when the request may go on, else the (status, plain-text body) to answer instead."""
        try:
            user = await self.authenticate(peercert, headers)
        except AuthenticationError as err:
            log.warning("unable to authenticate the request due to an error: %s", err)
            return 401, UNAUTHORIZED_TEXT
        if user is None:
            return 401, UNAUTHORIZED_TEXT
        attrs = request_attributes(method, path, self.node_name)
        for attr in attrs:
            try:
                if await self.authorize(user, attr):
                    return None
            except AuthorizationError as err:
                log.warning("authorization error for %s: %s", user.name, err)
                text = f"Authorization error (user={user.name}, verb={attr.verb}, resource=nodes, "
                return 500, text + f"subresource={attr.subresource})"
        log.info("forbidden: user %s, verb %s, nodes/%s", user.name, attrs[0].verb, attrs[-1].subresource)
        return 403, forbidden_text(user, attrs)

    async def authenticate(self, peercert: Mapping[str, Any] | None, headers: Mapping[str, str]) -> User | None:
        user = certificate_user(peercert)
        if user is None and self.config.token_webhook:
            token = bearer_token(headers)
            if token is not None:
                user = await self._review_token(token)
        if user is None:
            return User(ANONYMOUS_USER, groups=(UNAUTHENTICATED_GROUP,)) if self.config.anonymous else None
        if AUTHENTICATED_GROUP in user.groups:
            return user
        return User(user.name, user.uid, (*user.groups, AUTHENTICATED_GROUP), user.extra)

    async def _review_token(self, token: str) -> User | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        hit, cached = self._tokens.get(key)
        if hit:
            return cached
        assert self._reviews is not None
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        try:
            review = await self._reviews.create(TOKENREVIEWS, body)
        except ReviewErrors as err:
            raise AuthenticationError(f"TokenReview failed: {err}") from None
        status = review.get("status") or {}
        found: User | None = None
        if status.get("authenticated"):
            info = status.get("user") or {}
            extra = {str(k): tuple(str(x) for x in v or ()) for k, v in (info.get("extra") or {}).items()}
            groups = tuple(str(g) for g in info.get("groups") or ())
            found = User(str(info.get("username", "")), str(info.get("uid", "")), groups, extra)
        elif status.get("error"):
            raise AuthenticationError(str(status["error"]))
        self._tokens.put(key, found, TOKEN_CACHE_TTL_S)
        return found

    async def authorize(self, user: User, attr: NodeAttributes) -> bool:
        if self.config.authorization_mode == ALWAYS_ALLOW:
            return True
        spec: dict[str, Any] = {
            "resourceAttributes": {
                "verb": attr.verb,
                "group": "",
                "version": "v1",
                "resource": "nodes",
                "subresource": attr.subresource,
                "name": attr.name,
            },
            "user": user.name,
            "groups": list(user.groups),
        }
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}
        key = json.dumps(spec, sort_keys=True)
        hit, decision = self._decisions.get(key)
        if hit:
            return bool(decision)
        assert self._reviews is not None
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        try:
            review = await self._reviews.create(SUBJECTACCESSREVIEWS, body)
        except ReviewErrors as err:
            raise AuthorizationError(f"SubjectAccessReview failed: {err}") from None
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._decisions.put(key, allowed, AUTHORIZED_TTL_S if allowed else UNAUTHORIZED_TTL_S)
        return allowed
