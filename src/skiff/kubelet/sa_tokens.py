"""ServiceAccount tokens for projected ``serviceAccountToken`` volume sources.

Like the kubelet's token manager (pkg/kubelet/token): a token is requested
through ``serviceaccounts/{name}/token`` bound to the pod (kind Pod, name,
uid), cached per (pod uid, account, audience, expirationSeconds), and
requested afresh once 80% of its lifetime has passed.  The volume code
rewrites projected volumes on every periodic resync, which is what puts the
refreshed token in the file.
"""

from __future__ import annotations

from typing import Any

from skiff.client import ApiClient
from skiff.client.clock import Clock, RealClock
from skiff.client.resources import SERVICEACCOUNTS
from skiff.client.timefmt import parse_rfc3339

#: Fraction of a token's lifetime after which a new one is requested (upstream: 80%).
REFRESH_FRACTION = 0.8
DEFAULT_EXPIRATION_S = 3600


class TokenManager:
    """Requests and caches pod-bound ServiceAccount tokens."""

    def __init__(self, client: ApiClient, clock: Clock | None = None) -> None:
        self.client = client
        self.clock = clock or RealClock()
        # key -> (token, refresh at, expires at)
        self._cache: dict[tuple[str, str, str, int], tuple[str, float, float]] = {}

    async def token(self, pod: dict[str, Any], audience: str, expiration_s: int) -> str:
        """A token for the pod's account; raises the client's errors (ApiError, OSError...)."""
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        key = (str(meta["uid"]), account, audience, expiration_s)
        now = self.clock.now()
        cached = self._cache.get(key)
        if cached is not None and now < cached[1]:
            return cached[0]
        spec: dict[str, Any] = {
            "expirationSeconds": expiration_s,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta["name"], "uid": meta["uid"]},
        }
        if audience:
            spec["audiences"] = [audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        answer = await self.client.create(SERVICEACCOUNTS, body, meta["namespace"], subresource="token", name=account)
        status = answer.get("status") or {}
        token = str(status["token"])
        expires = parse_rfc3339(status["expirationTimestamp"]) if status.get("expirationTimestamp") else now
        lifetime = max(expires - now, 0.0)
        self._prune(now)
        self._cache[key] = (token, now + REFRESH_FRACTION * lifetime, expires)
        return token

    def forget_pod(self, uid: str) -> None:
        for key in [k for k in self._cache if k[0] == uid]:
            del self._cache[key]

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._cache.items() if v[2] <= now]:
            del self._cache[key]
