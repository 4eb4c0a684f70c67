"""Priority admission (plugin/pkg/admission/priority).

Pods (create): ``spec.priorityClassName`` resolves to the PriorityClass's
value and preemption policy; with no name, the global-default class (lowest
value among them) is used, else priority 0 and PreemptLowerPriority.  A pod
that states a priority or preemption policy other than the computed one is
refused (403), as is an unknown class name.  On update the stored values are
kept when the new object omits them (validation refuses changes).

PriorityClasses (create/update): at most one may be the global default.
"""

from __future__ import annotations

from typing import Any

from skiff.registry.admission.chain import (
    Attributes,
    ObjectReader,
    Operation,
    PluginBase,
    admission_forbidden,
)

GROUP = "scheduling.k8s.io"
PREEMPT_LOWER_PRIORITY = "PreemptLowerPriority"
#: scheduling.DefaultPriorityWhenNoDefaultClassExists.
DEFAULT_PRIORITY = 0


class Priority(PluginBase):
    def __init__(self, reader: ObjectReader) -> None:
        self.reader = reader

    async def admit(self, attrs: Attributes) -> None:
        if not attrs.is_kind("", "Pod") or attrs.subresource or attrs.obj is None:
            return
        spec = attrs.obj.get("spec")
        if not isinstance(spec, dict):
            return
        if attrs.operation is Operation.UPDATE and attrs.old is not None:
            old_spec = attrs.old.get("spec") or {}
            for key in ("priority", "preemptionPolicy"):
                if key not in spec and key in old_spec:
                    spec[key] = old_spec[key]
            return
        if attrs.operation is Operation.CREATE:
            await self._admit_new_pod(attrs, spec)

    async def _admit_new_pod(self, attrs: Attributes, spec: dict[str, Any]) -> None:
        name = spec.get("priorityClassName") or ""
        policy: str | None
        if name:
            pc = await self.reader.get(GROUP, "priorityclasses", "", str(name))
            if pc is None:
                raise admission_forbidden(attrs, f"no PriorityClass with name {name} was found")
            value, policy = int(pc.get("value") or 0), pc.get("preemptionPolicy")
        else:
            default = await self._global_default()
            if default is None:
                value, policy = DEFAULT_PRIORITY, PREEMPT_LOWER_PRIORITY
            else:
                spec["priorityClassName"] = (default.get("metadata") or {}).get("name")
                value, policy = int(default.get("value") or 0), default.get("preemptionPolicy")
        given = spec.get("priority")
        if given is not None and given != value:
            raise admission_forbidden(
                attrs,
                f"the integer value of priority ({given}) must not be provided in pod spec; "
                f"priority admission controller computed {value} from the given PriorityClass name",
            )
        spec["priority"] = value
        if policy:
            given_policy = spec.get("preemptionPolicy")
            if given_policy is not None and given_policy != policy:
                raise admission_forbidden(
                    attrs,
                    f"the string value of PreemptionPolicy ({given_policy}) must not be provided in pod spec; "
                    f"priority admission controller computed {policy} from the given PriorityClass name",
                )
            spec["preemptionPolicy"] = policy

    async def _global_default(self) -> dict[str, Any] | None:
        """getDefaultPriorityClass: the global default with the lowest value (from the cache, as upstream's lister)."""
        defaults = [
            pc for pc in await self.reader.list(GROUP, "priorityclasses", "", fresh=False) if pc.get("globalDefault")
        ]
        return min(defaults, key=lambda pc: int(pc.get("value") or 0), default=None)

    async def validate(self, attrs: Attributes) -> None:
        if not attrs.is_kind(GROUP, "PriorityClass") or attrs.subresource or attrs.obj is None:
            return
        if attrs.operation not in (Operation.CREATE, Operation.UPDATE) or not attrs.obj.get("globalDefault"):
            return
        own = (attrs.obj.get("metadata") or {}).get("name")
        for pc in await self.reader.list(GROUP, "priorityclasses", ""):
            other = (pc.get("metadata") or {}).get("name")
            if pc.get("globalDefault") and other != own:
                raise admission_forbidden(
                    attrs, f"PriorityClass {other} is already marked as default. Only one default can exist"
                )
