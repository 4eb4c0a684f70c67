"""Matching a pod's node constraints: nodeSelector, node affinity terms and taint tolerations.

Semantics follow k8s.io/component-helpers/scheduling/corev1: node selector terms
are ORed, the expressions and fields inside one term are ANDed, a term with no
requirements matches nothing, ``Gt``/``Lt`` compare integers, and matchFields
knows only ``metadata.name``.  A toleration with an empty effect matches every
effect; ``Exists`` with an empty key tolerates every taint.  One definition for
everyone who asks "may this pod be on this node": the scheduler, the DaemonSet
controller and taint-based eviction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Obj = dict[str, Any]


def _parse_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def requirement_matches(expression: Mapping[str, Any], value: str | None) -> bool:
    """One NodeSelectorRequirement against the node's value for its key (None when absent)."""
    operator = expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        have, want = _parse_int(value), _parse_int(str(values[0]))
        if have is None or want is None:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def term_matches(term: Mapping[str, Any], name: str, labels: Mapping[str, str]) -> bool:
    """One NodeSelectorTerm: every matchExpression on labels and every matchField on metadata.name."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    for expression in expressions:
        if not requirement_matches(expression, labels.get(expression.get("key") or "")):
            return False
    for expression in fields:
        value = name if expression.get("key") == "metadata.name" else None
        if not requirement_matches(expression, value):
            return False
    return True


def any_term_matches(terms: Sequence[Mapping[str, Any]], name: str, labels: Mapping[str, str]) -> bool:
    return any(term_matches(term, name, labels) for term in terms)


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """v1.Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    if operator == "Equal":
        return bool(key) and (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerated(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    return any(tolerates(toleration, taint) for toleration in tolerations)


def first_untolerated(
    taints: Sequence[Mapping[str, Any]], tolerations: Sequence[Mapping[str, Any]], effects: tuple[str, ...]
) -> Mapping[str, Any] | None:
    """The first taint with one of ``effects`` that no toleration covers."""
    for taint in taints:
        if taint.get("effect") in effects and not tolerated(tolerations, taint):
            return taint
    return None
