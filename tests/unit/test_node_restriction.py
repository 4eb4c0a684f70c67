"""NodeRestriction against a fake reader: what a node may write, with upstream's exact refusals."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.api.status import ApiError
from skiff.apiserver.auth import AUTHENTICATED_GROUP, UserInfo
from skiff.registry.admission import Attributes, NodeRestriction, Operation, default_chain
from skiff.registry.admission.node_restriction import forbidden_labels, modified_labels
from skiff.registry.builtin import find
from skiff.registry.resource import Obj, ResourceInfo


def row(group: str, plural: str) -> ResourceInfo:
    info = find(group, "v1", plural)
    assert info is not None
    return info


PODS = row("", "pods")
NODES = row("", "nodes")
PVCS = row("", "persistentvolumeclaims")
SERVICE_ACCOUNTS = row("", "serviceaccounts")
LEASES = row("coordination.k8s.io", "leases")
SECRETS = row("", "secrets")

NODE_A = UserInfo("system:node:a", groups=("system:nodes", AUTHENTICATED_GROUP))
ADMIN = UserInfo("kubernetes-admin", groups=("system:masters", AUTHENTICATED_GROUP))


class FakeReader:
    def __init__(self, objects: dict[tuple[str, str], list[Obj]]) -> None:
        self.objects = objects

    async def get(self, group: str, plural: str, namespace: str, name: str, *, fresh: bool = True) -> Obj | None:
        for obj in self.objects.get((group, plural), []):
            meta = obj["metadata"]
            if meta["name"] == name and meta.get("namespace", "") == namespace:
                return obj
        return None

    async def list(self, group: str, plural: str, namespace: str, *, fresh: bool = True) -> list[Obj]:
        return list(self.objects.get((group, plural), []))


def pod(name: str, node: str, **extra: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"app": "x"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        **extra,
    }


READER = FakeReader(
    {
        ("", "nodes"): [{"metadata": {"name": "a", "uid": "node-a-uid"}}],
        ("", "pods"): [pod("mine", "a"), pod("theirs", "b")],
    }
)


def mirror_pod(**spec: Any) -> Obj:
    obj = pod("static-a", "a")
    obj["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Node", "name": "a", "uid": "node-a-uid", "controller": True}
    ]
    obj["spec"].update(spec)
    return obj


def with_meta(obj: Obj, **meta: Any) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"].update(meta)
    return out


def node_obj(name: str = "a", labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


async def admit(attrs: Attributes, reader: FakeReader = READER) -> None:
    await NodeRestriction(reader).admit(attrs)


async def refusal(attrs: Attributes, reader: FakeReader = READER) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await admit(attrs, reader)
    return caught.value


def a(
    op: Operation,
    info: ResourceInfo,
    name: str,
    obj: Obj | None = None,
    old: Obj | None = None,
    *,
    namespace: str = "ns",
    subresource: str = "",
    user: UserInfo | None = NODE_A,
) -> Attributes:
    return Attributes(op, info, namespace if info.namespaced else "", name, obj, old, subresource, False, user)


MINE, THEIRS = pod("mine", "a"), pod("theirs", "b")
TOKEN_FOR = {
    "kind": "TokenRequest",
    "spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "mine", "uid": "uid-mine"}},
}


def token_request(**ref: Any) -> Obj:
    out = copy.deepcopy(TOKEN_FOR)
    out["spec"]["boundObjectRef"].update(ref)
    return out


@pytest.mark.parametrize(
    "attrs",
    [
        pytest.param(a(Operation.CREATE, PODS, "static-a", mirror_pod()), id="mirror-pod"),
        pytest.param(a(Operation.DELETE, PODS, "mine"), id="delete-own-pod"),
        pytest.param(a(Operation.UPDATE, PODS, "mine", MINE, MINE, subresource="status"), id="own-pod-status"),
        pytest.param(a(Operation.CREATE, PODS, "mine", {"kind": "Eviction"}, subresource="eviction"), id="evict-own"),
        pytest.param(a(Operation.CREATE, NODES, "a", node_obj(labels={"kubernetes.io/hostname": "a"})), id="register"),
        pytest.param(
            a(Operation.UPDATE, NODES, "a", node_obj(labels={"node.kubernetes.io/pool": "x"}), node_obj()),
            id="kubelet-label-namespace",
        ),
        pytest.param(
            a(Operation.UPDATE, NODES, "a", node_obj(labels={"example.com/team": "x"}), node_obj()),
            id="unrestricted-label",
        ),
        pytest.param(a(Operation.UPDATE, NODES, "a", node_obj(), node_obj(), subresource="status"), id="own-status"),
        pytest.param(
            a(Operation.CREATE, LEASES, "", {"metadata": {"name": "a"}}, namespace="kube-node-lease"), id="own-lease"
        ),
        pytest.param(a(Operation.UPDATE, LEASES, "a", {}, {}, namespace="kube-node-lease"), id="renew-own-lease"),
        pytest.param(
            a(Operation.CREATE, SERVICE_ACCOUNTS, "sa", TOKEN_FOR, subresource="token"), id="token-for-own-pod"
        ),
        pytest.param(
            a(
                Operation.UPDATE,
                PVCS,
                "c",
                {"metadata": {"name": "c", "resourceVersion": "2"}, "status": {"capacity": {"storage": "2Gi"}}},
                {"metadata": {"name": "c", "resourceVersion": "1"}, "status": {"capacity": {"storage": "1Gi"}}},
                subresource="status",
            ),
            id="pvc-capacity",
        ),
        pytest.param(a(Operation.CREATE, SECRETS, "s", {}), id="other-resources-are-the-authorizers"),
        pytest.param(a(Operation.DELETE, PODS, "theirs", user=ADMIN), id="not-a-node"),
        pytest.param(a(Operation.DELETE, PODS, "theirs", user=None), id="the-servers-own-write"),
    ],
)
async def test_allowed(attrs: Attributes) -> None:
    await admit(attrs)


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        pytest.param(
            a(Operation.CREATE, PODS, "p", pod("p", "a")),
            'pods "p" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, '
            'node "a" can only create mirror pods',
            id="not-a-mirror-pod",
        ),
        pytest.param(
            a(Operation.CREATE, PODS, "static-a", mirror_pod(nodeName="b")),
            'pods "static-a" is forbidden: node "a" can only create pods with spec.nodeName set to itself',
            id="mirror-pod-elsewhere",
        ),
        pytest.param(
            a(Operation.CREATE, PODS, "static-a", with_meta(mirror_pod(), ownerReferences=[])),
            'pods "static-a" is forbidden: node "a" can only create pods with an owner reference set to itself',
            id="no-owner",
        ),
        pytest.param(
            a(Operation.CREATE, PODS, "static-a", with_meta(mirror_pod(), ownerReferences=[{}, {}])),
            'pods "static-a" is forbidden: node "a" can only create pods with a single owner reference set to itself',
            id="two-owners",
        ),
        pytest.param(
            a(
                Operation.CREATE,
                PODS,
                "static-a",
                with_meta(mirror_pod(), ownerReferences=[{"apiVersion": "v1", "kind": "Node", "name": "a"}]),
            ),
            'pods "static-a" is forbidden: node "a" can only create pods with a controller owner reference set to '
            "itself",
            id="owner-not-controller",
        ),
        pytest.param(
            a(
                Operation.CREATE,
                PODS,
                "static-a",
                with_meta(
                    mirror_pod(),
                    ownerReferences=[
                        {"apiVersion": "v1", "kind": "Node", "name": "a", "controller": True, "uid": "stale"}
                    ],
                ),
            ),
            'pods "static-a" is forbidden: node a UID mismatch: expected stale got node-a-uid',
            id="stale-node-uid",
        ),
        pytest.param(
            a(Operation.CREATE, PODS, "static-a", mirror_pod(serviceAccountName="default")),
            'pods "static-a" is forbidden: node "a" can not create pods that reference a service account',
            id="mirror-pod-service-account",
        ),
        pytest.param(
            a(
                Operation.CREATE,
                PODS,
                "static-a",
                mirror_pod(containers=[{"name": "c", "envFrom": [{"secretRef": {"name": "s"}}]}]),
            ),
            'pods "static-a" is forbidden: node "a" can not create pods that reference secrets',
            id="mirror-pod-secret",
        ),
        pytest.param(
            a(Operation.CREATE, PODS, "static-a", mirror_pod(volumes=[{"name": "v", "configMap": {"name": "c"}}])),
            'pods "static-a" is forbidden: node "a" can not create pods that reference configmaps',
            id="mirror-pod-configmap",
        ),
        pytest.param(
            a(
                Operation.CREATE,
                PODS,
                "static-a",
                mirror_pod(volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]),
            ),
            'pods "static-a" is forbidden: node "a" can not create pods that reference persistentvolumeclaims',
            id="mirror-pod-claim",
        ),
        pytest.param(
            a(Operation.DELETE, PODS, "theirs"),
            'pods "theirs" is forbidden: node "a" can only delete pods with spec.nodeName set to itself',
            id="delete-other-nodes-pod",
        ),
        pytest.param(
            a(Operation.UPDATE, PODS, "mine", MINE, MINE),
            'pods "mine" is forbidden: unexpected operation "UPDATE", node "a" can only create and delete mirror pods',
            id="update-pod",
        ),
        pytest.param(
            a(Operation.UPDATE, PODS, "theirs", THEIRS, THEIRS, subresource="status"),
            'pods "theirs" is forbidden: node "a" can only update pod status for pods with spec.nodeName set to itself',
            id="other-pods-status",
        ),
        pytest.param(
            a(Operation.UPDATE, PODS, "mine", with_meta(MINE, labels={"app": "y"}), MINE, subresource="status"),
            'pods "mine" is forbidden: node "a" cannot update labels through pod status',
            id="labels-through-status",
        ),
        pytest.param(
            a(Operation.CREATE, PODS, "theirs", {"kind": "Eviction"}, subresource="eviction"),
            'pods "theirs" is forbidden: node a can only evict pods with spec.nodeName set to itself',
            id="evict-other-nodes-pod",
        ),
        pytest.param(
            a(Operation.CREATE, PODS, "mine", {}, subresource="binding"),
            "pods \"mine\" is forbidden: unexpected pod subresource \"binding\", only 'status' and 'eviction' are "
            "allowed",
            id="binding",
        ),
        pytest.param(
            a(Operation.UPDATE, NODES, "b", node_obj("b"), node_obj("b")),
            'nodes "b" is forbidden: node "a" is not allowed to modify node "b"',
            id="update-other-node",
        ),
        pytest.param(
            a(Operation.UPDATE, NODES, "b", node_obj("b"), node_obj("b"), subresource="status"),
            'nodes "b" is forbidden: node "a" is not allowed to modify node "b"',
            id="other-node-status",
        ),
        pytest.param(
            a(Operation.CREATE, NODES, "a", node_obj(configSource={"configMap": {"name": "c"}})),
            'nodes "a" is forbidden: node "a" is not allowed to create pods with a non-nil configSource',
            id="register-with-config-source",
        ),
        pytest.param(
            a(
                Operation.CREATE,
                NODES,
                "a",
                node_obj(labels={"node-restriction.kubernetes.io/x": "1", "node-role.kubernetes.io/master": ""}),
            ),
            'nodes "a" is forbidden: node "a" is not allowed to set the following labels: '
            "node-restriction.kubernetes.io/x, node-role.kubernetes.io/master",
            id="register-with-restricted-labels",
        ),
        pytest.param(
            a(Operation.UPDATE, NODES, "a", node_obj(), node_obj(labels={"foo.k8s.io/x": "1"})),
            'nodes "a" is forbidden: is not allowed to modify labels: foo.k8s.io/x',
            id="remove-kubernetes-label",
        ),
        pytest.param(
            a(
                Operation.UPDATE,
                NODES,
                "a",
                node_obj(),
                node_obj(taints=[{"key": "k", "effect": "NoSchedule"}]),
            ),
            'nodes "a" is forbidden: node "a" is not allowed to modify taints',
            id="remove-taint",
        ),
        pytest.param(
            a(Operation.UPDATE, NODES, "a", node_obj(configSource={"configMap": {"name": "c"}}), node_obj()),
            'nodes "a" is forbidden: node "a" is not allowed to update configSource to a new non-nil configSource',
            id="set-config-source",
        ),
        pytest.param(
            a(Operation.CREATE, LEASES, "", {"metadata": {"name": "b"}}, namespace="kube-node-lease"),
            'leases.coordination.k8s.io "b" is forbidden: can only access node lease with the same name as the '
            "requesting node",
            id="lease-of-b",
        ),
        pytest.param(
            a(Operation.UPDATE, LEASES, "a", {}, {}, namespace="kube-system"),
            'leases.coordination.k8s.io "a" is forbidden: can only access leases in the "kube-node-lease" system '
            "namespace",
            id="lease-elsewhere",
        ),
        pytest.param(
            a(Operation.CREATE, SERVICE_ACCOUNTS, "sa", {"spec": {}}, subresource="token"),
            'serviceaccounts "sa" is forbidden: node requested token not bound to a pod',
            id="unbound-token",
        ),
        pytest.param(
            a(Operation.CREATE, SERVICE_ACCOUNTS, "sa", token_request(uid=""), subresource="token"),
            'serviceaccounts "sa" is forbidden: node requested token with a pod binding without a uid',
            id="token-without-uid",
        ),
        pytest.param(
            a(Operation.CREATE, SERVICE_ACCOUNTS, "sa", token_request(uid="old"), subresource="token"),
            'serviceaccounts "sa" is forbidden: the UID in the bound object reference (old) does not match the UID in '
            "record. The object might have been deleted and then recreated",
            id="token-stale-uid",
        ),
        pytest.param(
            a(
                Operation.CREATE,
                SERVICE_ACCOUNTS,
                "sa",
                token_request(name="theirs", uid="uid-theirs"),
                subresource="token",
            ),
            'serviceaccounts "sa" is forbidden: node requested token bound to a pod scheduled on a different node',
            id="token-for-other-nodes-pod",
        ),
        pytest.param(
            a(Operation.UPDATE, PVCS, "c", {"metadata": {"name": "c"}}, {"metadata": {"name": "c"}}),
            'persistentvolumeclaims "c" is forbidden: may only update PVC status',
            id="pvc-spec",
        ),
        pytest.param(
            a(
                Operation.UPDATE,
                PVCS,
                "c",
                {"metadata": {"name": "c", "labels": {"x": "y"}}},
                {"metadata": {"name": "c"}},
                subresource="status",
            ),
            'persistentvolumeclaims "c" is forbidden: node "a" is not allowed to update fields other than '
            "status.capacity and status.conditions: metadata changed",
            id="pvc-status-relabel",
        ),
        pytest.param(
            a(Operation.DELETE, PODS, "mine", user=UserInfo("system:node:", groups=("system:nodes",))),
            'pods "mine" is forbidden: could not determine node from user "system:node:"',
            id="unidentifiable-node",
        ),
    ],
)
async def test_refused(attrs: Attributes, message: str) -> None:
    err = await refusal(attrs)
    assert (err.code, err.reason, err.message) == (403, "Forbidden", message)


@pytest.mark.parametrize(
    "attrs",
    [
        pytest.param(a(Operation.DELETE, PODS, "gone"), id="delete"),
        pytest.param(a(Operation.CREATE, PODS, "gone", {}, subresource="eviction"), id="evict"),
        pytest.param(
            a(Operation.CREATE, SERVICE_ACCOUNTS, "sa", token_request(name="gone"), subresource="token"), id="token"
        ),
    ],
)
async def test_a_missing_pod_is_not_found(attrs: Attributes) -> None:
    err = await refusal(attrs)
    assert (err.code, err.message) == (404, 'pods "gone" not found')


async def test_a_mirror_pod_for_an_unregistered_node_is_not_found() -> None:
    err = await refusal(a(Operation.CREATE, PODS, "static-a", mirror_pod()), FakeReader({}))
    assert (err.code, err.message) == (404, 'nodes "a" not found')


@pytest.mark.parametrize(
    ("new", "old", "refused"),
    [
        pytest.param({"kubernetes.io/hostname": "a"}, {}, [], id="kubelet-label"),
        pytest.param({"topology.kubernetes.io/zone": "z"}, {}, [], id="topology"),
        pytest.param({"x.kubelet.kubernetes.io/y": "1"}, {}, [], id="kubelet-namespace-suffix"),
        pytest.param({"example.com/x": "1"}, {}, [], id="not-kubernetes"),
        pytest.param({"a.node-restriction.kubernetes.io/x": "1"}, {}, ["a.node-restriction.kubernetes.io/x"], id="nr"),
        pytest.param({}, {"kubernetes.io/role": "x"}, ["kubernetes.io/role"], id="removed"),
        pytest.param({"kubernetes.io/role": "x"}, {"kubernetes.io/role": "x"}, [], id="unchanged"),
    ],
)
def test_label_rules(new: dict[str, str], old: dict[str, str], refused: list[str]) -> None:
    assert forbidden_labels(modified_labels(new, old)) == refused


def test_the_default_chain_runs_it_after_service_account_and_before_priority() -> None:
    names = [type(p).__name__ for p in default_chain(READER).plugins]
    assert names.index("ServiceAccountAdmission") < names.index("NodeRestriction") < names.index("Priority")
