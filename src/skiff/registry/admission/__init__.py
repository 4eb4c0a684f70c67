"""Admission: the protocol the generic registry calls, and the built-in plugins.

``default_chain(reader)`` is the chain kube-apiserver enables by default
(of the plugins that need no controller), in upstream's plugin order:
NamespaceLifecycle, LimitRanger, ServiceAccount, Priority,
DefaultTolerationSeconds.  ResourceQuota is issue F.
"""

from __future__ import annotations

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
from skiff.registry.admission.priority import Priority
from skiff.registry.admission.service_account import ServiceAccountAdmission

__all__ = [
    "IMMORTAL_NAMESPACES",
    "Admission",
    "AdmissionChain",
    "Attributes",
    "DefaultTolerationSeconds",
    "LimitRanger",
    "NamespaceLifecycle",
    "ObjectReader",
    "Operation",
    "PluginBase",
    "Priority",
    "ServiceAccountAdmission",
    "admission_forbidden",
    "default_chain",
]


def default_chain(reader: ObjectReader) -> AdmissionChain:
    return AdmissionChain(
        [
            NamespaceLifecycle(reader),
            LimitRanger(reader),
            ServiceAccountAdmission(),
            Priority(reader),
            DefaultTolerationSeconds(),
        ]
    )
