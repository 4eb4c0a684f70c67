"""RBAC's escalation check: nobody grants, through a role or a binding, rights they do not hold.

Upstream does this in the RBAC registries' storage (pkg/registry/rbac/*/policybased);
here it is a validating admission plugin on the four RBAC kinds, run for
requests (the API server's own writes carry no user and are not checked).
A create or update of

* a Role or ClusterRole is allowed when the user is in ``system:masters``, or
  may ``escalate`` roles/clusterroles, or already holds every rule of the new
  object (in its namespace; cluster-wide for a ClusterRole).  Setting an
  ``aggregationRule`` — which gathers anything — needs full authority;
* a RoleBinding or ClusterRoleBinding is allowed when the user is in
  ``system:masters``, or may ``bind`` the referenced role, or holds every
  rule of it (a missing role grants nothing, so binding it is allowed).

Refusals are 403 Forbidden with upstream's wording, listing the missing
rights compacted one per line.
"""

from __future__ import annotations

from collections.abc import Iterable

from skiff.api.status import ApiError
from skiff.apiserver.auth import Attributes as AuthAttributes
from skiff.apiserver.auth import Authorizer, UserInfo
from skiff.apiserver.rbac import ALL, PRIVILEGED_GROUP, RBAC_GROUP, RbacAuthorizer, Rule, compact_string, compile_rules
from skiff.registry.admission import Attributes, Operation, PluginBase, admission_forbidden

ROLE_KINDS = {"roles": "Role", "clusterroles": "ClusterRole"}
BINDING_KINDS = {"rolebindings", "clusterrolebindings"}
FULL_AUTHORITY = (
    Rule((ALL,), (ALL,), (ALL,)),
    Rule((ALL,), non_resource_urls=(ALL,)),
)


class RbacEscalation(PluginBase):
    def __init__(self, authorizer: Authorizer, rbac: RbacAuthorizer) -> None:
        self.authorizer = authorizer
        self.rbac = rbac

    async def validate(self, attrs: Attributes) -> None:
        if attrs.info.group != RBAC_GROUP or attrs.operation not in (Operation.CREATE, Operation.UPDATE):
            return
        if attrs.user is None or attrs.obj is None or attrs.subresource:
            return
        user = attrs.user if isinstance(attrs.user, UserInfo) else _user_info(attrs.user)
        if PRIVILEGED_GROUP in user.groups:
            return
        plural = attrs.info.plural
        if plural in ROLE_KINDS:
            self._check_role(attrs, user, plural)
        elif plural in BINDING_KINDS:
            self._check_binding(attrs, user)

    def _check_role(self, attrs: Attributes, user: UserInfo, plural: str) -> None:
        name = attrs.name if attrs.operation == Operation.UPDATE else ""
        if self._allowed(user, "escalate", plural, attrs.namespace, name):
            return
        obj = attrs.obj or {}
        if obj.get("aggregationRule") and self.rbac.uncovered(user, attrs.namespace, FULL_AUTHORITY):
            raise admission_forbidden(attrs, "must have cluster-admin privileges to use the aggregationRule")
        self._confirm_no_escalation(attrs, user, compile_rules(obj))

    def _check_binding(self, attrs: Attributes, user: UserInfo) -> None:
        ref = (attrs.obj or {}).get("roleRef") or {}
        kind, role_name = str(ref.get("kind", "")), str(ref.get("name", ""))
        role_plural = "clusterroles" if kind == "ClusterRole" else "roles"
        if self._allowed(user, "bind", role_plural, attrs.namespace, role_name):
            return
        index = self.rbac.index
        if kind == "ClusterRole":
            rules = index.cluster_roles.get(role_name, ())
        else:
            rules = index.roles.get((attrs.namespace, role_name), ())
        self._confirm_no_escalation(attrs, user, rules)

    def _allowed(self, user: UserInfo, verb: str, plural: str, namespace: str, name: str) -> bool:
        attributes = AuthAttributes(
            verb=verb,
            resource_request=True,
            namespace=namespace,
            api_group=RBAC_GROUP,
            api_version="*",
            resource=plural,
            name=name,
        )
        return self.authorizer.authorize(user, attributes)[0]

    def _confirm_no_escalation(self, attrs: Attributes, user: UserInfo, rules: Iterable[Rule]) -> None:
        missing = self.rbac.uncovered(user, attrs.namespace, rules)
        if missing:
            raise escalation_error(attrs, user, compact_string(missing))


def escalation_error(attrs: Attributes, user: UserInfo, missing: str) -> ApiError:
    groups = "[" + " ".join(f'"{g}"' for g in user.groups) + "]"
    why = f'user "{user.name}" (groups={groups}) is attempting to grant RBAC permissions not currently held:\n{missing}'
    return admission_forbidden(attrs, why)


def _user_info(user: object) -> UserInfo:
    return UserInfo(
        str(getattr(user, "name", "")),
        str(getattr(user, "uid", "")),
        tuple(getattr(user, "groups", ())),
        dict(getattr(user, "extra", {})),
    )
