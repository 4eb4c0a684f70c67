"""Conditions whose messages matter: the operator's carry counts, versions and loss windows."""

from __future__ import annotations

from typing import Any

from skiff.client.timefmt import rfc3339
from skiff.controllers.deployment_status import get_condition, new_condition, remove_condition, set_condition


def replace_condition(status: dict[str, Any], kind: str, value: str, reason: str, message: str, now: float) -> None:
    """set_condition, except that a changed message is written too; lastTransitionTime moves only with the status."""
    current = get_condition(status, kind)
    if current is not None and (current.get("reason"), current.get("message")) != (reason, message):
        transition = current.get("lastTransitionTime") if current.get("status") == value else rfc3339(now)
        remove_condition(status, kind)
        set_condition(status, {**new_condition(kind, value, reason, message, now), "lastTransitionTime": transition})
        return
    set_condition(status, new_condition(kind, value, reason, message, now))
