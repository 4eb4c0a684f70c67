"""Admission webhooks (admissionregistration.k8s.io/v1), as kube-apiserver calls them.

Two admission plugins join the chain last, where upstream puts
MutatingAdmissionWebhook and ValidatingAdmissionWebhook:
``MutatingWebhooks`` (admit phase: one by one, JSONPatch answers applied,
one reinvocation round) and ``ValidatingWebhooks`` (validate phase: in
parallel).  Both read the served Mutating/ValidatingWebhookConfigurations
from the watch cache through the ``ObjectReader`` the API server injects,
and call webhooks through a ``WebhookCaller`` (``HttpsCaller`` by default;
tests inject their own).  The API server also hands in ``SubresourceView``s
for subresources whose wire object is not the resource's (``scale``).

Modules: ``configuration`` (reading and compiling configurations),
``matching`` (rules and selectors), ``match_conditions`` (CEL),
``review`` (AdmissionReview request and response), ``client`` (HTTPS and
service resolution), ``errors`` (upstream's wording), ``dispatch`` (the
plugins).
"""

from __future__ import annotations

from skiff.registry.admission.webhooks.client import HttpsCaller, WebhookCaller
from skiff.registry.admission.webhooks.dispatch import MutatingWebhooks, ValidatingWebhooks
from skiff.registry.admission.webhooks.review import GroupVersionKind, SubresourceView

__all__ = [
    "GroupVersionKind",
    "HttpsCaller",
    "MutatingWebhooks",
    "SubresourceView",
    "ValidatingWebhooks",
    "WebhookCaller",
]
