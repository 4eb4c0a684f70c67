"""The clusterrole-aggregation controller: the pure rule gathering, then against a real API server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from apiserver_harness import RunningApiServer, running_apiserver
from cm_harness import eventually, running_manager

from skiff.client import ApiClient
from skiff.client.resources import CLUSTERROLES
from skiff.controllers.clusterrole_aggregation import FIELD_MANAGER, aggregated_rules, same_rules

Obj = dict[str, Any]
PODS_GET = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
PODS_LIST = {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}
METRICS = {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}


def cluster_role(name: str, rules: list[Obj], labels: dict[str, str] | None = None, selectors: Any = None) -> Obj:
    obj: Obj = {"metadata": {"name": name, "labels": labels or {}}, "rules": rules}
    if selectors is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return obj


AGG = cluster_role("agg", [], {"x": "1"}, [{"matchLabels": {"x": "1"}}, {"matchExpressions": [
    {"key": "tier", "operator": "In", "values": ["a", "b"]}]}])  # fmt: skip


@pytest.mark.parametrize(
    ("others", "rules"),
    [
        pytest.param([], [], id="nothing-selected"),
        pytest.param([cluster_role("b", [PODS_LIST], {"x": "1"}), cluster_role("a", [PODS_GET], {"x": "1"})],
                     [PODS_GET, PODS_LIST], id="by-name"),
        pytest.param([cluster_role("a", [PODS_GET, PODS_LIST], {"x": "1"}), cluster_role("b", [PODS_LIST], {"x": "1"})],
                     [PODS_GET, PODS_LIST], id="duplicates-skipped"),
        pytest.param([cluster_role("a", [METRICS], {"tier": "b"}), cluster_role("b", [PODS_GET], {"x": "1"})],
                     [PODS_GET, METRICS], id="selector-by-selector"),
        pytest.param([cluster_role("a", [PODS_GET], {"x": "2"}), cluster_role("b", [PODS_LIST], {"tier": "c"})], [],
                     id="not-matching"),
        pytest.param([cluster_role("a", [{**PODS_GET, "resourceNames": []}], {"x": "1"}),
                      cluster_role("b", [PODS_GET], {"x": "1"})], [{**PODS_GET, "resourceNames": []}],
                     id="empty-list-equals-missing"),
    ],
)  # fmt: skip
def test_aggregated_rules(others: list[Obj], rules: list[Obj]) -> None:
    # The aggregated role matches its own selector; its own rules never count.
    own = {**AGG, "rules": [METRICS]}
    assert aggregated_rules(own, [own, *others]) == rules


def test_same_rules_is_order_sensitive_and_ignores_empty_lists() -> None:
    assert same_rules([PODS_GET], [{**PODS_GET, "resourceNames": []}])
    assert not same_rules([PODS_GET, PODS_LIST], [PODS_LIST, PODS_GET])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("clusterrole-aggregation")) as srv:
        yield srv


async def rules_of(client: ApiClient, name: str) -> list[Obj]:
    return list((await client.get(CLUSTERROLES, name)).get("rules") or [])


async def test_aggregated_role_follows_the_roles_it_selects(server: RunningApiServer) -> None:
    suffix = uuid.uuid4().hex[:6]
    label = f"example.com/aggregate-to-agg-{suffix}"
    agg, part_a, part_b = f"agg-{suffix}", f"part-a-{suffix}", f"part-b-{suffix}"
    async with running_manager(server.kubeconfig, ["clusterrole-aggregation"]) as (client, _):
        await client.create(CLUSTERROLES, cluster_role(agg, [], selectors=[{"matchLabels": {label: "true"}}]))
        await client.create(CLUSTERROLES, cluster_role(part_b, [PODS_LIST], {label: "true"}))

        async def rules_are(expected: list[Obj]) -> bool:
            return await rules_of(client, agg) == expected

        await eventually(lambda: rules_are([PODS_LIST]), "the first labelled role's rules")
        await client.create(CLUSTERROLES, cluster_role(part_a, [PODS_GET, PODS_LIST], {label: "true"}))
        await eventually(lambda: rules_are([PODS_GET, PODS_LIST]), "both roles' rules, by name, without duplicates")

        role = await client.get(CLUSTERROLES, agg)
        managers = {entry.get("manager") for entry in role["metadata"].get("managedFields") or []}
        assert FIELD_MANAGER in managers

        # A change to a selected role shows; an unlabelled role or a removed label drops out.
        part = await client.get(CLUSTERROLES, part_a)
        part["rules"] = [METRICS]
        await client.update(CLUSTERROLES, part)
        await eventually(lambda: rules_are([METRICS, PODS_LIST]), "the changed rules")
        await client.patch(CLUSTERROLES, part_b, {"metadata": {"labels": {label: None}}})
        await eventually(lambda: rules_are([METRICS]), "the unlabelled role's rules gone")
        await client.delete(CLUSTERROLES, part_a)
        await eventually(lambda: rules_are([]), "the deleted role's rules gone")

        # Edits to the aggregated role's rules are undone.
        await client.create(CLUSTERROLES, cluster_role(f"part-c-{suffix}", [PODS_GET], {label: "true"}))
        await eventually(lambda: rules_are([PODS_GET]), "the third role's rules")
        role = await client.get(CLUSTERROLES, agg)
        role["rules"] = [PODS_LIST]
        await client.update(CLUSTERROLES, role)
        await eventually(lambda: rules_are([PODS_GET]), "the hand-edited rules replaced")
