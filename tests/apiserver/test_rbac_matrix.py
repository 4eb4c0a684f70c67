"""RBAC by default: a matrix of users x verbs x resources x namespaces against an independent model of the grants,
cross-checked with real ``kubectl auth can-i`` and real requests; escalation; ServiceAccount tokens.

The server runs with its defaults (``--authorization-mode Node,RBAC`` and the bootstrap policy).  The grants
below are made by the admin through kubectl; ``GRANTS`` states the same grants as plain data, and the expected
answer for each cell is computed from that data alone — never from the server's code.
"""

from __future__ import annotations

import http.client
import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from apiserver_harness import KUBECTL, RunningApiServer, running_apiserver

NS_A, NS_B = "rbac-a", "rbac-b"
USERS = {
    "alice": ("alice-token-0001", ["devs"]),
    "bob": ("bob-token-000002", ["ops"]),
    "carol": ("carol-token-0003", []),
    "dave": ("dave-token-00004", ["auditors"]),
}
SA = "system:serviceaccount:rbac-b:builder"

POLICY = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS_A}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {NS_B}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: builder, namespace: {NS_B}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-editor, namespace: {NS_A}}}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: devs-edit-pods, namespace: {NS_A}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-editor}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: matrix-secret-reader}}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: ops-read-secrets, namespace: {NS_B}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: matrix-secret-reader}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: ops}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: role-admin, namespace: {NS_B}}}
rules:
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create, get, list, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: bob-role-admin, namespace: {NS_B}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: role-admin}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: matrix-config-lister}}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [s1]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: carol-config-lister}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: matrix-config-lister}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: carol}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: matrix-node-watcher}}
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
- apiGroups: ["*"]
  resources: ["*/scale"]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: auditors-watch-nodes}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: matrix-node-watcher}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: auditors}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: deployer, namespace: {NS_B}}}
rules:
- apiGroups: [apps]
  resources: [deployments]
  verbs: [create, get, list]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: builder-deploys, namespace: {NS_B}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}}
subjects:
- {{kind: ServiceAccount, name: builder}}
"""

# The same grants as data: (subject, namespace or None for every namespace and cluster scope, group,
# resource, resource names or None for any, verbs).
GRANTS: list[tuple[str, str | None, str, str, frozenset[str] | None, frozenset[str]]] = [
    ("group:devs", NS_A, "", "pods", None, frozenset("get list watch create update patch delete".split())),
    ("group:devs", NS_A, "", "pods/log", None, frozenset({"get"})),
    ("group:ops", NS_B, "", "secrets", None, frozenset({"get", "list", "watch"})),
    ("user:bob", NS_B, "rbac.authorization.k8s.io", "roles", None, frozenset({"create", "get", "list", "delete"})),
    (
        "user:bob",
        NS_B,
        "rbac.authorization.k8s.io",
        "rolebindings",
        None,
        frozenset({"create", "get", "list", "delete"}),
    ),
    ("user:carol", None, "", "configmaps", None, frozenset({"list", "watch"})),
    ("user:carol", None, "", "secrets", frozenset({"s1"}), frozenset({"get"})),
    ("group:auditors", None, "", "nodes", None, frozenset({"get", "list", "watch"})),
    ("group:auditors", None, "apps", "deployments/scale", None, frozenset({"get"})),
    ("group:auditors", None, "", "replicationcontrollers/scale", None, frozenset({"get"})),
    (f"user:{SA}", NS_B, "apps", "deployments", None, frozenset({"create", "get", "list"})),
    (f"user:{SA}", NS_B, "apps", "deployments/scale", None, frozenset({"update", "patch"})),
]
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
RESOURCES = (
    ("", "pods"),
    ("", "pods/log"),
    ("", "secrets"),
    ("", "configmaps"),
    ("", "nodes"),
    ("", "replicationcontrollers/scale"),
    ("apps", "deployments"),
    ("apps", "deployments/scale"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
)
NAMESPACES = (NS_A, NS_B, "")
NAMES = ("", "s1")


def subjects_of(user: str) -> set[str]:
    groups = USERS[user][1] if user in USERS else ["system:serviceaccounts", "system:serviceaccounts:rbac-b"]
    return {f"user:{user}", *(f"group:{g}" for g in groups)}


def expected(user: str, verb: str, group: str, resource: str, namespace: str, name: str) -> bool:
    who = subjects_of(user)
    for subject, ns, g, r, names, verbs in GRANTS:
        if subject not in who or g != group or r != resource or verb not in verbs:
            continue
        if ns is not None and ns != namespace:
            continue
        if names is not None and name not in names:
            continue
        return True
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    base = tmp_path_factory.mktemp("rbac")
    tokens = base / "tokens.csv"
    tokens.write_text("".join(f'{t},{u},uid-{u},"{",".join(g)}"\n' for u, (t, g) in USERS.items()))
    with running_apiserver(base, "--token-auth-file", str(tokens)) as running:
        admin_kubectl(running, base, "apply", "-f", "-", stdin=POLICY)
        yield running


def admin_kubectl(server: RunningApiServer, cache: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [KUBECTL, "--kubeconfig", str(server.kubeconfig), "--cache-dir", str(cache / "admin-cache"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def user_kubeconfig(server: RunningApiServer, path: Path, token: str) -> Path:
    config = yaml.safe_load(server.kubeconfig.read_text())
    config["users"] = [{"name": config["users"][0]["name"], "user": {"token": token}}]
    path.write_text(yaml.safe_dump(config))
    return path


def kubectl_as(server: RunningApiServer, tmp: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    kubeconfig = user_kubeconfig(server, tmp / f"kc-{token}", token)
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp / f"cache-{token}"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def post_json(server: RunningApiServer, path: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, _, raw = server.request("POST", path, json.dumps(body).encode(), headers, client_cert=token is None)
    return status, json.loads(raw)


def access_review(
    conn: http.client.HTTPSConnection, user: str, verb: str, group: str, resource: str, ns: str, name: str
) -> bool:
    """A SubjectAccessReview by the admin, over one kept-alive connection."""
    plural, _, sub = resource.partition("/")
    groups = USERS[user][1] if user in USERS else ["system:serviceaccounts", f"system:serviceaccounts:{NS_B}"]
    attributes = {"verb": verb, "group": group, "resource": plural, "subresource": sub, "namespace": ns, "name": name}
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": [*groups, "system:authenticated"], "resourceAttributes": attributes},
    }
    headers = {"Content-Type": "application/json"}
    conn.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", json.dumps(body).encode(), headers)
    response = conn.getresponse()
    answer = json.loads(response.read())
    assert response.status == 201, answer
    return bool(answer["status"]["allowed"])


def test_matrix_matches_the_grants(server: RunningApiServer) -> None:
    cells = list(itertools.product([*USERS, SA], VERBS, RESOURCES, NAMESPACES, NAMES))
    wrong = []
    allowed = 0
    conn = http.client.HTTPSConnection(server.host, server.port, context=server.ssl_context(), timeout=30)
    for user, verb, (group, resource), ns, name in cells:
        want = expected(user, verb, group, resource, ns, name)
        got = access_review(conn, user, verb, group, resource, ns, name)
        allowed += got
        if got != want:
            wrong.append((user, verb, group, resource, ns, name, got))
    conn.close()
    assert not wrong, f"{len(wrong)} of {len(cells)} cells differ: {wrong[:20]}"
    assert len(cells) == 5 * 8 * 10 * 3 * 2 and allowed > 50


@pytest.mark.parametrize(
    ("user", "args", "want"),
    [
        ("alice", ("get", "pods", "-n", NS_A), "yes"),
        ("alice", ("delete", "pods", "-n", NS_A), "yes"),
        ("alice", ("get", "pods", "-n", NS_B), "no"),
        ("alice", ("get", "pods", "--subresource", "log", "-n", NS_A), "yes"),
        ("alice", ("create", "pods", "--subresource", "exec", "-n", NS_A), "no"),
        ("bob", ("list", "secrets", "-n", NS_B), "yes"),
        ("bob", ("list", "secrets", "-n", NS_A), "no"),
        ("bob", ("create", "roles.rbac.authorization.k8s.io", "-n", NS_B), "yes"),
        ("carol", ("get", "secrets/s1", "-n", NS_A), "yes"),
        ("carol", ("get", "secrets/s2", "-n", NS_A), "no"),
        ("carol", ("list", "configmaps", "--all-namespaces"), "yes"),
        ("dave", ("watch", "nodes"), "yes"),
        ("dave", ("get", "deployments.apps", "--subresource", "scale", "-n", NS_B), "yes"),
        ("dave", ("delete", "nodes"), "no"),
        ("carol", ("create", "selfsubjectaccessreviews.authorization.k8s.io"), "yes"),
    ],
)
def test_kubectl_auth_can_i_agrees(
    server: RunningApiServer, tmp_path: Path, user: str, args: tuple[str, ...], want: str
) -> None:
    done = kubectl_as(server, tmp_path, USERS[user][0], "auth", "can-i", *args)
    assert done.stdout.strip() == want, (done.stdout, done.stderr)
    # The admin asking on the user's behalf (impersonation) gets the same answer.
    impersonated = subprocess.run(
        [KUBECTL, "--kubeconfig", str(server.kubeconfig), "--as", user, *(f"--as-group={g}" for g in USERS[user][1]),
         "--cache-dir", str(tmp_path / "admin"), "auth", "can-i", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert impersonated.stdout.strip() == want, (impersonated.stdout, impersonated.stderr)


def test_real_requests_are_allowed_or_forbidden(server: RunningApiServer, tmp_path: Path) -> None:
    alice = USERS["alice"][0]
    status, _, _ = server.request("GET", f"/api/v1/namespaces/{NS_A}/pods", headers=_bearer(alice), client_cert=False)
    assert status == 200
    status, _, raw = server.request("GET", f"/api/v1/namespaces/{NS_B}/pods", headers=_bearer(alice), client_cert=False)
    assert status == 403
    answer = json.loads(raw)
    assert answer["reason"] == "Forbidden"
    assert answer["message"] == (
        f'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "{NS_B}"'
    )
    assert answer["details"] == {"kind": "pods"}
    done = kubectl_as(server, tmp_path, alice, "get", "secrets", "-n", NS_A)
    assert done.returncode == 1
    assert 'User "alice" cannot list resource "secrets" in API group "" in the namespace "rbac-a"' in done.stderr
    # Every authenticated user may discover the API and ask about themselves (system:discovery, system:basic-user).
    done = kubectl_as(server, tmp_path, USERS["carol"][0], "api-resources", "--api-group", "apps", "-o", "name")
    assert done.returncode == 0 and "deployments.apps" in done.stdout.split()
    done = kubectl_as(
        server, tmp_path, USERS["carol"][0], "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"
    )
    assert done.stdout == "carol"


def test_can_i_list_shows_the_users_rules(server: RunningApiServer, tmp_path: Path) -> None:
    done = kubectl_as(server, tmp_path, USERS["alice"][0], "auth", "can-i", "--list", "-n", NS_A)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line.strip()}
    assert "pods" in rows and "[get list watch create update patch delete]" in rows["pods"]
    assert "pods/log" in rows
    assert "selfsubjectaccessreviews.authorization.k8s.io" in rows
    assert "secrets" not in rows


def test_escalation_is_refused(server: RunningApiServer, tmp_path: Path) -> None:
    bob = USERS["bob"][0]
    # bob may write Roles in rbac-b, but only with rights he holds there (read secrets, manage roles).
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "too-much", "namespace": NS_B},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "delete"]}],
    }
    status, answer = post_json(server, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS_B}/roles", role, bob)
    assert status == 403, answer
    assert answer["message"] == (
        'roles.rbac.authorization.k8s.io "too-much" is forbidden: user "bob" (groups=["ops" "system:authenticated"]) '
        "is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["secrets"], Verbs:["delete"]}'
    )
    role["metadata"]["name"] = "just-enough"
    role["rules"][0]["verbs"] = ["get", "list"]
    status, answer = post_json(server, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS_B}/roles", role, bob)
    assert status == 201, answer
    # Binding cluster-admin is escalation too; binding a role he covers is not.
    bind = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "grab", "namespace": NS_B},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    status, answer = post_json(server, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS_B}/rolebindings", bind, bob)
    assert status == 403 and "attempting to grant RBAC permissions not currently held" in answer["message"]
    bind["metadata"]["name"] = "share"
    bind["roleRef"] = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "just-enough"}
    bind["subjects"] = [{"kind": "User", "name": "carol", "apiGroup": "rbac.authorization.k8s.io"}]
    status, answer = post_json(server, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS_B}/rolebindings", bind, bob)
    assert status == 201, answer
    # The stored policy did not change through the refused requests.
    names = admin_kubectl(server, tmp_path, "get", "roles,rolebindings", "-n", NS_B, "-o", "name").split()
    assert "role.rbac.authorization.k8s.io/too-much" not in names
    assert "rolebinding.rbac.authorization.k8s.io/grab" not in names


def test_service_account_token_does_what_its_binding_allows(server: RunningApiServer, tmp_path: Path) -> None:
    token = admin_kubectl(server, tmp_path, "create", "token", "builder", "-n", NS_B).strip()
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "built"},
        "spec": {
            "selector": {"matchLabels": {"app": "built"}},
            "template": {
                "metadata": {"labels": {"app": "built"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    status, answer = post_json(server, f"/apis/apps/v1/namespaces/{NS_B}/deployments", deployment, token)
    assert status == 201, answer
    status, answer = post_json(server, f"/apis/apps/v1/namespaces/{NS_A}/deployments", deployment, token)
    assert status == 403
    assert answer["message"].startswith(f'deployments.apps is forbidden: User "{SA}" cannot create resource')
    status, _, _ = server.request(
        "DELETE", f"/apis/apps/v1/namespaces/{NS_B}/deployments/built", headers=_bearer(token), client_cert=False
    )
    assert status == 403
    status, _, _ = server.request(
        "GET", f"/api/v1/namespaces/{NS_B}/secrets", headers=_bearer(token), client_cert=False
    )
    assert status == 403


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
