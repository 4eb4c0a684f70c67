"""DefaultTolerationSeconds (plugin/pkg/admission/defaulttolerationseconds).

Every pod tolerates the ``not-ready`` and ``unreachable`` NoExecute taints
for 300 s unless it already tolerates them (a toleration with that key or an
empty key, and effect NoExecute or empty, counts).  Runs on pod create and
update, main resource only.
"""

from __future__ import annotations

from typing import Any

from skiff.registry.admission.chain import Attributes, Operation, PluginBase

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300


def _tolerates(toleration: Any, key: str) -> bool:
    if not isinstance(toleration, dict):
        return False
    return toleration.get("key") in (key, "", None) and toleration.get("effect") in ("NoExecute", "", None)


def add_default_tolerations(spec: dict[str, Any], seconds: int = DEFAULT_TOLERATION_SECONDS) -> None:
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    added = list(tolerations)
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not any(_tolerates(t, key) for t in tolerations):
            added.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds})
    if len(added) != len(tolerations):
        spec["tolerations"] = added


class DefaultTolerationSeconds(PluginBase):
    def __init__(self, seconds: int = DEFAULT_TOLERATION_SECONDS) -> None:
        self.seconds = seconds

    async def admit(self, attrs: Attributes) -> None:
        if not attrs.is_kind("", "Pod") or attrs.subresource or attrs.obj is None:
            return
        if attrs.operation not in (Operation.CREATE, Operation.UPDATE):
            return
        spec = attrs.obj.get("spec")
        if isinstance(spec, dict):
            add_default_tolerations(spec, self.seconds)
