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
    """One PolicyRule, its lists kept in order (escalation messages and reconciled roles print them)."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> Rule:
        def strings(key: str) -> tuple[str, ...]:
            value = rule.get(key)
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        return cls(
            strings("verbs"),
            strings("apiGroups"),
            strings("resources"),
            strings("resourceNames"),
            strings("nonResourceURLs"),
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

    def to_dict(self) -> Obj:
        """The PolicyRule (also SelfSubjectRulesReview's ResourceRule/NonResourceRule), empty lists left out."""
        out: Obj = {"verbs": list(self.verbs)}
        for key, values in (
            ("apiGroups", self.api_groups),
            ("resources", self.resources),
            ("resourceNames", self.resource_names),
            ("nonResourceURLs", self.non_resource_urls),
        ):
            if values:
                out[key] = list(values)
        return out


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

    def subject_for(self, user: UserInfo) -> str:
        for description, key in self.subjects:
            if key == user.name or key in user.groups:
                return description
        return ""

    def describe(self) -> str:
        name = f"{self.name}/{self.namespace}" if self.namespace else self.name
        return f'{self.kind} "{name}" of {self.role_kind} "{self.role_name}"'


class BindingScope:
    """The bindings of one scope (cluster-wide, or one namespace) looked up by subject, kept in list order."""

    def __init__(self, bindings: Iterable[Binding]) -> None:
        self.bindings = tuple(bindings)
        self._by_user: dict[str, list[int]] = {}
        self._by_group: dict[str, list[int]] = {}
        for position, binding in enumerate(self.bindings):
            for user in binding.users:
                self._by_user.setdefault(user, []).append(position)
            for group in binding.groups:
                self._by_group.setdefault(group, []).append(position)

    def applying_to(self, user: UserInfo) -> list[Binding]:
        positions = list(self._by_user.get(user.name, ()))
        for group in user.groups:
            positions += self._by_group.get(group, ())
        return [self.bindings[p] for p in sorted(set(positions))]


@dataclass(frozen=True)
class RbacIndex:
    """Compiled roles and bindings at one moment."""

    cluster_roles: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    roles: Mapping[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)
    cluster_bindings: BindingScope = field(default_factory=lambda: BindingScope(()))
    bindings: Mapping[str, BindingScope] = field(default_factory=dict)

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
            BindingScope(Binding.of(b) for b in cluster_role_bindings),
            {ns: BindingScope(bs) for ns, bs in by_namespace.items()},
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
        for binding in self.cluster_bindings.applying_to(user):
            yield binding, self._rules_of(binding)
        scope = self.bindings.get(namespace) if namespace else None
        if scope is not None:
            for binding in scope.applying_to(user):
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
                    non_resource_rules.append(
                        {"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)}
                    )
                if rule.resources or rule.api_groups:
                    resource_rules.append(
                        Rule(rule.verbs, rule.api_groups, rule.resources, rule.resource_names).to_dict()
                    )
        return resource_rules, non_resource_rules, incomplete

    def uncovered(self, user: UserInfo, namespace: str, wanted: Iterable[Rule]) -> list[Rule]:
        """The parts of ``wanted`` that ``user`` does not hold in ``namespace`` (RBAC's escalation check)."""
        if PRIVILEGED_GROUP in user.groups:
            return []
        return uncovered([rule for _, rules in self.index.visit(user, namespace) if rules for rule in rules], wanted)


def uncovered(held: Sequence[Rule], wanted: Iterable[Rule]) -> list[Rule]:
    """The single-permission parts of ``wanted`` no rule of ``held`` grants (upstream's Covers: each rule broken
    down to one verb on one resource (and name) of one group, or one verb on one URL)."""
    return [part for rule in wanted for part in breakdown(rule) if not any(holds(h, part) for h in held)]


def breakdown(rule: Rule) -> Iterator[Rule]:
    """upstream's BreakdownRule, in its order: group, resource, verb, name; then URL, verb."""
    for group in rule.api_groups:
        for resource in rule.resources:
            for verb in rule.verbs:
                if rule.resource_names:
                    for name in rule.resource_names:
                        yield Rule((verb,), (group,), (resource,), (name,))
                else:
                    yield Rule((verb,), (group,), (resource,))
    for url in rule.non_resource_urls:
        for verb in rule.verbs:
            yield Rule((verb,), non_resource_urls=(url,))


def holds(held: Rule, part: Rule) -> bool:
    """Whether ``held`` grants the broken-down rule ``part`` (upstream's ruleCovers)."""
    if ALL not in held.verbs and not set(part.verbs) <= set(held.verbs):
        return False
    if not all(_url_covers(held.non_resource_urls, url) for url in part.non_resource_urls):
        return False
    if part.api_groups and ALL not in held.api_groups and not set(part.api_groups) <= set(held.api_groups):
        return False
    if not all(_resource_covered(held.resources, resource) for resource in part.resources):
        return False
    return not held.resource_names or (
        bool(part.resource_names) and set(part.resource_names) <= set(held.resource_names)
    )


def _url_covers(held_urls: Sequence[str], url: str) -> bool:
    return any(h == url or (h.endswith(ALL) and url.startswith(h[:-1])) for h in held_urls)


def _resource_covered(held_resources: Sequence[str], resource: str) -> bool:
    if ALL in held_resources or resource in held_resources:
        return True
    _, slash, sub = resource.partition("/")
    return bool(slash) and f"*/{sub}" in held_resources


def compact_string(rules: Iterable[Rule]) -> str:
    """Missing permissions as upstream prints them: single-resource rules merged by verb, one
    ``{APIGroups:["g"], Resources:["r"], Verbs:["get" "list"]}`` per line, sorted."""
    merged: dict[tuple[str, str], list[str]] = {}
    lines: set[str] = set()
    for rule in rules:
        if rule.resources and not rule.resource_names:
            (group,) = rule.api_groups
            merged.setdefault((group, rule.resources[0]), []).extend(sorted(rule.verbs))
        else:
            lines.add(
                _describe(rule.api_groups, rule.resources, rule.non_resource_urls, rule.resource_names, rule.verbs)
            )
    for (group, resource), verbs in merged.items():
        lines.add(_describe([group], [resource], (), (), verbs))
    return "\n".join(sorted(lines))


def _describe(
    groups: Iterable[str], resources: Iterable[str], urls: Iterable[str], names: Iterable[str], verbs: Iterable[str]
) -> str:
    parts = []
    for label, values in (
        ("APIGroups", list(groups)),
        ("Resources", list(resources)),
        ("NonResourceURLs", list(urls)),
        ("ResourceNames", sorted(names)),
        ("Verbs", list(verbs)),
    ):
        if values:
            parts.append(f"{label}:[{' '.join(_go_quote(v) for v in values)}]")
    return "{" + ", ".join(parts) + "}"


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
