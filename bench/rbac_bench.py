"""The cost of authorization per request: RBAC (and the Node authorizer in front of it) against AlwaysAllow.

Run from the repository root::

    python bench/rbac_bench.py            # 200 namespaces x 5 RoleBindings, 100 extra ClusterRoleBindings
    python bench/rbac_bench.py --quick

Builds the authorizers ``skiff apiserver`` runs by default (``Node,RBAC``)
in-process over the bootstrap policy plus a synthetic tenant policy, and
times ``authorize`` for the request shapes that matter: the admin
(``system:masters``, all of Skiff's own components today), a user allowed by a
ClusterRoleBinding, one allowed by a RoleBinding in a namespace with several
bindings, a ServiceAccount, a refused request (the worst case: every binding
that applies is tried) and a kubelet (the Node authorizer's static rules).
Also the time to rebuild the index after an RBAC object changes.  A request to
the API server costs about a millisecond (docs/apiserver-bench.md), the scale
to read these against.  Figures only; nothing is asserted.  Writes
bench/out/rbac.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from skiff.apiserver.auth import AUTHENTICATED_GROUP, AllowAuthenticated, Attributes, UnionAuthorizer, UserInfo
from skiff.apiserver.node_authorizer import NodeAuthorizer
from skiff.apiserver.rbac import RbacAuthorizer, RbacObjects
from skiff.apiserver.rbac_bootstrap import bootstrap_policy
from skiff.controllers.clusterrole_aggregation import aggregated_rules

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"


class NoCache:
    """The least a watch cache offers the Node authorizer: nothing changed, no objects."""

    changes = 0
    revision = 0

    def snapshot(self, namespace: str | None) -> tuple[int, list[Any]]:
        return 0, []

    def events_after(self, revision: int) -> list[Any]:
        return []


def tenant_policy(namespaces: int, bindings_per_namespace: int, cluster_bindings: int) -> RbacObjects:
    policy = bootstrap_policy()
    roles: list[Obj] = []
    role_bindings: list[Obj] = []
    # admin/edit/view as the clusterrole-aggregation controller fills them in.
    cluster_roles = [
        {**role, "rules": aggregated_rules(role, policy.cluster_roles)} if role.get("aggregationRule") else role
        for role in policy.cluster_roles
    ]
    cluster_role_bindings = list(policy.cluster_role_bindings)
    for ns_roles in policy.roles.values():
        roles += ns_roles
    for ns_bindings in policy.role_bindings.values():
        role_bindings += ns_bindings
    cluster_roles.append(
        {"metadata": {"name": "tenant-edit"}, "rules": [
            {"apiGroups": ["", "apps"], "resources": ["pods", "deployments", "configmaps"], "verbs": ["*"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ]}
    )  # fmt: skip
    for i in range(namespaces):
        ns = f"team-{i}"
        roles.append(
            {"metadata": {"name": "reader", "namespace": ns},
             "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]}
        )  # fmt: skip
        for j in range(bindings_per_namespace):
            role_bindings.append(
                {"metadata": {"name": f"b{j}", "namespace": ns},
                 "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole" if j else "Role",
                             "name": "tenant-edit" if j else "reader"},
                 "subjects": [{"kind": "User", "name": f"user-{i}-{j}"}, {"kind": "ServiceAccount", "name": f"sa-{j}"}]}
            )  # fmt: skip
    for k in range(cluster_bindings):
        cluster_role_bindings.append(
            {"metadata": {"name": f"crb-{k}"}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
             "subjects": [{"kind": "Group", "name": f"group-{k}"}]}
        )  # fmt: skip
    return roles, role_bindings, cluster_roles, cluster_role_bindings


def per_call_us(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--bindings-per-namespace", type=int, default=5)
    parser.add_argument("--cluster-bindings", type=int, default=100)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 5_000 if args.quick else args.n
    objects = tenant_policy(args.namespaces, args.bindings_per_namespace, args.cluster_bindings)
    changes = [0]
    rbac = RbacAuthorizer(lambda: changes[0], lambda: objects)
    node = NodeAuthorizer(NoCache(), NoCache())  # type: ignore[arg-type]
    default = UnionAuthorizer([node, rbac])
    allow = AllowAuthenticated()
    mid = args.namespaces // 2

    def res(verb: str, resource: str, ns: str = "", group: str = "", sub: str = "", name: str = "") -> Attributes:
        return Attributes(verb=verb, resource_request=True, namespace=ns, api_group=group, resource=resource,
                          subresource=sub, name=name)  # fmt: skip

    cases: list[tuple[str, UserInfo, Attributes, bool]] = [
        ("admin (system:masters)", UserInfo("kubernetes-admin", groups=("system:masters", AUTHENTICATED_GROUP)),
         res("create", "pods", "team-1"), True),
        ("user via ClusterRoleBinding (view)",
         UserInfo("u", groups=(f"group-{args.cluster_bindings - 1}", AUTHENTICATED_GROUP)),
         res("list", "deployments", "team-3", "apps"), True),
        ("user via RoleBinding", UserInfo(f"user-{mid}-3", groups=(AUTHENTICATED_GROUP,)),
         res("update", "deployments", f"team-{mid}", "apps"), True),
        ("ServiceAccount via RoleBinding", UserInfo(f"system:serviceaccount:team-{mid}:sa-0",
         groups=("system:serviceaccounts", f"system:serviceaccounts:team-{mid}", AUTHENTICATED_GROUP)),
         res("get", "secrets", f"team-{mid}", name="s"), True),
        ("refused (every binding tried)", UserInfo(f"user-{mid}-3", groups=(AUTHENTICATED_GROUP,)),
         res("delete", "nodes", name="n1"), False),
        ("kubelet (Node authorizer rules)", UserInfo("system:node:n1", groups=("system:nodes", AUTHENTICATED_GROUP)),
         res("update", "nodes", sub="status", name="n1"), True),
    ]  # fmt: skip
    rows = []
    print(f"policy: {sum(len(list(x)) for x in objects)} RBAC objects "
          f"({args.namespaces} namespaces x {args.bindings_per_namespace} RoleBindings, "
          f"{args.cluster_bindings} extra ClusterRoleBindings); {n} calls each")  # fmt: skip
    print(f"{'request':40} {'Node,RBAC µs':>13} {'AlwaysAllow µs':>15} {'allowed':>8}")
    for label, user, attributes, want in cases:
        allowed = default.authorize(user, attributes)[0]
        assert allowed == want, (label, default.authorize(user, attributes))
        t = per_call_us(lambda u=user, a=attributes: default.authorize(u, a), n)
        base = per_call_us(lambda u=user, a=attributes: allow.authorize(u, a), n)
        rows.append(
            {"request": label, "node_rbac_us": round(t, 2), "always_allow_us": round(base, 2), "allowed": allowed}
        )
        print(f"{label:40} {t:13.2f} {base:15.2f} {allowed!s:>8}")

    def rebuild() -> None:
        changes[0] += 1
        _ = rbac.index

    rebuild_ms = per_call_us(rebuild, 20 if not args.quick else 5) / 1000
    print(f"index rebuild after an RBAC change: {rebuild_ms:.1f} ms")
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "rbac.json").write_bytes(
        orjson.dumps({"rows": rows, "rebuild_ms": round(rebuild_ms, 2), "calls": n}, option=orjson.OPT_INDENT_2)
    )


if __name__ == "__main__":
    main()
