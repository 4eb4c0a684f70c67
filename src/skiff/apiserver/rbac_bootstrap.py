"""The default RBAC policy and upstream's ``rbac/bootstrap-roles`` post-start hook that keeps it in place.

* ``bootstrap_policy()`` is what upstream's bootstrappolicy package returns with the
  default feature gates (Kubernetes v1.30 line): ClusterRoles (with the controller
  roles ``system:controller:*``), ClusterRoleBindings (with each controller role
  bound to its ServiceAccount in kube-system), and the Roles and RoleBindings of
  kube-system and kube-public.  The data is ``rbac_policy/*.yaml`` (package data,
  parsed once); every object carries the label ``kubernetes.io/bootstrapping:
  rbac-defaults`` and the annotation ``rbac.authorization.kubernetes.io/autoupdate:
  "true"``.  Callers get their own copy.  Skiff's own additions
  (``rbac_policy/skiff-roles.yaml``: roles of Skiff components upstream has no
  role for) follow upstream's objects, kept apart in ``skiff_policy()``.
* ``reconcile_policy(served)`` is the hook (pkg/registry/rbac/rest's
  ensureRBACPolicy over pkg/registry/rbac/reconciliation, never removing anything):
  a missing object is created; an existing one whose autoupdate annotation is not
  ``"false"`` gets the rules (a role), aggregation selectors (an aggregated
  ClusterRole: its rules belong to the clusterrole-aggregation controller and are
  left alone), labels, annotations and subjects (a binding) it lacks; a binding
  whose roleRef differs is deleted and created again.  "Lacks a rule" means not
  covered by the existing rules (upstream's validation.Covers), and what is added
  is the uncovered rules broken down one verb/resource at a time, as upstream adds
  them.  It writes through the served registries, as ``bootstrap`` does, so
  several API servers may run it at once: AlreadyExists and Conflict re-run that
  object's reconciliation a few times.  A pass that leaves failures is retried
  every second until ``deadline_s`` (upstream: 30s); then ``PolicyError``.
  Each pass first runs upstream's two migrations: a cluster's own non-aggregated
  ``admin``/``edit``/``view`` is copied to ``system:aggregate-to-*`` (so its rules
  survive ``admin`` becoming aggregated), and a missing
  ``system:public-info-viewer`` binding starts with ``system:discovery``'s subjects.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from skiff.api.copying import deep_copy
from skiff.api.status import ApiError
from skiff.apiserver.rbac import Rule, uncovered
from skiff.apiserver.served import ResourceRegistry, ServedResources
from skiff.registry.rbac.rolebinding import RBAC_GROUP
from skiff.store.errors import StoreError

log = logging.getLogger(__name__)

Obj = dict[str, Any]

AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING_LABEL = "kubernetes.io/bootstrapping"
BOOTSTRAPPING_VALUE = "rbac-defaults"
CONTROLLER_ROLE_PREFIX = "system:controller:"
CONTROLLER_NAMESPACE = "kube-system"
POLICY_DIR = "rbac_policy"
SKIFF_POLICY_FILE = "skiff-roles.yaml"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
#: retry.DefaultBackoff's steps: how long to wait before re-running one object's reconciliation after a race.
RACE_BACKOFF_S = (0.01, 0.05, 0.25, 1.25)
#: Upstream polls the whole hook every second for 30 seconds before giving up.
DEADLINE_S = 30.0
RETRY_INTERVAL_S = 1.0

#: ClusterRolesToAggregate: roles that became aggregated (v1.9); a cluster's own one is first copied to the new name.
ROLES_TO_AGGREGATE = {
    "admin": "system:aggregate-to-admin",
    "edit": "system:aggregate-to-edit",
    "view": "system:aggregate-to-view",
}
#: ClusterRoleBindingsToSplit: system:public-info-viewer (v1.14) starts with system:discovery's subjects.
BINDINGS_TO_SPLIT = {"system:discovery": "system:public-info-viewer"}
_SYSTEM_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink")

NONE, CREATE, UPDATE, RECREATE = "none", "create", "update", "recreate"


class PolicyError(Exception):
    """Some of the policy could not be reconciled before the deadline."""


@dataclass(frozen=True)
class BootstrapPolicy:
    """Upstream's policy: cluster-wide objects (controller roles and bindings last), namespaced ones by namespace."""

    cluster_roles: list[Obj]
    cluster_role_bindings: list[Obj]
    roles: dict[str, list[Obj]] = field(default_factory=dict)
    role_bindings: dict[str, list[Obj]] = field(default_factory=dict)


# --- the policy -------------------------------------------------------------------------------


def bootstrap_policy() -> BootstrapPolicy:
    cached = _load_policy()
    return _copy(cached)


def skiff_policy() -> BootstrapPolicy:
    """The part of ``bootstrap_policy()`` that is Skiff's, not upstream's (cluster-wide objects only)."""
    return _copy(_load_skiff_policy())


def _copy(cached: BootstrapPolicy) -> BootstrapPolicy:
    return BootstrapPolicy(
        deep_copy(cached.cluster_roles),
        deep_copy(cached.cluster_role_bindings),
        deep_copy(cached.roles),
        deep_copy(cached.role_bindings),
    )


@functools.cache
def _load_policy() -> BootstrapPolicy:
    controller_roles = [_role("ClusterRole", e) for e in _read("controller-roles.yaml")]
    controller_bindings = [_controller_binding(role["metadata"]["name"]) for role in controller_roles]
    roles: dict[str, list[Obj]] = {}
    for entry in _read("namespace-roles.yaml"):
        roles.setdefault(entry["namespace"], []).append(_role("Role", entry))
    bindings: dict[str, list[Obj]] = {}
    for entry in _read("namespace-role-bindings.yaml"):
        bindings.setdefault(entry["namespace"], []).append(_binding("RoleBinding", entry))
    skiff = _load_skiff_policy()
    return BootstrapPolicy(
        cluster_roles=[_role("ClusterRole", e) for e in _read("cluster-roles.yaml")]
        + controller_roles
        + skiff.cluster_roles,
        cluster_role_bindings=[_binding("ClusterRoleBinding", e) for e in _read("cluster-role-bindings.yaml")]
        + controller_bindings
        + skiff.cluster_role_bindings,
        roles=roles,
        role_bindings=bindings,
    )


@functools.cache
def _load_skiff_policy() -> BootstrapPolicy:
    """``skiff-roles.yaml``: controllerRoles (bound like upstream's), clusterRoles, clusterRoleBindings."""
    text = resources.files("skiff.apiserver").joinpath(POLICY_DIR).joinpath(SKIFF_POLICY_FILE).read_text("utf-8")
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError(f"{POLICY_DIR}/{SKIFF_POLICY_FILE}: expected a mapping")
    controller_roles = [_role("ClusterRole", e) for e in doc.get("controllerRoles") or []]
    return BootstrapPolicy(
        cluster_roles=[_role("ClusterRole", e) for e in doc.get("clusterRoles") or []] + controller_roles,
        cluster_role_bindings=[_binding("ClusterRoleBinding", e) for e in doc.get("clusterRoleBindings") or []]
        + [_controller_binding(role["metadata"]["name"]) for role in controller_roles],
    )


def _read(name: str) -> list[dict[str, Any]]:
    text = resources.files("skiff.apiserver").joinpath(POLICY_DIR).joinpath(name).read_text(encoding="utf-8")
    entries = yaml.safe_load(text)
    if not isinstance(entries, list):
        raise ValueError(f"{POLICY_DIR}/{name}: expected a list of entries")
    return entries


def _metadata(entry: dict[str, Any]) -> Obj:
    """addDefaultMetadata: the bootstrapping label and the autoupdate annotation on top of the entry's own."""
    meta: Obj = {"name": entry["name"]}
    if entry.get("namespace"):
        meta["namespace"] = entry["namespace"]
    meta["labels"] = {BOOTSTRAPPING_LABEL: BOOTSTRAPPING_VALUE, **(entry.get("labels") or {})}
    meta["annotations"] = {AUTOUPDATE_ANNOTATION: "true"}
    return meta


def _role(kind: str, entry: dict[str, Any]) -> Obj:
    obj: Obj = {"apiVersion": RBAC_API_VERSION, "kind": kind, "metadata": _metadata(entry)}
    if entry.get("aggregationRule") is not None:
        obj["aggregationRule"] = entry["aggregationRule"]
    obj["rules"] = list(entry.get("rules") or [])
    return obj


def _binding(kind: str, entry: dict[str, Any]) -> Obj:
    obj: Obj = {"apiVersion": RBAC_API_VERSION, "kind": kind, "metadata": _metadata(entry)}
    obj["roleRef"] = {"apiGroup": RBAC_GROUP, **entry["roleRef"]}
    if entry.get("subjects") is not None:
        obj["subjects"] = [_subject(s) for s in entry["subjects"]]
    return obj


def _subject(subject: dict[str, Any]) -> Obj:
    if subject["kind"] == "ServiceAccount":
        return dict(subject)
    return {"apiGroup": RBAC_GROUP, **subject}


def _controller_binding(role_name: str) -> Obj:
    """addControllerRole's binding: the role to the ServiceAccount named for the controller."""
    account = role_name.removeprefix(CONTROLLER_ROLE_PREFIX)
    return _binding(
        "ClusterRoleBinding",
        {
            "name": role_name,
            "roleRef": {"kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": CONTROLLER_NAMESPACE}],
        },
    )


# --- rule coverage (pkg/registry/rbac/validation: Covers, BreakdownRule, ruleCovers) ------------


def uncovered_rules(owner_rules: Sequence[Obj], wanted_rules: Iterable[Obj]) -> list[Obj]:
    """validation.Covers' second result: the broken-down wanted rules no owner rule covers."""
    held = [Rule.of(rule) for rule in owner_rules]
    return [part.to_dict() for part in uncovered(held, (Rule.of(rule) for rule in wanted_rules))]


# --- what to write (pkg/registry/rbac/reconciliation, union mode) ------------------------------


@dataclass(frozen=True)
class Reconciliation:
    """What reconciling one object needs: ``operation`` and the object to write."""

    operation: str
    obj: Obj
    protected: bool = False
    missing_rules: list[Obj] = field(default_factory=list)
    missing_selectors: list[Obj] = field(default_factory=list)
    missing_subjects: list[Obj] = field(default_factory=list)


def _is_protected(existing: Obj) -> bool:
    return ((existing.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE_ANNOTATION) == "false"


def _merge_metadata(result: Obj, expected: Obj) -> bool:
    """Expected labels and annotations under the existing ones (existing values win); True when that adds any."""
    meta, wanted = result.setdefault("metadata", {}), expected.get("metadata") or {}
    changed = False
    for key in ("labels", "annotations"):
        current = meta.get(key) or {}
        merged = {**(wanted.get(key) or {}), **current}
        if merged != current:
            meta[key] = merged
            changed = True
    return changed


def _selectors(role: Obj) -> list[Obj]:
    return list((role.get("aggregationRule") or {}).get("clusterRoleSelectors") or [])


def _selector_key(selector: Obj) -> tuple[Any, ...]:
    expressions = tuple(
        (e.get("key"), e.get("operator"), tuple(e.get("values") or ())) for e in selector.get("matchExpressions") or []
    )
    return tuple(sorted((selector.get("matchLabels") or {}).items())), expressions


def reconcile_role(existing: Obj | None, expected: Obj) -> Reconciliation:
    """computeReconciledRole with removeExtraPermissions off."""
    if existing is None:
        return Reconciliation(CREATE, deep_copy(expected), missing_rules=list(expected.get("rules") or []))
    result = deep_copy(existing)
    changed = _merge_metadata(result, expected)
    missing_rules = uncovered_rules(existing.get("rules") or [], expected.get("rules") or [])
    missing_selectors: list[Obj] = []
    wanted_rule, current_rule = expected.get("aggregationRule"), existing.get("aggregationRule")
    if wanted_rule is None and current_rule is not None:
        del result["aggregationRule"]
        changed = True
    elif wanted_rule is not None and current_rule is None:
        result["aggregationRule"] = deep_copy(wanted_rule)
        result["rules"] = []  # the aggregation controller fills them in
        changed = True
    elif wanted_rule is not None:
        have = {_selector_key(s) for s in _selectors(existing)}
        missing_selectors = [deep_copy(s) for s in _selectors(expected) if _selector_key(s) not in have]
    if missing_rules:
        result["rules"] = list(result.get("rules") or []) + missing_rules
        changed = True
    if missing_selectors:
        result["aggregationRule"]["clusterRoleSelectors"] = _selectors(result) + missing_selectors
        changed = True
    return Reconciliation(
        UPDATE if changed else NONE, result, _is_protected(existing), missing_rules, missing_selectors
    )


def _role_ref_key(binding: Obj) -> tuple[str, str, str]:
    ref = binding.get("roleRef") or {}
    return str(ref.get("apiGroup") or RBAC_GROUP), str(ref.get("kind") or ""), str(ref.get("name") or "")


def _subject_key(subject: Obj) -> tuple[str, str, str, str]:
    """A subject as SetDefaults_Subject leaves it: ServiceAccounts in "", users and groups in RBAC's group."""
    kind = str(subject.get("kind") or "")
    group = subject.get("apiGroup", "" if kind == "ServiceAccount" else RBAC_GROUP)
    return kind, str(group or ""), str(subject.get("name") or ""), str(subject.get("namespace") or "")


def reconcile_binding(existing: Obj | None, expected: Obj) -> Reconciliation:
    """computeReconciledRoleBinding with removeExtraSubjects off; another roleRef means recreate."""
    if existing is None:
        return Reconciliation(CREATE, deep_copy(expected), missing_subjects=list(expected.get("subjects") or []))
    if _role_ref_key(existing) != _role_ref_key(expected):
        return Reconciliation(RECREATE, deep_copy(expected), _is_protected(existing))
    result = deep_copy(existing)
    changed = _merge_metadata(result, expected)
    have = {_subject_key(s) for s in existing.get("subjects") or []}
    missing = [deep_copy(s) for s in expected.get("subjects") or [] if _subject_key(s) not in have]
    if missing:
        result["subjects"] = list(result.get("subjects") or []) + missing
        changed = True
    return Reconciliation(UPDATE if changed else NONE, result, _is_protected(existing), missing_subjects=missing)


# --- the hook ---------------------------------------------------------------------------------


@dataclass
class _Tally:
    created: int = 0
    updated: int = 0
    recreated: int = 0
    failed: list[str] = field(default_factory=list)


async def reconcile_policy(
    served: ServedResources, *, deadline_s: float = DEADLINE_S, retry_interval_s: float = RETRY_INTERVAL_S
) -> None:
    """Create or complete every object of ``bootstrap_policy()``; raise ``PolicyError`` if some never could be."""
    policy = bootstrap_policy()
    work: list[tuple[str, Obj]] = [("clusterroles", r) for r in policy.cluster_roles]
    work += [("clusterrolebindings", b) for b in policy.cluster_role_bindings]
    work += [("roles", r) for _, roles in sorted(policy.roles.items()) for r in roles]
    work += [("rolebindings", b) for _, bindings in sorted(policy.role_bindings.items()) for b in bindings]
    end = time.monotonic() + deadline_s
    while True:
        tally = _Tally()
        try:
            await _prime(served, policy)
        except (ApiError, StoreError) as err:
            log.error("unable to prime the RBAC bootstrap policy: %s", err)
            tally.failed.append("priming")
        for plural, obj in work:
            await _reconcile_logged(served, plural, obj, tally)
        log.info(
            "RBAC bootstrap policy: %d created, %d updated, %d recreated, %d failed",
            tally.created, tally.updated, tally.recreated, len(tally.failed),
        )  # fmt: skip
        if not tally.failed:
            return
        if time.monotonic() + retry_interval_s > end:
            raise PolicyError(f"unable to reconcile the RBAC bootstrap policy: {', '.join(tally.failed)}")
        await asyncio.sleep(retry_interval_s)


def _registry(served: ServedResources, plural: str) -> ResourceRegistry | None:
    row = served.find(RBAC_GROUP, "v1", plural)
    return row.registry if row is not None else None


def _renamed(obj: Obj, name: str) -> Obj:
    """A copy of a stored object that can be created under ``name``."""
    copy = deep_copy(obj)
    meta = copy.setdefault("metadata", {})
    for key in _SYSTEM_FIELDS:
        meta.pop(key, None)
    meta["name"] = name
    return copy


async def _create_unless_exists(registry: ResourceRegistry, obj: Obj) -> None:
    try:
        await registry.create(None, obj)
    except ApiError as err:
        if err.code != 409:
            raise


async def _prime(served: ServedResources, policy: BootstrapPolicy) -> None:
    roles, bindings = _registry(served, "clusterroles"), _registry(served, "clusterrolebindings")
    if roles is not None:
        await _prime_aggregated_roles(roles)
    if bindings is not None:
        await _prime_split_bindings(bindings, {b["metadata"]["name"]: b for b in policy.cluster_role_bindings})


async def _prime_aggregated_roles(roles: ResourceRegistry) -> None:
    """primeAggregatedClusterRoles: keep a cluster's own admin/edit/view rules under the new names."""
    for old, new in ROLES_TO_AGGREGATE.items():
        if await _get(roles, None, new) is not None:
            continue
        existing = await _get(roles, None, old)
        if existing is None:
            continue
        if existing.get("aggregationRule") is not None:
            return  # already migrated: nothing custom is left to copy (upstream returns here too)
        log.info("migrating clusterrole %s to %s", old, new)
        await _create_unless_exists(roles, _renamed(existing, new))


async def _prime_split_bindings(bindings: ResourceRegistry, templates: dict[str, Obj]) -> None:
    """primeSplitClusterRoleBindings: the new binding starts with the old one's subjects, labels and annotations."""
    for old, new in BINDINGS_TO_SPLIT.items():
        existing = await _get(bindings, None, old)
        if existing is None or await _get(bindings, None, new) is not None:
            continue
        log.info("copying subjects, labels and annotations of clusterrolebinding %s to %s", old, new)
        split, source = deep_copy(templates[new]), existing.get("metadata") or {}
        split["metadata"] = {"name": new}
        for key in ("labels", "annotations"):
            if source.get(key) is not None:
                split["metadata"][key] = source[key]
        split.pop("subjects", None)
        if existing.get("subjects") is not None:
            split["subjects"] = existing["subjects"]
        await _create_unless_exists(bindings, split)


def _describe(plural: str, obj: Obj) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{plural[:-1]}.{RBAC_GROUP}/{where}{meta['name']}"


async def _reconcile_logged(served: ServedResources, plural: str, obj: Obj, tally: _Tally) -> None:
    registry = _registry(served, plural)
    if registry is None:
        return  # RBAC is not served (a trimmed resource table)
    what = _describe(plural, obj)
    try:
        result = await _reconcile_one(served, registry, plural, obj)
    except (ApiError, StoreError) as err:
        # Upstream carries on with the rest and retries the pass ("don't fail on failures").
        log.error("unable to reconcile %s: %s", what, err)
        tally.failed.append(what)
        return
    if result.protected:
        if result.operation != NONE:
            log.warning("skipped reconcile-protected %s: %s", what, _change(result))
    elif result.operation == CREATE:
        tally.created += 1
        log.debug("created %s", what)
    elif result.operation == UPDATE:
        tally.updated += 1
        log.info("updated %s: %s", what, _change(result))
    elif result.operation == RECREATE:
        tally.recreated += 1
        log.info("recreated %s: %s", what, _change(result))


def _change(result: Reconciliation) -> str:
    """What an update or recreate is for, in the words of upstream's log lines."""
    if result.operation == RECREATE:
        return "its roleRef differs"
    if result.missing_subjects:
        return f"missing subjects {result.missing_subjects}"
    if result.missing_selectors:
        return f"missing aggregation selectors {result.missing_selectors}"
    if result.missing_rules:
        return f"missing permissions {result.missing_rules}"
    return "missing labels, annotations or aggregation rule"


async def _reconcile_one(served: ServedResources, registry: ResourceRegistry, plural: str, obj: Obj) -> Reconciliation:
    """Read, compute, write; a lost race (AlreadyExists, Conflict, NotFound) re-runs it after a short wait."""
    namespace, name = obj["metadata"].get("namespace"), obj["metadata"]["name"]
    compute = reconcile_binding if plural.endswith("bindings") else reconcile_role
    for delay in (*RACE_BACKOFF_S, None):
        try:
            existing = await _get(registry, namespace, name)
            result = compute(existing, obj)
            if not result.protected:
                await _write(served, registry, result, existing)
            return result
        except ApiError as err:
            if delay is None or err.code not in (404, 409):
                raise
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def _get(registry: ResourceRegistry, namespace: str | None, name: str) -> Obj | None:
    try:
        return await registry.get(namespace, name)
    except ApiError as err:
        if err.code == 404:
            return None
        raise


async def _write(
    served: ServedResources, registry: ResourceRegistry, result: Reconciliation, existing: Obj | None
) -> None:
    meta = result.obj["metadata"]
    namespace, name = meta.get("namespace"), meta["name"]
    if result.operation == CREATE:
        await _ensure_namespace(served, namespace)
        await registry.create(namespace, result.obj)
    elif result.operation == UPDATE:
        # The object carries the resourceVersion it was read at: a concurrent writer makes this a Conflict.
        await registry.update(namespace, name, result.obj)
    elif result.operation == RECREATE:
        assert existing is not None
        uid = (existing.get("metadata") or {}).get("uid")
        await registry.delete(namespace, name, {"preconditions": {"uid": uid}} if uid else None)
        await registry.create(namespace, result.obj)


async def _ensure_namespace(served: ServedResources, namespace: str | None) -> None:
    """tryEnsureNamespace: a Role's namespace is created if it is missing."""
    row = served.find("", "v1", "namespaces")
    if not namespace or row is None:
        return
    try:
        await row.registry.create(None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    except ApiError as err:
        if err.code != 409:
            raise
