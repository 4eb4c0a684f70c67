"""Validating and mutating webhook configurations, and ValidatingAdmissionPolicies.

Stored and served here; admission calls the webhooks (``registry.admission.webhooks``).
Defaults per pkg/apis/admissionregistration/v1/defaults.go: failurePolicy
Fail, matchPolicy Equivalent, empty namespace/object selectors,
timeoutSeconds 10, rule scope "*", service port 443, and for mutating
webhooks reinvocationPolicy Never.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api.status import Cause
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import ObjectStrategy, SpecStatusStrategy

SIDE_EFFECTS = ("None", "NoneOnDryRun")
FAILURE_POLICIES = ("Fail", "Ignore")


class WebhookConfigurationStrategy(ObjectStrategy):
    tracks_generation = True
    columns = (
        NAME_COLUMN,
        Column("Webhooks", type="integer", description="Webhooks indicates the number of webhooks registered in "
               "this configuration"),
        AGE_COLUMN,
    )  # fmt: skip

    def __init__(self, namespaced: bool = False, mutating: bool = False) -> None:
        super().__init__(namespaced)
        self.mutating = mutating

    def default(self, obj: Obj) -> None:
        for hook in obj.get("webhooks") or []:
            if not isinstance(hook, dict):
                continue
            hook.setdefault("failurePolicy", "Fail")
            hook.setdefault("matchPolicy", "Equivalent")
            hook.setdefault("namespaceSelector", {})
            hook.setdefault("objectSelector", {})
            hook.setdefault("timeoutSeconds", 10)
            if self.mutating:
                hook.setdefault("reinvocationPolicy", "Never")
            for rule in hook.get("rules") or []:
                if isinstance(rule, dict):
                    rule.setdefault("scope", "*")
            service = (hook.get("clientConfig") or {}).get("service")
            if isinstance(service, dict):
                service.setdefault("port", 443)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        seen: set[str] = set()
        for i, hook in enumerate(obj.get("webhooks") or []):
            path = f"webhooks[{i}]"
            if not isinstance(hook, dict):
                causes.append(fe.required(path))
                continue
            name = hook.get("name") or ""
            if not name:
                causes.append(fe.required(f"{path}.name"))
            elif name in seen:
                causes.append(fe.duplicate(f"{path}.name", name))
            seen.add(name)
            if hook.get("sideEffects") not in SIDE_EFFECTS:
                causes.append(fe.not_supported(f"{path}.sideEffects", hook.get("sideEffects"), SIDE_EFFECTS))
            if not hook.get("admissionReviewVersions"):
                causes.append(fe.required(f"{path}.admissionReviewVersions", "must specify one of v1, v1beta1"))
            policy = hook.get("failurePolicy")
            if policy is not None and policy not in FAILURE_POLICIES:
                causes.append(fe.not_supported(f"{path}.failurePolicy", policy, FAILURE_POLICIES))
            config = hook.get("clientConfig") or {}
            if bool(config.get("url")) == bool(config.get("service")):
                causes.append(fe.required(f"{path}.clientConfig", "exactly one of url or service is required"))
        return causes

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        return [len(obj.get("webhooks") or [])]


class ValidatingAdmissionPolicyStrategy(SpecStatusStrategy):
    columns = (
        NAME_COLUMN,
        Column("Validations", type="integer", description="Validations indicates the number of validation rules "
               "defined in this configuration"),
        Column("ParamKind", description="ParamKind specifies the kind of resources used to parameterize this policy"),
        AGE_COLUMN,
    )  # fmt: skip

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("failurePolicy", "Fail")
        constraints = spec.setdefault("matchConstraints", {})
        if isinstance(constraints, dict):
            constraints.setdefault("matchPolicy", "Equivalent")
            constraints.setdefault("namespaceSelector", {})
            constraints.setdefault("objectSelector", {})

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        spec = obj.get("spec") or {}
        kind = spec.get("paramKind")
        param = f"{kind.get('apiVersion', '')}/{kind.get('kind', '')}" if isinstance(kind, dict) else "<unset>"
        return [len(spec.get("validations") or []), param]
