"""Which webhooks a request goes to: upstream's ShouldCallHook, check by check.

A webhook is called when one of its rules matches (``rules.Matcher``:
scope, operation, apiGroup, apiVersion, resource[/subresource] with ``*``
wildcards — ``*`` alone is every resource but no subresource, ``*/*``
everything, ``*/scale`` every scale), its objectSelector matches the labels
of the new or the old object, its namespaceSelector matches the labels of the
request's namespace, and its matchConditions (``match_conditions``) hold.

* Rules are checked first; a request no rule matches never fails on a
  selector (upstream returns "no call" before any selector error).
* The namespaceSelector applies to namespaced requests and to Namespaces
  themselves (their own labels on create/update, the stored ones otherwise);
  cluster-scoped requests always match.  The namespace is read through the
  watch cache, then the store; a missing one is upstream's 404.
* matchPolicy ``Equivalent`` would also try the resource's other versions;
  Skiff serves each resource at one version, so it is ``Exact``.
* Writes of webhook and admission-policy configurations are exempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.api.selectors import LabelSelector
from skiff.api.status import internal_error, not_found
from skiff.registry.admission.chain import Attributes, ObjectReader, Operation
from skiff.registry.admission.webhooks.configuration import EXEMPT_KINDS, GROUP, Rule, Webhook
from skiff.registry.admission.webhooks.review import RequestFacts
from skiff.registry.resource import Obj


def is_exempt(attrs: Attributes) -> bool:
    """rules.IsExemptAdmissionConfigurationResource."""
    return attrs.info.group == GROUP and attrs.info.kind in EXEMPT_KINDS


def rule_matches(rule: Rule, facts: RequestFacts) -> bool:
    return (
        _scope_matches(rule.scope, facts)
        and _any(rule.operations, facts.operation.value)
        and _any(rule.groups, facts.group)
        and _any(rule.versions, facts.version)
        and any(
            (resource in ("*", facts.resource)) and (sub in ("*", facts.subresource))
            for resource, sub in rule.resources
        )
    )


def rules_match(hook: Webhook, facts: RequestFacts) -> bool:
    return any(rule_matches(rule, facts) for rule in hook.rules)


def _any(allowed: frozenset[str], requested: str) -> bool:
    return "*" in allowed or requested in allowed


def _scope_matches(scope: str, facts: RequestFacts) -> bool:
    # A Namespace is cluster-scoped although its requests carry a namespace (its own name).
    if scope == "Namespaced":
        return not facts.is_namespace and bool(facts.namespace)
    if scope == "Cluster":
        return facts.is_namespace or not facts.namespace
    return scope in ("*", "")


def object_selector_matches(hook: Webhook, obj: Obj | None, old: Obj | None) -> bool:
    """object.Matcher: the selector matches the new object's labels or the old one's (absent never matches)."""
    selector = _usable(hook.object_selector)
    if selector.empty:
        return True
    return any(o is not None and selector.matches(_labels(o)) for o in (obj, old))


async def namespace_selector_matches(hook: Webhook, facts: RequestFacts, obj: Obj | None, reader: ObjectReader) -> bool:
    """namespace.Matcher.MatchNamespaceSelector."""
    if not facts.namespace and not facts.is_namespace:
        return True  # cluster-scoped: never exempted
    selector = _usable(hook.namespace_selector)
    if selector.empty:
        return True
    return selector.matches(await namespace_labels(facts, obj, reader))


async def namespace_labels(facts: RequestFacts, obj: Obj | None, reader: ObjectReader) -> Mapping[str, str]:
    """GetNamespaceLabels: a Namespace being written is read from the request, others from the cache/store."""
    if facts.is_namespace and not facts.subresource and facts.operation in (Operation.CREATE, Operation.UPDATE):
        return _labels(obj)
    namespace = await reader.get("", "namespaces", "", facts.namespace, fresh=False)
    if namespace is None:
        raise not_found("namespaces", "", facts.namespace)
    return _labels(namespace)


def _usable(selector: LabelSelector | str) -> LabelSelector:
    if isinstance(selector, str):
        raise internal_error(selector)  # the accessor's GetParsed*Selector error
    return selector


def _labels(obj: Obj | None) -> dict[str, Any]:
    labels = ((obj or {}).get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}
