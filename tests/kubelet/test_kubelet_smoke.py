"""End to end: a pod with a readiness probe serving HTTP on its own address."""

from __future__ import annotations

import asyncio

from apiserver_harness import Kubectl, RunningApiServer
from kubelet_harness import KubeletProcess, client_for, container_status, pod_spec, wait_pod

from skiff.client.resources import LEASES, NODES, PODS


async def test_node_registers_and_http_pod_becomes_ready(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        for _ in range(300):
            try:
                node = await client.get(NODES, kubelet.name)
                if any(c["type"] == "Ready" for c in (node.get("status") or {}).get("conditions") or []):
                    break
            except Exception:
                pass
            await asyncio.sleep(0.2)
        node = await client.get(NODES, kubelet.name)
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == kubelet.name
        assert "node-role.kubernetes.io/worker" in node["metadata"]["labels"]
        assert {"type": "InternalIP", "address": kubelet.ip} in node["status"]["addresses"]
        assert int(node["status"]["capacity"]["pods"]) == 110
        lease = await client.get(LEASES, kubelet.name, "kube-node-lease")
        assert lease["spec"]["holderIdentity"] == kubelet.name

        container = {
            "name": "web",
            "image": "python:3",
            "command": ["python3", "-m", "http.server", "8080", "--bind", "$(POD_IP)"],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
        }
        await client.create(PODS, pod_spec("web", kubelet.name, [container]))
        pod = await wait_pod(client, "web", lambda p: container_status(p).get("ready") is True)
        assert pod["status"]["phase"] == "Running"
        ip = pod["status"]["podIP"]
        assert ip.startswith("127.20.")
        reader, writer = await asyncio.open_connection(ip, 8080)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        data = await reader.read()
        writer.close()
        assert data.startswith(b"HTTP/1.0 200")
        conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert conditions["Ready"] == "True" and conditions["ContainersReady"] == "True"
        assert container_status(pod)["containerID"].startswith("skiff://")


async def test_kubectl_logs_and_exec_through_the_apiserver(
    apiserver: RunningApiServer, kubelet: KubeletProcess
) -> None:
    async with client_for(apiserver) as client:
        container = {"name": "talker", "image": "busybox", "command": ["sh", "-c", "echo hello-from-pod; sleep 3600"]}
        await client.create(PODS, pod_spec("talker", kubelet.name, [container]))
        pod = await wait_pod(client, "talker", lambda p: container_status(p).get("ready") is True)
        log = kubelet.root / "pods" / pod["metadata"]["uid"] / "logs" / "talker" / "0.log"
        for _ in range(100):
            if log.read_text():
                break
            await asyncio.sleep(0.05)
    kubectl = Kubectl(apiserver, kubelet.base / "kube-cache")
    assert await asyncio.to_thread(kubectl.ok, "logs", "talker") == "hello-from-pod\n"
    out = await asyncio.to_thread(kubectl.ok, "exec", "talker", "--", "sh", "-c", "head -1 /etc/resolv.conf; hostname")
    assert out == "nameserver 127.253.0.10\ntalker\n"
