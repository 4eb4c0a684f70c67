"""``reconcile_policy`` against a real ``ApiServer`` (sqlite store, port 0) running on the test's own loop.

The hook writes through the server's served registries, so the test hands it
``server.served`` and reads back through the same registries.  Each test has a
server of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from skiff.apiserver.rbac_bootstrap import (
    AUTOUPDATE_ANNOTATION,
    BOOTSTRAPPING_LABEL,
    bootstrap_policy,
    reconcile_policy,
    skiff_policy,
)
from skiff.apiserver.served import ResourceRegistry
from skiff.apiserver.server import ApiServer, ApiServerConfig
from skiff.registry.listing import ListQuery

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"
PLURALS = ("clusterroles", "clusterrolebindings", "roles", "rolebindings")


@contextlib.asynccontextmanager
async def started_apiserver(tmp_path: Path) -> AsyncIterator[ApiServer]:
    data = tmp_path / "data"
    data.mkdir()
    # Without RBAC the server does not reconcile the policy itself: each test runs reconcile_policy when it wants.
    config = ApiServerConfig(f"sqlite://{data / 'skiff.db'}", data, secure_port=0, authorization_modes=("AlwaysAllow",))
    server = ApiServer(config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def registry(server: ApiServer, plural: str) -> ResourceRegistry:
    found = server.served.find(RBAC, "v1", plural)
    assert found is not None, plural
    return found.registry


async def versions(server: ApiServer) -> dict[tuple[str, str, str], str]:
    """Every RBAC object's resourceVersion, by (plural, namespace, name)."""
    out: dict[tuple[str, str, str], str] = {}
    for plural in PLURALS:
        listed = await registry(server, plural).list(None, ListQuery())
        for item in listed["items"]:
            meta = item["metadata"]
            out[(plural, meta.get("namespace", ""), meta["name"])] = meta["resourceVersion"]
    return out


async def get(server: ApiServer, plural: str, name: str, namespace: str | None = None) -> Obj:
    return await registry(server, plural).get(namespace, name)


async def test_creates_the_policy_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    policy = bootstrap_policy()
    async with started_apiserver(tmp_path) as server:
        await reconcile_policy(server.served)
        first = await versions(server)
        counts = {p: sum(1 for key in first if key[0] == p) for p in PLURALS}
        skiff = skiff_policy()  # Skiff's own roles and bindings, beside upstream's
        skiff_counts = (len(skiff.cluster_roles), len(skiff.cluster_role_bindings))
        assert counts == {
            "clusterroles": 64 + skiff_counts[0],
            "clusterrolebindings": 45 + skiff_counts[1],
            "roles": 7,
            "rolebindings": 7,
        }

        scheduler = await get(server, "clusterroles", "system:kube-scheduler")
        expected = next(r for r in policy.cluster_roles if r["metadata"]["name"] == "system:kube-scheduler")
        assert scheduler["rules"] == expected["rules"]
        assert scheduler["metadata"]["labels"] == {BOOTSTRAPPING_LABEL: "rbac-defaults"}
        assert scheduler["metadata"]["annotations"] == {AUTOUPDATE_ANNOTATION: "true"}
        masters = await get(server, "clusterrolebindings", "cluster-admin")
        assert masters["subjects"] == [{"apiGroup": RBAC, "kind": "Group", "name": "system:masters"}]
        reader = await get(server, "rolebindings", "system::extension-apiserver-authentication-reader", "kube-system")
        assert reader["roleRef"]["name"] == "extension-apiserver-authentication-reader"

        await reconcile_policy(server.served)
        assert await versions(server) == first


async def test_restores_what_users_removed_and_leaves_protected_objects_alone(tmp_path: Path) -> None:
    async with started_apiserver(tmp_path) as server:
        await reconcile_policy(server.served)
        roles = registry(server, "clusterroles")

        # A role that autoupdates: the binding rule removed, a label dropped, a rule of the user's own added.
        scheduler = await roles.get(None, "system:kube-scheduler")
        kept = [r for r in scheduler["rules"] if "pods/binding" not in r.get("resources", [])]
        own_rule = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}
        scheduler["rules"] = [*kept, own_rule]
        scheduler["metadata"]["labels"] = {"team": "sched"}
        await roles.update(None, "system:kube-scheduler", scheduler)

        # A role its owner took over: autoupdate "false", rules cut down.
        heapster = await roles.get(None, "system:heapster")
        heapster["metadata"]["annotations"][AUTOUPDATE_ANNOTATION] = "false"
        heapster["rules"] = heapster["rules"][:1]
        protected, _ = await roles.update(None, "system:heapster", heapster)

        # An aggregated role: its rules are the aggregation controller's, its selectors the policy's.
        admin = await roles.get(None, "admin")
        admin["rules"] = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
        admin["aggregationRule"]["clusterRoleSelectors"] = [{"matchLabels": {"team": "sched"}}]
        await roles.update(None, "admin", admin)

        await reconcile_policy(server.served)

        restored = await roles.get(None, "system:kube-scheduler")
        assert restored["rules"][: len(kept) + 1] == [*kept, own_rule]
        assert restored["rules"][len(kept) + 1 :] == [
            {"apiGroups": [""], "resources": ["bindings"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["pods/binding"], "verbs": ["create"]},
        ]
        assert restored["metadata"]["labels"] == {"team": "sched", BOOTSTRAPPING_LABEL: "rbac-defaults"}

        untouched = await roles.get(None, "system:heapster")
        assert untouched["metadata"]["resourceVersion"] == protected["metadata"]["resourceVersion"]
        assert len(untouched["rules"]) == 1

        admin = await roles.get(None, "admin")
        assert admin["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
        assert admin["aggregationRule"]["clusterRoleSelectors"] == [
            {"matchLabels": {"team": "sched"}},
            {"matchLabels": {f"{RBAC}/aggregate-to-admin": "true"}},
        ]


async def test_recreates_a_binding_whose_role_ref_changed_and_restores_deleted_objects(tmp_path: Path) -> None:
    async with started_apiserver(tmp_path) as server:
        await reconcile_policy(server.served)
        bindings = registry(server, "clusterrolebindings")
        original = await bindings.get(None, "system:basic-user")
        await bindings.delete(None, "system:basic-user", None)
        await bindings.create(
            None,
            {
                "metadata": {"name": "system:basic-user"},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
                "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "mallory"}],
            },
        )
        # A binding missing a subject gets it back; a deleted namespaced role comes back.
        leader = registry(server, "rolebindings")
        locking = await leader.get("kube-system", "system::leader-locking-kube-scheduler")
        locking["subjects"] = locking["subjects"][:1]
        await leader.update("kube-system", "system::leader-locking-kube-scheduler", locking)
        await registry(server, "roles").delete("kube-public", "system:controller:bootstrap-signer", None)

        await reconcile_policy(server.served)

        recreated = await bindings.get(None, "system:basic-user")
        assert recreated["roleRef"] == original["roleRef"]
        assert recreated["subjects"] == original["subjects"]
        assert recreated["metadata"]["uid"] != original["metadata"]["uid"]
        locking = await leader.get("kube-system", "system::leader-locking-kube-scheduler")
        assert [s["name"] for s in locking["subjects"]] == ["system:kube-scheduler", "kube-scheduler"]
        await get(server, "roles", "system:controller:bootstrap-signer", "kube-public")


async def test_a_protected_binding_keeps_its_role_ref(tmp_path: Path) -> None:
    async with started_apiserver(tmp_path) as server:
        await reconcile_policy(server.served)
        bindings = registry(server, "clusterrolebindings")
        await bindings.delete(None, "system:discovery", None)
        mine = await bindings.create(
            None,
            {
                "metadata": {"name": "system:discovery", "annotations": {AUTOUPDATE_ANNOTATION: "false"}},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "view"},
            },
        )
        await reconcile_policy(server.served)
        after = await bindings.get(None, "system:discovery")
        assert after["metadata"]["uid"] == mine["metadata"]["uid"]
        assert after["roleRef"]["name"] == "view"


async def test_concurrent_runs_agree(tmp_path: Path) -> None:
    """Several API servers reconciling at once: AlreadyExists and Conflict are retried, not failures."""
    async with started_apiserver(tmp_path) as server:
        await asyncio.gather(*(reconcile_policy(server.served, deadline_s=5) for _ in range(3)))
        first = await versions(server)
        skiff = skiff_policy()
        assert len(first) == 64 + 45 + 7 + 7 + len(skiff.cluster_roles) + len(skiff.cluster_role_bindings)
        await reconcile_policy(server.served)
        assert await versions(server) == first


async def test_a_clusters_own_admin_role_and_discovery_binding_are_migrated(tmp_path: Path) -> None:
    """Upstream's priming: rules of a pre-existing, non-aggregated admin survive admin becoming aggregated, and
    system:public-info-viewer starts with system:discovery's subjects."""
    mine = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["*"]}
    team = {"apiGroup": RBAC, "kind": "Group", "name": "team"}
    async with started_apiserver(tmp_path) as server:
        roles, bindings = registry(server, "clusterroles"), registry(server, "clusterrolebindings")
        await roles.create(None, {"metadata": {"name": "admin", "labels": {"owner": "me"}}, "rules": [mine]})
        await bindings.create(
            None,
            {
                "metadata": {"name": "system:discovery"},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "system:discovery"},
                "subjects": [team],
            },
        )
        await reconcile_policy(server.served)

        migrated = await roles.get(None, "system:aggregate-to-admin")
        assert migrated["rules"][0] == mine and len(migrated["rules"]) > 1
        assert migrated["metadata"]["labels"][f"{RBAC}/aggregate-to-admin"] == "true"
        assert migrated["metadata"]["labels"]["owner"] == "me"
        admin = await roles.get(None, "admin")
        assert admin["rules"] == []
        assert admin["aggregationRule"] == {
            "clusterRoleSelectors": [{"matchLabels": {f"{RBAC}/aggregate-to-admin": "true"}}]
        }

        public = await bindings.get(None, "system:public-info-viewer")
        assert [s["name"] for s in public["subjects"]] == ["team", "system:authenticated", "system:unauthenticated"]
        discovery = await bindings.get(None, "system:discovery")
        assert [s["name"] for s in discovery["subjects"]] == ["team", "system:authenticated"]
