"""The ServiceAccount client builder (``--use-service-account-credentials``).

Mostly without a server: a fake root client answers ServiceAccount reads and
TokenRequests; a fake clock moves time, so the refresh rules (80% of the
lifetime, at least ten minutes, at once after a 401) are checked without
sleeping.  One test runs against a real ``skiff apiserver``: the client is its
account (SelfSubjectReview), and a 401 (the account deleted) is recovered from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import orjson
import pytest
from apiserver_harness import RunningApiServer, running_apiserver

from skiff.api.status import ApiError
from skiff.client import ApiClient, ClientConfig
from skiff.client.clientbuilder import (
    MIN_LIFETIME_S,
    ServiceAccountClientBuilder,
    ServiceAccountTokenSource,
    anonymous,
    refresh_at,
    service_account_username,
)
from skiff.client.clock import FakeClock
from skiff.client.resources import SERVICEACCOUNTS
from skiff.client.timefmt import rfc3339

Obj = dict[str, Any]
START = 1_800_000_000.0


class FakeRoot:
    """Just enough of ApiClient: namespaces, ServiceAccounts and their token subresource."""

    def __init__(self, clock: FakeClock, *, lifetime_s: float = 3600.0, failures: int = 0) -> None:
        self.clock = clock
        self.config = ClientConfig(
            server="http://127.0.0.1:1", ca_data=b"CA", cert_data=b"CERT", key_data=b"KEY", token="admin"
        )
        self.accounts: dict[tuple[str, str], Obj] = {}
        self.namespaces = {"kube-system"}
        self.lifetime_s = lifetime_s
        self.failures = failures
        self.requests: list[Obj] = []
        self.gate: asyncio.Event | None = None

    async def get(self, res: Any, name: str, namespace: str | None = None) -> Obj:
        if res.plural == "namespaces":
            if name in self.namespaces:
                return {"metadata": {"name": name}}
        elif (namespace or "", name) in self.accounts:
            return self.accounts[(namespace or "", name)]
        raise ApiError(404, "NotFound", f"{res.plural} {name!r} not found")

    async def create(
        self, res: Any, body: Obj, namespace: str | None = None, *, subresource: str | None = None, name: str = ""
    ) -> Obj:
        if res.plural == "namespaces":
            self.namespaces.add(body["metadata"]["name"])
            return body
        if subresource is None:
            self.accounts[(namespace or "", body["metadata"]["name"])] = body
            return body
        assert subresource == "token" and (namespace or "", name) in self.accounts
        if self.gate is not None:
            await self.gate.wait()
        self.requests.append(body)
        if self.failures:
            self.failures -= 1
            raise ApiError(500, "InternalError", "try again")
        expires = self.clock.now() + self.lifetime_s
        token = f"token-{len(self.requests)}"
        return {**body, "status": {"token": token, "expirationTimestamp": rfc3339(expires)}}


def source(root: FakeRoot, clock: FakeClock) -> ServiceAccountTokenSource:
    return ServiceAccountTokenSource(
        cast(ApiClient, root), "kube-system", "deployment-controller", clock=clock, retry_waits_s=(0.0, 0.0, 0.0)
    )


@pytest.mark.parametrize(
    ("lifetime", "leeway", "want"),
    [
        pytest.param(3600.0, 20, 2880.0, id="one-hour-refreshed-after-48-minutes"),
        pytest.param(3600.0, 0, 3600.0, id="no-leeway"),
        pytest.param(60.0, 20, MIN_LIFETIME_S * 0.8, id="skewed-short-lifetime-counts-as-ten-minutes"),
        pytest.param(-30.0, 20, MIN_LIFETIME_S * 0.8, id="already-expired-by-our-clock"),
    ],
)
def test_refresh_at(lifetime: float, leeway: int, want: float) -> None:
    assert refresh_at(START, START + lifetime, leeway) == pytest.approx(START + want)


def test_anonymous_config_keeps_only_the_server_and_its_ca() -> None:
    config = ClientConfig(server="https://x", ca_data=b"CA", cert_file="c", key_file="k", token="t")
    assert anonymous(config) == ClientConfig(server="https://x", ca_data=b"CA")


def test_username() -> None:
    assert (
        service_account_username("kube-system", "job-controller") == "system:serviceaccount:kube-system:job-controller"
    )


async def test_token_is_requested_once_then_cached_until_its_refresh_time() -> None:
    clock = FakeClock(START)
    root = FakeRoot(clock)
    root.accounts[("kube-system", "deployment-controller")] = {"metadata": {"name": "deployment-controller"}}
    tokens = source(root, clock)
    assert await tokens.token() == "token-1"
    assert root.requests[0]["spec"] == {"expirationSeconds": 3600}
    clock.advance(2879)
    assert await tokens.token() == "token-1"
    clock.advance(1)  # 80% of the hour has passed
    assert await tokens.token() == "token-2"
    assert len(root.requests) == 2


async def test_reset_after_a_401_fetches_a_new_token() -> None:
    clock = FakeClock(START)
    root = FakeRoot(clock)
    root.accounts[("kube-system", "deployment-controller")] = {"metadata": {"name": "deployment-controller"}}
    tokens = source(root, clock)
    assert await tokens.token() == "token-1"
    tokens.reset()
    assert await tokens.token() == "token-2"


async def test_concurrent_callers_share_one_token_request() -> None:
    clock = FakeClock(START)
    root = FakeRoot(clock)
    root.accounts[("kube-system", "deployment-controller")] = {"metadata": {"name": "deployment-controller"}}
    root.gate = asyncio.Event()
    tokens = source(root, clock)
    callers = [asyncio.create_task(tokens.token()) for _ in range(5)]
    await asyncio.sleep(0)
    root.gate.set()
    assert await asyncio.gather(*callers) == ["token-1"] * 5
    assert len(root.requests) == 1


async def test_missing_account_and_namespace_are_created_before_the_token_request() -> None:
    clock = FakeClock(START)
    root = FakeRoot(clock)
    root.namespaces.clear()
    tokens = source(root, clock)
    assert await tokens.token() == "token-1"
    assert "kube-system" in root.namespaces
    assert root.accounts[("kube-system", "deployment-controller")]["metadata"]["namespace"] == "kube-system"


@pytest.mark.parametrize(
    ("failures", "ok"),
    [
        pytest.param(3, True, id="fourth-attempt-succeeds"),
        pytest.param(4, False, id="four-failures-raise"),
    ],
)
async def test_failed_token_requests_are_retried_four_times(failures: int, ok: bool) -> None:
    clock = FakeClock(START)
    root = FakeRoot(clock, failures=failures)
    root.accounts[("kube-system", "deployment-controller")] = {"metadata": {"name": "deployment-controller"}}
    tokens = source(root, clock)
    if ok:
        assert await tokens.token() == "token-4"
    else:
        with pytest.raises(ApiError):
            await tokens.token()
        assert tokens.cached is None
    assert len(root.requests) == 4


async def test_builder_makes_one_anonymous_client_per_account() -> None:
    clock = FakeClock(START)
    root = FakeRoot(clock)
    builder = ServiceAccountClientBuilder(cast(ApiClient, root), user_agent="skiff-controller-manager", clock=clock)
    try:
        first = await builder.client("certificate-controller")
        assert await builder.client("certificate-controller") is first
        other = await builder.client("node-controller")
        assert other is not first
        assert ("kube-system", "certificate-controller") in root.accounts
        assert first.config == ClientConfig(server="http://127.0.0.1:1", ca_data=b"CA")
        assert first._headers["User-Agent"] == (
            "skiff-controller-manager/system:serviceaccount:kube-system:certificate-controller"
        )
        assert "Authorization" not in first._headers  # the token source adds it per request
    finally:
        await builder.close()
    assert builder.clients == {}


# --- against a real API server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("clientbuilder")) as running:
        yield running


async def whoami(client: ApiClient) -> tuple[int, str]:
    """``kubectl auth whoami``: (status code, user name)."""
    body = orjson.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    headers = {"Content-Type": "application/json"}
    code, _, data = await client.request(
        "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=body, headers=headers
    )
    user = ((orjson.loads(data).get("status") or {}).get("userInfo") or {}) if code == 201 else {}
    return code, str(user.get("username") or "")


async def test_client_acts_as_its_account_and_recovers_from_a_401(server: RunningApiServer) -> None:
    name = "skiff-test-controller"
    async with ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig)) as root:
        builder = ServiceAccountClientBuilder(root, user_agent="skiff-test")
        try:
            client = await builder.client(name)
            assert await whoami(client) == (201, service_account_username("kube-system", name))
            # Deleting the account invalidates its tokens: one 401, then a new account and token.
            await root.delete(SERVICEACCOUNTS, name, "kube-system")
            assert (await whoami(client))[0] == 401
            assert await whoami(client) == (201, service_account_username("kube-system", name))
        finally:
            await builder.close()
