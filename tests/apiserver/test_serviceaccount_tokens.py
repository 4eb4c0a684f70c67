"""ServiceAccount tokens against a real ``skiff apiserver``: TokenRequest, JWT authentication, TokenReview."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jwt
import pytest
from apiserver_harness import RunningApiServer, apiserver, kubectl  # noqa: F401

from skiff.apiserver.pki import ensure_pki

KUBECTLS = [
    "/usr/lib/google-cloud-sdk/bin/kubectl.1.27",
    "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
    "/usr/bin/kubectl",
]
ISSUER = "https://kubernetes.default.svc.cluster.local"
GROUPS = ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]


def _run(binary: str, server: RunningApiServer, cache: Path, *args: str) -> tuple[int, str, str]:
    cmd = [binary, "--kubeconfig", str(server.kubeconfig), "--cache-dir", str(cache), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, done.stdout, done.stderr


def _token_kubeconfig(server: RunningApiServer, token: str, path: Path) -> Path:
    """A kubeconfig with only the bearer token (no client certificate, which would win)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": server.url, "certificate-authority": str(server.pki.ca_cert)}}
        ],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path.write_text(json.dumps(config))
    return path


def _ensure_account(server: RunningApiServer, name: str) -> dict[str, Any]:
    body = json.dumps({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}).encode()
    status, _, _ = server.request(
        "POST", "/api/v1/namespaces/default/serviceaccounts", body, {"Content-Type": "application/json"}
    )
    assert status in (201, 409)
    status, _, raw = server.request("GET", f"/api/v1/namespaces/default/serviceaccounts/{name}")
    assert status == 200
    account: dict[str, Any] = json.loads(raw)
    return account


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _as_token(server: RunningApiServer, token: str, path: str = "/api") -> int:
    """200 when the token authenticates (discovery: every authenticated user), 401 when not."""
    status, _, _ = server.request("GET", path, headers={"Authorization": f"Bearer {token}"}, client_cert=False)
    return status


def _token_review(server: RunningApiServer, token: str, audiences: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token, **({"audiences": audiences} if audiences is not None else {})}
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
    status, _, raw = server.request(
        "POST",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 201, raw
    review: dict[str, Any] = json.loads(raw)["status"]
    return review


def _request_token(server: RunningApiServer, name: str, spec: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    status, _, raw = server.request(
        "POST",
        f"/api/v1/namespaces/default/serviceaccounts/{name}/token",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    answer: dict[str, Any] = json.loads(raw)
    return status, answer


@pytest.mark.parametrize("binary", KUBECTLS, ids=lambda b: b.rsplit("/", 1)[-1])
def test_kubectl_create_token_and_whoami(apiserver: RunningApiServer, tmp_path: Path, binary: str) -> None:  # noqa: F811
    account = _ensure_account(apiserver, "default")
    code, out, err = _run(binary, apiserver, tmp_path / "cache", "create", "token", "default")
    assert code == 0, f"{err}\n{apiserver.logs()}"
    token = out.strip()
    claims = _claims(token)
    assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
    assert claims["sub"] == "system:serviceaccount:default:default"
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    private = claims["kubernetes.io"]
    assert private["namespace"] == "default"
    assert private["serviceaccount"] == {"name": "default", "uid": account["metadata"]["uid"]}
    assert jwt.get_unverified_header(token)["alg"] == "ES256"

    config = _token_kubeconfig(apiserver, token, tmp_path / "token-kubeconfig")
    cmd = [binary, "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "c2"), "auth", "whoami", "-o", "json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    user = json.loads(done.stdout)["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:default:default"
    assert user["uid"] == account["metadata"]["uid"]
    assert user["groups"] == GROUPS


def test_recreated_account_token_rejected(apiserver: RunningApiServer, kubectl: Any) -> None:  # noqa: F811
    _ensure_account(apiserver, "phoenix")
    token = kubectl.ok("create", "token", "phoenix", "--duration", "20m").strip()
    assert _claims(token)["exp"] - _claims(token)["iat"] == 1200
    assert _as_token(apiserver, token) == 200
    review = _token_review(apiserver, token)
    assert review["authenticated"] is True
    assert review["user"]["username"] == "system:serviceaccount:default:phoenix"
    assert review["user"]["groups"] == GROUPS

    kubectl.ok("delete", "serviceaccount", "phoenix")
    _ensure_account(apiserver, "phoenix")
    assert _as_token(apiserver, token) == 401
    assert _token_review(apiserver, token).get("authenticated") is not True
    assert _as_token(apiserver, token + "x") == 401


def test_token_request_errors(apiserver: RunningApiServer, kubectl: Any) -> None:  # noqa: F811
    _ensure_account(apiserver, "short")
    status, answer = _request_token(apiserver, "short", {"expirationSeconds": 599})
    assert status == 422 and answer["reason"] == "Invalid"
    assert "may not specify a duration less than 10 minutes" in answer["message"]
    code, _, err = kubectl.run("create", "token", "short", "--duration", "5m")
    assert code != 0 and "less than 10 minutes" in err

    status, answer = _request_token(apiserver, "nobody", {})
    assert status == 404 and answer["message"] == 'serviceaccounts "nobody" not found'
    code, _, err = kubectl.run("create", "token", "nobody")
    assert code != 0 and 'serviceaccounts "nobody" not found' in err

    status, answer = _request_token(apiserver, "short", {"boundObjectRef": {"kind": "ConfigMap", "name": "x"}})
    assert status == 400 and "cannot bind token to object" in answer["message"]


def test_audiences_and_pod_binding(apiserver: RunningApiServer, kubectl: Any) -> None:  # noqa: F811
    _ensure_account(apiserver, "bound")
    status, answer = _request_token(apiserver, "bound", {"audiences": ["vault"]})
    assert status == 201 and answer["spec"]["audiences"] == ["vault"]
    assert answer["status"]["expirationTimestamp"].endswith("Z")
    vault_token = answer["status"]["token"]
    assert _as_token(apiserver, vault_token) == 401  # not an API server audience
    # TokenReview: a token counts for the audiences asked about that it names (the API server's when none asked).
    assert _token_review(apiserver, vault_token, ["vault", "other"])["audiences"] == ["vault"]
    assert _token_review(apiserver, vault_token).get("authenticated") is not True
    assert _token_review(apiserver, vault_token, ["other"]).get("authenticated") is not True
    status, answer = _request_token(apiserver, "bound", {})
    api_token = answer["status"]["token"]
    assert _token_review(apiserver, api_token)["audiences"] == [ISSUER]
    assert _token_review(apiserver, api_token, ["vault"]).get("authenticated") is not True

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bound-pod"},
        "spec": {"serviceAccountName": "bound", "containers": [{"name": "c", "image": "x"}]},
    }
    kubectl.ok("create", "-f", "-", stdin=json.dumps(pod))
    token = kubectl.ok("create", "token", "bound", "--bound-object-kind", "Pod", "--bound-object-name", "bound-pod")
    private = _claims(token.strip())["kubernetes.io"]
    assert private["pod"]["name"] == "bound-pod" and private["pod"]["uid"]
    review = _token_review(apiserver, token.strip())
    assert review["authenticated"] is True
    assert review["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["bound-pod"]

    status, answer = _request_token(
        apiserver, "bound", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "bound-pod", "uid": "nope"}}
    )
    assert status == 409
    status, answer = _request_token(
        apiserver, "default", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "bound-pod"}}
    )
    assert status == 400 and "different serviceaccount name" in answer["message"]

    kubectl.ok("delete", "pod", "bound-pod", "--grace-period", "0", "--force")
    assert _as_token(apiserver, token.strip()) == 401


def test_signing_key_made_once(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    key = pki.sa_key.read_bytes()
    assert pki.sa_key.stat().st_mode & 0o777 == 0o600 and b"PUBLIC KEY" in pki.sa_pub.read_bytes()
    assert ensure_pki(tmp_path).sa_key.read_bytes() == key


def test_oidc_discovery_documents_verify_issued_tokens(apiserver: RunningApiServer, kubectl: Any) -> None:  # noqa: F811
    """Another system can check our tokens from the discovery documents alone (no call back to the API server)."""
    status, headers, body = apiserver.request("GET", "/.well-known/openid-configuration")
    assert status == 200, body
    config = json.loads(body)
    assert config["issuer"] == ISSUER
    assert config["jwks_uri"] == f"{ISSUER}/openid/v1/jwks"
    assert config["id_token_signing_alg_values_supported"] == ["ES256"]
    assert config["subject_types_supported"] == ["public"]
    status, headers, body = apiserver.request("GET", "/openid/v1/jwks")
    assert status == 200, body
    assert headers["Content-Type"] == "application/jwk-set+json"
    (jwk,) = json.loads(body)["keys"]
    assert {k: jwk[k] for k in ("use", "kty", "crv", "alg")} == {
        "use": "sig",
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
    }
    kubectl.ok("create", "serviceaccount", "oidc-check")
    token = kubectl.ok("create", "token", "oidc-check", "--audience", "vault").strip()
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience="vault", issuer=ISSUER)
    assert claims["sub"] == "system:serviceaccount:default:oidc-check"
    forged = jwt.encode({**claims, "sub": "system:serviceaccount:kube-system:admin"}, _other_key(), algorithm="ES256")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience="vault")
    # Not public: anonymous callers are refused (system:service-account-issuer-discovery is bound to
    # system:serviceaccounts only), as upstream without an explicit anonymous binding.
    for path in ("/.well-known/openid-configuration", "/openid/v1/jwks"):
        status, _, _ = apiserver.request("GET", path, client_cert=False)
        assert status == 403


def _other_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def test_expired_token_rejected(apiserver: RunningApiServer, kubectl: Any) -> None:  # noqa: F811
    """A token the API server itself signed, for an existing account, is refused once ``exp`` (plus the 60 s leeway)
    has passed; the same claims re-signed with a live ``exp`` are accepted, so only the expiry differs."""
    _ensure_account(apiserver, "expiring")
    token = kubectl.ok("create", "token", "expiring").strip()
    header, claims = jwt.get_unverified_header(token), _claims(token)
    key = apiserver.pki.sa_key.read_bytes()

    def resigned(**times: int) -> str:
        return jwt.encode({**claims, **times}, key, algorithm=header["alg"], headers={"kid": header["kid"]})

    assert _as_token(apiserver, resigned()) == 200
    past = claims["iat"] - 7200
    assert _as_token(apiserver, resigned(iat=past, nbf=past, exp=past + 600)) == 401
