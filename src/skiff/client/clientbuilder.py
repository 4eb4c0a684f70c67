"""Clients that act as a ServiceAccount: kube-controller-manager's ``--use-service-account-credentials``.

Upstream: staging/src/k8s.io/controller-manager/pkg/clientbuilder
(DynamicControllerClientBuilder).  ``ServiceAccountClientBuilder.client(name)``
makes sure the ServiceAccount ``<namespace>/<name>`` exists (creating it, and
the namespace if that is missing, with the root client: the manager's own
identity, ``system:kube-controller-manager``, may create both) and returns an
``ApiClient`` that authenticates with that account's tokens only: the root
config keeps its server and CA and loses its client certificate
(AnonymousClientConfig), and the user agent names the account.  One client
per account, shared by the controllers that use it (csrapproving, csrsigning
and csrcleaner all run as ``certificate-controller``).

Tokens come from the TokenRequest API (``serviceaccounts/<name>/token``)
through ``ServiceAccountTokenSource``: requested with ``expirationSeconds``
3600, cached, and requested again once ``refresh_at`` passes, that is after
80% of the token's lifetime (leeway 20%; a lifetime under ten minutes, a sign
of clock skew, counts as ten minutes), or at once after the server answered
401 (``reset``).  A failed request is tried 4 times over 3.5 s (0.5 s
doubling), each time first re-checking the account, as upstream; then the
last error is raised to the request that needed the token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from skiff.client.clock import Clock, RealClock
from skiff.client.config import ClientConfig
from skiff.client.errors import ApiError, is_already_exists, is_not_found
from skiff.client.resources import NAMESPACES, SERVICEACCOUNTS
from skiff.client.rest import ApiClient
from skiff.client.timefmt import parse_rfc3339

log = logging.getLogger(__name__)

#: defaultExpirationSeconds and defaultLeewayPercent of upstream's dynamic client builder.
EXPIRATION_S = 3600
LEEWAY_PERCENT = 20
#: A token said to live less than this is taken to live this long (clock skew between us and the server).
MIN_LIFETIME_S = 600.0
#: wait.Backoff{Duration: 500ms, Factor: 2, Steps: 4}: the waits between the four attempts.
RETRY_WAITS_S = (0.5, 1.0, 2.0)


def service_account_username(namespace: str, name: str) -> str:
    """serviceaccount.MakeUsername."""
    return f"system:serviceaccount:{namespace}:{name}"


def refresh_at(now: float, expires: float, leeway_percent: int = LEEWAY_PERCENT) -> float:
    """When a token issued at ``now`` and expiring at ``expires`` should be replaced (tokenSourceImpl.Token)."""
    lifetime = max(expires - now, MIN_LIFETIME_S)
    return now + lifetime - lifetime * leeway_percent / 100


def anonymous(config: ClientConfig) -> ClientConfig:
    """restclient.AnonymousClientConfig: where the server is and how to trust it, no credentials."""
    return dataclasses.replace(config, cert_file=None, key_file=None, cert_data=None, key_data=None, token=None)


async def get_or_create_service_account(client: ApiClient, namespace: str, name: str) -> dict[str, Any]:
    """getOrCreateServiceAccount: the account, created (with its namespace if that is missing) when absent."""
    try:
        return await client.get(SERVICEACCOUNTS, name, namespace)
    except ApiError as err:
        if not is_not_found(err):
            raise
    try:
        await client.get(NAMESPACES, namespace)
    except ApiError as err:
        # Tolerated, as upstream: this identity may lack the right to read or create namespaces.
        if is_not_found(err):
            try:
                await client.create(
                    NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
                )
            except ApiError as create_err:
                if not is_already_exists(create_err):
                    log.info("cannot create namespace %s: %s", namespace, create_err)
    body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
    try:
        return await client.create(SERVICEACCOUNTS, body, namespace)
    except ApiError as err:
        if not is_already_exists(err):
            raise
    return await client.get(SERVICEACCOUNTS, name, namespace)  # lost a race: someone else created it


@dataclass(frozen=True)
class CachedToken:
    value: str
    refresh_at: float


class ServiceAccountTokenSource:
    """TokenRequest tokens of one account, cached until their refresh time (transport.NewCachedTokenSource)."""

    def __init__(
        self,
        root: ApiClient,
        namespace: str,
        name: str,
        *,
        expiration_s: int = EXPIRATION_S,
        leeway_percent: int = LEEWAY_PERCENT,
        clock: Clock | None = None,
        retry_waits_s: tuple[float, ...] = RETRY_WAITS_S,
    ) -> None:
        self.root = root
        self.namespace = namespace
        self.name = name
        self.expiration_s = expiration_s
        self.leeway_percent = leeway_percent
        self.clock = clock or RealClock()
        self.retry_waits_s = retry_waits_s
        self.cached: CachedToken | None = None
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        cached = self.cached
        if cached is not None and self.clock.now() < cached.refresh_at:
            return cached.value
        async with self._lock:  # one TokenRequest for all the requests that found the token due
            cached = self.cached
            if cached is None or self.clock.now() >= cached.refresh_at:
                cached = self.cached = await self._request_with_retries()
            return cached.value

    def reset(self) -> None:
        self.cached = None

    async def _request_with_retries(self) -> CachedToken:
        for wait in (*self.retry_waits_s, None):
            try:
                await get_or_create_service_account(self.root, self.namespace, self.name)
                return await self._request()
            except (ApiError, OSError, KeyError, ValueError) as err:
                log.info("token for %s/%s: %s", self.namespace, self.name, err)
                if wait is None:
                    raise
            await self.clock.sleep(wait)
        raise AssertionError("unreachable")

    async def _request(self) -> CachedToken:
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": self.expiration_s},
        }
        answer = await self.root.create(SERVICEACCOUNTS, body, self.namespace, subresource="token", name=self.name)
        status = answer.get("status") or {}
        now = self.clock.now()
        expires = parse_rfc3339(status["expirationTimestamp"])
        log.debug("new token for %s/%s, expires %s", self.namespace, self.name, status["expirationTimestamp"])
        return CachedToken(str(status["token"]), refresh_at(now, expires, self.leeway_percent))


class ServiceAccountClientBuilder:
    """One ``ApiClient`` per ServiceAccount of ``namespace``, authenticated by refreshed TokenRequest tokens."""

    def __init__(
        self,
        root: ApiClient,
        namespace: str = "kube-system",
        *,
        user_agent: str = "skiff",
        clock: Clock | None = None,
        expiration_s: int = EXPIRATION_S,
    ) -> None:
        self.root = root
        self.namespace = namespace
        self.user_agent = user_agent
        self.clock = clock or RealClock()
        self.expiration_s = expiration_s
        self.clients: dict[str, ApiClient] = {}

    async def client(self, name: str) -> ApiClient:
        """The client acting as ``<namespace>/<name>``; the account is created first if it is missing."""
        if name in self.clients:
            return self.clients[name]
        await get_or_create_service_account(self.root, self.namespace, name)
        if name in self.clients:  # another caller got here while we waited
            return self.clients[name]
        source = ServiceAccountTokenSource(
            self.root, self.namespace, name, expiration_s=self.expiration_s, clock=self.clock
        )
        user_agent = f"{self.user_agent}/{service_account_username(self.namespace, name)}"
        client = ApiClient(anonymous(self.root.config), user_agent=user_agent, token_source=source)
        self.clients[name] = client
        return client

    async def close(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        await asyncio.gather(*(client.close() for client in clients))
