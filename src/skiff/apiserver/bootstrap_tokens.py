"""Bootstrap tokens: how a new node's kubelet first authenticates (kubeadm join's shared secret).

Upstream's bootstrap token authenticator
(plugin/pkg/auth/authenticator/token/bootstrap) with k8s.io/cluster-bootstrap's
conventions: a bearer token ``<id>.<secret>`` (``[a-z0-9]{6}.[a-z0-9]{16}``)
is valid when the Secret ``kube-system/bootstrap-token-<id>``

* has type ``bootstrap.kubernetes.io/token`` and no deletionTimestamp,
* carries ``token-id`` = id and ``token-secret`` = secret (compared in
  constant time),
* has not expired (``expiration``, RFC 3339; an unparseable one counts as
  expired, as upstream),
* says ``usage-bootstrap-authentication: "true"``.

The user is ``system:bootstrap:<id>`` in ``system:bootstrappers``, every
group of ``auth-extra-groups`` (comma-separated; each must match
``system:bootstrappers:...`` or the token is refused) and
``system:authenticated``.  Anything else is "not this authenticator's token"
and ends as 401 like any bad token.

Secrets are read through the served registries (``ObjectReader``), never the
store directly; answers are cached for ``CACHE_TTL_S`` because a kubelet
sends its token with every request (upstream reads an informer's cache).
This module also builds such Secrets for ``skiff token create`` and
``skiff up``.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
import secrets
import string
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from skiff.apiserver.auth import AUTHENTICATED_GROUP, UserInfo
from skiff.registry.admission.chain import ObjectReader

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
SECRET_PREFIX = "bootstrap-token-"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
USER_PREFIX = "system:bootstrap:"
DEFAULT_GROUP = "system:bootstrappers"
#: The group kubeadm gives node-joining tokens.
NODE_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
TOKEN_PATTERN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
GROUP_PATTERN = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
#: How long an answer (valid or not) is reused for the same token.
CACHE_TTL_S = 2.0
CACHE_MAX_ENTRIES = 1024

_ALPHABET = string.ascii_lowercase + string.digits


def parse_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed bootstrap token, else None."""
    match = TOKEN_PATTERN.match(token)
    return (match.group(1), match.group(2)) if match else None


def generate_token() -> str:
    """A fresh random ``<id>.<secret>`` (as kubeadm's GenerateBootstrapToken)."""
    pick = secrets.choice
    return "".join(pick(_ALPHABET) for _ in range(6)) + "." + "".join(pick(_ALPHABET) for _ in range(16))


def token_secret(
    token: str,
    *,
    expiration: str | None = None,
    description: str = "",
    extra_groups: tuple[str, ...] = (NODE_TOKEN_GROUP,),
    usages: tuple[str, ...] = ("authentication", "signing"),
) -> dict[str, Any]:
    """The kube-system Secret that makes ``token`` valid (``expiration`` RFC 3339; None never expires)."""
    parsed = parse_token(token)
    if parsed is None:
        raise ValueError(f"bootstrap token must match {TOKEN_PATTERN.pattern}")
    token_id, secret = parsed
    plain = {"token-id": token_id, "token-secret": secret}
    if description:
        plain["description"] = description
    if expiration:
        plain["expiration"] = expiration
    for usage in usages:
        plain[f"usage-bootstrap-{usage}"] = "true"
    if extra_groups:
        plain["auth-extra-groups"] = ",".join(extra_groups)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_PREFIX + token_id, "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in plain.items()},
    }


def _data(secret: Mapping[str, Any], key: str) -> str:
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def has_expired(secret: Mapping[str, Any], now: float) -> bool:
    text = _data(secret, "expiration")
    if not text:
        return False
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return True  # upstream: an unparseable expiration is treated as expired
    if moment.tzinfo is None:
        return True
    return moment.timestamp() <= now


def user_for_secret(secret: Mapping[str, Any] | None, token_id: str, token_secret_: str, now: float) -> UserInfo | None:
    """The bootstrap user ``secret`` vouches for, or None (with the reason logged) when it does not."""
    if secret is None:
        return None
    name = f"{NAMESPACE}/{SECRET_PREFIX}{token_id}"
    metadata = secret.get("metadata") or {}
    problem = ""
    if metadata.get("deletionTimestamp"):
        problem = "is being deleted"
    elif secret.get("type") != SECRET_TYPE or not secret.get("data"):
        problem = f"has the wrong type (want {SECRET_TYPE})"
    elif not hmac.compare_digest(_data(secret, "token-secret").encode(), token_secret_.encode()):
        problem = "has a different token-secret"
    elif _data(secret, "token-id") != token_id:
        problem = "has a different token-id"
    elif has_expired(secret, now):
        problem = "has expired"
    elif _data(secret, "usage-bootstrap-authentication") != "true":
        problem = "is not marked usage-bootstrap-authentication"
    if problem:
        log.info("bootstrap token secret %s %s", name, problem)
        return None
    groups = [DEFAULT_GROUP]
    for group in filter(None, (g.strip() for g in _data(secret, "auth-extra-groups").split(","))):
        if not GROUP_PATTERN.match(group):
            log.info("bootstrap token secret %s: auth-extra-groups %r is not a system:bootstrappers group", name, group)
            return None
        if group not in groups:
            groups.append(group)
    return UserInfo(USER_PREFIX + token_id, groups=(*groups, AUTHENTICATED_GROUP))


class BootstrapTokenAuthenticator:
    """A ``TokenAuthenticator`` over kube-system's bootstrap-token Secrets."""

    def __init__(self, reader: ObjectReader, clock: Callable[[], float] = time.time) -> None:
        self.reader = reader
        self.clock = clock
        self._cache: dict[str, tuple[float, UserInfo | None]] = {}

    async def authenticate_token(self, token: str) -> UserInfo | None:
        parsed = parse_token(token)
        if parsed is None:
            return None
        now = self.clock()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        token_id, secret = parsed
        obj = await self.reader.get("", "secrets", NAMESPACE, SECRET_PREFIX + token_id)
        user = user_for_secret(obj, token_id, secret, now)
        if len(self._cache) >= CACHE_MAX_ENTRIES:
            self._cache.clear()
        self._cache[token] = (now + CACHE_TTL_S, user)
        return user
