"""Authentication (token file, client-cert subjects), request bodies and kubeconfig merging (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from skiff.api.status import ApiError
from skiff.apiserver import bodies, kubeconfig
from skiff.apiserver.auth import (
    ANONYMOUS,
    AllowAuthenticated,
    Attributes,
    Authenticator,
    TokenFileError,
    UserInfo,
    is_public_path,
    parse_token_file,
)
from skiff.apiserver.pki import ADMIN_GROUP, ADMIN_USER, ensure_pki
from skiff.registry.resource import ResourceInfo

TOKENS = 's3cr3t,alice,u1,"dev,ops"\nplain,bob,u2\n\n'


def test_token_file_rows() -> None:
    users = parse_token_file(TOKENS)
    assert users["s3cr3t"] == UserInfo("alice", "u1", ("dev", "ops", "system:authenticated"))
    assert users["plain"] == UserInfo("bob", "u2", ("system:authenticated",))


@pytest.mark.parametrize("text", [pytest.param("tok,user\n", id="two-fields"), pytest.param(",u,1\n", id="no-token")])
def test_token_file_rejects_bad_rows(text: str) -> None:
    with pytest.raises(TokenFileError):
        parse_token_file(text)


CERT = {
    "subject": ((("organizationName", "system:masters"),), (("commonName", "kubernetes-admin"),)),
    "notBefore": "Nov 27 09:00:00 2025 GMT",
    "notAfter": "Nov 27 09:00:00 2125 GMT",
}
EXPIRED = {**CERT, "notAfter": "Nov 26 09:00:00 2026 GMT"}
NOT_YET = {**CERT, "notBefore": "Nov 27 09:00:00 2124 GMT"}


@pytest.mark.parametrize(
    ("peercert", "authorization", "expected"),
    [
        pytest.param(
            CERT, None, UserInfo("kubernetes-admin", "", ("system:masters", "system:authenticated")), id="cert"
        ),
        pytest.param(
            CERT,
            "Bearer wrong",
            UserInfo("kubernetes-admin", "", ("system:masters", "system:authenticated")),
            id="cert-first",
        ),
        pytest.param(EXPIRED, None, None, id="expired-cert"),
        pytest.param(NOT_YET, None, None, id="not-yet-valid-cert"),
        pytest.param(EXPIRED, "Bearer plain", UserInfo("bob", "u2", ("system:authenticated",)), id="expired-token"),
        pytest.param(None, "Bearer plain", UserInfo("bob", "u2", ("system:authenticated",)), id="token"),
        pytest.param({}, "bearer plain", UserInfo("bob", "u2", ("system:authenticated",)), id="scheme-case"),
        pytest.param(None, "Bearer nope", None, id="bad-token"),
        pytest.param(None, "Basic YTpi", None, id="basic-refused"),
        pytest.param(None, None, ANONYMOUS, id="anonymous"),
    ],
)
def test_authenticate(peercert: Any, authorization: str | None, expected: UserInfo | None) -> None:
    assert Authenticator(parse_token_file(TOKENS)).authenticate(peercert, authorization) == expected


@pytest.mark.parametrize(
    ("path", "public"),
    [
        ("/version", True),
        ("/healthz", True),
        ("/livez/ping", True),
        ("/readyz", True),
        ("/versions", False),
        ("/api", False),
        ("/openapi/v2", False),
    ],
)
def test_public_paths(path: str, public: bool) -> None:
    assert is_public_path(path) is public


def test_allow_authenticated() -> None:
    attrs = Attributes(verb="get", path="/api")
    assert AllowAuthenticated().authorize(UserInfo("u", groups=("system:authenticated",)), attrs)[0] is True
    assert AllowAuthenticated().authorize(ANONYMOUS, attrs)[0] is False


def test_duplicate_fields_found_with_paths() -> None:
    value, dups = bodies.decode_json(b'{"a":1,"a":2,"m":{"x":1,"x":2},"l":[{"k":1,"k":1}]}', find_duplicates=True)
    assert value["a"] == 2
    assert dups == ["a", "m.x", "l[0].k"]


CM = ResourceInfo("", "v1", "configmaps", "configmap", "ConfigMap", True)


@pytest.mark.parametrize(
    ("directive", "raises", "warnings"),
    [
        pytest.param(bodies.STRICT, True, [], id="strict"),
        pytest.param(bodies.WARN, False, ['unknown field "metadata.nmae"'], id="warn"),
        pytest.param("", False, ['unknown field "metadata.nmae"'], id="default-warn"),
        pytest.param(bodies.IGNORE, False, [], id="ignore"),
    ],
)
def test_field_validation_directives(directive: str, raises: bool, warnings: list[str]) -> None:
    unknown = bodies.ObjectMetaFieldChecker().unknown_fields(CM, {"metadata": {"nmae": "x", "name": "y"}})
    got: list[str] = []
    if raises:
        with pytest.raises(ApiError) as err:
            bodies.enforce_field_validation(directive, bodies.field_findings(unknown, []), got)
        assert (err.value.code, err.value.message) == (400, 'strict decoding error: unknown field "metadata.nmae"')
    else:
        bodies.enforce_field_validation(directive, bodies.field_findings(unknown, []), got)
    assert got == warnings


@pytest.mark.parametrize(
    ("body", "media", "code"),
    [
        pytest.param(b"{", "application/json", 400, id="bad-json"),
        pytest.param(b"[1]", "application/json", 400, id="not-object"),
        pytest.param(b"a: [", "application/yaml", 400, id="bad-yaml"),
        pytest.param(b"x", "text/plain", 415, id="unknown-type"),
    ],
)
def test_bad_bodies(body: bytes, media: str, code: int) -> None:
    with pytest.raises(ApiError) as err:
        bodies.decode_object(body, media)
    assert err.value.code == code


def test_pki_made_once_and_kubeconfig_merged(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    first = pki.admin_cert.read_bytes(), pki.ca_cert.read_bytes()
    assert (pki.admin_key.stat().st_mode & 0o777) == 0o600
    assert ensure_pki(tmp_path).admin_cert.read_bytes() == first[0]
    # A new SAN re-issues the serving cert from the same CA; the admin cert stays.
    again = ensure_pki(tmp_path, ("10.1.2.3",))
    assert (again.admin_cert.read_bytes(), again.ca_cert.read_bytes()) == first

    from cryptography import x509

    admin = x509.load_pem_x509_certificate(first[0])
    assert admin.subject.rfc4514_string() == f"CN={ADMIN_USER},O={ADMIN_GROUP}"

    path = tmp_path / "config"
    other = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kind", "cluster": {"server": "https://x"}}, {"name": "skiff", "cluster": {}}],
        "users": [{"name": "kind", "user": {}}],
        "contexts": [{"name": "kind", "context": {"cluster": "kind", "user": "kind"}}],
        "current-context": "kind",
    }
    path.write_text(yaml.safe_dump(other))
    kubeconfig.write(path, kubeconfig.build("https://127.0.0.1:1", pki), merge_existing=True)
    merged = yaml.safe_load(path.read_text())
    assert [c["name"] for c in merged["clusters"]] == ["kind", "skiff"]
    assert merged["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:1"
    assert [c["name"] for c in merged["contexts"]] == ["kind", "skiff"]
    assert merged["current-context"] == "skiff"
    assert (path.stat().st_mode & 0o777) == 0o600
