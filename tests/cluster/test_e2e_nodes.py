"""Several nodes on one machine: DaemonSets everywhere, and a lost node's pods rescheduled elsewhere."""

from __future__ import annotations

import json
import signal

from cluster_harness import RunningCluster, cluster, extra_kubelet
from e2e_manifests import web_deployment

__all__ = ["cluster"]


def node_ready(c: RunningCluster, name: str) -> str:
    return c.kubectl("get", "node", name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")[1]


def pods_by_node(c: RunningCluster, selector: str) -> dict[str, str]:
    items = json.loads(c.ok("get", "pods", "-l", selector, "-o", "json"))["items"]
    return {
        p["metadata"]["name"]: p["spec"].get("nodeName", "")
        for p in items
        if not p["metadata"].get("deletionTimestamp")
    }


def test_daemonset_on_three_nodes_and_node_loss(cluster: RunningCluster) -> None:
    c = cluster
    with extra_kubelet(c, "node-b", 2), extra_kubelet(c, "node-c", 3) as node_c:
        for name in ("node-b", "node-c"):
            c.wait_for(f"{name} Ready", lambda name=name: node_ready(c, name) == "True")  # type: ignore[misc]
        addresses = c.ok("get", "nodes", "-o", "jsonpath={.items[*].status.addresses[?(@.type=='InternalIP')].address}")
        assert set(addresses.split()) == {
            c.addresses.node_ip,
            c.addresses.extra_node_ip(2),
            c.addresses.extra_node_ip(3),
        }
        ds = {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "busybox", "command": ["sleep", "3600"]}]},
                },
            },
        }
        c.ok("apply", "-f", "-", stdin=json.dumps(ds))
        c.wait_for(
            "one agent per node", lambda: c.ok("get", "ds", "agent", "-o", "jsonpath={.status.numberReady}") == "3"
        )
        assert sorted(pods_by_node(c, "app=agent").values()) == sorted([c.node_name, "node-b", "node-c"])

        app = web_deployment("moving", 2)
        app["spec"]["template"]["spec"]["tolerations"] = [
            {"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
            for k in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
        ]
        app["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "movable"}
        c.ok("label", "node", "node-c", "pool=movable")
        c.ok("apply", "-f", "-", stdin=json.dumps(app))
        c.wait_for(
            "2 pods on node-c", lambda: c.ok("get", "deploy", "moving", "-o", "jsonpath={.status.readyReplicas}") == "2"
        )
        node_c.send_signal(signal.SIGTERM)
        node_c.wait(timeout=60)
        c.wait_for("node-c Unknown", lambda: node_ready(c, "node-c") == "Unknown", timeout=120)
        taints = c.ok("get", "node", "node-c", "-o", "jsonpath={.spec.taints[*].key}")
        assert "node.kubernetes.io/unreachable" in taints
        c.ok("label", "node", "node-b", "pool=movable")
        c.wait_for(
            "pods rescheduled to node-b",
            lambda: (lambda where: len(where) == 2 and set(where.values()) == {"node-b"})(
                pods_by_node(c, "app=moving")
            ),
            timeout=120,
        )
        c.ok("delete", "deployment", "moving")
        c.ok("delete", "ds", "agent")
