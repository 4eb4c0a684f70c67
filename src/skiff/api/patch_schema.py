"""Strategic-merge-patch metadata for the built-in kinds.

Kubernetes reads ``patchStrategy`` / ``patchMergeKey`` struct tags from its Go
types (k8s.io/api core/v1, apps/v1, batch/v1, meta/v1 types.go, …); Skiff
keeps the same facts as a table.  Paths are dotted JSON field names from the
object root; ``[]`` stands for "each element of this list".  A field with no
entry has no strategy: maps merge key by key, lists are replaced whole.

Shared pieces (PodSpec, Container, ObjectMeta) are written once and mounted
under every kind that embeds them (pod templates in Deployments, Jobs,
CronJobs, …), so the same fact is never typed twice.

A kind missing from ``KINDS`` is not a built-in (a custom resource): the
apiserver refuses strategic merge patch for it (415), and so must Skiff.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class FieldStrategy:
    """One field's tags: ``patchMergeKey`` ("" for none) and ``patchStrategy`` split on commas."""

    merge_key: str = ""
    strategies: tuple[str, ...] = ()


def _s(merge_key: str, strategy: str) -> FieldStrategy:
    return FieldStrategy(merge_key, tuple(strategy.split(",")) if strategy else ())


# ObjectMeta (meta/v1): ownerReferences merge on uid; finalizers are a merged set of strings.
OBJECT_META: Mapping[str, FieldStrategy] = {
    "ownerReferences": _s("uid", "merge"),
    "finalizers": _s("", "merge"),
}

# Container and EphemeralContainer (core/v1).
CONTAINER: Mapping[str, FieldStrategy] = {
    "ports": _s("containerPort", "merge"),
    "env": _s("name", "merge"),
    "volumeMounts": _s("mountPath", "merge"),
    "volumeDevices": _s("devicePath", "merge"),
}

# PodSpec (core/v1); container lists get the Container entries below them.
POD_SPEC: Mapping[str, FieldStrategy] = {
    "volumes": _s("name", "merge,retainKeys"),
    "initContainers": _s("name", "merge"),
    "containers": _s("name", "merge"),
    "ephemeralContainers": _s("name", "merge"),
    "imagePullSecrets": _s("name", "merge"),
    "hostAliases": _s("ip", "merge"),
    "topologySpreadConstraints": _s("topologyKey", "merge"),
    "schedulingGates": _s("name", "merge"),
    "resourceClaims": _s("name", "merge,retainKeys"),
}

# PodStatus (core/v1).
POD_STATUS: Mapping[str, FieldStrategy] = {
    "conditions": _s("type", "merge"),
    "podIPs": _s("ip", "merge"),
    "hostIPs": _s("ip", "merge"),
    "resourceClaimStatuses": _s("name", "merge,retainKeys"),
}

#: ``status.conditions`` merged by ``type`` — the common shape of most statuses.
CONDITIONS: Mapping[str, FieldStrategy] = {"conditions": _s("type", "merge")}


def _mount(prefix: str, table: Mapping[str, FieldStrategy]) -> dict[str, FieldStrategy]:
    return {f"{prefix}{path}": strategy for path, strategy in table.items()}


def _pod_spec_at(prefix: str) -> dict[str, FieldStrategy]:
    """PodSpec at ``prefix`` (ending in '.'), with Container entries under each container list."""
    out = _mount(prefix, POD_SPEC)
    for containers in ("initContainers", "containers", "ephemeralContainers"):
        out.update(_mount(f"{prefix}{containers}[].", CONTAINER))
    out.update(_mount(f"{prefix}volumes[].ephemeral.volumeClaimTemplate.metadata.", OBJECT_META))
    return out


def _pod_template_at(prefix: str) -> dict[str, FieldStrategy]:
    """A PodTemplateSpec at ``prefix``: its metadata and its PodSpec."""
    return {**_mount(f"{prefix}metadata.", OBJECT_META), **_pod_spec_at(f"{prefix}spec.")}


@dataclass(frozen=True, slots=True)
class KindSchema:
    """The patch metadata of one built-in kind, keyed by path from the object root."""

    group: str
    fields: Mapping[str, FieldStrategy] = field(default_factory=dict)

    def lookup(self, path: str) -> FieldStrategy:
        return self.fields.get(path, _NONE)


_NONE = FieldStrategy()


def _kind(group: str, *tables: Mapping[str, FieldStrategy]) -> KindSchema:
    fields: dict[str, FieldStrategy] = _mount("metadata.", OBJECT_META)
    for table in tables:
        fields.update(table)
    return KindSchema(group, MappingProxyType(fields))


_WORKLOAD_TEMPLATE = _pod_template_at("spec.template.")

_KINDS: dict[str, KindSchema] = {
    # core/v1
    "Pod": _kind("", _pod_spec_at("spec."), _mount("status.", POD_STATUS)),
    "PodTemplate": _kind("", _pod_template_at("template.")),
    "ReplicationController": _kind("", _WORKLOAD_TEMPLATE, _mount("status.", CONDITIONS)),
    "Service": _kind("", {"spec.ports": _s("port", "merge")}, _mount("status.", CONDITIONS)),
    "ServiceAccount": _kind("", {"secrets": _s("name", "merge")}),
    "Node": _kind(
        "",
        {"spec.podCIDRs": _s("", "merge")},
        _mount("status.", CONDITIONS),
        {"status.addresses": _s("type", "merge")},
    ),
    "Namespace": _kind("", _mount("status.", CONDITIONS)),
    "PersistentVolumeClaim": _kind("", _mount("status.", CONDITIONS)),
    "ComponentStatus": _kind("", CONDITIONS),
    "ConfigMap": _kind(""),
    "Secret": _kind(""),
    "Endpoints": _kind(""),
    "Event": _kind(""),
    "LimitRange": _kind(""),
    "ResourceQuota": _kind(""),
    "PersistentVolume": _kind(""),
    "Binding": _kind(""),
    # apps/v1
    "Deployment": _kind(
        "apps", _WORKLOAD_TEMPLATE, {"spec.strategy": _s("", "retainKeys")}, _mount("status.", CONDITIONS)
    ),
    "ReplicaSet": _kind("apps", _WORKLOAD_TEMPLATE, _mount("status.", CONDITIONS)),
    "StatefulSet": _kind(
        "apps",
        _WORKLOAD_TEMPLATE,
        _mount("spec.volumeClaimTemplates[].metadata.", OBJECT_META),
        _mount("status.", CONDITIONS),
    ),
    "DaemonSet": _kind("apps", _WORKLOAD_TEMPLATE, _mount("status.", CONDITIONS)),
    "ControllerRevision": _kind("apps"),
    # batch/v1
    "Job": _kind("batch", _WORKLOAD_TEMPLATE, _mount("status.", CONDITIONS)),
    "CronJob": _kind(
        "batch",
        _mount("spec.jobTemplate.metadata.", OBJECT_META),
        _pod_template_at("spec.jobTemplate.spec.template."),
    ),
    # autoscaling, policy
    "HorizontalPodAutoscaler": _kind("autoscaling", _mount("status.", CONDITIONS)),
    "PodDisruptionBudget": _kind("policy", _mount("status.", CONDITIONS)),
    # networking.k8s.io
    "Ingress": _kind("networking.k8s.io"),
    "IngressClass": _kind("networking.k8s.io"),
    "NetworkPolicy": _kind("networking.k8s.io"),
    # discovery, coordination, events, node, scheduling
    "EndpointSlice": _kind("discovery.k8s.io"),
    "Lease": _kind("coordination.k8s.io"),
    "RuntimeClass": _kind("node.k8s.io"),
    "PriorityClass": _kind("scheduling.k8s.io"),
    # rbac.authorization.k8s.io
    "Role": _kind("rbac.authorization.k8s.io"),
    "RoleBinding": _kind("rbac.authorization.k8s.io"),
    "ClusterRole": _kind("rbac.authorization.k8s.io"),
    "ClusterRoleBinding": _kind("rbac.authorization.k8s.io"),
    # storage.k8s.io
    "StorageClass": _kind("storage.k8s.io"),
    "CSIDriver": _kind("storage.k8s.io"),
    "CSINode": _kind("storage.k8s.io", {"spec.drivers": _s("name", "merge")}),
    "VolumeAttachment": _kind("storage.k8s.io"),
    # admissionregistration.k8s.io
    "MutatingWebhookConfiguration": _kind("admissionregistration.k8s.io", {"webhooks": _s("name", "merge")}),
    "ValidatingWebhookConfiguration": _kind("admissionregistration.k8s.io", {"webhooks": _s("name", "merge")}),
    # certificates, flowcontrol, apiregistration, apiextensions
    "CertificateSigningRequest": _kind("certificates.k8s.io"),
    "FlowSchema": _kind("flowcontrol.apiserver.k8s.io", _mount("status.", CONDITIONS)),
    "PriorityLevelConfiguration": _kind("flowcontrol.apiserver.k8s.io", _mount("status.", CONDITIONS)),
    "APIService": _kind("apiregistration.k8s.io", _mount("status.", CONDITIONS)),
    "CustomResourceDefinition": _kind("apiextensions.k8s.io"),
}

#: Every built-in kind that accepts strategic merge patch, with its field metadata.
KINDS: Mapping[str, KindSchema] = MappingProxyType(_KINDS)


def supports_strategic_merge(kind: str, group: str | None = None) -> bool:
    """True for built-in kinds; custom resources (and a CRD reusing a built-in Kind name) get 415.

    Pass ``group`` to tell a built-in Kind from a custom resource of the same name.
    """
    schema = KINDS.get(kind)
    if schema is None:
        return False
    return group is None or group == schema.group


def schema_for(kind: str) -> KindSchema:
    """The kind's patch metadata; raises KeyError for kinds without strategic merge support."""
    return KINDS[kind]
