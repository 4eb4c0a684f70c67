"""The Node authorizer over fake watch caches: upstream's decisions and reasons, and how its graph follows changes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from skiff.apiserver.app import selected_name
from skiff.apiserver.auth import AUTHENTICATED_GROUP, Attributes, UserInfo
from skiff.apiserver.node_authorizer import NODE_POLICY_RULES, NODE_RULES, NodeAuthorizer, pod_refs
from skiff.registry.builtin import find
from skiff.registry.core.references import claim_names, configmap_names, pv_secret_refs, secret_names
from skiff.registry.keys import object_key
from skiff.registry.listing import field_values
from skiff.registry.resource import Obj, ResourceInfo
from skiff.registry.watch_cache import WatchCache
from skiff.registry.watch_events import CachedObject, CacheEvent
from skiff.store.sqlite import SqliteStore
from skiff.store.types import DeleteRange, Put


def row(group: str, plural: str) -> ResourceInfo:
    info = find(group, "v1", plural)
    assert info is not None
    return info


PODS = row("", "pods")
PVS = row("", "persistentvolumes")


class FakeCache:
    """A WatchCache's reading side: objects, a ring of events, ``changes`` and ``revision``."""

    def __init__(self, info: ResourceInfo) -> None:
        self.info = info
        self.objects: dict[str, CachedObject] = {}
        self.ring: list[CacheEvent] = []
        self.revision = 0
        self.history_from = 0
        self.changes = 0
        self.snapshots = 0

    def _key(self, obj: Obj) -> str:
        meta = obj["metadata"]
        return f"/registry/{self.info.plural}/{meta.get('namespace', '')}/{meta['name']}".replace("//", "/")

    def put(self, obj: Obj) -> None:
        self.revision += 1
        key = self._key(obj)
        current = CachedObject(key, obj, self.revision, field_values(obj, self.info))
        previous = self.objects.get(key)
        self.objects[key] = current
        self.ring.append(CacheEvent("MODIFIED" if previous else "ADDED", self.revision, current, previous))
        self.changes += 1

    def delete(self, obj: Obj) -> None:
        self.revision += 1
        key = self._key(obj)
        previous = self.objects.pop(key)
        self.ring.append(CacheEvent("DELETED", self.revision, None, previous))
        self.changes += 1

    def relist(self) -> None:
        """What a re-list does after missing a change: the ring starts again at the store's (newer) revision."""
        self.revision += 1
        self.ring.clear()
        self.history_from = self.revision
        self.changes += 1

    def snapshot(self, namespace: str | None) -> tuple[int, list[CachedObject]]:
        self.snapshots += 1
        return self.revision, [self.objects[k] for k in sorted(self.objects)]

    def events_after(self, revision: int) -> list[CacheEvent] | None:
        if revision < self.history_from:
            return None
        return [e for e in self.ring if e.revision > revision]


def node_user(name: str) -> UserInfo:
    return UserInfo(f"system:node:{name}", groups=("system:nodes", AUTHENTICATED_GROUP))


def attrs(
    verb: str, resource: str, name: str = "", namespace: str = "", group: str = "", subresource: str = ""
) -> Attributes:
    return Attributes(
        verb=verb,
        resource_request=True,
        namespace=namespace,
        api_group=group,
        api_version="v1",
        resource=resource,
        subresource=subresource,
        name=name,
    )


def pod(name: str, node: str, namespace: str = "ns", **spec: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}], **spec},
    }


#: A pod on node "a" naming objects in every way upstream follows.
POD_A = pod(
    "p",
    "a",
    serviceAccountName="sa",
    imagePullSecrets=[{"name": "pull"}],
    initContainers=[{"name": "i", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "init-env"}}}]}],
    containers=[
        {
            "name": "c",
            "envFrom": [{"configMapRef": {"name": "cm-from"}}, {"secretRef": {"name": "s-from"}}],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm-key", "key": "k"}}}],
        }
    ],
    volumes=[
        {"name": "v1", "secret": {"secretName": "s-vol"}},
        {"name": "v2", "configMap": {"name": "cm-vol"}},
        {"name": "v3", "projected": {"sources": [{"secret": {"name": "s-proj"}}, {"configMap": {"name": "cm-proj"}}]}},
        {"name": "v4", "persistentVolumeClaim": {"claimName": "claim"}},
        {"name": "v5", "ephemeral": {"volumeClaimTemplate": {}}},
        {"name": "v6", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "s-csi"}}},
    ],
)


def pv(name: str, claim_ns: str, claim: str, **source: Any) -> Obj:
    return {"metadata": {"name": name}, "spec": {"claimRef": {"namespace": claim_ns, "name": claim}, **source}}


@pytest.fixture
def caches() -> tuple[FakeCache, FakeCache]:
    pods, pvs = FakeCache(PODS), FakeCache(PVS)
    pods.put(copy.deepcopy(POD_A))
    pods.put(pod("other", "b", volumes=[{"name": "v", "secret": {"secretName": "b-only"}}]))
    pods.put(pod("pending", "", volumes=[{"name": "v", "secret": {"secretName": "unscheduled"}}]))
    pvs.put(
        pv(
            "pv-a",
            "ns",
            "claim",
            csi={
                "driver": "d",
                "nodePublishSecretRef": {"namespace": "ns", "name": "pv-node-secret"},
                "controllerPublishSecretRef": {"namespace": "ns", "name": "pv-controller-secret"},
            },
        )
    )
    pvs.put(pv("pv-other", "ns", "someone-elses"))
    return pods, pvs


@pytest.fixture
def authorizer(caches: tuple[FakeCache, FakeCache]) -> NodeAuthorizer:
    return NodeAuthorizer(*caches)


def test_pod_references_follow_upstreams_visitors() -> None:
    assert sorted(secret_names(POD_A)) == ["init-env", "pull", "s-csi", "s-from", "s-proj", "s-vol"]
    assert sorted(configmap_names(POD_A)) == ["cm-from", "cm-key", "cm-proj", "cm-vol"]
    assert claim_names(POD_A) == ["claim", "p-v5"]
    assert ("serviceaccounts", "ns", "sa") in pod_refs(POD_A)
    mirror = copy.deepcopy(POD_A)
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    assert pod_refs(mirror) == frozenset()


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        pytest.param(
            {
                "csi": {
                    "nodeStageSecretRef": {"namespace": "n", "name": "s"},
                    "controllerExpandSecretRef": {"name": "x"},
                }
            },
            [("n", "s")],
            id="csi-node-side-only",
        ),
        pytest.param({"rbd": {"secretRef": {"name": "s"}}}, [("ns", "s")], id="rbd-defaults-to-claim-namespace"),
        pytest.param({"cephfs": {"secretRef": {"namespace": "o", "name": "s"}}}, [("o", "s")], id="cephfs-own-ns"),
        pytest.param({"azureFile": {"secretName": "s"}}, [("ns", "s")], id="azurefile"),
        pytest.param({"nfs": {"server": "x", "path": "/"}}, [], id="no-secret"),
    ],
)
def test_pv_secrets_the_kubelet_reads(volume: Obj, expected: list[tuple[str, str]]) -> None:
    assert pv_secret_refs(pv("v", "ns", "c", **volume)) == expected


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        pytest.param(UserInfo("kubernetes-admin", groups=("system:masters",)), (False, ""), id="not-a-node"),
        pytest.param(UserInfo("system:node:a", groups=(AUTHENTICATED_GROUP,)), (False, ""), id="name-without-group"),
        pytest.param(UserInfo("a", groups=("system:nodes",)), (False, ""), id="group-without-name"),
        pytest.param(
            UserInfo("system:node:", groups=("system:nodes",)),
            (False, 'unknown node for user "system:node:"'),
            id="unidentifiable-node",
        ),
    ],
)
def test_who_is_a_node(authorizer: NodeAuthorizer, user: UserInfo, expected: tuple[bool, str]) -> None:
    assert authorizer.authorize(user, attrs("get", "secrets", "s-vol", "ns")) == expected


NO_PATH_B = "no relationship found between node 'b' and this object"
NO_PATH_A = "no relationship found between node 'a' and this object"


@pytest.mark.parametrize(
    ("node", "request_attrs", "expected"),
    [
        # secrets and configmaps: get/list/watch of one related object
        *(
            pytest.param("a", attrs("get", "secrets", n, "ns"), (True, ""), id=f"secret-{n}")
            for n in ("s-vol", "s-from", "init-env", "pull", "s-proj", "s-csi")
        ),
        *(
            pytest.param("a", attrs("get", "configmaps", n, "ns"), (True, ""), id=f"configmap-{n}")
            for n in ("cm-vol", "cm-from", "cm-key", "cm-proj")
        ),
        pytest.param("b", attrs("get", "secrets", "s-vol", "ns"), (False, NO_PATH_B), id="secret-of-another-node"),
        pytest.param("a", attrs("get", "secrets", "b-only", "ns"), (False, NO_PATH_A), id="secret-only-on-b"),
        pytest.param("b", attrs("get", "secrets", "b-only", "ns"), (True, ""), id="b-reads-its-own"),
        pytest.param("a", attrs("get", "secrets", "unscheduled", "ns"), (False, NO_PATH_A), id="unbound-pod"),
        pytest.param("a", attrs("get", "secrets", "s-vol", "other"), (False, NO_PATH_A), id="other-namespace"),
        pytest.param("a", attrs("watch", "secrets", "s-vol", "ns"), (True, ""), id="watch-one-by-name"),
        pytest.param("a", attrs("list", "secrets", "", "ns"), (False, "No Object name found"), id="list-all"),
        pytest.param(
            "a", attrs("update", "secrets", "s-vol", "ns"), (False, "can only read resources of this type"), id="write"
        ),
        pytest.param(
            "a",
            attrs("get", "secrets", "s-vol", "ns", subresource="x"),
            (False, "cannot read subresource"),
            id="subresource",
        ),
        pytest.param(
            "a",
            attrs("list", "configmaps", "cm-vol"),
            (False, "can only read namespaced object of this type"),
            id="all-namespaces",
        ),
        # claims and volumes
        pytest.param("a", attrs("get", "persistentvolumeclaims", "claim", "ns"), (True, ""), id="claim"),
        pytest.param("a", attrs("get", "persistentvolumeclaims", "p-v5", "ns"), (True, ""), id="ephemeral-claim"),
        pytest.param(
            "a",
            attrs("list", "persistentvolumeclaims", "claim", "ns"),
            (False, "can only get individual resources of this type"),
            id="claim-list",
        ),
        pytest.param(
            "a", attrs("patch", "persistentvolumeclaims", "claim", "ns", subresource="status"), (True, ""), id="status"
        ),
        pytest.param(
            "a",
            attrs("get", "persistentvolumeclaims", "claim", "ns", subresource="status"),
            (False, "can only get/update/patch this type"),
            id="claim-status-get",
        ),
        pytest.param("a", attrs("get", "persistentvolumes", "pv-a"), (True, ""), id="volume-via-claim-ref"),
        pytest.param("b", attrs("get", "persistentvolumes", "pv-a"), (False, NO_PATH_B), id="volume-other-node"),
        pytest.param("a", attrs("get", "persistentvolumes", "pv-other"), (False, NO_PATH_A), id="volume-other-claim"),
        pytest.param("a", attrs("get", "secrets", "pv-node-secret", "ns"), (True, ""), id="volume-node-secret"),
        pytest.param(
            "a", attrs("get", "secrets", "pv-controller-secret", "ns"), (False, NO_PATH_A), id="volume-ctrl-secret"
        ),
        pytest.param(
            "a", attrs("get", "volumeattachments", "va", group="storage.k8s.io"), (False, NO_PATH_A), id="no-va-graph"
        ),
        # service account tokens
        pytest.param(
            "a", attrs("create", "serviceaccounts", "sa", "ns", subresource="token"), (True, ""), id="token-of-pod-sa"
        ),
        pytest.param(
            "a",
            attrs("create", "serviceaccounts", "default", "ns", subresource="token"),
            (False, NO_PATH_A),
            id="token-of-other-sa",
        ),
        pytest.param(
            "b", attrs("create", "serviceaccounts", "sa", "ns", subresource="token"), (False, NO_PATH_B), id="token-b"
        ),
        pytest.param(
            "a",
            attrs("get", "serviceaccounts", "sa", "ns"),
            (False, "can only create tokens for individual service accounts"),
            id="serviceaccount-get",
        ),
        pytest.param(
            "a",
            attrs("create", "serviceaccounts", "sa", "ns"),
            (False, "can only create token subresource of serviceaccount"),
            id="serviceaccount-create",
        ),
        # leases
        pytest.param(
            "a", attrs("update", "leases", "a", "kube-node-lease", "coordination.k8s.io"), (True, ""), id="own-lease"
        ),
        pytest.param(
            "a", attrs("create", "leases", "", "kube-node-lease", "coordination.k8s.io"), (True, ""), id="lease-create"
        ),
        pytest.param(
            "a",
            attrs("update", "leases", "b", "kube-node-lease", "coordination.k8s.io"),
            (False, "can only access node lease with the same name as the requesting node"),
            id="lease-of-b",
        ),
        pytest.param(
            "a",
            attrs("get", "leases", "a", "kube-system", "coordination.k8s.io"),
            (False, 'can only access leases in the "kube-node-lease" system namespace'),
            id="lease-elsewhere",
        ),
        pytest.param(
            "a",
            attrs("list", "leases", "", "kube-node-lease", "coordination.k8s.io"),
            (False, "can only get, create, update, patch, or delete a node lease"),
            id="lease-list",
        ),
        # the static system:node rules
        pytest.param("a", attrs("update", "nodes", "b"), (True, ""), id="node-update-is-admissions-to-refuse"),
        pytest.param("a", attrs("patch", "nodes", "a", subresource="status"), (True, ""), id="node-status"),
        pytest.param("a", attrs("delete", "nodes", "a"), (False, ""), id="node-delete"),
        pytest.param("a", attrs("watch", "pods"), (True, ""), id="pods-watch"),
        pytest.param("a", attrs("update", "pods", "p", "ns", subresource="status"), (True, ""), id="pod-status"),
        pytest.param("a", attrs("update", "pods", "p", "ns"), (False, ""), id="pod-update"),
        pytest.param("a", attrs("create", "events", "", "ns"), (True, ""), id="events"),
        pytest.param("a", attrs("get", "endpoints", "e", "ns"), (True, ""), id="endpoints"),
        pytest.param("a", attrs("list", "deployments", group="apps"), (False, ""), id="deployments"),
    ],
)
def test_decisions(
    authorizer: NodeAuthorizer, node: str, request_attrs: Attributes, expected: tuple[bool, str]
) -> None:
    assert authorizer.authorize(node_user(node), request_attrs) == expected


def test_mirror_pods_grant_nothing(caches: tuple[FakeCache, FakeCache], authorizer: NodeAuthorizer) -> None:
    mirror = pod("m", "c", volumes=[{"name": "v", "secret": {"secretName": "m-secret"}}])
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    caches[0].put(mirror)
    assert authorizer.authorize(node_user("c"), attrs("get", "secrets", "m-secret", "ns"))[0] is False


def test_graph_follows_pod_changes(caches: tuple[FakeCache, FakeCache], authorizer: NodeAuthorizer) -> None:
    pods, _ = caches
    user = node_user("c")
    get_shared = attrs("get", "secrets", "shared", "ns")
    assert authorizer.authorize(user, get_shared)[0] is False
    first = pod("one", "c", volumes=[{"name": "v", "secret": {"secretName": "shared"}}])
    second = pod("two", "c", volumes=[{"name": "v", "secret": {"secretName": "shared"}}])
    pods.put(first)
    pods.put(second)
    assert authorizer.authorize(user, get_shared)[0] is True
    pods.delete(first)
    assert authorizer.authorize(user, get_shared)[0] is True, "the second pod still refers to it"
    pods.delete(second)
    assert authorizer.authorize(user, get_shared)[0] is False
    # Scheduling a pending pod gives its node the pod's objects.
    pending = pod("pending", "", volumes=[{"name": "v", "secret": {"secretName": "unscheduled"}}])
    pending["spec"]["nodeName"] = "c"
    pods.put(pending)
    assert authorizer.authorize(user, attrs("get", "secrets", "unscheduled", "ns"))[0] is True


def test_a_bound_pods_update_is_not_read_again_unless_it_gains_ephemeral_containers(
    caches: tuple[FakeCache, FakeCache], authorizer: NodeAuthorizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pods, _ = caches
    user = node_user("a")
    assert authorizer.authorize(user, attrs("get", "secrets", "s-vol", "ns"))[0] is True
    indexed: list[str] = []
    original = authorizer.graph.set_pod

    def recording(key: str, obj: Obj) -> None:
        indexed.append(key)
        original(key, obj)

    monkeypatch.setattr(authorizer.graph, "set_pod", recording)
    updated = copy.deepcopy(POD_A)
    updated["status"] = {"phase": "Running"}
    pods.put(updated)
    assert authorizer.authorize(user, attrs("get", "secrets", "s-vol", "ns"))[0] is True
    assert indexed == [], "a status update of a bound pod is not indexed again"
    debug = copy.deepcopy(updated)
    debug["spec"]["ephemeralContainers"] = [
        {"name": "debug", "image": "i", "envFrom": [{"secretRef": {"name": "debug-secret"}}]}
    ]
    pods.put(debug)
    assert authorizer.authorize(user, attrs("get", "secrets", "debug-secret", "ns"))[0] is True
    assert indexed == ["/registry/pods/ns/p"]


def test_only_changes_are_read_until_the_cache_relists(
    caches: tuple[FakeCache, FakeCache], authorizer: NodeAuthorizer
) -> None:
    pods, _ = caches
    user = node_user("a")
    assert authorizer.authorize(user, attrs("get", "secrets", "s-vol", "ns"))[0] is True
    assert pods.snapshots == 1
    authorizer.authorize(user, attrs("get", "secrets", "s-vol", "ns"))
    pods.put(pod("new", "a", volumes=[{"name": "v", "secret": {"secretName": "new-secret"}}]))
    assert authorizer.authorize(user, attrs("get", "secrets", "new-secret", "ns"))[0] is True
    assert pods.snapshots == 1, "caught up from the ring, not a snapshot"
    # A change the ring no longer holds (here: made before a re-list) is found by reading a snapshot.
    pods.objects.pop("/registry/pods/ns/new")
    pods.relist()
    assert authorizer.authorize(user, attrs("get", "secrets", "new-secret", "ns"))[0] is False
    assert pods.snapshots == 2


def test_graph_follows_volume_changes(caches: tuple[FakeCache, FakeCache], authorizer: NodeAuthorizer) -> None:
    _, pvs = caches
    user = node_user("a")
    assert authorizer.authorize(user, attrs("get", "persistentvolumes", "pv-other"))[0] is False
    pvs.put(pv("pv-other", "ns", "claim", rbd={"secretRef": {"name": "rbd-secret"}}))
    assert authorizer.authorize(user, attrs("get", "persistentvolumes", "pv-other"))[0] is True
    assert authorizer.authorize(user, attrs("get", "secrets", "rbd-secret", "ns"))[0] is True
    pvs.delete(pv("pv-other", "ns", "claim"))
    assert authorizer.authorize(user, attrs("get", "persistentvolumes", "pv-other"))[0] is False
    assert authorizer.authorize(user, attrs("get", "secrets", "rbd-secret", "ns"))[0] is False


def test_rules_are_not_enumerable_for_nodes(authorizer: NodeAuthorizer) -> None:
    assert authorizer.rules_for(node_user("a"), "ns") == ([], [], True)
    assert authorizer.rules_for(UserInfo("alice", groups=(AUTHENTICATED_GROUP,)), "ns") == ([], [], False)


def test_static_rules_are_upstreams_node_rules() -> None:
    assert len(NODE_RULES) == len(NODE_POLICY_RULES)
    assert any(r.allows(attrs("create", "certificatesigningrequests", group="certificates.k8s.io")) for r in NODE_RULES)


async def test_over_real_watch_caches(tmp_path: Path) -> None:
    """The same graph over the API server's caches: changes arrive through WatchCache.events_after."""
    store = await SqliteStore.open(tmp_path / "store.db")
    pods, pvs = WatchCache(store, PODS), WatchCache(store, PVS)
    await pods.start()
    await pvs.start()
    try:
        authorizer = NodeAuthorizer(pods, pvs)
        user, get_secret = node_user("a"), attrs("get", "secrets", "s-vol", "ns")
        assert authorizer.authorize(user, get_secret)[0] is False
        put = await store.put(Put(object_key(PODS, "ns", "p").encode(), orjson.dumps(POD_A)))
        assert await pods.wait_for_revision(put.revision, 5)
        assert authorizer.authorize(user, get_secret) == (True, "")
        await store.delete_range(DeleteRange(object_key(PODS, "ns", "p").encode()))
        assert await pods.wait_for_revision(put.revision + 1, 5)
        assert authorizer.authorize(user, get_secret) == (False, NO_PATH_A)
    finally:
        await pods.stop()
        await pvs.stop()
        await store.close()


@pytest.mark.parametrize(
    ("selector", "name"),
    [
        pytest.param("metadata.name=x", "x", id="equals"),
        pytest.param("metadata.namespace=ns,metadata.name==x", "x", id="among-others"),
        pytest.param("metadata.name!=x", "", id="not-equals"),
        pytest.param("spec.nodeName=a", "", id="other-field"),
        pytest.param("metadata.name=a/b", "", id="not-a-path-segment"),
        pytest.param("metadata.name", "", id="unparsable"),
        pytest.param(None, "", id="none"),
    ],
)
def test_a_list_or_watch_names_the_object_its_field_selector_pins(selector: str | None, name: str) -> None:
    assert selected_name(selector) == name
