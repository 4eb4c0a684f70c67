"""Bootstrap token authentication: the rules (pure) and a real ``skiff apiserver`` with kubectl and ``skiff token``."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from apiserver_harness import KUBECTL, RunningApiServer, apiserver  # noqa: F401

from skiff.apiserver.bootstrap_tokens import (
    CACHE_TTL_S,
    NODE_TOKEN_GROUP,
    BootstrapTokenAuthenticator,
    generate_token,
    parse_token,
    token_secret,
    user_for_secret,
)
from skiff.cli.token import ensure_join_token, parse_duration
from skiff.client import ApiClient, ClientConfig
from skiff.client.resources import SECRETS
from skiff.client.timefmt import rfc3339

NOW = 1_800_000_000.0
TOKEN = "abcdef.0123456789abcdef"
GROUPS = ("system:bootstrappers", NODE_TOKEN_GROUP, "system:authenticated")


def _secret(token: str = TOKEN, **changes: Any) -> dict[str, Any]:
    """The Secret for ``token``; ``changes`` set (or, with None, drop) plain data keys."""
    secret = token_secret(token, expiration=rfc3339(NOW + 3600))
    for key, value in changes.items():
        key = key.replace("_", "-")
        if value is None:
            secret["data"].pop(key, None)
        else:
            secret["data"][key] = base64.b64encode(value.encode()).decode()
    return secret


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        pytest.param(TOKEN, True, id="valid"),
        pytest.param("abcdef0123456789abcdef", False, id="no-dot"),
        pytest.param("ABCDEF.0123456789abcdef", False, id="upper-case"),
        pytest.param("abcde.0123456789abcdef", False, id="short-id"),
        pytest.param("abcdef.0123456789abcdef0", False, id="long-secret"),
        pytest.param("abcdef.0123456789abcde_", False, id="bad-char"),
    ],
)
def test_parse_token(token: str, ok: bool) -> None:
    assert (parse_token(token) is not None) is ok


def test_generated_tokens_parse() -> None:
    tokens = {generate_token() for _ in range(20)}
    assert len(tokens) == 20 and all(parse_token(t) for t in tokens)


def test_valid_secret_gives_bootstrap_user() -> None:
    user = user_for_secret(_secret(), "abcdef", "0123456789abcdef", NOW)
    assert user is not None
    assert (user.name, user.groups) == ("system:bootstrap:abcdef", GROUPS)


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(_secret(token_secret="ffffffffffffffff"), id="wrong-secret"),
        pytest.param(_secret(token_id="zzzzzz"), id="wrong-id"),
        pytest.param(_secret(expiration=rfc3339(NOW - 1)), id="expired"),
        pytest.param(_secret(expiration="tomorrow"), id="unparseable-expiration"),
        pytest.param(_secret(usage_bootstrap_authentication=None), id="no-auth-usage"),
        pytest.param(_secret(usage_bootstrap_authentication="false"), id="auth-usage-false"),
        pytest.param(_secret(auth_extra_groups="system:masters"), id="extra-group-outside-bootstrappers"),
        pytest.param({**_secret(), "type": "Opaque"}, id="wrong-type"),
        pytest.param({**_secret(), "metadata": {"deletionTimestamp": rfc3339(NOW)}}, id="being-deleted"),
        pytest.param(None, id="missing"),
    ],
)
def test_invalid_secrets_vouch_for_nobody(secret: dict[str, Any] | None) -> None:
    assert user_for_secret(secret, "abcdef", "0123456789abcdef", NOW) is None


def test_no_expiration_never_expires() -> None:
    assert user_for_secret(_secret(expiration=None), "abcdef", "0123456789abcdef", NOW + 10**9) is not None


class FakeReader:
    def __init__(self, secret: dict[str, Any] | None) -> None:
        self.secret = secret
        self.reads: list[tuple[str, str, str, str]] = []

    async def get(
        self, group: str, plural: str, namespace: str, name: str, *, fresh: bool = True
    ) -> dict[str, Any] | None:
        self.reads.append((group, plural, namespace, name))
        return self.secret

    async def list(self, group: str, plural: str, namespace: str, *, fresh: bool = True) -> list[dict[str, Any]]:
        return []


async def test_authenticator_reads_the_secret_and_caches_briefly() -> None:
    now = [NOW]
    reader = FakeReader(_secret())
    auth = BootstrapTokenAuthenticator(reader, clock=lambda: now[0])
    user = await auth.authenticate_token(TOKEN)
    assert user is not None and user.name == "system:bootstrap:abcdef"
    assert reader.reads == [("", "secrets", "kube-system", "bootstrap-token-abcdef")]
    assert await auth.authenticate_token(TOKEN) == user
    assert len(reader.reads) == 1
    reader.secret = None  # deleted: noticed once the cached answer is older than the TTL
    now[0] += CACHE_TTL_S + 0.1
    assert await auth.authenticate_token(TOKEN) is None
    assert await auth.authenticate_token("not-a-token") is None
    assert len(reader.reads) == 2


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400.0), ("1h30m", 5400.0), ("90s", 90.0), ("0", 0.0)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "1d", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# -- a real API server ------------------------------------------------------------------------------


def _skiff_token_create(server: RunningApiServer, *args: str) -> str:
    cmd = [sys.executable, "-m", "skiff.cli.main", "token", "create", "--kubeconfig", str(server.kubeconfig), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"skiff token create failed: {done.stderr}\n{server.logs()}"
    token = done.stdout.strip()
    assert parse_token(token), token
    return token


def _kubectl_with_token(server: RunningApiServer, tmp_path: Path, token: str, *args: str) -> tuple[int, str, str]:
    """kubectl with only the token as credential (an empty kubeconfig, so no client certificate)."""
    empty = tmp_path / "empty.kubeconfig"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    cmd = [KUBECTL, "--kubeconfig", str(empty), "--cache-dir", str(tmp_path / "kube-cache")]
    cmd += ["--server", server.url, "--certificate-authority", str(server.pki.ca_cert), "--token", token, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout, done.stderr


def _status_with_token(server: RunningApiServer, token: str) -> int:
    """200 when the token authenticates (discovery: every authenticated user), 401 when not."""
    headers = {"Authorization": f"Bearer {token}"}
    status, _, _ = server.request("GET", "/api", headers=headers, client_cert=False)
    return status


def _create_secret(server: RunningApiServer, secret: dict[str, Any]) -> None:
    status, _, body = server.request(
        "POST",
        "/api/v1/namespaces/kube-system/secrets",
        json.dumps(secret).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201, body


def test_created_token_authenticates_as_bootstrap_user(apiserver: RunningApiServer, tmp_path: Path) -> None:  # noqa: F811
    token = _skiff_token_create(apiserver, "--ttl", "1h", "--description", "for a test")
    code, out, err = _kubectl_with_token(apiserver, tmp_path, token, "auth", "whoami", "-o", "json")
    assert code == 0, err
    user = json.loads(out)["status"]["userInfo"]
    assert user["username"] == f"system:bootstrap:{token.split('.')[0]}"
    assert user["groups"] == list(GROUPS)
    assert _status_with_token(apiserver, token) == 200
    # A bootstrap token authenticates but, under RBAC, grants nothing beyond what its groups are bound to.
    code, _, err = _kubectl_with_token(apiserver, tmp_path, token, "get", "pods", "-n", "kube-system")
    assert code == 1
    assert f'User "system:bootstrap:{token.split(".")[0]}" cannot list resource "pods"' in err


def test_token_review_knows_bootstrap_tokens(apiserver: RunningApiServer) -> None:  # noqa: F811
    token = _skiff_token_create(apiserver, "--ttl", "0")
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    status, _, body = apiserver.request(
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        json.dumps(review).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201, body
    answer = json.loads(body)["status"]
    assert answer["authenticated"] is True
    assert answer["user"]["username"] == f"system:bootstrap:{token.split('.')[0]}"


@pytest.mark.parametrize(
    ("token", "changes"),
    [
        pytest.param("wrongs.0123456789abcdef", {"token_secret": "ffffffffffffffff"}, id="wrong-secret"),
        pytest.param("expird.0123456789abcdef", {"expiration": rfc3339(NOW - 10**9)}, id="expired"),
        pytest.param("nousag.0123456789abcdef", {"usage_bootstrap_authentication": "false"}, id="wrong-usage"),
        pytest.param("groups.0123456789abcdef", {"auth_extra_groups": "system:masters"}, id="bad-extra-group"),
    ],
)
def test_invalid_tokens_are_401(
    apiserver: RunningApiServer,  # noqa: F811
    tmp_path: Path,
    token: str,
    changes: dict[str, str],
) -> None:
    secret = token_secret(token, expiration=rfc3339(NOW + 10**9))
    for key, value in changes.items():
        secret["data"][key.replace("_", "-")] = base64.b64encode(value.encode()).decode()
    _create_secret(apiserver, secret)
    assert _status_with_token(apiserver, token) == 401
    code, _, err = _kubectl_with_token(apiserver, tmp_path, token, "auth", "whoami")
    assert code != 0 and "Unauthorized" in err


@pytest.mark.parametrize(
    "token", ["abcdef", "abcdef.0123456789ABCDEF", "absent.0123456789abcdef", "Basic-not-a-token", "a.b.c"]
)
def test_malformed_or_unknown_tokens_are_401(apiserver: RunningApiServer, token: str) -> None:  # noqa: F811
    assert _status_with_token(apiserver, token) == 401


def test_token_create_refuses_bad_input(apiserver: RunningApiServer) -> None:  # noqa: F811
    for args in (["--ttl", "1d"], ["--groups", "system:masters"], ["NOT.A-TOKEN"]):
        cmd = [sys.executable, "-m", "skiff.cli.main", "token", "create", "--kubeconfig", str(apiserver.kubeconfig)]
        done = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 1 and "skiff token create:" in done.stderr, (args, done.stderr)


async def test_join_token_is_kept_while_valid(apiserver: RunningApiServer, tmp_path: Path) -> None:  # noqa: F811
    path = tmp_path / "join-token"
    async with ApiClient(ClientConfig.from_kubeconfig(apiserver.kubeconfig)) as client:
        first = await ensure_join_token(client, path)
        assert path.read_text().strip() == first and path.stat().st_mode & 0o777 == 0o600
        assert await ensure_join_token(client, path) == first
        await client.delete(SECRETS, f"bootstrap-token-{first.split('.')[0]}", "kube-system")
        second = await ensure_join_token(client, path)
    assert second != first and path.read_text().strip() == second
    assert _status_with_token(apiserver, second) == 200
