"""The RBAC bootstrap policy's data and the pure half of its reconciliation (no server).

Counts and spot checks are upstream's (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/testdata,
Kubernetes v1.30 line): 31 ClusterRoles + 33 controller roles, 12 ClusterRoleBindings + 33
controller bindings, 7 Roles and 7 RoleBindings in kube-system and kube-public; Skiff's own
additions (``skiff_policy()``) come on top of those.
"""

from __future__ import annotations

from typing import Any

import pytest

from skiff.apiserver.rbac_bootstrap import (
    AUTOUPDATE_ANNOTATION,
    BOOTSTRAPPING_LABEL,
    CREATE,
    NONE,
    RECREATE,
    UPDATE,
    BootstrapPolicy,
    bootstrap_policy,
    reconcile_binding,
    reconcile_role,
    skiff_policy,
    uncovered_rules,
)
from skiff.controllers.clusterrole_aggregation import aggregated_rules

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"


@pytest.fixture(scope="module")
def policy() -> BootstrapPolicy:
    return bootstrap_policy()


def by_name(objs: list[Obj]) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs}


def allows(rules: list[Obj], group: str, resource: str, verb: str) -> bool:
    wanted = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
    return not uncovered_rules(rules, [wanted])


def effective_rules(policy: BootstrapPolicy, name: str) -> list[Obj]:
    """A role's rules, aggregated ones gathered as the clusterrole-aggregation controller would."""
    roles = by_name(policy.cluster_roles)
    role = roles[name]
    if role.get("aggregationRule") is None:
        return list(role["rules"])
    # Aggregation is transitive: admin aggregates edit, which aggregates view.
    resolved = dict(roles)
    for _ in range(3):
        for key, other in resolved.items():
            if other.get("aggregationRule") is not None:
                resolved[key] = {**other, "rules": aggregated_rules(other, resolved.values())}
    return list(resolved[name]["rules"])


# --- the data ------------------------------------------------------------------------------------


def test_counts_match_upstream(policy: BootstrapPolicy) -> None:
    skiff = skiff_policy()
    skiff_names = {o["metadata"]["name"] for o in skiff.cluster_roles + skiff.cluster_role_bindings}
    upstream_roles = [r for r in policy.cluster_roles if r["metadata"]["name"] not in skiff_names]
    controller_roles = [r for r in upstream_roles if r["metadata"]["name"].startswith("system:controller:")]
    assert (len(upstream_roles), len(controller_roles)) == (64, 33)
    assert len(policy.cluster_role_bindings) == 45 + len(skiff.cluster_role_bindings)
    assert len(policy.cluster_roles) == 64 + len(skiff.cluster_roles)
    assert {ns: len(v) for ns, v in policy.roles.items()} == {"kube-public": 1, "kube-system": 6}
    assert {ns: len(v) for ns, v in policy.role_bindings.items()} == {"kube-public": 1, "kube-system": 6}


def test_every_object_is_labelled_and_autoupdates(policy: BootstrapPolicy) -> None:
    everything = policy.cluster_roles + policy.cluster_role_bindings
    everything += [o for objs in (*policy.roles.values(), *policy.role_bindings.values()) for o in objs]
    for obj in everything:
        meta = obj["metadata"]
        assert obj["apiVersion"] == f"{RBAC}/v1"
        assert meta["labels"][BOOTSTRAPPING_LABEL] == "rbac-defaults", meta["name"]
        assert meta["annotations"] == {AUTOUPDATE_ANNOTATION: "true"}, meta["name"]
        assert "creationTimestamp" not in meta


def test_names_are_unique(policy: BootstrapPolicy) -> None:
    for objs in (policy.cluster_roles, policy.cluster_role_bindings, *policy.roles.values()):
        names = [o["metadata"]["name"] for o in objs]
        assert len(names) == len(set(names))


def test_every_binding_refers_to_a_role_of_the_policy(policy: BootstrapPolicy) -> None:
    cluster_roles = set(by_name(policy.cluster_roles))
    for binding in policy.cluster_role_bindings:
        assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": binding["roleRef"]["name"]}
        assert binding["roleRef"]["name"] in cluster_roles
    for namespace, bindings in policy.role_bindings.items():
        roles = set(by_name(policy.roles[namespace]))
        for binding in bindings:
            ref = binding["roleRef"]
            assert ref["name"] in (roles if ref["kind"] == "Role" else cluster_roles), binding["metadata"]["name"]


def test_controller_roles_are_bound_to_their_service_accounts(policy: BootstrapPolicy) -> None:
    bindings = by_name(policy.cluster_role_bindings)
    for role in policy.cluster_roles:
        name = role["metadata"]["name"]
        if name.startswith("system:controller:"):
            account = name.removeprefix("system:controller:")
            assert bindings[name]["subjects"] == [
                {"kind": "ServiceAccount", "name": account, "namespace": "kube-system"}
            ]


@pytest.mark.parametrize(
    ("binding", "subjects"),
    [
        pytest.param("cluster-admin", [("Group", "system:masters")], id="cluster-admin"),
        pytest.param("system:basic-user", [("Group", "system:authenticated")], id="basic-user"),
        pytest.param("system:discovery", [("Group", "system:authenticated")], id="discovery"),
        pytest.param(
            "system:public-info-viewer",
            [("Group", "system:authenticated"), ("Group", "system:unauthenticated")],
            id="public-info-viewer",
        ),
        pytest.param("system:kube-scheduler", [("User", "system:kube-scheduler")], id="kube-scheduler"),
        pytest.param("system:volume-scheduler", [("User", "system:kube-scheduler")], id="volume-scheduler"),
        pytest.param(
            "system:kube-controller-manager", [("User", "system:kube-controller-manager")], id="controller-manager"
        ),
        pytest.param("system:node-proxier", [("User", "system:kube-proxy")], id="node-proxier"),
        pytest.param("system:monitoring", [("Group", "system:monitoring")], id="monitoring"),
        pytest.param(
            "system:service-account-issuer-discovery", [("Group", "system:serviceaccounts")], id="issuer-discovery"
        ),
        pytest.param("system:kube-dns", [("ServiceAccount", "kube-system/kube-dns")], id="kube-dns"),
        pytest.param("system:node", [], id="node-bound-to-nobody"),
    ],
)
def test_cluster_role_binding_subjects(policy: BootstrapPolicy, binding: str, subjects: list[tuple[str, str]]) -> None:
    found = by_name(policy.cluster_role_bindings)[binding].get("subjects") or []
    names = [(s["kind"], f"{s['namespace']}/{s['name']}" if s.get("namespace") else s["name"]) for s in found]
    assert names == subjects
    for subject in found:  # as upstream writes them: users and groups in RBAC's group, accounts in none
        assert subject.get("apiGroup") == (None if subject["kind"] == "ServiceAccount" else RBAC)


@pytest.mark.parametrize(
    ("role", "group", "resource", "verb", "allowed"),
    [
        pytest.param("system:kube-scheduler", "", "pods/binding", "create", True, id="scheduler-binds-pods"),
        pytest.param("system:kube-scheduler", "", "pods", "delete", True, id="scheduler-preempts"),
        pytest.param("system:kube-scheduler", "", "secrets", "get", False, id="scheduler-no-secrets"),
        pytest.param("system:node", "", "nodes/status", "patch", True, id="node-status"),
        pytest.param("system:node-proxier", "discovery.k8s.io", "endpointslices", "watch", True, id="proxy-slices"),
        pytest.param("view", "", "pods", "list", True, id="view-lists-pods"),
        pytest.param("view", "", "secrets", "get", False, id="view-no-secrets"),
        pytest.param("view", "", "pods/exec", "get", False, id="view-no-exec"),
        pytest.param("edit", "", "secrets", "create", True, id="edit-secrets"),
        pytest.param("edit", "apps", "deployments/scale", "update", True, id="edit-scales"),
        pytest.param("edit", RBAC, "roles", "create", False, id="edit-no-roles"),
        pytest.param("admin", RBAC, "rolebindings", "create", True, id="admin-binds"),
        pytest.param("admin", "", "pods", "list", True, id="admin-gets-view-transitively"),
        pytest.param("cluster-admin", "anything.example.com", "widgets", "escalate", True, id="cluster-admin"),
        pytest.param(
            "system:controller:clusterrole-aggregation-controller", RBAC, "clusterroles", "escalate", True, id="agg"
        ),
        pytest.param("system:controller:disruption-controller", "apps", "deployments/scale", "get", True, id="scale"),
    ],
)
def test_well_known_rules(
    policy: BootstrapPolicy, role: str, group: str, resource: str, verb: str, allowed: bool
) -> None:
    assert allows(effective_rules(policy, role), group, resource, verb) is allowed


def test_discovery_and_public_info_non_resource_urls(policy: BootstrapPolicy) -> None:
    roles = by_name(policy.cluster_roles)
    public = roles["system:public-info-viewer"]["rules"]
    assert public == [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]
    discovery = roles["system:discovery"]["rules"][0]["nonResourceURLs"]
    assert "/apis/*" in discovery and "/openapi/*" in discovery


def test_aggregated_roles_have_no_rules_of_their_own(policy: BootstrapPolicy) -> None:
    roles = by_name(policy.cluster_roles)
    for name, label in (("admin", "admin"), ("edit", "edit"), ("view", "view")):
        assert roles[name]["rules"] == []
        selectors = roles[name]["aggregationRule"]["clusterRoleSelectors"]
        assert selectors == [{"matchLabels": {f"{RBAC}/aggregate-to-{label}": "true"}}]
    assert roles["edit"]["metadata"]["labels"][f"{RBAC}/aggregate-to-admin"] == "true"
    assert roles["view"]["metadata"]["labels"][f"{RBAC}/aggregate-to-edit"] == "true"


def test_namespace_policy(policy: BootstrapPolicy) -> None:
    assert set(by_name(policy.roles["kube-system"])) == {
        "extension-apiserver-authentication-reader",
        "system::leader-locking-kube-controller-manager",
        "system::leader-locking-kube-scheduler",
        "system:controller:bootstrap-signer",
        "system:controller:cloud-provider",
        "system:controller:token-cleaner",
    }
    assert [r["metadata"]["name"] for r in policy.roles["kube-public"]] == ["system:controller:bootstrap-signer"]
    reader = by_name(policy.role_bindings["kube-system"])["system::extension-apiserver-authentication-reader"]
    assert [s["name"] for s in reader["subjects"]] == ["system:kube-controller-manager", "system:kube-scheduler"]


def test_callers_get_their_own_copy() -> None:
    first = bootstrap_policy()
    first.cluster_roles[0]["rules"].append({"verbs": ["get"], "nonResourceURLs": ["/x"]})
    first.roles.clear()
    second = bootstrap_policy()
    assert second.cluster_roles[0]["rules"] == [] and second.roles


# --- rule coverage -------------------------------------------------------------------------------


def rule(groups: list[str], resources: list[str], verbs: list[str], names: list[str] | None = None) -> Obj:
    out: Obj = {"apiGroups": groups, "resources": resources, "verbs": verbs}
    if names:
        out["resourceNames"] = names
    return out


def url_rule(urls: list[str], verbs: list[str]) -> Obj:
    return {"nonResourceURLs": urls, "verbs": verbs}


@pytest.mark.parametrize(
    ("owner", "wanted", "covered"),
    [
        pytest.param(rule([""], ["pods"], ["get"]), rule([""], ["pods"], ["get"]), True, id="equal"),
        pytest.param(rule([""], ["pods"], ["*"]), rule([""], ["pods"], ["delete"]), True, id="verb-star"),
        pytest.param(rule(["*"], ["*"], ["get"]), rule(["apps"], ["deployments"], ["get"]), True, id="group-star"),
        pytest.param(rule(["*"], ["*/scale"], ["get"]), rule(["apps"], ["deployments/scale"], ["get"]), True, id="sub"),
        pytest.param(rule(["*"], ["*/scale"], ["get"]), rule(["apps"], ["deployments"], ["get"]), False, id="not-sub"),
        pytest.param(rule([""], ["pods"], ["get"]), rule([""], ["pods"], ["list"]), False, id="other-verb"),
        pytest.param(rule([""], ["pods"], ["get"], ["a"]), rule([""], ["pods"], ["get"]), False, id="named-owner"),
        pytest.param(rule([""], ["pods"], ["get"]), rule([""], ["pods"], ["get"], ["a"]), True, id="named-wanted"),
        pytest.param(rule([""], ["pods"], ["get"], ["a", "b"]), rule([""], ["pods"], ["get"], ["b"]), True, id="names"),
        pytest.param(url_rule(["/healthz/*"], ["get"]), url_rule(["/healthz/etcd"], ["get"]), True, id="url-prefix"),
        pytest.param(url_rule(["/healthz"], ["get"]), url_rule(["/healthz/etcd"], ["get"]), False, id="url-exact"),
        pytest.param(url_rule(["*"], ["*"]), url_rule(["/metrics"], ["get"]), True, id="url-star"),
        pytest.param(rule(["*"], ["*"], ["*"]), url_rule(["/metrics"], ["get"]), False, id="resources-not-urls"),
        pytest.param(url_rule(["*"], ["*"]), rule([""], ["pods"], ["get"]), False, id="urls-not-resources"),
    ],
)
def test_rule_covers(owner: Obj, wanted: Obj, covered: bool) -> None:
    assert (not uncovered_rules([owner], [wanted])) is covered


def test_uncovered_rules_are_broken_down() -> None:
    owner = [rule([""], ["pods"], ["get"])]
    wanted = [rule(["", "apps"], ["pods"], ["get", "list"]), url_rule(["/a", "/b"], ["get"])]
    assert uncovered_rules(owner, wanted) == [
        rule([""], ["pods"], ["list"]),
        rule(["apps"], ["pods"], ["get"]),
        rule(["apps"], ["pods"], ["list"]),
        url_rule(["/a"], ["get"]),
        url_rule(["/b"], ["get"]),
    ]


# --- what reconciliation writes ------------------------------------------------------------------


def role(rules: list[Obj], *, annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": "r", "resourceVersion": "7"}
    if annotations is not None:
        meta["annotations"] = annotations
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": meta, "rules": rules}


EXPECTED = role([rule([""], ["pods"], ["get", "list"])], annotations={AUTOUPDATE_ANNOTATION: "true"}, labels={"a": "1"})


@pytest.mark.parametrize(
    ("existing", "operation", "rules", "protected"),
    [
        pytest.param(None, CREATE, EXPECTED["rules"], False, id="missing"),
        pytest.param(
            role(EXPECTED["rules"], annotations={AUTOUPDATE_ANNOTATION: "true"}, labels={"a": "1"}),
            NONE,
            EXPECTED["rules"],
            False,
            id="in-place",
        ),
        pytest.param(
            role([rule(["*"], ["*"], ["*"])], annotations={AUTOUPDATE_ANNOTATION: "true"}, labels={"a": "1"}),
            NONE,
            [rule(["*"], ["*"], ["*"])],
            False,
            id="covered-by-wider",
        ),
        pytest.param(
            role([rule([""], ["pods"], ["get"]), rule(["x"], ["y"], ["z"])], annotations={}, labels={"a": "1"}),
            UPDATE,
            [rule([""], ["pods"], ["get"]), rule(["x"], ["y"], ["z"]), rule([""], ["pods"], ["list"])],
            False,
            id="missing-rule-added-extra-kept",
        ),
        pytest.param(
            role([], annotations={AUTOUPDATE_ANNOTATION: "false"}, labels={"a": "1"}),
            UPDATE,
            [rule([""], ["pods"], ["get"]), rule([""], ["pods"], ["list"])],
            True,
            id="autoupdate-false-is-protected",
        ),
    ],
)
def test_reconcile_role(existing: Obj | None, operation: str, rules: list[Obj], protected: bool) -> None:
    result = reconcile_role(existing, EXPECTED)
    assert (result.operation, result.obj["rules"], result.protected) == (operation, rules, protected)
    if existing is not None:
        # Existing values win; expected keys are added; the read resourceVersion is kept for the CAS.
        assert result.obj["metadata"]["annotations"][AUTOUPDATE_ANNOTATION] == (
            existing["metadata"]["annotations"].get(AUTOUPDATE_ANNOTATION, "true")
        )
        assert result.obj["metadata"]["resourceVersion"] == "7"


def test_reconcile_role_adds_missing_labels() -> None:
    existing = role(EXPECTED["rules"], annotations={AUTOUPDATE_ANNOTATION: "true"}, labels={"a": "mine", "b": "2"})
    result = reconcile_role(existing, EXPECTED)
    assert result.operation == NONE  # "a" is present (the existing value wins)
    result = reconcile_role(role(EXPECTED["rules"], annotations={AUTOUPDATE_ANNOTATION: "true"}), EXPECTED)
    assert result.operation == UPDATE and result.obj["metadata"]["labels"] == {"a": "1"}


SELECTOR = {"matchLabels": {"x": "true"}}


def aggregated(rules: list[Obj], selectors: list[Obj] | None) -> Obj:
    obj = role(rules, annotations={AUTOUPDATE_ANNOTATION: "true"}, labels={"a": "1"})
    if selectors is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return obj


@pytest.mark.parametrize(
    ("existing", "operation", "rules", "selectors"),
    [
        pytest.param(aggregated([rule(["g"], ["r"], ["v"])], [SELECTOR]), NONE, [rule(["g"], ["r"], ["v"])], [SELECTOR],
                     id="rules-left-to-the-controller"),
        pytest.param(aggregated([], [{"matchLabels": {"y": "1"}}]), UPDATE, [], [{"matchLabels": {"y": "1"}}, SELECTOR],
                     id="selector-added"),
        pytest.param(aggregated([rule(["g"], ["r"], ["v"])], None), UPDATE, [], [SELECTOR], id="becomes-aggregated"),
    ],
)  # fmt: skip
def test_reconcile_aggregated_role(existing: Obj, operation: str, rules: list[Obj], selectors: list[Obj]) -> None:
    expected = aggregated([], [SELECTOR])
    result = reconcile_role(existing, expected)
    assert (result.operation, result.obj["rules"]) == (operation, rules)
    assert result.obj["aggregationRule"]["clusterRoleSelectors"] == selectors


def test_reconcile_role_drops_an_unexpected_aggregation_rule() -> None:
    result = reconcile_role(aggregated(EXPECTED["rules"], [SELECTOR]), EXPECTED)
    assert result.operation == UPDATE and "aggregationRule" not in result.obj


def binding(ref: str, subjects: list[Obj] | None, *, autoupdate: str = "true") -> Obj:
    obj: Obj = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "b", "uid": "u1", "annotations": {AUTOUPDATE_ANNOTATION: autoupdate}},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": ref},
    }
    if subjects is not None:
        obj["subjects"] = subjects
    return obj


SA = {"kind": "ServiceAccount", "name": "sa", "namespace": "kube-system"}
GROUP = {"apiGroup": RBAC, "kind": "Group", "name": "g"}


@pytest.mark.parametrize(
    ("existing", "operation", "subjects", "protected"),
    [
        pytest.param(None, CREATE, [SA, GROUP], False, id="missing"),
        pytest.param(binding("role", [{**SA, "apiGroup": ""}, GROUP]), NONE, [{**SA, "apiGroup": ""}, GROUP], False,
                     id="defaulted-api-group-is-the-same-subject"),
        pytest.param(binding("role", [GROUP, {"kind": "User", "name": "u", "apiGroup": RBAC}]), UPDATE,
                     [GROUP, {"kind": "User", "name": "u", "apiGroup": RBAC}, SA], False, id="missing-subject-added"),
        pytest.param(binding("role", None), UPDATE, [SA, GROUP], False, id="no-subjects"),
        pytest.param(binding("other", [SA, GROUP, {"kind": "Group", "name": "x"}]), RECREATE, [SA, GROUP], False,
                     id="other-role-ref-recreated"),
        pytest.param(binding("other", [], autoupdate="false"), RECREATE, [SA, GROUP], True, id="protected"),
    ],
)  # fmt: skip
def test_reconcile_binding(existing: Obj | None, operation: str, subjects: list[Obj], protected: bool) -> None:
    result = reconcile_binding(existing, binding("role", [SA, GROUP]))
    assert (result.operation, result.obj.get("subjects"), result.protected) == (operation, subjects, protected)
    if operation == RECREATE:
        assert result.obj["roleRef"]["name"] == "role"
