"""A kubelet's credentials against ``skiff apiserver --authorization-mode Node,RBAC``: the Node authorizer and
NodeRestriction together, through real kubectl and the official Python client.

Node "a" authenticates with a client certificate ``CN=system:node:a, O=system:nodes`` from the cluster CA.  The
admin puts a pod on each of nodes "a" and "b", each mounting its own secret; node "a" may then read only its
pod's secret, write only its own Node, Lease and pod status, and ask tokens only bound to its own pod.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from apiserver_harness import KUBECTL, RunningApiServer, running_apiserver
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from skiff.apiserver import kubeconfig
from skiff.apiserver.pki import issue_client_cert

NAMESPACE = "default"


@dataclass(frozen=True)
class Cluster:
    server: RunningApiServer
    node_kubeconfig: Path
    admin: client.CoreV1Api
    node: client.CoreV1Api
    node_leases: client.CoordinationV1Api
    cache_dir: Path

    def kubectl(self, *args: str, as_node: bool = True) -> subprocess.CompletedProcess[str]:
        path = self.node_kubeconfig if as_node else self.server.kubeconfig
        cmd = [KUBECTL, "--kubeconfig", str(path), "--cache-dir", str(self.cache_dir), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def node_kubeconfig(server: RunningApiServer, base: Path, node: str) -> Path:
    cert, key = issue_client_cert(server.pki, base / f"node-{node}", f"system:node:{node}", ["system:nodes"])
    built = kubeconfig.build(server.url, server.pki)
    built["users"][0]["user"] = {
        "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
        "client-key-data": base64.b64encode(key.read_bytes()).decode(),
    }
    path = base / f"kubeconfig-{node}"
    kubeconfig.write(path, built, merge_existing=False)
    return path


def pod_on(node: str, secret: str, account: str) -> dict[str, object]:
    return {
        "metadata": {"name": f"pod-{node}"},
        "spec": {
            "nodeName": node,
            "serviceAccountName": account,
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "s", "secret": {"secretName": secret}}],
        },
    }


def grant_discovery(rbac: client.RbacAuthorizationV1Api) -> None:
    """What upstream's system:discovery binding gives every user (kubectl reads discovery first), under a
    name of this test's own; the Node authorizer has no opinion on non-resource paths."""
    urls = ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", "/version"]
    rbac.create_cluster_role(
        {"metadata": {"name": "test:discovery"}, "rules": [{"verbs": ["get"], "nonResourceURLs": urls}]}
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": "test:discovery"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "test:discovery"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:nodes"}],
        }
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("node-authz")
    with running_apiserver(base, "--authorization-mode", "Node,RBAC") as server:
        admin_client = config.new_client_from_config(config_file=str(server.kubeconfig))
        node_path = node_kubeconfig(server, base, "a")
        node_client = config.new_client_from_config(config_file=str(node_path))
        try:
            admin = client.CoreV1Api(admin_client)
            grant_discovery(client.RbacAuthorizationV1Api(admin_client))
            for name in ("for-a", "for-b"):
                admin.create_namespaced_secret(NAMESPACE, {"metadata": {"name": name}, "data": {"k": "dg=="}})
            for account in ("sa-a", "sa-b"):
                admin.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": account}})
            admin.create_node({"metadata": {"name": "b"}})
            admin.create_namespaced_pod(NAMESPACE, pod_on("a", "for-a", "sa-a"))
            admin.create_namespaced_pod(NAMESPACE, pod_on("b", "for-b", "sa-b"))
            yield Cluster(
                server,
                node_path,
                admin,
                client.CoreV1Api(node_client),
                client.CoordinationV1Api(node_client),
                base / "kube-cache",
            )
        finally:
            admin_client.close()
            node_client.close()


def test_node_reads_the_secret_of_its_own_pod_only(cluster: Cluster) -> None:
    own = cluster.kubectl("get", "secret", "for-a", "-n", NAMESPACE, "-o", "jsonpath={.data.k}")
    assert own.returncode == 0, own.stderr
    assert own.stdout == "dg=="
    other = cluster.kubectl("get", "secret", "for-b", "-n", NAMESPACE)
    assert other.returncode != 0
    assert (
        'secrets "for-b" is forbidden: User "system:node:a" cannot get resource "secrets" in API group "" in the '
        "namespace \"default\": no relationship found between node 'a' and this object"
    ) in other.stderr
    # A list or watch of one secret, named by a metadata.name field selector, is a read of that secret.
    listed = cluster.kubectl("get", "secrets", "-n", NAMESPACE, "--field-selector", "metadata.name=for-a", "-o", "name")
    assert (listed.returncode, listed.stdout.strip()) == (0, "secret/for-a"), listed.stderr
    everything = cluster.kubectl("get", "secrets", "-n", NAMESPACE)
    assert everything.returncode != 0 and "No Object name found" in everything.stderr


def test_node_writes_its_own_node_but_not_another(cluster: Cluster) -> None:
    registered = cluster.node.create_node({"metadata": {"name": "a", "labels": {"kubernetes.io/hostname": "a"}}})
    assert registered.metadata.name == "a"
    relabel = cluster.kubectl("label", "node", "a", "example.com/rack=r1")
    assert relabel.returncode == 0, relabel.stderr
    status = cluster.node.patch_node_status("a", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert status.status.conditions[0].type == "Ready"
    with pytest.raises(ApiException) as other:
        cluster.node.patch_node("b", {"metadata": {"labels": {"example.com/rack": "r1"}}})
    assert other.value.status == 403
    assert 'nodes \\"b\\" is forbidden: node \\"a\\" is not allowed to modify node \\"b\\"' in other.value.body
    restricted = cluster.kubectl("label", "node", "a", "node-restriction.kubernetes.io/trusted=yes")
    assert restricted.returncode != 0
    assert "is not allowed to modify labels: node-restriction.kubernetes.io/trusted" in restricted.stderr


def test_node_updates_only_its_own_pods_status(cluster: Cluster) -> None:
    running = {"status": {"phase": "Running"}}
    assert cluster.node.patch_namespaced_pod_status("pod-a", NAMESPACE, running).status.phase == "Running"
    with pytest.raises(ApiException) as other:
        cluster.node.patch_namespaced_pod_status("pod-b", NAMESPACE, running)
    assert other.value.status == 403
    assert "can only update pod status for pods with spec.nodeName set to itself" in other.value.body
    with pytest.raises(ApiException) as evicted:
        cluster.node.create_namespaced_pod_eviction(
            "pod-b", NAMESPACE, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "pod-b"}}
        )
    assert evicted.value.status == 403
    assert "node a can only evict pods with spec.nodeName set to itself" in evicted.value.body


def test_node_holds_its_own_lease(cluster: Cluster) -> None:
    lease = {"metadata": {"name": "a"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 40}}
    created = cluster.node_leases.create_namespaced_lease("kube-node-lease", lease)
    created.spec.lease_duration_seconds = 41
    renewed = cluster.node_leases.replace_namespaced_lease("a", "kube-node-lease", created)
    assert renewed.spec.lease_duration_seconds == 41
    with pytest.raises(ApiException) as other:
        cluster.node_leases.create_namespaced_lease("kube-node-lease", {"metadata": {"name": "b"}, "spec": {}})
    assert other.value.status == 403
    assert "can only access node lease with the same name as the requesting node" in other.value.body


def test_node_gets_tokens_only_bound_to_its_own_pod(cluster: Cluster) -> None:
    pod = cluster.admin.read_namespaced_pod("pod-a", NAMESPACE)
    bound = {
        "spec": {
            "audiences": [],
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "pod-a", "uid": pod.metadata.uid},
        }
    }
    token = cluster.node.create_namespaced_service_account_token("sa-a", NAMESPACE, bound)
    assert token.status.token
    with pytest.raises(ApiException) as unbound:
        cluster.node.create_namespaced_service_account_token("sa-a", NAMESPACE, {"spec": {"audiences": []}})
    assert unbound.value.status == 403
    assert "node requested token not bound to a pod" in unbound.value.body
    with pytest.raises(ApiException) as other_account:
        cluster.node.create_namespaced_service_account_token("sa-b", NAMESPACE, bound)
    assert other_account.value.status == 403
    assert "no relationship found between node 'a' and this object" in other_account.value.body
