"""The two webhook admission plugins: MutatingAdmissionWebhook and ValidatingAdmissionWebhook.

``MutatingWebhooks.admit`` calls the matching mutating webhooks one after
another, in configuration-name then list order, each seeing the object as
the ones before left it; a JSONPatch answer is applied to ``attrs.obj`` in
place and the resource's defaults are re-applied (upstream decodes the
patched object with defaulting).  When a webhook changed the object, the
webhooks with ``reinvocationPolicy: IfNeeded`` that ran before it are called
once more, in a second round, as upstream's reinvocation does (Skiff's
built-in plugins run before the webhooks and are not re-run).

``ValidatingWebhooks.validate`` calls the matching validating webhooks
concurrently (``asyncio.gather``, as upstream's goroutines) on the final
object; the first refusal in webhook order is the answer.  On DELETE they are
sent the object being deleted as ``oldObject`` (read from the store, as
upstream's delete validation sees it); mutating webhooks are sent none.

For each webhook (``matching``, ``match_conditions``, ``review``, ``errors``):

* a dry-run request may only reach webhooks whose sideEffects are ``None``
  or ``NoneOnDryRun``; any other refuses it (400);
* a failed call is fatal (500) under failurePolicy ``Fail`` and logged
  under ``Ignore``; an ``allowed: false`` answer is always a refusal;
* CONNECT is not admitted by Skiff, so webhooks never see it.

Warnings in answers become the response's Warning headers and
auditAnnotations the audit event's (``<webhook>/<key>``), through
``registry.request_notes``; so do upstream's own annotations: whether each
mutating webhook mutated (``mutation.webhook.admission.k8s.io/round_<r>_index_<i>``)
and which webhooks failed open (``failed-open.<mutation|validating>.webhook.admission.k8s.io/...``).
The patch itself (upstream's Request-level ``patch.webhook...`` annotation) is not recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from skiff.api.field_errors import go_quote
from skiff.api.patch import apply_json_patch
from skiff.api.status import ApiError, forbidden, internal_error
from skiff.registry.admission.chain import Attributes, ObjectReader, Operation, PluginBase
from skiff.registry.admission.webhooks import match_conditions
from skiff.registry.admission.webhooks.client import HttpsCaller, WebhookCaller
from skiff.registry.admission.webhooks.configuration import Webhook, WebhookSource
from skiff.registry.admission.webhooks.errors import CallError, calling_failed, denied, dry_run_unsupported
from skiff.registry.admission.webhooks.matching import (
    is_exempt,
    namespace_selector_matches,
    object_selector_matches,
    rules_match,
)
from skiff.registry.admission.webhooks.review import (
    RequestFacts,
    Response,
    SubresourceView,
    request_facts,
    review_request,
    review_version,
    verify_response,
)
from skiff.registry.request_notes import add_audit_annotation, add_warning
from skiff.registry.resource import Obj

log = logging.getLogger(__name__)

DRY_RUN_SAFE = ("None", "NoneOnDryRun")
MUTATION_ANNOTATION = "mutation.webhook.admission.k8s.io/"


class _Dispatcher(PluginBase):
    mutating = False
    #: Where a webhook that failed open is noted (upstream's Mutation/ValidatingAuditAnnotationFailedOpenKeyPrefix).
    failed_open_annotation = "failed-open.validating.webhook.admission.k8s.io/"

    def __init__(
        self,
        reader: ObjectReader,
        *,
        caller: WebhookCaller | None = None,
        views: Mapping[str, SubresourceView] | None = None,
        new_uid: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.reader = reader
        self.source = WebhookSource(reader, mutating=self.mutating)
        self.caller = caller if caller is not None else HttpsCaller(reader)
        self.views = dict(views or {})
        self.new_uid = new_uid

    def _view(self, attrs: Attributes, obj: Obj | None) -> Obj | None:
        view = self.views.get(attrs.subresource) if attrs.subresource else None
        if obj is None or view is None:
            return obj
        return view.read(attrs.info, obj)

    async def _should_call(self, hook: Webhook, facts: RequestFacts, obj: Obj | None, old: Obj | None) -> bool:
        """ShouldCallHook: rules, then objectSelector, namespaceSelector and matchConditions."""
        if not rules_match(hook, facts):
            return False
        if not object_selector_matches(hook, obj, old):
            return False
        if not await namespace_selector_matches(hook, facts, obj, self.reader):
            return False
        if not hook.match_conditions:
            return True
        variables = {"object": obj, "oldObject": old, "request": facts.to_dict()}
        result = match_conditions.evaluate(hook.match_conditions, variables)
        if result.error:
            log.warning("webhook %s: match conditions failed: %s", hook.name, result.error)
            if hook.fails_open:
                return False
            raise forbidden(facts.resource, facts.group, facts.name, result.error)
        return result.matches

    async def _call(
        self, hook: Webhook, facts: RequestFacts, obj: Obj | None, old: Obj | None, slot: str
    ) -> Response | None:
        """One call: the verified answer, or None when the call failed and the webhook fails open.

        ``slot`` (``round_<r>_index_<i>``) names the call in audit annotations.
        """
        if facts.dry_run:
            if hook.side_effects is None:
                self._failed(hook, CallError("Webhook SideEffects is nil"), slot)
                return None
            if hook.side_effects not in DRY_RUN_SAFE:
                raise dry_run_unsupported(hook.name)
        uid = self.new_uid()
        try:
            version = review_version(hook.review_versions)
            answer = await self.caller.call(hook, review_request(uid, version, facts, obj, old))
            response = verify_response(answer, uid, version, mutating=self.mutating)
        except CallError as err:
            self._failed(hook, err, slot)
            return None
        for text in response.warnings:
            add_warning(text)
        for key, value in response.audit_annotations.items():
            add_audit_annotation(f"{hook.name}/{key}", value)
        if not response.allowed:
            raise denied(hook.name, response.status)
        return response

    def _failed(self, hook: Webhook, err: CallError, slot: str) -> None:
        """failurePolicy: Fail raises the 500, Ignore notes the webhook as failed open."""
        if not hook.fails_open:
            log.warning("failed calling webhook, failing closed %s: %s", hook.name, err.reason)
            raise calling_failed(hook.name, err)
        log.warning("failed calling webhook, failing open %s: %s", hook.name, err.reason)
        add_audit_annotation(self.failed_open_annotation + slot, hook.name)


class MutatingWebhooks(_Dispatcher):
    """MutatingAdmissionWebhook: runs in the admit phase."""

    mutating = True
    failed_open_annotation = "failed-open." + MUTATION_ANNOTATION

    async def admit(self, attrs: Attributes) -> None:
        if is_exempt(attrs):
            return
        hooks = await self.source.webhooks()
        if not hooks:
            return
        facts = request_facts(attrs, self.views)
        invoked: set[str] = set()  # reinvocable webhooks called since the last change
        reinvoke: set[str] = set()
        for i, hook in enumerate(hooks):
            changed = await self._mutate(hook, attrs, facts, f"round_0_index_{i}")
            if changed:
                reinvoke |= invoked
                invoked.clear()
            if hook.reinvocation_policy == "IfNeeded":
                invoked.add(hook.uid)
        if not reinvoke:
            return
        for i, hook in enumerate(hooks):  # the single reinvocation round
            if hook.uid in reinvoke:
                await self._mutate(hook, attrs, facts, f"round_1_index_{i}")

    async def _mutate(self, hook: Webhook, attrs: Attributes, facts: RequestFacts, slot: str) -> bool:
        """Call ``hook`` if it matches; True when its patch changed ``attrs.obj``."""
        obj = self._view(attrs, attrs.obj)
        old = self._view(attrs, attrs.old)
        if not await self._should_call(hook, facts, obj, old):
            return False
        changed = False
        try:
            response = await self._call(hook, facts, obj, old, slot)
            changed = response is not None and self._apply(hook, attrs, obj, response)
        finally:
            mutated = {"configuration": hook.configuration, "webhook": hook.name, "mutated": changed}
            add_audit_annotation(MUTATION_ANNOTATION + slot, json.dumps(mutated, separators=(",", ":")))
        return changed

    def _apply(self, hook: Webhook, attrs: Attributes, obj: Obj | None, response: Response) -> bool:
        """Apply the answer's patch to ``attrs.obj`` (through the subresource's view); True when it changed."""
        if not response.patch:
            return False
        if attrs.obj is None or obj is None:
            raise internal_error(
                f"admission webhook {go_quote(hook.name)} attempted to modify the object, "
                "which is not supported for this operation"
            )
        try:
            patched = apply_json_patch(obj, list(response.patch))
        except ApiError as err:
            raise internal_error(f"admission webhook {go_quote(hook.name)} patch failed: {err.message}") from None
        if not isinstance(patched, dict):
            raise internal_error(f"admission webhook {go_quote(hook.name)} patched the object into a non-object")
        view = self.views.get(attrs.subresource) if attrs.subresource else None
        new = view.write(attrs.info, attrs.obj, patched) if view is not None else patched
        attrs.info.strategy.default(new)
        if new == attrs.obj:
            return False
        attrs.obj.clear()
        attrs.obj.update(new)
        return True


class ValidatingWebhooks(_Dispatcher):
    """ValidatingAdmissionWebhook: runs in the validate phase, webhooks in parallel."""

    async def validate(self, attrs: Attributes) -> None:
        if is_exempt(attrs):
            return
        hooks = await self.source.webhooks()
        if not hooks:
            return
        facts = request_facts(attrs, self.views)
        candidates = [hook for hook in hooks if rules_match(hook, facts)]
        if not candidates:
            return
        obj = self._view(attrs, attrs.obj)
        old = self._view(attrs, await self._old(attrs))
        relevant = [hook for hook in candidates if await self._should_call(hook, facts, obj, old)]
        if not relevant:
            return
        outcomes = await asyncio.gather(
            *(self._call(hook, facts, obj, old, f"round_0_index_{i}") for i, hook in enumerate(relevant)),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _old(self, attrs: Attributes) -> Obj | None:
        """The stored object a DELETE removes (upstream validates deletes against it)."""
        if attrs.old is not None or attrs.operation is not Operation.DELETE or not attrs.name:
            return attrs.old
        current: Any = await self.reader.get(attrs.info.group, attrs.info.plural, attrs.namespace, attrs.name)
        return current if isinstance(current, dict) else None
