"""Every component of ``skiff up`` runs as itself with least privilege, as kubeadm sets Kubernetes up.

* each component's kubeconfig (``DATA_DIR/<component>.kubeconfig``, 0600) holds a client certificate
  from the cluster CA naming its own user and groups, never ``system:masters``;
* the controllers write as their ServiceAccounts (``--use-service-account-credentials``): in the
  audit log (``DATA_DIR/logs/audit.log``, Metadata level) the pods of a Deployment are created by
  ``system:serviceaccount:kube-system:replicaset-controller``, its ReplicaSet by the
  deployment-controller, the binding by ``system:kube-scheduler``, the Node's status by the node;
* the scheduler's rights are upstream's: ``kubectl auth can-i --as system:kube-scheduler`` says no
  to creating pods and yes to creating ``pods/binding``;
* the kubelet may not label its Node control-plane (NodeRestriction): ``skiff up`` does;
* no component request was refused (no 401/403 in the audit log for anyone but the test's admin).
"""

from __future__ import annotations

import base64
import json
import stat
from typing import Any

import pytest
import yaml
from cluster_harness import RunningCluster, cluster
from cryptography import x509
from cryptography.x509.oid import NameOID
from e2e_manifests import web_deployment

__all__ = ["cluster"]

NAMESPACE = "identities"
ADMIN = "kubernetes-admin"


def client_subject(kubeconfig: dict[str, Any]) -> tuple[str, list[str]]:
    user = kubeconfig["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = sorted(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return str(common[0].value), orgs


def audit_events(c: RunningCluster) -> list[dict[str, Any]]:
    lines = (c.data_dir / "logs" / "audit.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def users_of(events: list[dict[str, Any]], verb: str, resource: str, subresource: str = "") -> set[str]:
    """Who made the successful ``verb`` requests on ``resource[/subresource]`` in the test's namespace."""
    found = set()
    for event in events:
        ref = event.get("objectRef") or {}
        code = (event.get("responseStatus") or {}).get("code", 0)
        if (
            event["verb"] == verb
            and ref.get("resource") == resource
            and ref.get("subresource", "") == subresource
            and ref.get("namespace") == NAMESPACE
            and 200 <= code < 300
        ):
            found.add(event["user"]["username"])
    return found


@pytest.mark.parametrize(
    ("component", "user", "groups"),
    [
        pytest.param("controller-manager", "system:kube-controller-manager", [], id="controller-manager"),
        pytest.param("scheduler", "system:kube-scheduler", [], id="scheduler"),
        pytest.param("kubelet", "system:node:skiff-e2e", ["system:nodes"], id="kubelet"),
        pytest.param("proxy", "system:kube-proxy", [], id="proxy"),
        pytest.param("etcd-operator", "system:skiff-etcd-operator", [], id="etcd-operator"),
    ],
)
def test_each_component_has_its_own_client_certificate(
    cluster: RunningCluster, component: str, user: str, groups: list[str]
) -> None:
    path = cluster.data_dir / f"{component}.kubeconfig"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    assert client_subject(config) == (user, groups)
    assert (
        config["clusters"][0]["cluster"]["server"]
        == yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    )
    key = (cluster.data_dir / "pki" / f"{component}.key").stat()
    assert stat.S_IMODE(key.st_mode) == 0o600


def test_controllers_write_as_their_service_accounts(cluster: RunningCluster) -> None:
    cluster.ok("create", "namespace", NAMESPACE)
    cluster.ok("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(web_deployment("who", replicas=2)))
    cluster.ok("rollout", "status", "-n", NAMESPACE, "deployment/who", "--timeout=90s", timeout=120)

    def written() -> dict[str, set[str]] | None:
        events = audit_events(cluster)
        seen = {
            "replicasets": users_of(events, "create", "replicasets"),
            "pods": users_of(events, "create", "pods"),
            "binding": users_of(events, "create", "pods", "binding"),
            "deployment status": users_of(events, "update", "deployments", "status"),
        }
        return seen if all(seen.values()) else None

    seen = cluster.wait_for("the audit log to show the writes", written, timeout=30)
    assert seen == {
        "replicasets": {"system:serviceaccount:kube-system:deployment-controller"},
        "pods": {"system:serviceaccount:kube-system:replicaset-controller"},
        "binding": {"system:kube-scheduler"},
        "deployment status": {"system:serviceaccount:kube-system:deployment-controller"},
    }
    node_writers = {
        e["user"]["username"]
        for e in audit_events(cluster)
        if (e.get("objectRef") or {}).get("resource") == "nodes"
        and (e.get("objectRef") or {}).get("subresource") == "status"
        and e["verb"] in ("patch", "update")
    }
    assert node_writers == {"system:node:skiff-e2e"}
    accounts = json.loads(cluster.ok("get", "serviceaccounts", "-n", "kube-system", "-o", "json"))["items"]
    names = {a["metadata"]["name"] for a in accounts}
    assert {"deployment-controller", "replicaset-controller", "generic-garbage-collector"} <= names


@pytest.mark.parametrize(
    ("verb", "resource", "answer"),
    [
        pytest.param("create", ["pods"], "no", id="no-pods"),
        pytest.param("create", ["pods", "--subresource", "binding"], "yes", id="bindings"),
        pytest.param("update", ["pods", "--subresource", "status"], "yes", id="pod-status"),
        pytest.param("create", ["persistentvolumes"], "no", id="no-volumes"),
    ],
)
def test_scheduler_has_upstreams_rights_only(
    cluster: RunningCluster, verb: str, resource: list[str], answer: str
) -> None:
    """``pods/binding`` is ``pods --subresource binding`` to kubectl (``pods/NAME`` names a pod)."""
    code, out, err = cluster.kubectl("auth", "can-i", "--as", "system:kube-scheduler", verb, *resource)
    assert out.strip() == answer, (code, out, err)


def test_the_node_is_labelled_control_plane_by_skiff_up(cluster: RunningCluster) -> None:
    labels = json.loads(cluster.ok("get", "node", cluster.node_name, "-o", "json"))["metadata"]["labels"]
    assert labels["node-role.kubernetes.io/control-plane"] == ""
    patches = [
        e["user"]["username"]
        for e in audit_events(cluster)
        if (e.get("objectRef") or {}).get("resource") == "nodes"
        and not (e.get("objectRef") or {}).get("subresource")
        and e["verb"] == "patch"
        and (e.get("responseStatus") or {}).get("code") == 200
    ]
    assert ADMIN in patches  # the mark-control-plane step


def test_no_component_request_was_refused(cluster: RunningCluster) -> None:
    refused = sorted(
        {
            (e["user"].get("username", ""), e["verb"], e["requestURI"].split("?")[0], e["responseStatus"]["code"])
            for e in audit_events(cluster)
            if (e.get("responseStatus") or {}).get("code") in (401, 403) and e["user"].get("username") != ADMIN
        }
    )
    assert refused == []
