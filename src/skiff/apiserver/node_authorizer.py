"""The Node authorizer: what a kubelet may read, decided by the pods bound to its node.

Upstream's plugin/pkg/auth/authorizer/node, for users a node identifies as
(``system:node:<name>`` in ``system:nodes``, ``registry.node_identity``);
for anyone else it has no opinion.  As ``--authorization-mode=Node,RBAC`` it
sits before RBAC in a ``UnionAuthorizer``; it only allows or has no opinion.

* secrets and configmaps: get, list and watch of one named object (a list or
  watch names it through a ``metadata.name`` field selector), allowed when a
  pod bound to the node (``spec.nodeName``) refers to it
  (``registry.core.references``), or — for a secret — when a
  PersistentVolume bound (``spec.claimRef``) to a claim such a pod mounts
  names it for the kubelet;
* persistentvolumeclaims: get of a claim such a pod mounts (ephemeral
  volumes' generated claims included), and update/patch of its ``status``;
* persistentvolumes: get of a volume whose ``spec.claimRef`` is such a claim
  (the claim side, ``spec.volumeName``, is the user's to write, so upstream
  trusts only the volume's side);
* serviceaccounts: only create of ``token`` for an account such a pod runs
  as (NodeRestriction then requires the token to be bound to that pod);
* volumeattachments: get — refused, as there is no VolumeAttachment graph yet;
* leases (coordination.k8s.io): get, create, update, patch and delete in
  ``kube-node-lease`` of the lease named after the node (create is checked
  by NodeRestriction, which sees the name);
* csinodes: the same verbs on the CSINode named after the node;
* everything else: upstream's static ``system:node`` rules (NodeRules(),
  ``NODE_POLICY_RULES``).  Pods and nodes are there too: without field
  selectors in the authorizer's attributes this is upstream's behaviour with
  AuthorizeNodeWithSelectors off, and NodeRestriction limits what a node may
  write to its own pods and Node.

Mirror pods give their node no edges (a node must not grant itself access by
creating a pod).  Refusal reasons are upstream's.

The graph is an index beside the API server's pod and PersistentVolume watch
caches (an informer's view, as upstream's graph populator): per node, a
count of how many of its pods refer to each object; per volume, its claim
and secrets.  It catches up lazily when asked, from the caches' rings of
recent changes — only changed pods are read again, and a pod whose node did
not change is skipped unless it gained ephemeral containers (upstream's
rule: a bound pod's references are otherwise immutable).  A full re-read
happens first and when the ring no longer holds the changes since the last
look (the cache re-listed).  Checks are then a few dict lookups.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from skiff.apiserver.auth import Attributes, Rules, UserInfo
from skiff.apiserver.rbac import Rule, compile_rules
from skiff.registry.core.references import claim_names, configmap_names, pv_secret_refs, secret_names
from skiff.registry.node_identity import NODE_LEASE_NAMESPACE, node_identity
from skiff.registry.watch_events import CachedObject, CacheEvent

READ = ["get", "list", "watch"]
#: What a node may do to its own Lease and CSINode.
OWN_OBJECT_VERBS = ["get", "create", "update", "patch", "delete"]
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
NODE_NAME_FIELD = "spec.nodeName"

#: Upstream's NodeRules(): the system:node ClusterRole, without feature-gated DRA and ClusterTrustBundle rules.
NODE_POLICY_RULES: tuple[dict[str, list[str]], ...] = (
    # Needed to check API access; these creates do not mutate.
    {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"]},
    {
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["subjectaccessreviews", "localsubjectaccessreviews"],
    },
    # The service lister, for services' environment variables.
    {"verbs": READ, "apiGroups": [""], "resources": ["services"]},
    # Nodes register and report status; NodeRestriction limits them to their own Node.
    {"verbs": ["create", "get", "list", "watch"], "apiGroups": [""], "resources": ["nodes"]},
    {"verbs": ["update", "patch"], "apiGroups": [""], "resources": ["nodes/status"]},
    {"verbs": ["update", "patch"], "apiGroups": [""], "resources": ["nodes"]},
    {"verbs": ["create", "update", "patch"], "apiGroups": [""], "resources": ["events"]},
    {"verbs": READ, "apiGroups": [""], "resources": ["pods"]},
    # Mirror pods, pod status and evictions; NodeRestriction limits them to the node's own pods.
    {"verbs": ["create", "delete"], "apiGroups": [""], "resources": ["pods"]},
    {"verbs": ["update", "patch"], "apiGroups": [""], "resources": ["pods/status"]},
    {"verbs": ["create"], "apiGroups": [""], "resources": ["pods/eviction"]},
    # Narrowed by the graph above.
    {"verbs": READ, "apiGroups": [""], "resources": ["secrets", "configmaps"]},
    {"verbs": ["get"], "apiGroups": [""], "resources": ["persistentvolumeclaims", "persistentvolumes"]},
    {"verbs": ["get"], "apiGroups": [""], "resources": ["endpoints"]},
    # The kubelet rotating its own client certificate.
    {
        "verbs": ["create", "get", "list", "watch"],
        "apiGroups": ["certificates.k8s.io"],
        "resources": ["certificatesigningrequests"],
    },
    {"verbs": OWN_OBJECT_VERBS, "apiGroups": ["coordination.k8s.io"], "resources": ["leases"]},
    {"verbs": ["get"], "apiGroups": ["storage.k8s.io"], "resources": ["volumeattachments"]},
    {"verbs": ["create"], "apiGroups": [""], "resources": ["serviceaccounts/token"]},
    {"verbs": ["get", "update", "patch"], "apiGroups": [""], "resources": ["persistentvolumeclaims/status"]},
    {"verbs": ["get", "watch", "list"], "apiGroups": ["storage.k8s.io"], "resources": ["csidrivers"]},
    {"verbs": OWN_OBJECT_VERBS, "apiGroups": ["storage.k8s.io"], "resources": ["csinodes"]},
    {"verbs": READ, "apiGroups": ["node.k8s.io"], "resources": ["runtimeclasses"]},
)
NODE_RULES: tuple[Rule, ...] = compile_rules({"rules": list(NODE_POLICY_RULES)})

#: (resource, namespace, name) of an object a node's pods refer to.
Ref = tuple[str, str, str]


class ObjectCache(Protocol):
    """What the authorizer reads of a ``WatchCache``."""

    changes: int
    revision: int

    def snapshot(self, namespace: str | None) -> tuple[int, list[CachedObject]]: ...

    def events_after(self, revision: int) -> list[CacheEvent] | None: ...


def pod_refs(pod: Mapping[str, Any]) -> frozenset[Ref]:
    """The objects a bound pod gives its node access to (none for a mirror pod, as upstream's AddPod)."""
    meta = pod.get("metadata") or {}
    if MIRROR_POD_ANNOTATION in (meta.get("annotations") or {}):
        return frozenset()
    namespace = str(meta.get("namespace") or "")
    refs = {("secrets", namespace, n) for n in secret_names(pod)}
    refs |= {("configmaps", namespace, n) for n in configmap_names(pod)}
    refs |= {("persistentvolumeclaims", namespace, n) for n in claim_names(pod)}
    account = (pod.get("spec") or {}).get("serviceAccountName")
    if account:
        refs.add(("serviceaccounts", namespace, str(account)))
    return frozenset(refs)


class NodeGraph:
    """Who may read what: per node, its pods' references (counted); per volume, its claim and secrets."""

    def __init__(self) -> None:
        self._pods: dict[str, tuple[str, frozenset[Ref]]] = {}
        self._refs: dict[str, Counter[Ref]] = {}
        self._pv_claims: dict[str, tuple[str, str]] = {}
        self._pv_secrets: dict[str, tuple[tuple[str, str], ...]] = {}
        self._pvs_by_secret: dict[tuple[str, str], set[str]] = {}

    def clear_pods(self) -> None:
        self._pods.clear()
        self._refs.clear()

    def set_pod(self, key: str, pod: Mapping[str, Any]) -> None:
        """Index ``pod`` (stored under ``key``) afresh: its node and references, replacing what ``key`` had."""
        self.remove_pod(key)
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        refs = pod_refs(pod) if node else frozenset()
        if not refs:
            return
        self._pods[key] = (node, refs)
        self._refs.setdefault(node, Counter()).update(refs)

    def remove_pod(self, key: str) -> None:
        entry = self._pods.pop(key, None)
        if entry is None:
            return
        node, refs = entry
        counts = self._refs[node]
        counts.subtract(refs)
        for ref in refs:
            if counts[ref] <= 0:
                del counts[ref]
        if not counts:
            del self._refs[node]

    def clear_volumes(self) -> None:
        self._pv_claims.clear()
        self._pv_secrets.clear()
        self._pvs_by_secret.clear()

    def set_volume(self, name: str, pv: Mapping[str, Any] | None) -> None:
        """Index a PersistentVolume (None: deleted); only a volume with a ``claimRef`` gets edges, as upstream."""
        for secret in self._pv_secrets.pop(name, ()):
            holders = self._pvs_by_secret.get(secret)
            if holders is not None:
                holders.discard(name)
                if not holders:
                    del self._pvs_by_secret[secret]
        self._pv_claims.pop(name, None)
        claim = ((pv or {}).get("spec") or {}).get("claimRef")
        if pv is None or not isinstance(claim, Mapping):
            return
        self._pv_claims[name] = (str(claim.get("namespace") or ""), str(claim.get("name") or ""))
        secrets = tuple(dict.fromkeys(pv_secret_refs(pv)))
        if secrets:
            self._pv_secrets[name] = secrets
            for secret in secrets:
                self._pvs_by_secret.setdefault(secret, set()).add(name)

    def _refers(self, node: str, ref: Ref) -> bool:
        counts = self._refs.get(node)
        return counts is not None and counts[ref] > 0

    def _volume_on(self, node: str, pv_name: str) -> bool:
        claim = self._pv_claims.get(pv_name)
        return claim is not None and self._refers(node, ("persistentvolumeclaims", *claim))

    def has_path(self, node: str, resource: str, namespace: str, name: str) -> bool:
        """Whether an object of ``resource`` leads to ``node`` (upstream's hasPathFrom)."""
        if resource == "persistentvolumes":
            return self._volume_on(node, name)
        if self._refers(node, (resource, namespace, name)):
            return True
        if resource == "secrets":
            return any(self._volume_on(node, pv) for pv in self._pvs_by_secret.get((namespace, name), ()))
        return False


class _Follower:
    """Keeps an index up to date with one watch cache: a full re-read, then the cache's changes."""

    def __init__(
        self, cache: ObjectCache, reset: Callable[[Iterable[CachedObject]], None], apply: Callable[[CacheEvent], None]
    ) -> None:
        self.cache = cache
        self._reset = reset
        self._apply = apply
        self._changes: int | None = None
        self._revision = 0

    def catch_up(self) -> None:
        cache = self.cache
        if cache.changes == self._changes:
            return
        events = cache.events_after(self._revision) if self._changes is not None else None
        if events is None:
            revision, objects = cache.snapshot(None)
            self._reset(objects)
        else:
            for event in events:
                self._apply(event)
            revision = cache.revision
        self._revision = revision
        self._changes = cache.changes


def _node_of(cached: CachedObject) -> str:
    return cached.fields.get(NODE_NAME_FIELD, "")


def _ephemeral_count(cached: CachedObject) -> int:
    if b'"ephemeralContainers"' not in cached.raw:
        return 0
    containers = (cached.obj.get("spec") or {}).get("ephemeralContainers")
    return len(containers) if isinstance(containers, list) else 0


Check = Callable[[str, Attributes], tuple[bool, str]]


class NodeAuthorizer:
    """The ``Authorizer`` for ``--authorization-mode Node``, over the pods' and PersistentVolumes' watch caches."""

    def __init__(self, pods: ObjectCache, persistent_volumes: ObjectCache) -> None:
        self.graph = NodeGraph()
        self._pods = _Follower(pods, self._reset_pods, self._pod_changed)
        self._volumes = _Follower(persistent_volumes, self._reset_volumes, self._volume_changed)
        self._checks: dict[tuple[str, str], Check] = {
            ("", "secrets"): self._read_named,
            ("", "configmaps"): self._read_named,
            ("", "persistentvolumeclaims"): self._claim,
            ("", "persistentvolumes"): self._get,
            ("storage.k8s.io", "volumeattachments"): self._get,
            ("", "serviceaccounts"): self._create_token,
            ("coordination.k8s.io", "leases"): self._lease,
            ("storage.k8s.io", "csinodes"): self._csi_node,
        }

    # -- the graph ---------------------------------------------------------------------------------
    def _reset_pods(self, objects: Iterable[CachedObject]) -> None:
        self.graph.clear_pods()
        for cached in objects:
            if _node_of(cached):
                self.graph.set_pod(cached.key, cached.obj)

    def _pod_changed(self, event: CacheEvent) -> None:
        current, previous = event.current, event.previous
        if current is None or not _node_of(current):
            self.graph.remove_pod(event.key)
            return
        if (
            previous is not None
            and _node_of(previous) == _node_of(current)
            and _ephemeral_count(current) <= _ephemeral_count(previous)
        ):
            return  # a bound pod's references do not change (upstream's updatePod)
        self.graph.set_pod(event.key, current.obj)

    def _reset_volumes(self, objects: Iterable[CachedObject]) -> None:
        self.graph.clear_volumes()
        for cached in objects:
            self.graph.set_volume(cached.name, cached.obj)

    def _volume_changed(self, event: CacheEvent) -> None:
        current = event.current
        name = current.name if current is not None else event.previous.name if event.previous is not None else ""
        self.graph.set_volume(name, current.obj if current is not None else None)

    def has_path(self, node: str, resource: str, namespace: str, name: str) -> bool:
        self._pods.catch_up()
        self._volumes.catch_up()
        return self.graph.has_path(node, resource, namespace, name)

    # -- authorization -----------------------------------------------------------------------------
    def authorize(self, user: UserInfo, attributes: Attributes) -> tuple[bool, str]:
        node, is_node = node_identity(user)
        if not is_node:
            return False, ""
        if not node:
            return False, f'unknown node for user "{user.name}"'
        if attributes.resource_request:
            check = self._checks.get((attributes.api_group, attributes.resource))
            if check is not None:
                return check(node, attributes)
        if any(rule.allows(attributes) for rule in NODE_RULES):
            return True, ""
        return False, ""

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        """Nothing enumerable: a node's permissions depend on its pods (upstream reports them incomplete)."""
        _, is_node = node_identity(user)
        return [], [], is_node

    def _related(self, node: str, resource: str, attributes: Attributes) -> tuple[bool, str]:
        if not attributes.name:
            return False, "No Object name found"
        if self.has_path(node, resource, attributes.namespace, attributes.name):
            return True, ""
        return False, f"no relationship found between node '{node}' and this object"

    def _read_named(self, node: str, attributes: Attributes) -> tuple[bool, str]:
        """authorizeReadNamespacedObject: get, list or watch of one related object."""
        if attributes.verb not in ("get", "list", "watch"):
            return False, "can only read resources of this type"
        if attributes.subresource:
            return False, "cannot read subresource"
        if not attributes.namespace:
            return False, "can only read namespaced object of this type"
        return self._related(node, attributes.resource, attributes)

    def _get(self, node: str, attributes: Attributes) -> tuple[bool, str]:
        """authorizeGet: get of one related object."""
        if attributes.verb != "get":
            return False, "can only get individual resources of this type"
        if attributes.subresource:
            return False, "cannot get subresource"
        return self._related(node, attributes.resource, attributes)

    def _claim(self, node: str, attributes: Attributes) -> tuple[bool, str]:
        if attributes.subresource != "status":
            return self._get(node, attributes)
        if attributes.verb not in ("update", "patch"):
            return False, "can only get/update/patch this type"
        return self._related(node, attributes.resource, attributes)

    def _create_token(self, node: str, attributes: Attributes) -> tuple[bool, str]:
        if attributes.verb != "create" or not attributes.name:
            return False, "can only create tokens for individual service accounts"
        if attributes.subresource != "token":
            return False, "can only create token subresource of serviceaccount"
        return self._related(node, attributes.resource, attributes)

    def _lease(self, node: str, attributes: Attributes) -> tuple[bool, str]:
        if attributes.verb not in OWN_OBJECT_VERBS:
            return False, "can only get, create, update, patch, or delete a node lease"
        if attributes.namespace != NODE_LEASE_NAMESPACE:
            return False, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
        # The name of a create is in its body: NodeRestriction checks it.
        if attributes.verb != "create" and attributes.name != node:
            return False, "can only access node lease with the same name as the requesting node"
        return True, ""

    def _csi_node(self, node: str, attributes: Attributes) -> tuple[bool, str]:
        if attributes.verb not in OWN_OBJECT_VERBS:
            return False, "can only get, create, update, patch, or delete a CSINode"
        if attributes.subresource:
            return False, "cannot authorize CSINode subresources"
        if attributes.verb != "create" and attributes.name != node:
            return False, "can only access CSINode with the same name as the requesting node"
        return True, ""
