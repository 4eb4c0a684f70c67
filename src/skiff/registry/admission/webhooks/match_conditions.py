"""matchConditions: CEL expressions that must all hold for a webhook to be called.

As upstream's matchconditions.Matcher: every condition is evaluated with
``object``, ``oldObject`` (null when absent) and ``request`` (the
AdmissionRequest, objects left out); any condition that is false skips the
webhook, whatever errors others had; otherwise an error fails by the
webhook's failurePolicy — ``Ignore`` skips the webhook, ``Fail`` refuses the
request (403 ``<resource> "<name>" is forbidden: <errors>``).

CEL comes from ``cel-python`` (``celpy``) when it is installed.  Its standard
CEL covers what matchConditions usually say (field tests, ``has()``, ``in``,
string functions); Kubernetes' own CEL libraries and the ``authorizer``
variable are not there, and an expression using them is an evaluation error.
Without ``celpy`` every condition is an evaluation error (``CEL is not
available``), so a webhook with matchConditions fails closed or open by its
failurePolicy — never silently called or skipped.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skiff.api.field_errors import aggregate_text
from skiff.registry.admission.webhooks.configuration import MatchCondition

celpy: Any
try:
    import celpy  # type: ignore[import-not-found,unused-ignore]
    from celpy.adapter import json_to_cel  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the environment
    celpy = None

CEL_AVAILABLE = celpy is not None


@dataclass(frozen=True, slots=True)
class MatchResult:
    matches: bool
    #: Why evaluation failed (an aggregate of the conditions' errors); "" when it did not.
    error: str = ""


def evaluate(conditions: Sequence[MatchCondition], variables: Mapping[str, Any]) -> MatchResult:
    """All conditions over ``variables``: (matches, error), before the failurePolicy is applied."""
    errors: list[str] = []
    for condition in conditions:
        try:
            result = _evaluate(condition.expression, variables)
        except _ConditionError as err:
            errors.append(f"expression '{condition.expression}' resulted in error: {err}")
            continue
        if result is False:
            return MatchResult(False)
    if errors:
        return MatchResult(False, aggregate_text(errors))
    return MatchResult(True)


class _ConditionError(Exception):
    pass


def _evaluate(expression: str, variables: Mapping[str, Any]) -> bool:
    if celpy is None:
        raise _ConditionError("CEL is not available (install cel-python)")
    program = _program(expression)
    activation = {name: json_to_cel(value) for name, value in variables.items()}
    try:
        result = program.evaluate(activation)
    except Exception as err:  # celpy raises its own errors and Python's (TypeError, KeyError) alike
        raise _ConditionError(_text(err)) from None
    if isinstance(result, Exception):
        raise _ConditionError(_text(result))
    if not isinstance(result, bool):  # celtypes.BoolType subclasses int, not bool
        if type(result).__name__ != "BoolType":
            raise _ConditionError(f"must evaluate to bool, got {type(result).__name__}")
    return bool(result)


@functools.lru_cache(maxsize=256)
def _program(expression: str) -> Any:
    env = celpy.Environment()
    try:
        return env.program(env.compile(expression))
    except Exception as err:  # CELParseError and friends
        raise _ConditionError(f"compilation failed: {_text(err)}") from None


def _text(err: BaseException) -> str:
    return str(err.args[0]) if err.args else type(err).__name__
