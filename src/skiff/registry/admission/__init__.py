"""Admission: the protocol the generic registry calls, and the built-in plugins.

``default_chain(reader)`` is the chain kube-apiserver enables by default
(of the plugins that need no controller), in upstream's plugin order:
NamespaceLifecycle, LimitRanger, ServiceAccount, NodeRestriction,
PodSecurity, Priority, DefaultTolerationSeconds, CertificateApproval,
CertificateSigning, CertificateSubjectRestriction, MutatingAdmissionWebhook,
ValidatingAdmissionWebhook (``webhooks``), ResourceQuota — the last only
with a ``quota_writer`` (``resource_quota.QuotaStatusWriter``), which it
charges quotas' ``status.used`` through.
``authorize_signer`` is the authorizer question the two certificate plugins
ask (``certificates.SignerAuthorizer``); by default everything is allowed.
``webhook_views`` are the subresource views the webhooks send
(``webhooks.SubresourceView``, e.g. ``scale``), which the API server owns.
"""

from __future__ import annotations

from collections.abc import Mapping

from skiff.registry.admission.certificates import (
    CertificateApproval,
    CertificateSigning,
    CertificateSubjectRestriction,
    SignerAuthorizer,
    allow_all,
)
from skiff.registry.admission.chain import (
    Admission,
    AdmissionChain,
    Attributes,
    ObjectReader,
    Operation,
    PluginBase,
    admission_forbidden,
)
from skiff.registry.admission.default_toleration_seconds import DefaultTolerationSeconds
from skiff.registry.admission.limit_ranger import LimitRanger
from skiff.registry.admission.namespace_lifecycle import IMMORTAL_NAMESPACES, NamespaceLifecycle
from skiff.registry.admission.node_restriction import NodeRestriction
from skiff.registry.admission.pod_security import PodSecurity
from skiff.registry.admission.priority import Priority
from skiff.registry.admission.resource_quota import QuotaStatusWriter, ResourceQuota
from skiff.registry.admission.service_account import ServiceAccountAdmission
from skiff.registry.admission.webhooks import MutatingWebhooks, SubresourceView, ValidatingWebhooks

__all__ = [
    "IMMORTAL_NAMESPACES",
    "Admission",
    "AdmissionChain",
    "Attributes",
    "CertificateApproval",
    "CertificateSigning",
    "CertificateSubjectRestriction",
    "DefaultTolerationSeconds",
    "LimitRanger",
    "MutatingWebhooks",
    "NamespaceLifecycle",
    "NodeRestriction",
    "ObjectReader",
    "Operation",
    "PluginBase",
    "PodSecurity",
    "Priority",
    "QuotaStatusWriter",
    "ResourceQuota",
    "ServiceAccountAdmission",
    "SignerAuthorizer",
    "ValidatingWebhooks",
    "admission_forbidden",
    "default_chain",
]


def default_chain(
    reader: ObjectReader,
    *,
    authorize_signer: SignerAuthorizer = allow_all,
    webhook_views: Mapping[str, SubresourceView] | None = None,
    quota_writer: QuotaStatusWriter | None = None,
) -> AdmissionChain:
    quota = [ResourceQuota(reader, quota_writer)] if quota_writer is not None else []
    return AdmissionChain(
        [
            NamespaceLifecycle(reader),
            LimitRanger(reader),
            ServiceAccountAdmission(),
            NodeRestriction(reader),
            PodSecurity(reader),
            Priority(reader),
            DefaultTolerationSeconds(),
            CertificateApproval(authorize_signer),
            CertificateSigning(authorize_signer),
            CertificateSubjectRestriction(),
            MutatingWebhooks(reader, views=webhook_views),
            ValidatingWebhooks(reader, views=webhook_views),
            *quota,
        ]
    )
