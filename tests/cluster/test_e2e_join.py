"""Another node joins ``skiff up`` with the bootstrap token from the printed join line, and runs a pod.

The token only gets the kubelet its own client certificate (TLS bootstrapping:
a CSR the controller-manager approves and signs); the kubelet then runs as
``system:node:<name>`` with that certificate.
"""

from __future__ import annotations

import json
import re
import shlex

import yaml
from cluster_harness import RunningCluster, cluster, extra_kubelet
from cryptography import x509

from skiff.apiserver.bootstrap_tokens import parse_token

__all__ = ["cluster"]


def join_command(c: RunningCluster) -> list[str]:
    """The ``skiff kubelet ...`` arguments of skiff up's join line."""
    match = re.search(r"^skiff up: join another node: (skiff kubelet .*)$", (c.base / "up.out").read_text(), re.M)
    assert match, f"no join line\n{c.logs(tail=40)}"
    return shlex.split(match.group(1))


def node_ready(c: RunningCluster, name: str) -> str:
    return c.kubectl("get", "node", name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")[1]


def test_kubelet_joins_with_bootstrap_token(cluster: RunningCluster) -> None:
    c = cluster
    words = join_command(c)
    flags = dict(zip(words[2::2], words[3::2], strict=False))
    token = flags["--token"]
    assert parse_token(token) and (c.data_dir / "join-token").read_text().strip() == token
    root = c.base / "kubelet-joined"
    credentials = ["--server", flags["--server"], "--token", token]
    credentials += ["--certificate-authority", flags["--certificate-authority"]]
    with extra_kubelet(c, "joined", 2, credentials):
        c.wait_for("node joined Ready", lambda: node_ready(c, "joined") == "True", timeout=120)
        # The kubelet runs with its own client certificate, not the token.
        kubeconfig = root / "kubelet.kubeconfig"
        pem = root / "pki" / "kubelet-client-current.pem"
        users = yaml.safe_load(kubeconfig.read_text())["users"]
        assert users == [{"name": "default-auth", "user": {"client-certificate": str(pem), "client-key": str(pem)}}]
        assert token not in kubeconfig.read_text()
        assert kubeconfig.stat().st_mode & 0o777 == 0o600 and pem.stat().st_mode & 0o777 == 0o600
        cert = x509.load_pem_x509_certificate(pem.read_bytes())
        assert cert.subject.rfc4514_string() == "CN=system:node:joined,O=system:nodes"
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate((c.data_dir / "pki" / "ca.crt").read_bytes()))
        # It got it through a CSR the bootstrap token made, auto-approved and issued.
        requests = json.loads(c.ok("get", "csr", "-o", "json"))["items"]
        (csr,) = [r for r in requests if r["spec"]["username"] == f"system:bootstrap:{token.split('.')[0]}"]
        assert csr["metadata"]["name"].startswith("node-csr-")
        assert csr["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
        assert [(k["type"], k["reason"]) for k in csr["status"]["conditions"]] == [("Approved", "AutoApproved")]
        row = c.ok("get", "csr", csr["metadata"]["name"], "--no-headers").split()
        assert row[3] == f"system:bootstrap:{token.split('.')[0]}" and row[-1] == "Approved,Issued"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "on-joined"},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": "joined"},
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
            },
        }
        c.ok("apply", "-f", "-", stdin=json.dumps(pod))
        c.wait_for(
            "pod on-joined Running",
            lambda: c.kubectl("get", "pod", "on-joined", "-o", "jsonpath={.status.phase}")[1] == "Running",
            timeout=120,
        )
        placed = json.loads(c.ok("get", "pod", "on-joined", "-o", "json"))
        assert placed["spec"]["nodeName"] == "joined"
        assert placed["status"]["hostIP"] == c.addresses.extra_node_ip(2)
        c.ok("delete", "pod", "on-joined", "--wait=true", timeout=120)
