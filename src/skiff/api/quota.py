"""Resource quota evaluation: what an object charges to a ResourceQuota, as pure functions.

Upstream splits this between k8s.io/apiserver pkg/quota/v1 (resource-list
arithmetic, ``generic.Matches``, the object-count evaluator) and
pkg/quota/v1/evaluator/core (pods, services, persistentvolumeclaims).  Both
the quota admission plugin (``registry.admission.resource_quota``) and the
resource quota controller (``controllers.resourcequota_usage``) use this
module, so the two can never disagree on what an object costs.

* ``evaluator_for(group, plural)`` is the evaluator upstream registers for a
  resource: ``PodEvaluator``, ``ServiceEvaluator``, ``ClaimEvaluator``, or the generic
  object-count ``Evaluator`` (``count/<resource>[.<group>]``, plus the legacy
  names ``configmaps``, ``secrets``, ``replicationcontrollers`` and
  ``resourcequotas``) for everything else.
* Pods charge ``count/pods`` always; while not terminal (and not past their
  deletion grace period) also ``pods``, ``cpu``/``requests.cpu``,
  ``memory``/``requests.memory``, ``limits.cpu``, ``limits.memory``, the
  ephemeral-storage trio, hugepages and ``requests.<extended resource>``,
  from the pod's requests and limits (containers summed, restartable init
  containers added, the largest init container otherwise, plus overhead —
  ``resourcehelper.PodRequests``/``PodLimits``).
* Scopes: ``spec.scopes`` and ``spec.scopeSelector`` (Terminating,
  NotTerminating, BestEffort, NotBestEffort, PriorityClass with
  In/NotIn/Exists/DoesNotExist, CrossNamespacePodAffinity) select pods only;
  a quota with any scope matches no other kind of object.
* A quota matches an object when the object's evaluator tracks at least one
  resource of the quota's ``status.hard`` and every scope selects it
  (``generic.Matches``).

Nothing here does I/O, reads a clock or mutates its input; malformed
quantities are skipped (validation reports them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from skiff.api.pod_qos import qos_class
from skiff.api.quantity import Quantity, QuantityError, parse_quantity
from skiff.api.selectors import label_selector_from_structured
from skiff.api.status import ApiError

ResourceList = dict[str, Quantity]

CREATE = "CREATE"
UPDATE = "UPDATE"
#: Object counts that predate ``count/<resource>`` and are still charged under their old name.
LEGACY_OBJECT_COUNTS = frozenset({"configmaps", "secrets", "replicationcontrollers", "resourcequotas"})
#: install.ignoredResources: virtual resources, and events (never quota-ed).
IGNORED_RESOURCES = frozenset(
    {
        ("", "bindings"),
        ("", "componentstatuses"),
        ("authentication.k8s.io", "tokenreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "localsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("", "events"),
        ("events.k8s.io", "events"),
    }
)
TERMINAL_PHASES = ("Succeeded", "Failed")
#: Quota tracking these makes every container state them (podEvaluator's validationSet).
MUST_SPECIFY = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})
#: <class>.storageclass.storage.k8s.io/<resource>
STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
BETA_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"

_ONE = Quantity.from_int(1)
_ZERO = Quantity.from_int(0)


# -- resource lists (quota/v1 resources.go) --------------------------------------------------


def parse_list(raw: Any) -> ResourceList:
    """A ``{name: quantity}`` map read from the wire; malformed entries are skipped."""
    out: ResourceList = {}
    if not isinstance(raw, Mapping):
        return out
    for name, value in raw.items():
        try:
            out[str(name)] = parse_quantity(value)
        except (QuantityError, TypeError, ValueError):
            continue
    return out


def format_list(amounts: Mapping[str, Quantity]) -> dict[str, str]:
    return {name: str(amount) for name, amount in amounts.items()}


def add(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    out = dict(a)
    for name, amount in b.items():
        out[name] = out[name] + amount if name in out else amount
    return out


def subtract_non_negative(a: Mapping[str, Quantity], b: Mapping[str, Quantity]) -> ResourceList:
    """SubtractWithNonNegativeResult: ``a - b`` per resource of ``a``, never below zero."""
    out: ResourceList = {}
    for name, amount in a.items():
        left = amount - b[name] if name in b else amount
        out[name] = left if left.nanos > 0 else _ZERO
    return out


def mask(amounts: Mapping[str, Quantity], names: Iterable[str]) -> ResourceList:
    wanted = set(names)
    return {name: amount for name, amount in amounts.items() if name in wanted}


def remove_zeros(amounts: Mapping[str, Quantity]) -> ResourceList:
    return {name: amount for name, amount in amounts.items() if not amount.is_zero}


def negative(amounts: Mapping[str, Quantity]) -> list[str]:
    return sorted(name for name, amount in amounts.items() if amount.nanos < 0)


def exceeded(used: Mapping[str, Quantity], hard: Mapping[str, Quantity]) -> list[str]:
    """LessThanOrEqual's second result: the resources of both whose ``used`` is above ``hard``."""
    return sorted(name for name, limit in hard.items() if name in used and used[name] > limit)


def pretty_print(amounts: Mapping[str, Quantity]) -> str:
    """prettyPrint: ``a=1,b=2`` in resource-name order."""
    return ",".join(f"{name}={amounts[name]}" for name in sorted(amounts))


def object_count_name(group: str, plural: str) -> str:
    """ObjectCountQuotaResourceNameFor: ``count/pods``, ``count/deployments.apps``."""
    return f"count/{plural}.{group}" if group else f"count/{plural}"


# -- scopes (generic.Matches, getScopeSelectorsFromQuota) -----------------------------------------


def scope_selectors(quota: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``spec.scopes`` as Exists requirements, then ``spec.scopeSelector.matchExpressions``."""
    spec = quota.get("spec") or {}
    selectors = [{"scopeName": str(scope), "operator": "Exists"} for scope in spec.get("scopes") or []]
    expressions = (spec.get("scopeSelector") or {}).get("matchExpressions") or []
    selectors.extend(dict(e) for e in expressions if isinstance(e, Mapping))
    return selectors


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """ScopedResourceSelectorRequirementsAsSelector(selector).Matches(labels)."""
    expression = {
        "key": selector.get("scopeName", ""),
        "operator": selector.get("operator", ""),
        "values": list(selector.get("values") or []),
    }
    try:
        return label_selector_from_structured({"matchExpressions": [expression]}).matches(labels)
    except ApiError:
        return False  # validation keeps malformed selectors out of stored quotas


# -- evaluators -----------------------------------------------------------------------------------


class Evaluator:
    """generic.objectCountEvaluator (one of the object, on create; no scopes), and the base of the others."""

    def __init__(self, group: str, plural: str) -> None:
        self.group, self.plural = group, plural
        names = [object_count_name(group, plural)]
        if not group and plural in LEGACY_OBJECT_COUNTS:
            names.append(plural)
        self.resource_names = tuple(names)

    def handles(self, operation: str) -> bool:
        return operation == CREATE

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return [name for name in names if name in self.resource_names]

    def matches_scope(self, selector: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
        return False  # MatchesNoScopeFunc

    def constraints(self, required: Sequence[str], obj: Mapping[str, Any]) -> str:
        return ""

    def usage(self, obj: Mapping[str, Any], now: datetime | None = None) -> ResourceList:
        return dict.fromkeys(self.resource_names, _ONE)


class ServiceEvaluator(Evaluator):
    """serviceEvaluator: ``services``, ``services.nodeports``, ``services.loadbalancers`` on create and update."""

    def __init__(self) -> None:
        super().__init__("", "services")
        self.resource_names = ("count/services", "services", "services.nodeports", "services.loadbalancers")

    def handles(self, operation: str) -> bool:
        return operation in (CREATE, UPDATE)  # a service's type can change

    def usage(self, obj: Mapping[str, Any], now: datetime | None = None) -> ResourceList:
        spec = obj.get("spec") or {}
        ports = [p for p in spec.get("ports") or [] if isinstance(p, Mapping)]
        usage = {"count/services": _ONE, "services": _ONE, "services.loadbalancers": _ZERO, "services.nodeports": _ZERO}
        kind = spec.get("type")
        if kind == "NodePort":
            usage["services.nodeports"] = Quantity.from_int(len(ports))
        elif kind == "LoadBalancer":
            if spec.get("allocateLoadBalancerNodePorts") is False:
                # Node ports are not allocated: only the ports that ask for one count.
                usage["services.nodeports"] = Quantity.from_int(sum(1 for p in ports if p.get("nodePort")))
            else:
                usage["services.nodeports"] = Quantity.from_int(len(ports))
            usage["services.loadbalancers"] = _ONE
        return usage


def claim_storage_class(claim: Mapping[str, Any]) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation wins over ``spec.storageClassName``."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    if BETA_STORAGE_CLASS_ANNOTATION in annotations:
        return str(annotations[BETA_STORAGE_CLASS_ANNOTATION])
    return str((claim.get("spec") or {}).get("storageClassName") or "")


class ClaimEvaluator(Evaluator):
    """pvcEvaluator: claims and requested storage, also per storage class; create and update (expansion)."""

    RESOURCES = ("persistentvolumeclaims", "requests.storage")

    def __init__(self) -> None:
        super().__init__("", "persistentvolumeclaims")

    def handles(self, operation: str) -> bool:
        return operation in (CREATE, UPDATE)

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        out = []
        for name in names:
            if name in ("count/persistentvolumeclaims", *self.RESOURCES) or any(
                name.endswith(STORAGE_CLASS_SUFFIX + resource) for resource in self.RESOURCES
            ):
                out.append(name)
        return out

    def usage(self, obj: Mapping[str, Any], now: datetime | None = None) -> ResourceList:
        usage = {"persistentvolumeclaims": _ONE, "count/persistentvolumeclaims": _ONE}
        storage_class = claim_storage_class(obj)
        if storage_class:
            usage[f"{storage_class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = _ONE
        storage = claim_storage(obj)
        if storage is not None:
            usage["requests.storage"] = storage
            if storage_class:
                usage[f"{storage_class}{STORAGE_CLASS_SUFFIX}requests.storage"] = storage
        return usage


def claim_storage(claim: Mapping[str, Any]) -> Quantity | None:
    """getStorageUsage: the requested storage, or the allocated size when larger; whole bytes."""
    requested = parse_list(((claim.get("spec") or {}).get("resources") or {}).get("requests")).get("storage")
    if requested is None:
        return None
    allocated = parse_list((claim.get("status") or {}).get("allocatedResources")).get("storage")
    if allocated is not None and allocated > requested:
        requested = allocated
    return _round_up_to_units(requested)


def _round_up_to_units(amount: Quantity) -> Quantity:
    whole = amount.value()
    return amount if whole * 10**9 == amount.nanos else Quantity.from_int(whole, amount.format)


# -- pods (evaluator/core/pods.go, api/v1/resource helpers) ---------------------------------------------


def _is_native(name: str) -> bool:
    """helper.IsNativeResource: no domain, or a kubernetes.io one."""
    return "/" not in name or "kubernetes.io/" in name


def _is_extended(name: str) -> bool:
    """helper.IsExtendedResourceName: a domain-qualified name outside kubernetes.io, not ``requests.*``."""
    return not _is_native(name) and not name.startswith("requests.")


def _containers(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return [c for c in spec.get(key) or [] if isinstance(c, Mapping)]


def _resources(container: Mapping[str, Any], kind: str) -> ResourceList:
    return parse_list((container.get("resources") or {}).get(kind))


def _max_into(into: ResourceList, other: Mapping[str, Quantity]) -> None:
    for name, amount in other.items():
        if name not in into or into[name] < amount:
            into[name] = amount


def pod_amounts(spec: Mapping[str, Any], kind: str) -> ResourceList:
    """PodRequests (``kind="requests"``) / PodLimits (``"limits"``) of a pod spec.

    Containers are summed; a restartable (sidecar) init container adds to
    that sum and stays running for the init containers after it; the pod
    needs the larger of that and its largest init container; overhead is
    added (to limits only where a limit is set).
    """
    total: ResourceList = {}
    for container in _containers(spec, "containers"):
        total = add(total, _resources(container, kind))
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for container in _containers(spec, "initContainers"):
        own = _resources(container, kind)
        if container.get("restartPolicy") == "Always":
            total = add(total, own)
            sidecars = add(sidecars, own)
            _max_into(init_peak, sidecars)
        else:
            _max_into(init_peak, add(own, sidecars))
    _max_into(total, init_peak)
    overhead = parse_list(spec.get("overhead"))
    if kind == "requests":
        total = add(total, overhead)
    else:
        total = {name: amount + overhead[name] if name in overhead else amount for name, amount in total.items()}
    return total


def pod_compute_usage(requests: Mapping[str, Quantity], limits: Mapping[str, Quantity]) -> ResourceList:
    """podComputeUsageHelper: what a pod (or one container) with these requests and limits charges."""
    usage: ResourceList = {"pods": _ONE}
    for resource in ("cpu", "memory", "ephemeral-storage"):
        if resource in requests:
            usage[resource] = requests[resource]
            usage[f"requests.{resource}"] = requests[resource]
        if resource in limits:
            usage[f"limits.{resource}"] = limits[resource]
    for name, amount in requests.items():
        if name.startswith("hugepages-"):
            usage[name] = amount
            usage[f"requests.{name}"] = amount
        if _is_extended(name):
            usage[f"requests.{name}"] = amount
    return usage


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def pod_is_charged(pod: Mapping[str, Any], now: datetime | None) -> bool:
    """QuotaV1Pod: not terminal, and not past the grace period of its deletion."""
    if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return False
    meta = pod.get("metadata") or {}
    deleted = _parse_time(meta.get("deletionTimestamp"))
    grace = meta.get("deletionGracePeriodSeconds")
    if now is not None and deleted is not None and isinstance(grace, int):
        return now <= deleted + timedelta(seconds=grace)
    return True


def is_terminating(pod: Mapping[str, Any]) -> bool:
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    return isinstance(deadline, int) and deadline >= 0


def is_best_effort(pod: Mapping[str, Any]) -> bool:
    return qos_class(pod.get("spec") or {}) == "BestEffort"


def uses_cross_namespace_affinity(pod: Mapping[str, Any]) -> bool:
    affinity = (pod.get("spec") or {}).get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        rules = affinity.get(kind) or {}
        terms = list(rules.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        preferred = rules.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        terms += [weighted.get("podAffinityTerm") or {} for weighted in preferred]
        if any(term.get("namespaces") or term.get("namespaceSelector") is not None for term in terms):
            return True
    return False


class PodEvaluator(Evaluator):
    """podEvaluator: pods are charged on create (their resources are immutable)."""

    RESOURCES = (
        "count/pods",
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
    )

    def __init__(self) -> None:
        super().__init__("", "pods")

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        out = []
        for name in names:
            if (
                name in self.RESOURCES
                or name.startswith(("hugepages-", "requests.hugepages-"))
                or (not _is_native(name) and name.startswith("requests."))
            ):
                out.append(name)
        return out

    def matches_scope(self, selector: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
        scope = selector.get("scopeName")
        if scope == "Terminating":
            return is_terminating(obj)
        if scope == "NotTerminating":
            return not is_terminating(obj)
        if scope == "BestEffort":
            return is_best_effort(obj)
        if scope == "NotBestEffort":
            return not is_best_effort(obj)
        if scope == "CrossNamespacePodAffinity":
            return uses_cross_namespace_affinity(obj)
        if scope == "PriorityClass":
            priority_class = str((obj.get("spec") or {}).get("priorityClassName") or "")
            if selector.get("operator") == "Exists":
                return bool(priority_class)
            return _selector_matches(selector, {"PriorityClass": priority_class} if priority_class else {})
        return False

    def constraints(self, required: Sequence[str], obj: Mapping[str, Any]) -> str:
        """Constraints: with cpu/memory quota'd, every container must state them.  "" when it does."""
        wanted = set(required) & MUST_SPECIFY
        missing: dict[str, set[str]] = {}
        spec = obj.get("spec") or {}
        for container in [*_containers(spec, "containers"), *_containers(spec, "initContainers")]:
            stated = pod_compute_usage(_resources(container, "requests"), _resources(container, "limits"))
            for name in wanted - set(stated):
                missing.setdefault(name, set()).add(str(container.get("name", "")))
        if not missing:
            return ""
        parts = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
        return "must specify " + "; ".join(parts)

    def usage(self, obj: Mapping[str, Any], now: datetime | None = None) -> ResourceList:
        """PodUsageFunc: ``count/pods`` always; compute resources while the pod is charged."""
        usage: ResourceList = {"count/pods": _ONE}
        if not pod_is_charged(obj, now):
            return usage
        spec = obj.get("spec") or {}
        return add(usage, pod_compute_usage(pod_amounts(spec, "requests"), pod_amounts(spec, "limits")))


def evaluator_for(group: str, plural: str) -> Evaluator:
    if not group and plural == "pods":
        return PodEvaluator()
    if not group and plural == "services":
        return ServiceEvaluator()
    if not group and plural == "persistentvolumeclaims":
        return ClaimEvaluator()
    return Evaluator(group, plural)


def quota_matches(quota: Mapping[str, Any], evaluator: Evaluator, obj: Mapping[str, Any]) -> bool:
    """generic.Matches: the evaluator tracks a resource of ``status.hard`` and every scope selects ``obj``."""
    hard = (quota.get("status") or {}).get("hard") or {}
    if not evaluator.matching_resources(hard):
        return False
    return all(evaluator.matches_scope(selector, obj) for selector in scope_selectors(quota))
