"""Impersonation end to end: real kubectl's --as, --as-group, --as-uid (and a kubeconfig's as-user-extra).

The server runs in this process (``in_process_apiserver``) with ``GrantsAuthorizer``: the admin may
impersonate only what ``GRANTS`` lists, and ordinary requests are allowed to authenticated users
except those in ``REFUSED`` — so a request shows both the impersonation check and that the request
then runs as the impersonated user.  Every request is audited at Metadata level.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from apiserver_harness import Kubectl, RunningApiServer, in_process_apiserver

from skiff.apiserver.auth import AUTHENTICATED_GROUP, Attributes, Rules, UserInfo
from skiff.apiserver.pki import ADMIN_USER

AUTHN = "authentication.k8s.io"
#: What the admin may impersonate: (API group, resource[/subresource], namespace, name).
GRANTS = frozenset(
    {
        ("", "users", "", "bob"),
        ("", "users", "", "eve"),
        ("", "users", "", "system:anonymous"),
        ("", "groups", "", "devs"),
        ("", "serviceaccounts", "ns1", "robot"),
        (AUTHN, "userextras/example.com/scopes", "", "view"),
        (AUTHN, "uids", "", "u-123"),
    }
)
#: Users refused every ordinary request.
REFUSED = frozenset({"eve"})
AUDIT_POLICY = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"
AUDIT_DEADLINE_S = 10.0


class GrantsAuthorizer:
    """The Authorizer protocol over ``GRANTS`` and ``REFUSED`` (no reasons given, as RBAC's no-opinion)."""

    def authorize(self, user: UserInfo, attributes: Attributes) -> tuple[bool, str]:
        if attributes.verb == "impersonate":
            resource = attributes.resource + (f"/{attributes.subresource}" if attributes.subresource else "")
            asked = (attributes.api_group, resource, attributes.namespace, attributes.name)
            return user.name == ADMIN_USER and asked in GRANTS, ""
        return AUTHENTICATED_GROUP in user.groups and user.name not in REFUSED, ""

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        return [], [], False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    base = tmp_path_factory.mktemp("impersonation")
    policy = base / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    with in_process_apiserver(
        base, GrantsAuthorizer(), audit_policy_file=policy, audit_log_path=str(base / "audit.log")
    ) as running:
        yield running


@pytest.fixture
def kubectl(server: RunningApiServer, tmp_path: Path) -> Kubectl:
    return Kubectl(server, tmp_path / "kube-cache")


def whoami(kubectl: Kubectl, *flags: str) -> dict[str, Any]:
    review = json.loads(kubectl.ok("auth", "whoami", "-o", "json", *flags))
    assert review["kind"] == "SelfSubjectReview"
    user_info: dict[str, Any] = review["status"]["userInfo"]
    return user_info


def test_whoami_shows_the_impersonated_user_and_group(kubectl: Kubectl) -> None:
    table = kubectl.ok("auth", "whoami", "--as", "bob", "--as-group", "devs")
    rows = [line.split(None, 1) for line in table.splitlines()]
    assert ["Username", "bob"] in rows
    assert ["Groups", "[devs system:authenticated]"] in rows
    assert whoami(kubectl, "--as", "bob", "--as-group", "devs") == {
        "username": "bob",
        "groups": ["devs", "system:authenticated"],
    }


@pytest.mark.parametrize(
    ("flags", "user_info"),
    [
        pytest.param(("--as", "bob"), {"username": "bob", "groups": ["system:authenticated"]}, id="user"),
        pytest.param(
            ("--as", "bob", "--as-uid", "u-123"),
            {"username": "bob", "uid": "u-123", "groups": ["system:authenticated"]},
            id="uid",
        ),
        pytest.param(
            ("--as", "system:serviceaccount:ns1:robot"),
            {
                "username": "system:serviceaccount:ns1:robot",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"],
            },
            id="service-account-groups",
        ),
        pytest.param(
            ("--as", "system:serviceaccount:ns1:robot", "--as-group", "devs"),
            {"username": "system:serviceaccount:ns1:robot", "groups": ["devs", "system:authenticated"]},
            id="service-account-given-groups",
        ),
    ],
)
def test_whoami_as(kubectl: Kubectl, flags: tuple[str, ...], user_info: dict[str, Any]) -> None:
    assert whoami(kubectl, *flags) == user_info


def with_user_fields(server: RunningApiServer, directory: Path, **fields: Any) -> RunningApiServer:
    """The server with a kubeconfig whose user also has ``fields`` (``as``, ``as-user-extra``, ...)."""
    config = yaml.safe_load(server.kubeconfig.read_text())
    config["users"][0]["user"].update(fields)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return dataclasses.replace(server, kubeconfig=path)


def test_extras_from_kubeconfig(server: RunningApiServer, tmp_path: Path) -> None:
    # client-go percent-escapes the key's "/" in the header name; the server decodes it back.
    config = with_user_fields(server, tmp_path, **{"as": "bob", "as-user-extra": {"example.com/scopes": ["view"]}})
    assert whoami(Kubectl(config, tmp_path / "cache")) == {
        "username": "bob",
        "groups": ["system:authenticated"],
        "extra": {"example.com/scopes": ["view"]},
    }


def warm_discovery_cache(kubectl: Kubectl) -> None:
    """Discovery as the admin first, as a user's kubectl usually has it cached.

    Without it kubectl's first request is discovery, and a refused discovery request reaches the
    user as "Error from server (Forbidden): unknown": client-go's discovery takes the raw body of a
    failed request instead of decoding its Status (a client-side effect; the Status sent is the same).
    """
    kubectl.ok("api-resources", "-o", "name")


def forbidden(what: str, resource: str, group: str, scope: str = "at the cluster scope") -> str:
    return (
        f'Error from server (Forbidden): {what} is forbidden: User "{ADMIN_USER}" cannot impersonate '
        f'resource "{resource}" in API group "{group}" {scope}\n'
    )


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        pytest.param(("--as", "mallory"), forbidden('users "mallory"', "users", ""), id="user"),
        pytest.param(
            ("--as", "bob", "--as-group", "devs", "--as-group", "admins"),
            forbidden('groups "admins"', "groups", ""),
            id="group",
        ),
        pytest.param(
            ("--as", "bob", "--as-uid", "u-9"),
            forbidden(f'uids.{AUTHN} "u-9"', "uids", AUTHN),
            id="uid",
        ),
        pytest.param(
            ("--as", "system:serviceaccount:ns1:other"),
            forbidden('serviceaccounts "other"', "serviceaccounts", "", 'in the namespace "ns1"'),
            id="service-account",
        ),
    ],
)
def test_denied_impersonation_is_forbidden(kubectl: Kubectl, flags: tuple[str, ...], error: str) -> None:
    # Not whoami: kubectl words every Forbidden from a SelfSubjectReview as "not enabled ... or no permission".
    warm_discovery_cache(kubectl)
    code, out, err = kubectl.run("get", "configmaps", *flags)
    assert (code, out, err) == (1, "", error)


def test_denied_extra_is_forbidden(server: RunningApiServer, kubectl: Kubectl, tmp_path: Path) -> None:
    config = with_user_fields(server, tmp_path, **{"as": "bob", "as-user-extra": {"scopes": ["admin"]}})
    warm_discovery_cache(kubectl)
    code, _, err = Kubectl(config, kubectl.cache_dir).run("get", "configmaps")
    assert (code, err) == (1, forbidden(f'userextras.{AUTHN} "admin"', "userextras/scopes", AUTHN))


def test_request_runs_as_the_impersonated_user(kubectl: Kubectl) -> None:
    kubectl.ok("get", "configmaps", "--as", "bob")
    code, _, err = kubectl.run("get", "configmaps", "--as", "eve")
    assert (code, err) == (
        1,
        'Error from server (Forbidden): configmaps is forbidden: User "eve" cannot list resource "configmaps" '
        'in API group "" in the namespace "default"\n',
    )


def test_impersonated_anonymous_is_unauthenticated(kubectl: Kubectl) -> None:
    # system:anonymous gets system:unauthenticated, not system:authenticated: the authorizer refuses it.
    warm_discovery_cache(kubectl)
    code, _, err = kubectl.run("get", "configmaps", "--as", "system:anonymous")
    assert (code, err) == (
        1,
        'Error from server (Forbidden): configmaps is forbidden: User "system:anonymous" cannot list resource '
        '"configmaps" in API group "" in the namespace "default"\n',
    )


@pytest.mark.parametrize(
    ("headers", "asked"),
    [
        pytest.param({"Impersonate-Group": "devs"}, "{Group  devs    }", id="group"),
        pytest.param({"Impersonate-Extra-Scopes": "view"}, f"{{UserExtra  view  {AUTHN}/v1  scopes}}", id="extra"),
        pytest.param({"Impersonate-Uid": "u-123"}, f"{{UID  u-123  {AUTHN}/v1  }}", id="uid"),
    ],
)
def test_impersonation_without_a_user_is_400(server: RunningApiServer, headers: dict[str, str], asked: str) -> None:
    # kubectl refuses this itself ("requesting uid, groups or user-extra ... without impersonating a user").
    status, _, body = server.request("GET", "/api/v1/namespaces/default/configmaps", headers=headers)
    assert (status, body) == (
        400,
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"requested ['
        + asked.encode()
        + b'] without impersonating a user","reason":"BadRequest","code":400}\n',
    )


def audit_events(server: RunningApiServer, audit_id: str, stages: int) -> list[dict[str, Any]]:
    """The request's audit events, once ``stages`` of them have been written (the writer is a thread)."""
    path = server.log_err.parent / "audit.log"
    deadline = time.monotonic() + AUDIT_DEADLINE_S
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        events = [e for e in map(json.loads, lines) if e["auditID"] == audit_id]
        if len(events) >= stages or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_audit_records_the_impersonated_user(server: RunningApiServer) -> None:
    audit_id = "7e4a0a64-0d1c-4b5e-9a43-impersonate1"
    headers = {"Audit-ID": audit_id, "Impersonate-User": "bob", "Impersonate-Group": "devs"}
    assert server.request("GET", "/api/v1/namespaces/default/configmaps", headers=headers)[0] == 200
    received, complete = audit_events(server, audit_id, 2)
    admin = {"username": ADMIN_USER, "groups": ["system:masters", AUTHENTICATED_GROUP]}
    assert (received["stage"], received["user"]) == ("RequestReceived", admin)
    assert "impersonatedUser" not in received  # upstream impersonates after RequestReceived is logged
    assert (complete["stage"], complete["user"]) == ("ResponseComplete", admin)
    assert complete["impersonatedUser"] == {"username": "bob", "groups": ["devs", AUTHENTICATED_GROUP]}
    keys = list(complete)
    assert keys[keys.index("user") :][:3] == ["user", "impersonatedUser", "sourceIPs"]
