"""Admission: the protocol the generic registry calls, and the built-in plugins.

``default_chain(reader)`` is the chain kube-apiserver enables by default
(of the plugins that need no controller), in upstream's plugin order:
NamespaceLifecycle, LimitRanger, ServiceAccount, NodeRestriction, Priority,
DefaultTolerationSeconds, CertificateApproval, CertificateSigning,
CertificateSubjectRestriction.  ResourceQuota is issue F.  ``authorize_signer``
is the authorizer question the two certificate plugins ask
(``certificates.SignerAuthorizer``); by default everything is allowed.
"""

from __future__ import annotations

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
from skiff.registry.admission.priority import Priority
from skiff.registry.admission.service_account import ServiceAccountAdmission

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
    "NamespaceLifecycle",
    "NodeRestriction",
    "ObjectReader",
    "Operation",
    "PluginBase",
    "Priority",
    "ServiceAccountAdmission",
    "SignerAuthorizer",
    "admission_forbidden",
    "default_chain",
]


def default_chain(reader: ObjectReader, *, authorize_signer: SignerAuthorizer = allow_all) -> AdmissionChain:
    return AdmissionChain(
        [
            NamespaceLifecycle(reader),
            LimitRanger(reader),
            ServiceAccountAdmission(),
            NodeRestriction(reader),
            Priority(reader),
            DefaultTolerationSeconds(),
            CertificateApproval(authorize_signer),
            CertificateSigning(authorize_signer),
            CertificateSubjectRestriction(),
        ]
    )
