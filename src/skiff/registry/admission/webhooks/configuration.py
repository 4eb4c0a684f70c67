"""Webhook configurations, read from the served registries and compiled once per change.

``WebhookSource(reader, mutating)`` is upstream's configuration manager
(pkg/admission/configuration): ``await source.webhooks()`` lists the
Mutating/ValidatingWebhookConfigurations through the watch cache
(``fresh=False``, an informer's view) and returns their webhooks as frozen
``Webhook`` values, configurations sorted by name and webhooks in their
order, as upstream calls them.  The compiled list is kept until a
configuration's resourceVersion changes, so a write with nothing configured
costs one cache read.

Compiling never fails: a selector the API accepted but that does not parse,
or a caBundle that is not base64, is kept as the error it is and reported
when a request matches the webhook (upstream's accessors parse lazily too).
Defaults are the API's (``webhookconfiguration.py``); they are re-applied here
so that an object written before they existed reads the same.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.api.selectors import LabelSelector, label_selector_from_structured
from skiff.api.status import ApiError
from skiff.registry.admission.chain import ObjectReader
from skiff.registry.resource import Obj

GROUP = "admissionregistration.k8s.io"
MUTATING_PLURAL = "mutatingwebhookconfigurations"
VALIDATING_PLURAL = "validatingwebhookconfigurations"
#: Kinds whose writes no webhook sees (rules.IsExemptAdmissionConfigurationResource): a bad webhook
#: must never lock its own configuration in.
EXEMPT_KINDS = frozenset(
    {
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    }
)
DEFAULT_TIMEOUT_S = 10
EVERYTHING = LabelSelector.everything()
DEFAULT_SERVICE_PORT = 443


@dataclass(frozen=True, slots=True)
class Rule:
    """admissionregistrationv1.RuleWithOperations; ``resources`` split into (resource, subresource)."""

    operations: frozenset[str]
    groups: frozenset[str]
    versions: frozenset[str]
    resources: tuple[tuple[str, str], ...]
    scope: str = "*"


@dataclass(frozen=True, slots=True)
class ServiceReference:
    namespace: str
    name: str
    port: int = DEFAULT_SERVICE_PORT
    path: str = ""

    @property
    def host(self) -> str:
        """The name the serving certificate must carry (upstream dials ``<svc>.<ns>.svc``)."""
        return f"{self.name}.{self.namespace}.svc"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the webhook is: ``url``, or ``service``; ``ca_bundle`` is PEM (empty: the system roots)."""

    url: str = ""
    service: ServiceReference | None = None
    ca_bundle: bytes = b""
    #: Why no client can be built from this config (a caBundle that is not base64), if so.
    error: str = ""


@dataclass(frozen=True, slots=True)
class MatchCondition:
    name: str
    expression: str


@dataclass(frozen=True, slots=True)
class Webhook:
    """One webhook of a configuration, as the dispatchers need it."""

    #: ``<configuration>/<webhook>/<index>``: identifies the webhook across reinvocation rounds.
    uid: str
    name: str
    configuration: str
    rules: tuple[Rule, ...]
    client: ClientConfig
    failure_policy: str = "Fail"
    match_policy: str = "Equivalent"
    #: A selector, or why it does not parse.
    namespace_selector: LabelSelector | str = EVERYTHING
    object_selector: LabelSelector | str = EVERYTHING
    side_effects: str | None = None
    timeout_s: int = DEFAULT_TIMEOUT_S
    review_versions: tuple[str, ...] = ("v1",)
    reinvocation_policy: str = "Never"
    match_conditions: tuple[MatchCondition, ...] = ()

    @property
    def fails_open(self) -> bool:
        return self.failure_policy == "Ignore"


class WebhookSource:
    """The webhooks of every Mutating (or Validating) WebhookConfiguration, recompiled on change."""

    def __init__(self, reader: ObjectReader, *, mutating: bool) -> None:
        self.reader = reader
        self.plural = MUTATING_PLURAL if mutating else VALIDATING_PLURAL
        self._signature: tuple[tuple[str, str], ...] = ()
        self._webhooks: tuple[Webhook, ...] = ()

    async def webhooks(self) -> tuple[Webhook, ...]:
        configs = await self.reader.list(GROUP, self.plural, "", fresh=False)
        signature = tuple(sorted(_identity(c) for c in configs))
        if signature != self._signature:
            ordered = sorted(configs, key=lambda c: str((c.get("metadata") or {}).get("name") or ""))
            self._webhooks = tuple(hook for config in ordered for hook in compile_configuration(config))
            self._signature = signature
        return self._webhooks


def _identity(config: Obj) -> tuple[str, str]:
    meta = config.get("metadata") or {}
    return str(meta.get("name") or ""), str(meta.get("resourceVersion") or "")


def compile_configuration(config: Obj) -> list[Webhook]:
    name = str((config.get("metadata") or {}).get("name") or "")
    hooks = config.get("webhooks") or []
    return [compile_webhook(name, i, hook) for i, hook in enumerate(hooks) if isinstance(hook, dict)]


def compile_webhook(configuration: str, index: int, hook: Mapping[str, Any]) -> Webhook:
    name = str(hook.get("name") or "")
    timeout = hook.get("timeoutSeconds")
    return Webhook(
        uid=f"{configuration}/{name}/{index}",
        name=name,
        configuration=configuration,
        rules=tuple(_rule(r) for r in hook.get("rules") or [] if isinstance(r, dict)),
        client=_client_config(hook.get("clientConfig") or {}),
        failure_policy=str(hook.get("failurePolicy") or "Fail"),
        match_policy=str(hook.get("matchPolicy") or "Equivalent"),
        namespace_selector=_selector(hook.get("namespaceSelector")),
        object_selector=_selector(hook.get("objectSelector")),
        side_effects=hook.get("sideEffects"),
        timeout_s=timeout if isinstance(timeout, int) and timeout > 0 else DEFAULT_TIMEOUT_S,
        review_versions=tuple(str(v) for v in hook.get("admissionReviewVersions") or ()),
        reinvocation_policy=str(hook.get("reinvocationPolicy") or "Never"),
        match_conditions=tuple(
            MatchCondition(str(c.get("name") or ""), str(c.get("expression") or ""))
            for c in hook.get("matchConditions") or []
            if isinstance(c, dict)
        ),
    )


def _rule(rule: Mapping[str, Any]) -> Rule:
    def strings(key: str) -> frozenset[str]:
        return frozenset(str(v) for v in rule.get(key) or ())

    resources: list[tuple[str, str]] = []
    for text in rule.get("resources") or ():
        resource, _, sub = str(text).partition("/")
        resources.append((resource, sub))
    return Rule(strings("operations"), strings("apiGroups"), strings("apiVersions"), tuple(resources),
                str(rule.get("scope") or "*"))  # fmt: skip


def _selector(selector: Any) -> LabelSelector | str:
    """An unset selector matches everything (the API defaults it to ``{}``)."""
    try:
        return label_selector_from_structured(selector if isinstance(selector, dict) else {})
    except ApiError as err:
        return err.message


def _client_config(config: Mapping[str, Any]) -> ClientConfig:
    ca_bundle, error = b"", ""
    encoded = config.get("caBundle")
    if encoded:
        try:
            ca_bundle = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError) as err:
            error = f"caBundle is not base64: {err}"
    service = config.get("service")
    if isinstance(service, dict):
        port = service.get("port")
        ref = ServiceReference(
            str(service.get("namespace") or ""),
            str(service.get("name") or ""),
            port if isinstance(port, int) else DEFAULT_SERVICE_PORT,
            str(service.get("path") or ""),
        )
        return ClientConfig(service=ref, ca_bundle=ca_bundle, error=error)
    return ClientConfig(url=str(config.get("url") or ""), ca_bundle=ca_bundle, error=error)
