"""Another node joins ``skiff up`` with the bootstrap token from the printed join line, and runs a pod."""

from __future__ import annotations

import json
import re
import shlex

import yaml
from cluster_harness import RunningCluster, cluster, extra_kubelet

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
        # The kubelet's only credential is the token (no client certificate).
        users = yaml.safe_load((root / "kubelet.kubeconfig").read_text())["users"]
        assert users == [{"name": "kubelet", "user": {"token": token}}]
        assert (root / "kubelet.kubeconfig").stat().st_mode & 0o777 == 0o600
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
