"""NodeRestriction admission (plugin/pkg/admission/noderestriction): a kubelet writes only its own things.

Applies to creates, updates and deletes by a node's user
(``registry.node_identity``: ``system:node:<name>`` in ``system:nodes``);
everyone else, and the API server's own writes (no user), pass untouched.  A
node that cannot be identified is refused everything.  Refusals are 403
Forbidden with upstream's messages; a pod or Node it needs that does not exist
answers 404, as upstream returns its lister's NotFound.

* pods: create only mirror pods (annotation ``kubernetes.io/config.mirror``)
  bound to itself, owned by exactly one controller reference to its own Node
  (kind, name and uid; ``blockOwnerDeletion`` unset), naming no service
  account, secret, configmap, ClusterTrustBundle or PersistentVolumeClaim;
  delete only pods bound to itself; nothing else on the pod itself;
* pods/status: update only pods bound to itself, without changing labels or
  resource claim statuses; pods/eviction: only pods bound to itself; other
  pod subresources are refused;
* nodes (and their subresources): only its own Node.  Create without
  ``spec.configSource``; update without a new non-nil ``configSource`` and
  without changing taints; on both, no label under
  ``[*.]node-restriction.kubernetes.io/`` and no ``kubernetes.io``/``k8s.io``
  label other than the kubelet's own (the well-known topology, OS, arch,
  instance-type and hostname labels and ``[*.]kubelet.kubernetes.io``,
  ``[*.]node.kubernetes.io``) may be added, changed or removed;
* persistentvolumeclaims: only status updates that change nothing but
  ``status.capacity``, ``status.conditions`` and the allocated resources;
* serviceaccounts/token: only tokens bound (``boundObjectRef``) to a pod,
  by uid, that runs on this node;
* leases (coordination.k8s.io): only in ``kube-node-lease``, named after
  the node; csinodes: only the one named after the node.

Pods and Nodes are read from the watch caches (``fresh=False``), as upstream
reads its listers.  Runs in the mutating phase, as upstream's (it only refuses).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.api.status import not_found
from skiff.registry.admission.chain import Attributes, ObjectReader, Operation, PluginBase, admission_forbidden
from skiff.registry.core.references import configmap_names, has_cluster_trust_bundle, secret_names
from skiff.registry.node_identity import NODE_LEASE_NAMESPACE, node_identity
from skiff.registry.resource import Obj

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
#: v1.LabelNamespaceNodeRestriction: kubelets may never set these.
NODE_RESTRICTION_LABEL_NAMESPACE = "node-restriction.kubernetes.io"
#: k8s.io/kubelet's kubeletLabels and kubeletLabelNamespaces: what a kubelet may set on its own Node.
KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    }
)
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
#: PVC status fields a node may change (RecoverVolumeExpansionFailure adds the allocated ones).
PVC_STATUS_FIELDS = ("capacity", "conditions", "allocatedResourceStatuses", "allocatedResources")


def _meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = (obj or {}).get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _labels(obj: Mapping[str, Any] | None) -> dict[str, str]:
    labels = _meta(obj).get("labels")
    return dict(labels) if isinstance(labels, Mapping) else {}


def _pruned(value: Any) -> Any:
    """``value`` without nulls and empty maps or lists, so that comparing it is apiequality.Semantic's."""
    if isinstance(value, Mapping):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _label_namespace(key: str) -> str:
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _in_namespace(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    """kubeletapis.IsKubeletLabel."""
    namespace = _label_namespace(key)
    return key in KUBELET_LABELS or any(_in_namespace(namespace, n) for n in KUBELET_LABEL_NAMESPACES)


def modified_labels(new: Mapping[str, str], old: Mapping[str, str]) -> set[str]:
    """Keys added, removed or changed between ``old`` and ``new``."""
    return {k for k in new.keys() | old.keys() if new.get(k) != old.get(k) or (k in new) != (k in old)}


def forbidden_labels(modified: set[str]) -> list[str]:
    """getForbiddenLabels, sorted: node-restriction labels, and kubernetes.io/k8s.io labels not the kubelet's."""
    found: set[str] = set()
    for key in modified:
        namespace = _label_namespace(key)
        if _in_namespace(namespace, NODE_RESTRICTION_LABEL_NAMESPACE):
            found.add(key)
        kubernetes = _in_namespace(namespace, "kubernetes.io") or _in_namespace(namespace, "k8s.io")
        if kubernetes and not is_kubelet_label(key):
            found.add(key)
    return sorted(found)


class NodeRestriction(PluginBase):
    def __init__(self, reader: ObjectReader) -> None:
        self.reader = reader

    async def admit(self, attrs: Attributes) -> None:
        if attrs.operation is Operation.CONNECT:
            return
        node, is_node = node_identity(attrs.user)
        if not is_node:
            return
        if not node:
            name = attrs.user.name if attrs.user is not None else ""
            raise admission_forbidden(attrs, f'could not determine node from user "{name}"')
        resource = (attrs.info.group, attrs.info.plural)
        if resource == ("", "pods"):
            await self._pod(node, attrs)
        elif resource == ("", "nodes"):
            self._node(node, attrs)
        elif resource == ("", "persistentvolumeclaims"):
            if attrs.subresource != "status":
                raise admission_forbidden(attrs, "may only update PVC status")
            self._pvc_status(node, attrs)
        elif resource == ("", "serviceaccounts"):
            await self._service_account(node, attrs)
        elif resource == ("coordination.k8s.io", "leases"):
            self._lease(node, attrs)
        elif resource == ("storage.k8s.io", "csinodes"):
            self._own_named(attrs, node, "can only access CSINode with the same name as the requesting node")

    # -- pods ------------------------------------------------------------------------------------
    async def _pod(self, node: str, attrs: Attributes) -> None:
        if attrs.subresource == "status":
            return self._pod_status(node, attrs)
        if attrs.subresource == "eviction":
            return await self._eviction(node, attrs)
        if attrs.subresource:
            raise admission_forbidden(
                attrs, f"unexpected pod subresource \"{attrs.subresource}\", only 'status' and 'eviction' are allowed"
            )
        if attrs.operation is Operation.CREATE:
            return await self._mirror_pod(node, attrs)
        if attrs.operation is Operation.DELETE:
            existing = await self._existing_pod(attrs, attrs.name)
            if _spec(existing).get("nodeName") != node:
                raise admission_forbidden(attrs, f'node "{node}" can only delete pods with spec.nodeName set to itself')
            return None
        raise admission_forbidden(
            attrs, f'unexpected operation "{attrs.operation}", node "{node}" can only create and delete mirror pods'
        )

    async def _existing_pod(self, attrs: Attributes, name: str) -> Obj:
        pod = await self.reader.get("", "pods", attrs.namespace, name, fresh=False)
        if pod is None:
            raise not_found("pods", "", name)
        return pod

    async def _mirror_pod(self, node: str, attrs: Attributes) -> None:
        pod = attrs.obj or {}
        if MIRROR_POD_ANNOTATION not in (_meta(pod).get("annotations") or {}):
            raise admission_forbidden(
                attrs,
                f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, node "{node}" can only create mirror pods',
            )
        if _spec(pod).get("nodeName") != node:
            raise admission_forbidden(attrs, f'node "{node}" can only create pods with spec.nodeName set to itself')
        await self._check_owner(node, attrs, _meta(pod).get("ownerReferences") or [])
        # A node must not grant itself access to other objects by creating a pod that names them.
        spec = _spec(pod)
        if spec.get("serviceAccountName"):
            raise admission_forbidden(attrs, f'node "{node}" can not create pods that reference a service account')
        if secret_names(pod):
            raise admission_forbidden(attrs, f'node "{node}" can not create pods that reference secrets')
        if configmap_names(pod):
            raise admission_forbidden(attrs, f'node "{node}" can not create pods that reference configmaps')
        if has_cluster_trust_bundle(pod):
            raise admission_forbidden(attrs, f'node "{node}" can not create pods that reference clustertrustbundles')
        if any(isinstance(v, Mapping) and "persistentVolumeClaim" in v for v in spec.get("volumes") or []):
            raise admission_forbidden(attrs, f'node "{node}" can not create pods that reference persistentvolumeclaims')

    async def _check_owner(self, node: str, attrs: Attributes, owners: list[Any]) -> None:
        if len(owners) > 1:
            raise admission_forbidden(
                attrs, f'node "{node}" can only create pods with a single owner reference set to itself'
            )
        owner = owners[0] if owners and isinstance(owners[0], Mapping) else None
        if owner is None or (owner.get("apiVersion"), owner.get("kind"), owner.get("name")) != ("v1", "Node", node):
            why = f'node "{node}" can only create pods with an owner reference set to itself'
            raise admission_forbidden(attrs, why)
        if owner.get("controller") is not True:
            raise admission_forbidden(
                attrs, f'node "{node}" can only create pods with a controller owner reference set to itself'
            )
        if owner.get("blockOwnerDeletion") is True:
            raise admission_forbidden(attrs, f'node "{node}" must not set blockOwnerDeletion on an owner reference')
        found = await self.reader.get("", "nodes", "", node, fresh=False)
        if found is None:
            raise not_found("nodes", "", node)
        uid = _meta(found).get("uid")
        if owner.get("uid") != uid:
            raise admission_forbidden(attrs, f"node {node} UID mismatch: expected {owner.get('uid')} got {uid}")

    def _pod_status(self, node: str, attrs: Attributes) -> None:
        if attrs.operation is not Operation.UPDATE:
            raise admission_forbidden(attrs, f'unexpected operation "{attrs.operation}"')
        if _spec(attrs.old).get("nodeName") != node:
            raise admission_forbidden(
                attrs, f'node "{node}" can only update pod status for pods with spec.nodeName set to itself'
            )
        if _labels(attrs.old) != _labels(attrs.obj):
            raise admission_forbidden(attrs, f'node "{node}" cannot update labels through pod status')
        old_claims = ((attrs.old or {}).get("status") or {}).get("resourceClaimStatuses")
        new_claims = ((attrs.obj or {}).get("status") or {}).get("resourceClaimStatuses")
        if _pruned(old_claims or []) != _pruned(new_claims or []):
            raise admission_forbidden(attrs, f'node "{node}" cannot update resource claim statues')

    async def _eviction(self, node: str, attrs: Attributes) -> None:
        if attrs.operation is not Operation.CREATE:
            raise admission_forbidden(attrs, f"unexpected operation {attrs.operation}")
        # The pod named on the URL, rather than the one in the submitted Eviction.
        name = attrs.name or str(_meta(attrs.obj).get("name") or "")
        if not name:
            raise admission_forbidden(attrs, "could not determine pod from request data")
        existing = await self._existing_pod(attrs, name)
        if _spec(existing).get("nodeName") != node:
            raise admission_forbidden(attrs, f"node {node} can only evict pods with spec.nodeName set to itself")

    # -- nodes -----------------------------------------------------------------------------------
    def _node(self, node: str, attrs: Attributes) -> None:
        requested = attrs.name or str(_meta(attrs.obj).get("name") or "")
        if requested != node:
            raise admission_forbidden(attrs, f'node "{node}" is not allowed to modify node "{requested}"')
        if attrs.operation is Operation.CREATE:
            if _spec(attrs.obj).get("configSource") is not None:
                raise admission_forbidden(
                    attrs, f'node "{node}" is not allowed to create pods with a non-nil configSource'
                )
            refused = forbidden_labels(modified_labels(_labels(attrs.obj), {}))
            if refused:
                raise admission_forbidden(
                    attrs, f'node "{node}" is not allowed to set the following labels: {", ".join(refused)}'
                )
        elif attrs.operation is Operation.UPDATE:
            new_spec, old_spec = _spec(attrs.obj), _spec(attrs.old)
            source = new_spec.get("configSource")
            if source is not None and _pruned(source) != _pruned(old_spec.get("configSource")):
                raise admission_forbidden(
                    attrs, f'node "{node}" is not allowed to update configSource to a new non-nil configSource'
                )
            if _pruned(new_spec.get("taints") or []) != _pruned(old_spec.get("taints") or []):
                raise admission_forbidden(attrs, f'node "{node}" is not allowed to modify taints')
            refused = forbidden_labels(modified_labels(_labels(attrs.obj), _labels(attrs.old)))
            if refused:
                raise admission_forbidden(attrs, f"is not allowed to modify labels: {', '.join(refused)}")

    # -- the rest --------------------------------------------------------------------------------
    def _pvc_status(self, node: str, attrs: Attributes) -> None:
        if attrs.operation is not Operation.UPDATE:
            raise admission_forbidden(attrs, f'unexpected operation "{attrs.operation}"')
        old, new = _pvc_compared(attrs.old), _pvc_compared(attrs.obj)
        if old != new:
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise admission_forbidden(
                attrs,
                f'node "{node}" is not allowed to update fields other than status.capacity and status.conditions: '
                f"{', '.join(changed)} changed",
            )

    async def _service_account(self, node: str, attrs: Attributes) -> None:
        if attrs.operation is not Operation.CREATE or attrs.subresource != "token":
            return
        ref = _spec(attrs.obj).get("boundObjectRef")
        if (
            not isinstance(ref, Mapping)
            or ref.get("apiVersion") != "v1"
            or ref.get("kind") != "Pod"
            or not ref.get("name")
        ):
            raise admission_forbidden(attrs, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise admission_forbidden(attrs, "node requested token with a pod binding without a uid")
        pod = await self._existing_pod(attrs, str(ref["name"]))
        if ref["uid"] != _meta(pod).get("uid"):
            raise admission_forbidden(
                attrs,
                f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record. "
                "The object might have been deleted and then recreated",
            )
        if _spec(pod).get("nodeName") != node:
            raise admission_forbidden(attrs, "node requested token bound to a pod scheduled on a different node")

    def _lease(self, node: str, attrs: Attributes) -> None:
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            raise admission_forbidden(attrs, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        self._own_named(attrs, node, "can only access node lease with the same name as the requesting node")

    @staticmethod
    def _own_named(attrs: Attributes, node: str, why: str) -> None:
        """The object (the body's, on create) must be named after the node."""
        name = str(_meta(attrs.obj).get("name") or "") if attrs.operation is Operation.CREATE else attrs.name
        if name != node:
            raise admission_forbidden(attrs, why)


def _pvc_compared(pvc: Obj | None) -> dict[str, Any]:
    """The claim as admitPVCStatus compares it: no resourceVersion, managedFields or node-writable status."""
    out: dict[str, Any] = dict(pvc or {})
    meta = dict(_meta(out))
    meta.pop("resourceVersion", None)
    meta.pop("managedFields", None)
    out["metadata"] = meta
    status = dict(out.get("status") or {})
    for key in PVC_STATUS_FIELDS:
        status.pop(key, None)
    out["status"] = status
    return {k: _pruned(v) for k, v in out.items()}
