"""Roles and ClusterRoles (rbac.authorization.k8s.io/v1): path-segment names, rule shape.

There is no printer for roles upstream: kubectl shows the default table
(Name, Created At).  PUT may create (AllowCreateOnUpdate).
"""

from __future__ import annotations

from skiff.api import field_errors as fe
from skiff.api import name_rules
from skiff.api.status import Cause
from skiff.registry.resource import Obj
from skiff.registry.strategies import NameRule, ObjectStrategy

NAMESPACED_URLS = "namespaced rules cannot apply to non-resource URLs"
MIXED_RULE = "rules cannot apply to both regular resources and non-resource URLs"


class RoleStrategy(ObjectStrategy):
    name_rule: NameRule = staticmethod(name_rules.name_is_path_segment)
    allow_create_on_update = True

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for i, rule in enumerate(obj.get("rules") or []):
            path = f"rules[{i}]"
            if not isinstance(rule, dict):
                causes.append(fe.required(path))
                continue
            if not rule.get("verbs"):
                causes.append(fe.required(f"{path}.verbs", "verbs must contain at least one value"))
            urls = rule.get("nonResourceURLs")
            if urls:
                if self.namespaced:
                    causes.append(fe.invalid(f"{path}.nonResourceURLs", urls, NAMESPACED_URLS))
                if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                    causes.append(fe.invalid(f"{path}.nonResourceURLs", urls, MIXED_RULE))
            elif not rule.get("resources"):
                causes.append(fe.required(f"{path}.resources", "resource rules must supply at least one resource"))
            elif not rule.get("apiGroups"):
                causes.append(fe.required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
        return causes
