"""RBAC: what Roles and ClusterRoles grant, through RoleBindings and ClusterRoleBindings.

Semantics are upstream's (plugin/pkg/auth/authorizer/rbac and
pkg/apis/rbac/v1 evaluation helpers):

* a request is allowed when any rule of any role bound to the user matches
  it — ClusterRoleBindings first, then the RoleBindings of the request's
  namespace (a RoleBinding may name a ClusterRole; its rules then apply in
  that namespace only);
* a rule matches a resource request when its verbs, apiGroups, resources
  (``pods``, ``pods/log``, ``*``, ``*/scale``) and resourceNames (empty:
  any) all match; a non-resource request when its verbs and nonResourceURLs
  (exact, ``*``, or a ``prefix*``) match;
* a subject is a User (by name), a Group (by membership) or a
  ServiceAccount (the user ``system:serviceaccount:<ns>:<name>``; an empty
  namespace in a RoleBinding means the binding's own);
* there is no deny: RBAC either allows or has no opinion, and with no
  opinion the request is refused.  A binding to a missing role is an
  evaluation error reported in the reason and in SelfSubjectRulesReview's
  ``incomplete``.

``system:masters`` is allowed everything before RBAC is asked, as
kube-apiserver's privileged-group authorizer does, so the admin credential
works before any binding exists.

The authorizer reads the four RBAC watch caches of this API server (an
informer's view, as upstream's listers) and keeps compiled indexes of them,
rebuilt only when one of those caches has applied a change — so the per
request cost is a few set lookups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skiff.apiserver.auth import Attributes, Rules, UserInfo

PRIVILEGED_GROUP = "system:masters"
RBAC_GROUP = "rbac.authorization.k8s.io"
#: The resources the index is built from, in ``RbacObjects`` order.
RBAC_PLURALS = ("roles", "rolebindings", "clusterroles", "clusterrolebindings")
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
ALL = "*"

Obj = dict[str, Any]
#: (roles, role bindings, cluster roles, cluster role bindings)
RbacObjects = tuple[Iterable[Obj], Iterable[Obj], Iterable[Obj], Iterable[Obj]]


def service_account_user(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One PolicyRule, compiled for matching."""

    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset()
    resources: tuple[str, ...] = ()
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> Rule:
        def strings(key: str) -> list[str]:
            value = rule.get(key)
            return [str(v) for v in value] if isinstance(value, list) else []

        return cls(
            frozenset(strings("verbs")),
            frozenset(strings("apiGroups")),
            tuple(strings("resources")),
            frozenset(strings("resourceNames")),
            tuple(strings("nonResourceURLs")),
        )

    def allows(self, attributes: Attributes) -> bool:
        if ALL not in self.verbs and attributes.verb not in self.verbs:
            return False
        if not attributes.resource_request:
            return any(_url_matches(url, attributes.path) for url in self.non_resource_urls)
        return (
            (ALL in self.api_groups or attributes.api_group in self.api_groups)
            and _resource_matches(self.resources, attributes.resource, attributes.subresource)
            and (not self.resource_names or attributes.name in self.resource_names)
        )

    def to_resource_rule(self) -> Obj:
        """SelfSubjectRulesReview's ResourceRule form."""
        out: Obj = {"verbs": sorted(self.verbs), "apiGroups": sorted(self.api_groups)}
        if self.resources:
            out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = sorted(self.resource_names)
        return out

    def to_non_resource_rule(self) -> Obj:
        return {"verbs": sorted(self.verbs), "nonResourceURLs": list(self.non_resource_urls)}


def _resource_matches(resources: Sequence[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for candidate in resources:
        if candidate == ALL or candidate == combined:
            return True
        if subresource and candidate == f"*/{subresource}":
            return True
    return False


def _url_matches(rule_url: str, path: str) -> bool:
    if rule_url == ALL or rule_url == path:
        return True
    return rule_url.endswith(ALL) and path.startswith(rule_url[:-1])


def compile_rules(obj: Mapping[str, Any]) -> tuple[Rule, ...]:
    rules = obj.get("rules")
    return tuple(Rule.of(r) for r in rules if isinstance(r, Mapping)) if isinstance(rules, list) else ()


@dataclass(frozen=True, slots=True)
class Binding:
    """A RoleBinding or ClusterRoleBinding: who (users, groups) gets which role."""

    kind: str  # "RoleBinding" or "ClusterRoleBinding"
    name: str
    namespace: str
    role_kind: str  # "Role" or "ClusterRole"
    role_name: str
    users: frozenset[str]
    groups: frozenset[str]
    subjects: tuple[tuple[str, str], ...]  # (description for reasons, user-or-group key)

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Binding:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        ref = obj.get("roleRef") or {}
        users: set[str] = set()
        groups: set[str] = set()
        described: list[tuple[str, str]] = []
        for subject in obj.get("subjects") or ():
            if not isinstance(subject, Mapping):
                continue
            kind, name = str(subject.get("kind", "")), str(subject.get("name", ""))
            if kind == "User":
                users.add(name)
                described.append((f'User "{name}"', name))
            elif kind == "Group":
                groups.add(name)
                described.append((f'Group "{name}"', name))
            elif kind == "ServiceAccount":
                sa_namespace = str(subject.get("namespace") or namespace)
                user = service_account_user(sa_namespace, name)
                users.add(user)
                described.append((f'ServiceAccount "{name}/{sa_namespace}"', user))
        return cls(
            str(obj.get("kind") or ("RoleBinding" if namespace else "ClusterRoleBinding")),
            str(meta.get("name") or ""),
            namespace,
            str(ref.get("kind", "")),
            str(ref.get("name", "")),
            frozenset(users),
            frozenset(groups),
            tuple(described),
        )

    def applies_to(self, user: UserInfo) -> bool:
        return user.name in self.users or not self.groups.isdisjoint(user.groups)

    def subject_for(self, user: UserInfo) -> str:
        for description, key in self.subjects:
            if key == user.name or key in user.groups:
                return description
        return ""

    def describe(self) -> str:
        name = f"{self.name}/{self.namespace}" if self.namespace else self.name
        return f'{self.kind} "{name}" of {self.role_kind} "{self.role_name}"'


@dataclass(frozen=True)
class RbacIndex:
    """Compiled roles and bindings at one moment."""

    cluster_roles: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    roles: Mapping[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)
    cluster_bindings: tuple[Binding, ...] = ()
    bindings: Mapping[str, tuple[Binding, ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        roles: Iterable[Obj],
        role_bindings: Iterable[Obj],
        cluster_roles: Iterable[Obj],
        cluster_role_bindings: Iterable[Obj],
    ) -> RbacIndex:
        by_namespace: dict[str, list[Binding]] = {}
        for obj in role_bindings:
            binding = Binding.of(obj)
            by_namespace.setdefault(binding.namespace, []).append(binding)
        return cls(
            {_name(r): compile_rules(r) for r in cluster_roles},
            {(_namespace(r), _name(r)): compile_rules(r) for r in roles},
            tuple(Binding.of(b) for b in cluster_role_bindings),
            {ns: tuple(bs) for ns, bs in by_namespace.items()},
        )

    def _rules_of(self, binding: Binding) -> tuple[Rule, ...] | None:
        if binding.role_kind == "ClusterRole":
            return self.cluster_roles.get(binding.role_name)
        if binding.role_kind == "Role" and binding.namespace:
            return self.roles.get((binding.namespace, binding.role_name))
        return None

    def visit(self, user: UserInfo, namespace: str) -> Iterator[tuple[Binding, tuple[Rule, ...] | None]]:
        """Each binding that applies to ``user`` (cluster-wide, then ``namespace``'s) with its role's rules,
        None when the role does not exist."""
        for binding in self.cluster_bindings:
            if binding.applies_to(user):
                yield binding, self._rules_of(binding)
        if namespace:
            for binding in self.bindings.get(namespace, ()):
                if binding.applies_to(user):
                    yield binding, self._rules_of(binding)


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _missing(binding: Binding) -> str:
    kind = "clusterrole" if binding.role_kind == "ClusterRole" else "role"
    return f'{kind}.rbac.authorization.k8s.io "{binding.role_name}" not found'


class RbacAuthorizer:
    """The ``Authorizer`` for ``--authorization-mode RBAC``.

    ``read`` returns (roles, role bindings, cluster roles, cluster role
    bindings); it is called again only when ``token()`` changes.
    """

    def __init__(self, token: Callable[[], object], read: Callable[[], RbacObjects]) -> None:
        self._token_of = token
        self._read = read
        self._token: object = None
        self._index = RbacIndex()

    @property
    def index(self) -> RbacIndex:
        token = self._token_of()
        if token != self._token:
            self._index = RbacIndex.build(*self._read())
            self._token = token
        return self._index

    def authorize(self, user: UserInfo, attributes: Attributes) -> tuple[bool, str]:
        if PRIVILEGED_GROUP in user.groups:
            return True, ""
        errors: list[str] = []
        for binding, rules in self.index.visit(user, attributes.namespace):
            if rules is None:
                errors.append(_missing(binding))
                continue
            if any(rule.allows(attributes) for rule in rules):
                return True, f"RBAC: allowed by {binding.describe()} to {binding.subject_for(user)}"
        return False, f"RBAC: [{', '.join(errors)}]" if errors else ""

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        if PRIVILEGED_GROUP in user.groups:
            return (
                [{"verbs": [ALL], "apiGroups": [ALL], "resources": [ALL]}],
                [{"verbs": [ALL], "nonResourceURLs": [ALL]}],
                False,
            )
        resource_rules: list[Obj] = []
        non_resource_rules: list[Obj] = []
        incomplete = False
        for _, rules in self.index.visit(user, namespace):
            if rules is None:
                incomplete = True
                continue
            for rule in rules:
                if rule.non_resource_urls:
                    non_resource_rules.append(rule.to_non_resource_rule())
                if rule.resources or rule.api_groups:
                    resource_rules.append(rule.to_resource_rule())
        return resource_rules, non_resource_rules, incomplete

    def covers(self, user: UserInfo, namespace: str, wanted: Iterable[Rule]) -> list[Rule]:
        """The rules of ``wanted`` that ``user`` does not hold in ``namespace`` (RBAC's escalation check)."""
        if PRIVILEGED_GROUP in user.groups:
            return []
        held = [rule for _, rules in self.index.visit(user, namespace) if rules for rule in rules]
        return [rule for rule in wanted if not _covered(rule, held)]


def _covered(wanted: Rule, held: Sequence[Rule]) -> bool:
    """Whether ``held`` grants everything ``wanted`` does, broken into single (verb, group, resource, name) and
    (verb, url) parts as upstream's Covers does."""
    for verb in wanted.verbs:
        for url in wanted.non_resource_urls:
            if not any(_holds_url(h, verb, url) for h in held):
                return False
        for group in wanted.api_groups:
            for resource in wanted.resources:
                names = wanted.resource_names or {""}
                for name in names:
                    if not any(_holds_resource(h, verb, group, resource, name) for h in held):
                        return False
    return True


def _holds_url(held: Rule, verb: str, url: str) -> bool:
    if ALL not in held.verbs and verb not in held.verbs:
        return False
    return any(h == ALL or h == url or (h.endswith(ALL) and url.startswith(h[:-1])) for h in held.non_resource_urls)


def _holds_resource(held: Rule, verb: str, group: str, resource: str, name: str) -> bool:
    if ALL not in held.verbs and verb not in held.verbs:
        return False
    if ALL not in held.api_groups and group not in held.api_groups:
        return False
    if ALL not in held.resources and resource not in held.resources:
        _, _, sub = resource.partition("/")
        if not (sub and f"*/{sub}" in held.resources):
            return False
    return not held.resource_names or (bool(name) and name in held.resource_names)
