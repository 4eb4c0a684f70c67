"""RBAC evaluation (apiserver.rbac): rule matching, subjects, binding scopes, reasons, rules reviews, coverage."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.apiserver.auth import AUTHENTICATED_GROUP, Attributes, UserInfo
from skiff.apiserver.rbac import RbacAuthorizer, RbacObjects, Rule, compact_string

Obj = dict[str, Any]


def role(name: str, rules: list[Obj], namespace: str = "") -> Obj:
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"kind": "Role" if namespace else "ClusterRole", "metadata": meta, "rules": rules}


def binding(name: str, role_kind: str, role_name: str, subjects: list[Obj], namespace: str = "") -> Obj:
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
        "subjects": subjects,
    }


class Objects:
    """Mutable RBAC objects plus a change counter, standing in for the watch caches."""

    def __init__(self) -> None:
        self.roles: list[Obj] = []
        self.role_bindings: list[Obj] = []
        self.cluster_roles: list[Obj] = []
        self.cluster_role_bindings: list[Obj] = []
        self.changes = 0
        self.reads = 0

    def read(self) -> RbacObjects:
        self.reads += 1
        return self.roles, self.role_bindings, self.cluster_roles, self.cluster_role_bindings

    def authorizer(self) -> RbacAuthorizer:
        return RbacAuthorizer(lambda: self.changes, self.read)


def user(name: str, *groups: str) -> UserInfo:
    return UserInfo(name, groups=(*groups, AUTHENTICATED_GROUP))


def res(verb: str, resource: str, namespace: str = "", *, group: str = "", sub: str = "", name: str = "") -> Attributes:
    return Attributes(
        verb=verb,
        resource_request=True,
        namespace=namespace,
        api_group=group,
        resource=resource,
        subresource=sub,
        name=name,
    )


def path(verb: str, p: str) -> Attributes:
    return Attributes(verb=verb, path=p)


@pytest.mark.parametrize(
    ("rule", "attributes", "allowed"),
    [
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, res("get", "pods", "a"), True),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, res("list", "pods", "a"), False),
        ({"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}, res("delete", "pods", "a"), True),
        ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]}, res("get", "pods", "a"), False),
        (
            {"verbs": ["get"], "apiGroups": ["*"], "resources": ["deployments"]},
            res("get", "deployments", group="apps"),
            True,
        ),
        # a subresource needs its own entry; the parent does not grant it
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, res("get", "pods", "a", sub="log"), False),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}, res("get", "pods", "a", sub="log"), True),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}, res("get", "pods", "a"), False),
        (
            {"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/scale"]},
            res("update", "deployments", group="apps", sub="scale"),
            True,
        ),
        (
            {"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/scale"]},
            res("update", "deployments", group="apps"),
            False,
        ),
        ({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}, res("get", "pods", sub="exec"), True),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]},
            res("get", "secrets", "a", name="s1"),
            True,
        ),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]},
            res("get", "secrets", "a", name="s2"),
            False,
        ),
        # resourceNames never match a list (no name)
        (
            {"verbs": ["list"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]},
            res("list", "secrets", "a"),
            False,
        ),
        ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, path("get", "/healthz"), True),
        ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, path("get", "/healthz/etcd"), False),
        ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, path("get", "/apis/apps/v1"), True),
        ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, path("get", "/apis"), False),
        ({"verbs": ["get"], "nonResourceURLs": ["*"]}, path("get", "/anything"), True),
        ({"verbs": ["get"], "nonResourceURLs": ["*"]}, path("post", "/anything"), False),
        # a resource rule never grants a path, nor a path rule a resource
        ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, path("get", "/healthz"), False),
        ({"verbs": ["*"], "nonResourceURLs": ["*"]}, res("get", "pods", "a"), False),
    ],
)
def test_rule_matching(rule: Obj, attributes: Attributes, allowed: bool) -> None:
    assert Rule.of(rule).allows(attributes) is allowed


def test_subject_kinds_and_binding_scopes() -> None:
    o = Objects()
    o.cluster_roles = [role("pod-reader", [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])]
    o.roles = [role("cm-writer", [{"verbs": ["create"], "apiGroups": [""], "resources": ["configmaps"]}], "team")]
    o.cluster_role_bindings = [binding("readers", "ClusterRole", "pod-reader", [{"kind": "Group", "name": "readers"}])]
    o.role_bindings = [
        binding("alice-reads-here", "ClusterRole", "pod-reader", [{"kind": "User", "name": "alice"}], "team"),
        binding(
            "sa-writes",
            "Role",
            "cm-writer",
            [{"kind": "ServiceAccount", "name": "builder"}, {"kind": "ServiceAccount", "name": "x", "namespace": "o"}],
            "team",
        ),
    ]
    a = o.authorizer()
    # Group through a ClusterRoleBinding: every namespace and cluster-wide.
    assert a.authorize(user("bob", "readers"), res("list", "pods"))[0]
    assert a.authorize(user("bob", "readers"), res("get", "pods", "other"))[0]
    # A RoleBinding to a ClusterRole grants it in that namespace only.
    assert a.authorize(user("alice"), res("get", "pods", "team"))[0]
    assert not a.authorize(user("alice"), res("get", "pods", "other"))[0]
    assert not a.authorize(user("alice"), res("list", "pods"))[0]
    # ServiceAccount subjects: the namespace defaults to the binding's.
    assert a.authorize(user("system:serviceaccount:team:builder"), res("create", "configmaps", "team"))[0]
    assert a.authorize(user("system:serviceaccount:o:x"), res("create", "configmaps", "team"))[0]
    assert not a.authorize(user("system:serviceaccount:other:builder"), res("create", "configmaps", "team"))[0]
    # A user named like a group does not get the group's rights.
    assert not a.authorize(user("readers"), res("list", "pods"))[0]


def test_reasons_name_the_binding_and_report_missing_roles() -> None:
    o = Objects()
    o.cluster_roles = [role("view-pods", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])]
    o.cluster_role_bindings = [
        binding("dangling", "ClusterRole", "gone", [{"kind": "User", "name": "carol"}]),
        binding("v", "ClusterRole", "view-pods", [{"kind": "Group", "name": "g"}]),
    ]
    o.role_bindings = [binding("rb", "Role", "also-gone", [{"kind": "User", "name": "carol"}], "ns1")]
    a = o.authorizer()
    allowed, reason = a.authorize(user("carol", "g"), res("get", "pods", "ns1"))
    assert allowed
    assert reason == 'RBAC: allowed by ClusterRoleBinding "v" of ClusterRole "view-pods" to Group "g"'
    allowed, reason = a.authorize(user("carol"), res("delete", "pods", "ns1"))
    assert not allowed
    assert reason == (
        'RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, '
        'role.rbac.authorization.k8s.io "also-gone" not found]'
    )
    assert a.authorize(user("dave"), res("get", "pods", "ns1")) == (False, "")
    assert a.rules_for(user("carol"), "ns1")[2] is True
    assert a.rules_for(user("dave"), "ns1") == ([], [], False)


def test_privileged_group_is_allowed_everything_without_bindings() -> None:
    a = Objects().authorizer()
    admin = user("kubernetes-admin", "system:masters")
    assert a.authorize(admin, res("delete", "nodes", name="n1"))[0]
    assert a.authorize(admin, path("get", "/metrics"))[0]
    rules, non_resource, incomplete = a.rules_for(admin, "default")
    assert rules == [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    assert non_resource == [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    assert not incomplete


def test_rules_for_lists_cluster_and_namespace_rules() -> None:
    o = Objects()
    o.cluster_roles = [
        role(
            "basic",
            [{"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"]}],
        ),
        role("disc", [{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*"]}]),
    ]
    o.roles = [
        role("r", [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s"]}], "ns")
    ]
    o.cluster_role_bindings = [
        binding("basic", "ClusterRole", "basic", [{"kind": "Group", "name": AUTHENTICATED_GROUP}]),
        binding("disc", "ClusterRole", "disc", [{"kind": "Group", "name": AUTHENTICATED_GROUP}]),
    ]
    o.role_bindings = [binding("rb", "Role", "r", [{"kind": "User", "name": "erin"}], "ns")]
    a = o.authorizer()
    rules, non_resource, incomplete = a.rules_for(user("erin"), "ns")
    assert rules == [
        {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"]},
        {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s"]},
    ]
    assert non_resource == [{"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*"]}]
    assert not incomplete
    assert len(a.rules_for(user("erin"), "elsewhere")[0]) == 1


def test_index_is_rebuilt_only_when_the_objects_change() -> None:
    o = Objects()
    a = o.authorizer()
    frank = user("frank")
    assert not a.authorize(frank, res("get", "pods", "x"))[0]
    assert not a.authorize(frank, res("get", "pods", "x"))[0]
    assert o.reads == 1
    o.cluster_roles.append(role("all-pods", [{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}]))
    o.cluster_role_bindings.append(binding("f", "ClusterRole", "all-pods", [{"kind": "User", "name": "frank"}]))
    assert not a.authorize(frank, res("get", "pods", "x"))[0]  # not seen until the caches say they changed
    o.changes += 1
    assert a.authorize(frank, res("get", "pods", "x"))[0]
    assert o.reads == 2


@pytest.mark.parametrize(
    ("held", "wanted", "missing"),
    [
        (
            [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            False,
        ),
        (
            [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}],
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            False,
        ),
        (
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
            {"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]},
            True,
        ),
        (
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
            {"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]},
            True,
        ),
        (
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
            {"verbs": ["get"], "apiGroups": [""], "resources": ["*"]},
            True,
        ),
        (
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}],
            {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]},
            False,
        ),
        (
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}],
            {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]},
            True,
        ),
        (
            [{"verbs": ["update"], "apiGroups": ["apps"], "resources": ["*/scale"]}],
            {"verbs": ["update"], "apiGroups": ["apps"], "resources": ["deployments/scale"]},
            False,
        ),
        (
            [{"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}],
            {"verbs": ["get"], "nonResourceURLs": ["/logs/kubelet"]},
            False,
        ),
        ([{"verbs": ["get"], "nonResourceURLs": ["/logs"]}], {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}, True),
    ],
)
def test_uncovered_breaks_rules_down_like_upstream(held: list[Obj], wanted: Obj, missing: bool) -> None:
    o = Objects()
    o.cluster_roles = [role("held", held)]
    o.cluster_role_bindings = [binding("b", "ClusterRole", "held", [{"kind": "User", "name": "gina"}])]
    assert bool(o.authorizer().uncovered(user("gina"), "", [Rule.of(wanted)])) is missing


def test_missing_rights_are_printed_compacted_like_upstream() -> None:
    o = Objects()
    o.cluster_roles = [role("held", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])]
    o.cluster_role_bindings = [binding("b", "ClusterRole", "held", [{"kind": "User", "name": "hal"}])]
    wanted = [
        Rule.of({"verbs": ["get", "list", "watch"], "apiGroups": ["", "apps"], "resources": ["pods"]}),
        Rule.of({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s"]}),
        Rule.of({"verbs": ["get"], "nonResourceURLs": ["/metrics"]}),
    ]
    missing = o.authorizer().uncovered(user("hal"), "", wanted)
    assert compact_string(missing).splitlines() == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["list" "watch"]}',
        '{APIGroups:[""], Resources:["secrets"], ResourceNames:["s"], Verbs:["get"]}',
        '{APIGroups:["apps"], Resources:["pods"], Verbs:["get" "list" "watch"]}',
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}',
    ]
