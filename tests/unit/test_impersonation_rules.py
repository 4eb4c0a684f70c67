"""Impersonation (pure): which checks are asked, who the request becomes, the 400/403 Statuses, the audit field.

Cases follow upstream's impersonation_test.go (TestImpersonationFilter) where they carry over.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from multidict import CIMultiDict

from skiff.api.status import ApiError
from skiff.apiserver import audit
from skiff.apiserver.auth import Attributes, Rules, UserInfo
from skiff.apiserver.impersonation import (
    impersonate,
    requests_from_headers,
    split_service_account,
    unescape_extra_key,
)

AUTHN = "authentication.k8s.io"
DEV = UserInfo("dev", "dev-uid", ("wheel", "system:authenticated"), {"scopes": ("mine",)})
Headers = list[tuple[str, str]]


class RecordingAuthorizer:
    """Allows everything except ``refuse`` (resource[/subresource], name) pairs; records what it was asked."""

    def __init__(self, *refuse: tuple[str, str]) -> None:
        self.refuse = set(refuse)
        self.asked: list[tuple[str, Attributes]] = []

    def authorize(self, user: UserInfo, attributes: Attributes) -> tuple[bool, str]:
        self.asked.append((user.name, attributes))
        resource = attributes.resource + (f"/{attributes.subresource}" if attributes.subresource else "")
        return (resource, attributes.name) not in self.refuse, "denied"

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        return [], [], False


def run(headers: Headers, authorizer: RecordingAuthorizer | None = None) -> UserInfo | None:
    return impersonate(DEV, CIMultiDict(headers), authorizer or RecordingAuthorizer())


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="no-headers"),
        pytest.param([("Authorization", "Bearer x"), ("X-Impersonate-User", "bob")], id="other-headers"),
        pytest.param([("Impersonate-User", ""), ("Impersonate-Uid", "")], id="empty-values"),
        pytest.param([("Impersonate-Someone", "bob")], id="unknown-impersonate-header"),
    ],
)
def test_not_impersonating(headers: Headers) -> None:
    authorizer = RecordingAuthorizer()
    assert run(headers, authorizer) is None
    assert authorizer.asked == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            [("Impersonate-User", "tester")],
            UserInfo("tester", groups=("system:authenticated",)),
            id="user-only",
        ),
        pytest.param(
            [("impersonate-user", "system:admin"), ("impersonate-group", "some-group")],
            UserInfo("system:admin", groups=("some-group", "system:authenticated")),
            id="group-any-case",
        ),
        pytest.param(
            [("Impersonate-User", "system:admin"), ("Impersonate-Group", "g1"), ("Impersonate-Group", "g2")],
            UserInfo("system:admin", groups=("g1", "g2", "system:authenticated")),
            id="repeated-groups",
        ),
        pytest.param(
            [("Impersonate-User", "x"), ("Impersonate-Extra-Scopes", "scope-a"), ("Impersonate-Extra-scopes", "b")],
            UserInfo("x", groups=("system:authenticated",), extra={"scopes": ("scope-a", "b")}),
            id="extras",
        ),
        pytest.param(
            [("Impersonate-User", "x"), ("Impersonate-Extra-example.com%2fescaped%e1%9b%84scopes", "a")],
            UserInfo("x", groups=("system:authenticated",), extra={"example.com/escapedᛄscopes": ("a",)}),
            id="percent-escaped-extra",
        ),
        pytest.param(
            [("Impersonate-User", "x"), ("Impersonate-Extra-almost%zzpercent%xxencoded", "a")],
            UserInfo("x", groups=("system:authenticated",), extra={"almost%zzpercent%xxencoded": ("a",)}),
            id="almost-escaped-extra",
        ),
        pytest.param(
            [("Impersonate-User", "system:serviceaccount:foo:default")],
            UserInfo(
                "system:serviceaccount:foo:default",
                groups=("system:serviceaccounts", "system:serviceaccounts:foo", "system:authenticated"),
            ),
            id="service-account",
        ),
        pytest.param(
            [("Impersonate-User", "system:serviceaccount:foo:default"), ("Impersonate-Group", "g")],
            UserInfo("system:serviceaccount:foo:default", groups=("g", "system:authenticated")),
            id="service-account-given-groups",
        ),
        pytest.param(
            [("Impersonate-User", "system:anonymous")],
            UserInfo("system:anonymous", groups=("system:unauthenticated",)),
            id="anonymous",
        ),
        pytest.param(
            [("Impersonate-User", "system:anonymous"), ("Impersonate-Group", "system:unauthenticated")],
            UserInfo("system:anonymous", groups=("system:unauthenticated",)),
            id="anonymous-no-double-unauthenticated",
        ),
        pytest.param(
            [("Impersonate-User", "unknown"), ("Impersonate-Group", "system:unauthenticated")],
            UserInfo("unknown", groups=("system:unauthenticated",)),
            id="unauthenticated-group-prevents-authenticated",
        ),
        pytest.param(
            [
                ("Impersonate-User", "x"),
                ("Impersonate-Group", "some-group"),
                ("Impersonate-Group", "system:authenticated"),
            ],
            UserInfo("x", groups=("some-group", "system:authenticated")),
            id="authenticated-not-added-twice",
        ),
        pytest.param(
            [
                ("Impersonate-User", "tester"),
                ("Impersonate-Uid", "some-uid"),
                ("Impersonate-Group", "system:authenticated"),
                ("Impersonate-Extra-scopes", "scope-a"),
            ],
            UserInfo("tester", "some-uid", ("system:authenticated",), {"scopes": ("scope-a",)}),
            id="all-headers",
        ),
    ],
)
def test_impersonated_user(headers: Headers, expected: UserInfo) -> None:
    # Nothing of the requestor's (uid, groups, extras) is kept.
    assert run(headers) == expected


def test_checks_asked_of_the_requestor_in_order() -> None:
    authorizer = RecordingAuthorizer()
    run(
        [
            ("Impersonate-Uid", "u1"),
            ("Impersonate-Extra-Scopes", "view"),
            ("Impersonate-Group", "devs"),
            ("Impersonate-User", "system:serviceaccount:ns1:robot"),
        ],
        authorizer,
    )
    verb = "impersonate"
    assert authorizer.asked == [
        ("dev", Attributes(verb, resource_request=True, namespace="ns1", resource="serviceaccounts", name="robot")),
        ("dev", Attributes(verb, resource_request=True, resource="groups", name="devs")),
        (
            "dev",
            Attributes(
                verb,
                resource_request=True,
                api_group=AUTHN,
                api_version="v1",
                resource="userextras",
                subresource="scopes",
                name="view",
            ),
        ),
        ("dev", Attributes(verb, resource_request=True, api_group=AUTHN, api_version="v1", resource="uids", name="u1")),
    ]


def status(err: ApiError) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body())
    return body


@pytest.mark.parametrize(
    ("headers", "refuse", "message", "details"),
    [
        pytest.param(
            [("Impersonate-User", "bob")],
            ("users", "bob"),
            'users "bob" is forbidden: User "dev" cannot impersonate resource "users" in API group "" '
            "at the cluster scope: denied",
            {"name": "bob", "kind": "users"},
            id="user",
        ),
        pytest.param(
            [("Impersonate-User", "system:serviceaccount:ns1:robot")],
            ("serviceaccounts", "robot"),
            'serviceaccounts "robot" is forbidden: User "dev" cannot impersonate resource "serviceaccounts" '
            'in API group "" in the namespace "ns1": denied',
            {"name": "robot", "kind": "serviceaccounts"},
            id="service-account",
        ),
        pytest.param(
            [("Impersonate-User", "bob"), ("Impersonate-Group", "ok"), ("Impersonate-Group", "admins")],
            ("groups", "admins"),
            'groups "admins" is forbidden: User "dev" cannot impersonate resource "groups" in API group "" '
            "at the cluster scope: denied",
            {"name": "admins", "kind": "groups"},
            id="group",
        ),
        pytest.param(
            [("Impersonate-User", "bob"), ("Impersonate-Extra-Scopes", "admin")],
            ("userextras/scopes", "admin"),
            f'userextras.{AUTHN} "admin" is forbidden: User "dev" cannot impersonate resource "userextras/scopes" '
            f'in API group "{AUTHN}" at the cluster scope: denied',
            {"name": "admin", "group": AUTHN, "kind": "userextras"},
            id="extra",
        ),
        pytest.param(
            [("Impersonate-User", "bob"), ("Impersonate-Uid", "u-9")],
            ("uids", "u-9"),
            f'uids.{AUTHN} "u-9" is forbidden: User "dev" cannot impersonate resource "uids" '
            f'in API group "{AUTHN}" at the cluster scope: denied',
            {"name": "u-9", "group": AUTHN, "kind": "uids"},
            id="uid",
        ),
    ],
)
def test_refused_is_forbidden(headers: Headers, refuse: tuple[str, str], message: str, details: dict[str, str]) -> None:
    with pytest.raises(ApiError) as caught:
        run(headers, RecordingAuthorizer(refuse))
    assert status(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    }


@pytest.mark.parametrize(
    ("headers", "asked"),
    [
        pytest.param([("Impersonate-Group", "some-group")], "{Group  some-group    }", id="group"),
        pytest.param(
            [("Impersonate-Extra-Scopes", "scope-a")], f"{{UserExtra  scope-a  {AUTHN}/v1  scopes}}", id="extra"
        ),
        pytest.param([("Impersonate-Uid", "some-uid")], f"{{UID  some-uid  {AUTHN}/v1  }}", id="uid"),
        pytest.param(
            [("Impersonate-User", ""), ("Impersonate-Group", "a"), ("Impersonate-Uid", "u")],
            f"{{Group  a    }} {{UID  u  {AUTHN}/v1  }}",
            id="empty-user-and-two",
        ),
    ],
)
def test_without_a_user_is_bad_request(headers: Headers, asked: str) -> None:
    authorizer = RecordingAuthorizer()
    with pytest.raises(ApiError) as caught:
        run(headers, authorizer)
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert caught.value.message == f"requested [{asked}] without impersonating a user"
    assert authorizer.asked == []


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        pytest.param("system:serviceaccount:ns:sa", ("ns", "sa"), id="account"),
        pytest.param("system:serviceaccount:ns:sa.with.dots", ("ns", "sa.with.dots"), id="subdomain-name"),
        pytest.param("system:serviceaccount:ns", None, id="no-name"),
        pytest.param("system:serviceaccount:ns:sa:extra", None, id="three-parts"),
        pytest.param("system:serviceaccount:Bad_NS:sa", None, id="invalid-namespace"),
        pytest.param("system:serviceaccount:n.s:sa", None, id="namespace-not-a-label"),
        pytest.param("system:serviceaccount::sa", None, id="empty-namespace"),
        pytest.param("system:serviceaccounts:ns:sa", None, id="group-prefix"),
        pytest.param("bob", None, id="plain-user"),
    ],
)
def test_split_service_account(username: str, expected: tuple[str, str] | None) -> None:
    assert split_service_account(username) == expected


def test_invalid_service_account_name_is_a_plain_user() -> None:
    (only,) = requests_from_headers(CIMultiDict([("Impersonate-User", "system:serviceaccount:Bad_NS:sa")]))
    assert (only.kind, only.name) == ("User", "system:serviceaccount:Bad_NS:sa")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param("scopes", "scopes", id="plain"),
        pytest.param("example.com%2fscopes", "example.com/scopes", id="slash"),
        pytest.param("a+b", "a+b", id="plus-kept"),
        pytest.param("bad%2", "bad%2", id="truncated-escape"),
        pytest.param("bad%zz%2f", "bad%zz%2f", id="one-bad-escape-keeps-all"),
    ],
)
def test_unescape_extra_key(key: str, expected: str) -> None:
    assert unescape_extra_key(key) == expected


def test_audit_event_names_the_impersonated_user_after_the_user() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    record = audit.AuditRecord(
        audit_id="a1",
        method="GET",
        request_uri="/api",
        verb="get",
        path="/api",
        info=None,
        source_ips=("127.0.0.1",),
        user_agent="",
        received=when,
        user=DEV,
        impersonated_user=UserInfo("bob", groups=("devs", "system:authenticated")),
    )
    event = audit.build_event(record, "Metadata", "ResponseComplete", when)
    keys = list(event)
    assert keys[keys.index("user") :][:3] == ["user", "impersonatedUser", "sourceIPs"]
    assert event["impersonatedUser"] == {"username": "bob", "groups": ["devs", "system:authenticated"]}
    record.impersonated_user = None
    assert "impersonatedUser" not in audit.build_event(record, "Metadata", "ResponseComplete", when)
