"""skiff.kubelet.server_auth: request attributes, credentials, and the review caches (fake API, fake clock)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from skiff.client import ApiError
from skiff.client.resources import SUBJECTACCESSREVIEWS, TOKENREVIEWS, Resource
from skiff.kubelet.server_auth import (
    ALWAYS_ALLOW,
    AuthConfig,
    KubeletAuth,
    User,
    bearer_token,
    certificate_user,
    request_attributes,
)

NODE = "node-a"
NOBODY = ("system:authenticated",)


@pytest.mark.parametrize(
    ("method", "path", "verb", "subresources"),
    [
        pytest.param("GET", "/containerLogs/ns/p/c", "get", ["proxy"], id="logs"),
        pytest.param("POST", "/exec/ns/p/c", "create", ["proxy"], id="exec-post"),
        pytest.param("GET", "/exec/ns/p/c", "get", ["proxy"], id="exec-websocket"),
        pytest.param("PUT", "/x", "update", ["proxy"], id="put"),
        pytest.param("PATCH", "/x", "patch", ["proxy"], id="patch"),
        pytest.param("DELETE", "/x", "delete", ["proxy"], id="delete"),
        pytest.param("HEAD", "/x", "", ["proxy"], id="unknown-method"),
        pytest.param("GET", "/stats/summary", "get", ["stats"], id="stats"),
        pytest.param("GET", "/metrics", "get", ["metrics"], id="metrics"),
        pytest.param("GET", "/metrics/cadvisor", "get", ["metrics"], id="metrics-sub"),
        pytest.param("GET", "/metricsfoo", "get", ["proxy"], id="not-a-subpath"),
        pytest.param("GET", "/logs/syslog", "get", ["log"], id="node-logs"),
        pytest.param("POST", "/checkpoint/ns/p/c", "create", ["checkpoint"], id="checkpoint"),
        pytest.param("GET", "/pods", "get", ["pods", "proxy"], id="pods"),
        pytest.param("GET", "/runningpods/", "get", ["pods", "proxy"], id="runningpods"),
        pytest.param("GET", "/healthz/ping", "get", ["healthz", "proxy"], id="healthz"),
        pytest.param("GET", "/configz", "get", ["configz", "proxy"], id="configz"),
    ],
)
def test_request_attributes(method: str, path: str, verb: str, subresources: list[str]) -> None:
    attrs = request_attributes(method, path, NODE)
    assert [a.subresource for a in attrs] == subresources
    assert {(a.verb, a.name, a.path) for a in attrs} == {(verb, NODE, path)}


def ws_protocol(token: str) -> str:
    return "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io." + base64.urlsafe_b64encode(
        token.encode()
    ).decode().rstrip("=")


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        pytest.param({"Authorization": "Bearer abc"}, "abc", id="bearer"),
        pytest.param({"Authorization": "bearer abc"}, "abc", id="case"),
        pytest.param({"Authorization": "Bearer "}, None, id="empty"),
        pytest.param({"Authorization": "Basic abc"}, None, id="basic"),
        pytest.param({"Sec-WebSocket-Protocol": ws_protocol("tok.en")}, "tok.en", id="websocket"),
        pytest.param({"Sec-WebSocket-Protocol": "v5.channel.k8s.io"}, None, id="websocket-none"),
        pytest.param({}, None, id="nothing"),
    ],
)
def test_bearer_token(headers: dict[str, str], token: str | None) -> None:
    assert bearer_token(headers) == token


@pytest.mark.parametrize(
    ("peercert", "user"),
    [
        pytest.param(None, None, id="none"),
        pytest.param({}, None, id="unverified"),
        pytest.param(
            {"subject": ((("organizationName", "g1"),), (("organizationName", "g2"),), (("commonName", "alice"),))},
            User("alice", groups=("g1", "g2")),
            id="cn-and-o",
        ),
        pytest.param({"subject": ((("organizationName", "g1"),),)}, None, id="no-cn"),
    ],
)
def test_certificate_user(peercert: dict[str, Any] | None, user: User | None) -> None:
    assert certificate_user(peercert) == user


class FakeApi:
    """Answers reviews from tables; counts them; fails on demand."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}
        self.allowed: set[tuple[str, str]] = set()  # (user, subresource)
        self.calls: list[str] = []
        self.fail = False

    async def create(self, res: Resource, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(res.plural)
        if self.fail:
            raise ApiError(503, "ServiceUnavailable", "down")
        spec = body["spec"]
        if res == TOKENREVIEWS:
            user = self.tokens.get(spec["token"])
            return {**body, "status": {"authenticated": True, "user": user} if user else {}}
        assert res == SUBJECTACCESSREVIEWS
        allowed = (spec["user"], spec["resourceAttributes"]["subresource"]) in self.allowed
        return {**body, "status": {"allowed": allowed}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def auth(api: FakeApi, clock: Clock, **config: Any) -> KubeletAuth:
    return KubeletAuth(AuthConfig(**config), NODE, api, client_ca=True, clock=clock)


async def test_token_answers_are_kept_two_minutes() -> None:
    api, clock = FakeApi(), Clock()
    api.tokens["t"] = {"username": "sa", "uid": "u1", "groups": ["system:serviceaccounts"]}
    api.allowed.add(("sa", "proxy"))
    kubelet = auth(api, clock)
    headers = {"Authorization": "Bearer t"}
    assert await kubelet.refusal("GET", "/containerLogs/a/b/c", None, headers) is None
    expected = User("sa", "u1", ("system:serviceaccounts", "system:authenticated"))
    assert await kubelet.authenticate(None, headers) == expected
    assert api.calls == ["tokenreviews", "subjectaccessreviews"]
    assert await kubelet.authenticate(None, {"Authorization": "Bearer wrong"}) is None
    assert await kubelet.authenticate(None, {"Authorization": "Bearer wrong"}) is None  # a refusal is kept too
    assert api.calls.count("tokenreviews") == 2
    clock.now += 121
    assert await kubelet.authenticate(None, headers) == expected
    assert api.calls.count("tokenreviews") == 3


async def test_decisions_are_kept_five_minutes_allowed_thirty_seconds_denied() -> None:
    api, clock = FakeApi(), Clock()
    kubelet = auth(api, clock)
    user = User("alice", groups=NOBODY)
    (attr,) = request_attributes("GET", "/x", NODE)
    assert await kubelet.authorize(user, attr) is False
    api.allowed.add(("alice", "proxy"))
    clock.now += 29
    assert await kubelet.authorize(user, attr) is False  # still the kept denial
    clock.now += 2
    assert await kubelet.authorize(user, attr) is True
    api.allowed.clear()
    clock.now += 299
    assert await kubelet.authorize(user, attr) is True  # still the kept approval
    clock.now += 2
    assert await kubelet.authorize(user, attr) is False
    assert api.calls == ["subjectaccessreviews"] * 3


async def test_refusals() -> None:
    api, clock = FakeApi(), Clock()
    kubelet = auth(api, clock)
    alice = {"subject": ((("commonName", "alice"),),)}
    assert await kubelet.refusal("GET", "/healthz", None, {}) == (401, "Unauthorized")
    forbidden = "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[healthz proxy])\n"
    assert await kubelet.refusal("GET", "/healthz", alice, {}) == (403, forbidden)
    api.allowed.add(("alice", "proxy"))
    clock.now += 31  # past the kept denials: healthz is asked again, denied, then the proxy fallback
    assert await kubelet.refusal("GET", "/healthz", alice, {}) is None
    api.fail = True
    assert await kubelet.refusal("GET", "/healthz", None, {"Authorization": "Bearer t"}) == (401, "Unauthorized")
    error = "Authorization error (user=alice, verb=create, resource=nodes, subresource=proxy)"
    assert await kubelet.refusal("POST", "/exec/a/b/c", alice, {}) == (500, error)
    api.fail = False
    assert await kubelet.refusal("GET", "/healthz", None, {"Authorization": "Bearer t"}) == (401, "Unauthorized")
    assert api.calls.count("tokenreviews") == 2  # the failed review was not kept


async def test_anonymous_and_always_allow() -> None:
    api, clock = FakeApi(), Clock()
    anonymous = auth(api, clock, anonymous=True, authorization_mode=ALWAYS_ALLOW)
    assert await anonymous.authenticate(None, {}) == User("system:anonymous", groups=("system:unauthenticated",))
    assert await anonymous.refusal("POST", "/exec/a/b/c", None, {}) is None
    assert api.calls == []
    webhook = auth(api, clock, anonymous=True)
    forbidden = "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource(s)=[proxy])\n"
    assert await webhook.refusal("GET", "/x", None, {}) == (403, forbidden)


def test_configurations_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="No authentication method configured"):
        KubeletAuth(AuthConfig(token_webhook=False), NODE, FakeApi(), client_ca=False)
    with pytest.raises(ValueError, match="unknown authorization mode"):
        KubeletAuth(AuthConfig(authorization_mode="RBAC"), NODE, FakeApi(), client_ca=True)
    with pytest.raises(ValueError, match="need an API client"):
        KubeletAuth(AuthConfig(), NODE, None, client_ca=True)
    KubeletAuth(AuthConfig(token_webhook=False, authorization_mode=ALWAYS_ALLOW), NODE, None, client_ca=True)
