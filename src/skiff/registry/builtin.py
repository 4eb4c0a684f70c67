"""THE table of built-in resources: every kind Skiff serves without a CRD.

Each row is one APIResource as Kubernetes 1.32 discovery reports it
(k8s.io/kubernetes api/discovery/*.json): plural, singular, kind, scope,
short names, categories, verbs and subresources, plus the strategy that
holds the kind's rules.  Rows are grouped in the order kube-apiserver lists
its groups (``GROUP_ORDER``, the aggregated discovery order) and sorted by
plural inside a group version, as discovery lists them.

A strategy is told its scope by the row (``namespaced`` is written once,
here).  Review kinds (access reviews, token reviews) are create-only and
never stored; they get the plain ``Strategy``.
"""

from __future__ import annotations

from collections.abc import Callable

from skiff.registry.admissionregistration.webhookconfiguration import (
    ValidatingAdmissionPolicyStrategy,
    WebhookConfigurationStrategy,
)
from skiff.registry.apiextensions.customresourcedefinition import CustomResourceDefinitionStrategy
from skiff.registry.apps.controllerrevision import ControllerRevisionStrategy
from skiff.registry.apps.daemonset import DaemonSetStrategy
from skiff.registry.apps.deployment import DeploymentStrategy
from skiff.registry.apps.replicaset import ReplicaSetStrategy
from skiff.registry.apps.statefulset import StatefulSetStrategy
from skiff.registry.batch.cronjob import CronJobStrategy
from skiff.registry.batch.job import JobStrategy
from skiff.registry.certificates.certificatesigningrequest import CertificateSigningRequestStrategy
from skiff.registry.coordination.lease import LeaseStrategy
from skiff.registry.core.configmap import ConfigMapStrategy
from skiff.registry.core.endpoints import EndpointsStrategy
from skiff.registry.core.event import EventStrategy, EventsV1Strategy
from skiff.registry.core.limitrange import LimitRangeStrategy
from skiff.registry.core.namespace import NamespaceStrategy
from skiff.registry.core.node import NodeStrategy
from skiff.registry.core.persistentvolume import PersistentVolumeStrategy
from skiff.registry.core.persistentvolumeclaim import PersistentVolumeClaimStrategy
from skiff.registry.core.pod import PodStrategy
from skiff.registry.core.replicationcontroller import ReplicationControllerStrategy
from skiff.registry.core.resourcequota import ResourceQuotaStrategy
from skiff.registry.core.secret import SecretStrategy
from skiff.registry.core.service import ServiceStrategy
from skiff.registry.core.serviceaccount import ServiceAccountStrategy
from skiff.registry.discovery.endpointslice import EndpointSliceStrategy
from skiff.registry.policy.poddisruptionbudget import PodDisruptionBudgetStrategy
from skiff.registry.rbac.role import RoleStrategy
from skiff.registry.rbac.rolebinding import RoleBindingStrategy
from skiff.registry.resource import ALL_VERBS, ResourceInfo, Strategy
from skiff.registry.scheduling.priorityclass import PriorityClassStrategy
from skiff.registry.storage.storageclass import StorageClassStrategy
from skiff.registry.strategies import ObjectStrategy

#: Groups in the order kube-apiserver lists them in /apis (its group priorities); "" is /api.
GROUP_ORDER: tuple[str, ...] = (
    "",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "batch",
    "certificates.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
)

#: The one served (and preferred) version of every built-in group.
PREFERRED_VERSIONS: dict[str, str] = dict.fromkeys(GROUP_ORDER, "v1")

#: Namespaces cannot be deleted as a collection (no deletecollection verb upstream).
NAMESPACE_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)
#: The subresources of pods kube-apiserver 1.32 serves.
POD_SUBRESOURCES = (
    "attach",
    "binding",
    "ephemeralcontainers",
    "eviction",
    "exec",
    "log",
    "portforward",
    "proxy",
    "status",
)

StrategyFactory = Callable[[bool], Strategy]


def _row(
    group: str,
    plural: str,
    kind: str,
    namespaced: bool,
    strategy: StrategyFactory = ObjectStrategy,
    *,
    singular: str = "",
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    subresources: tuple[str, ...] = (),
) -> ResourceInfo:
    return ResourceInfo(
        group=group,
        version=PREFERRED_VERSIONS[group],
        plural=plural,
        singular=singular or kind.lower(),
        kind=kind,
        namespaced=namespaced,
        strategy=strategy(namespaced),
        short_names=short_names,
        categories=categories,
        verbs=verbs,
        subresources=subresources,
    )


def _review(group: str, plural: str, kind: str, namespaced: bool = False) -> ResourceInfo:
    """A create-only, never-stored review kind."""
    return _row(group, plural, kind, namespaced, lambda _: Strategy(), verbs=CREATE_ONLY)


def _mutating_webhooks(namespaced: bool) -> Strategy:
    return WebhookConfigurationStrategy(namespaced, mutating=True)


ALL = ("all",)
API_EXTENSIONS = ("api-extensions",)
STATUS = ("status",)
SCALE_STATUS = ("scale", "status")

BUILTIN: tuple[ResourceInfo, ...] = (
    # core/v1 (bindings: the legacy create-only way to bind pods, never stored; the apiserver's pod_binding serves it)
    _row("", "bindings", "Binding", True, lambda _: Strategy(), verbs=CREATE_ONLY),
    _row("", "configmaps", "ConfigMap", True, ConfigMapStrategy, short_names=("cm",)),
    _row("", "endpoints", "Endpoints", True, EndpointsStrategy, singular="endpoints", short_names=("ep",)),
    _row("", "events", "Event", True, EventStrategy, short_names=("ev",)),
    _row("", "limitranges", "LimitRange", True, LimitRangeStrategy, short_names=("limits",)),
    _row("", "namespaces", "Namespace", False, NamespaceStrategy, short_names=("ns",), verbs=NAMESPACE_VERBS,
         subresources=("finalize", "status")),
    _row("", "nodes", "Node", False, NodeStrategy, short_names=("no",), subresources=("proxy", "status")),
    _row("", "persistentvolumeclaims", "PersistentVolumeClaim", True, PersistentVolumeClaimStrategy,
         short_names=("pvc",), subresources=STATUS),
    _row("", "persistentvolumes", "PersistentVolume", False, PersistentVolumeStrategy, short_names=("pv",),
         subresources=STATUS),
    _row("", "pods", "Pod", True, PodStrategy, short_names=("po",), categories=ALL, subresources=POD_SUBRESOURCES),
    _row("", "replicationcontrollers", "ReplicationController", True, ReplicationControllerStrategy,
         short_names=("rc",), categories=ALL, subresources=SCALE_STATUS),
    _row("", "resourcequotas", "ResourceQuota", True, ResourceQuotaStrategy, short_names=("quota",),
         subresources=STATUS),
    _row("", "secrets", "Secret", True, SecretStrategy),
    _row("", "serviceaccounts", "ServiceAccount", True, ServiceAccountStrategy, short_names=("sa",),
         subresources=("token",)),
    _row("", "services", "Service", True, ServiceStrategy, short_names=("svc",), categories=ALL,
         subresources=("proxy", "status")),
    # apps/v1
    _row("apps", "controllerrevisions", "ControllerRevision", True, ControllerRevisionStrategy),
    _row("apps", "daemonsets", "DaemonSet", True, DaemonSetStrategy, short_names=("ds",), categories=ALL,
         subresources=STATUS),
    _row("apps", "deployments", "Deployment", True, DeploymentStrategy, short_names=("deploy",), categories=ALL,
         subresources=SCALE_STATUS),
    _row("apps", "replicasets", "ReplicaSet", True, ReplicaSetStrategy, short_names=("rs",), categories=ALL,
         subresources=SCALE_STATUS),
    _row("apps", "statefulsets", "StatefulSet", True, StatefulSetStrategy, short_names=("sts",), categories=ALL,
         subresources=SCALE_STATUS),
    # events.k8s.io/v1
    _row("events.k8s.io", "events", "Event", True, EventsV1Strategy, short_names=("ev",)),
    # authentication.k8s.io/v1
    _review("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview"),
    _review("authentication.k8s.io", "tokenreviews", "TokenReview"),
    # authorization.k8s.io/v1
    _review("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview", namespaced=True),
    _review("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"),
    _review("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview"),
    _review("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview"),
    # batch/v1
    _row("batch", "cronjobs", "CronJob", True, CronJobStrategy, short_names=("cj",), categories=ALL,
         subresources=STATUS),
    _row("batch", "jobs", "Job", True, JobStrategy, categories=ALL, subresources=STATUS),
    # certificates.k8s.io/v1
    _row("certificates.k8s.io", "certificatesigningrequests", "CertificateSigningRequest", False,
         CertificateSigningRequestStrategy, short_names=("csr",), subresources=("approval", "status")),
    # policy/v1
    _row("policy", "poddisruptionbudgets", "PodDisruptionBudget", True, PodDisruptionBudgetStrategy,
         short_names=("pdb",), subresources=STATUS),
    # rbac.authorization.k8s.io/v1
    _row("rbac.authorization.k8s.io", "clusterrolebindings", "ClusterRoleBinding", False, RoleBindingStrategy),
    _row("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", False, RoleStrategy),
    _row("rbac.authorization.k8s.io", "rolebindings", "RoleBinding", True, RoleBindingStrategy),
    _row("rbac.authorization.k8s.io", "roles", "Role", True, RoleStrategy),
    # storage.k8s.io/v1
    _row("storage.k8s.io", "storageclasses", "StorageClass", False, StorageClassStrategy, short_names=("sc",)),
    # admissionregistration.k8s.io/v1
    _row("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False,
         _mutating_webhooks, categories=API_EXTENSIONS),
    _row("admissionregistration.k8s.io", "validatingadmissionpolicies", "ValidatingAdmissionPolicy", False,
         ValidatingAdmissionPolicyStrategy, categories=API_EXTENSIONS, subresources=STATUS),
    _row("admissionregistration.k8s.io", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False,
         WebhookConfigurationStrategy, categories=API_EXTENSIONS),
    # apiextensions.k8s.io/v1
    _row("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", False,
         CustomResourceDefinitionStrategy, short_names=("crd", "crds"), categories=API_EXTENSIONS,
         subresources=STATUS),
    # scheduling.k8s.io/v1
    _row("scheduling.k8s.io", "priorityclasses", "PriorityClass", False, PriorityClassStrategy, short_names=("pc",)),
    # coordination.k8s.io/v1
    _row("coordination.k8s.io", "leases", "Lease", True, LeaseStrategy),
    # discovery.k8s.io/v1
    _row("discovery.k8s.io", "endpointslices", "EndpointSlice", True, EndpointSliceStrategy),
)  # fmt: skip

_BY_KEY: dict[tuple[str, str, str], ResourceInfo] = {(r.group, r.version, r.plural): r for r in BUILTIN}


def find(group: str, version: str, plural: str) -> ResourceInfo | None:
    """The built-in row for group/version/plural, or None."""
    return _BY_KEY.get((group, version, plural))


def by_group_version() -> dict[str, list[ResourceInfo]]:
    """Rows keyed by group version ("v1", "apps/v1", ...), groups in GROUP_ORDER, plurals sorted."""
    out: dict[str, list[ResourceInfo]] = {}
    for info in BUILTIN:
        out.setdefault(info.group_version, []).append(info)
    return out
