"""ClusterRole aggregation: an aggregated ClusterRole's rules are the rules of the ClusterRoles it selects.

Upstream: pkg/controller/clusterroleaggregation (ClusterRoleAggregationController).

* A ClusterRole with an ``aggregationRule`` gets, as its ``rules``, the rules of
  every other ClusterRole matching one of its ``clusterRoleSelectors``: selector
  by selector, the matching roles in name order, each role's rules in order,
  a rule already taken (equal field by field, a missing list being an empty
  one) skipped.  This is how ``admin``, ``edit`` and ``view`` pick up the
  ``system:aggregate-to-*`` roles and any role labelled
  ``rbac.authorization.k8s.io/aggregate-to-<name>: "true"``.
* Rules are written only when they differ, by a forced server-side apply of
  ``rules`` with field manager ``clusterrole-aggregation-controller``, as
  upstream does (so the controller owns ``rules``; anything else on the role
  is left alone).
* Any ClusterRole added, changed or deleted may change any aggregation, so
  every event enqueues every aggregated ClusterRole (upstream's enqueue).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from skiff.api.selectors import label_selector_from_structured
from skiff.client.controller import Controller, ControllerContext
from skiff.client.resources import CLUSTERROLES
from skiff.controllers.manager import ControllerSpec

log = logging.getLogger(__name__)

Obj = dict[str, Any]
FIELD_MANAGER = "clusterrole-aggregation-controller"
_RULE_FIELDS = ("apiGroups", "resources", "resourceNames", "nonResourceURLs", "verbs")


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _rule_key(rule: Obj) -> tuple[tuple[str, ...], ...]:
    """A rule as equality.Semantic.DeepEqual compares PolicyRules: a missing list equals an empty one."""
    return tuple(tuple(rule.get(f) or ()) for f in _RULE_FIELDS)


def aggregated_rules(role: Obj, cluster_roles: Iterable[Obj]) -> list[Obj]:
    """The rules ``role``'s aggregationRule gathers from ``cluster_roles`` (syncClusterRole's loop).

    Raises ApiError 400 for a selector that does not parse (the role stays as it is).
    """
    others = sorted((r for r in cluster_roles if _name(r) != _name(role)), key=_name)
    rules: list[Obj] = []
    seen: set[tuple[tuple[str, ...], ...]] = set()
    for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
        matcher = label_selector_from_structured(selector)
        for other in others:
            if not matcher.matches((other.get("metadata") or {}).get("labels")):
                continue
            for rule in other.get("rules") or []:
                key = _rule_key(rule)
                if key not in seen:
                    seen.add(key)
                    rules.append(rule)
    return rules


def same_rules(a: Iterable[Obj], b: Iterable[Obj]) -> bool:
    return [_rule_key(r) for r in a] == [_rule_key(r) for r in b]


class ClusterRoleAggregationController(Controller):
    name = "clusterrole-aggregation"

    def __init__(self, context: ControllerContext) -> None:
        super().__init__(context)
        self.cluster_roles = self.informers.informer(CLUSTERROLES)
        self.cluster_roles.add_handler(
            on_add=lambda _role: self.enqueue_aggregated(),
            on_update=lambda _old, _new: self.enqueue_aggregated(),
            on_delete=lambda _role: self.enqueue_aggregated(),
        )

    def enqueue_aggregated(self) -> None:
        for role in self.cluster_roles.list():
            if role.get("aggregationRule") is not None:
                self.enqueue_obj(role)

    async def sync(self, key: str) -> None:
        role = self.cluster_roles.get(key)
        if role is None or role.get("aggregationRule") is None:
            return
        rules = aggregated_rules(role, self.cluster_roles.list())
        if same_rules(rules, role.get("rules") or []):
            return
        body: Obj = {"apiVersion": CLUSTERROLES.api_version, "kind": CLUSTERROLES.kind, "metadata": {"name": key}}
        body["rules"] = rules
        await self.client.patch(CLUSTERROLES, key, body, patch_type="apply", field_manager=FIELD_MANAGER, force=True)
        log.debug("clusterrole-aggregation: %s now has %d rules", key, len(rules))


CONTROLLERS = [
    ControllerSpec(
        "clusterrole-aggregation",
        ClusterRoleAggregationController,
        workers=5,
        service_account="clusterrole-aggregation-controller",
    )
]
