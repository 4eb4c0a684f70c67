"""Another node joins ``skiff up`` with the bootstrap token from the printed join line, and runs a pod.

The token only gets the kubelet its own client certificate (TLS bootstrapping:
a CSR the controller-manager approves and signs); the kubelet then runs as
``system:node:<name>`` with that certificate.  As that node it asks for a
serving certificate (a kubelet-serving CSR the controller-manager approves
for the node's own loopback address and name, and signs), so the API server,
which verifies kubelets against the cluster CA, reaches the joined node's
pods: ``kubectl logs`` and ``kubectl exec`` work there.
"""

from __future__ import annotations

import json
import re
import shlex
import ssl
from pathlib import Path

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
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "command": ["sh", "-c", "echo hello from joined; exec sleep 3600"],
                    }
                ],
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
        check_serving_certificate(c, root, "joined", c.addresses.extra_node_ip(2))
        c.wait_for("kubectl logs on-joined", lambda: c.kubectl("logs", "on-joined")[1] == "hello from joined\n")
        assert c.ok("exec", "on-joined", "--", "sh", "-c", "echo exec $((6 * 7))") == "exec 42\n"
        c.ok("delete", "pod", "on-joined", "--wait=true", timeout=120)


def check_serving_certificate(c: RunningCluster, root: Path, node: str, node_ip: str) -> None:
    """The kubelet serves a certificate from the cluster CA for its node IP and name, asked for as the node."""
    pem = root / "pki" / "kubelet-server-current.pem"
    c.wait_for("serving certificate issued", pem.exists, timeout=60)
    assert pem.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate((c.data_dir / "pki" / "ca.crt").read_bytes()))
    assert cert.subject.rfc4514_string() == f"CN=system:node:{node},O=system:nodes"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [node]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [node_ip]
    requests = json.loads(c.ok("get", "csr", "-o", "json"))["items"]
    (csr,) = [r for r in requests if r["spec"]["signerName"] == "kubernetes.io/kubelet-serving"]
    assert csr["spec"]["username"] == f"system:node:{node}" and csr["metadata"]["name"].startswith("csr-")
    assert [(k["type"], k["reason"]) for k in csr["status"]["conditions"]] == [("Approved", "AutoApproved")]
    # What the kubelet serves on its port is that certificate (the API server's view of it).
    port = json.loads(c.ok("get", "node", node, "-o", "json"))["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    served = ssl.get_server_certificate((node_ip, port))
    assert x509.load_pem_x509_certificate(served.encode()) == cert
