"""Probes, hooks, init containers and static pods with a real kubelet."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import yaml
from apiserver_harness import RunningApiServer
from kubelet_harness import KubeletProcess, client_for, container_status, pod_spec, wait_gone, wait_pod

from skiff.client.resources import PODS

GRPC_HEALTH_SERVER = """
import asyncio, os, grpc
async def check(request, context):
    return b"\\x08\\x01"
async def main():
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)})
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(os.environ["POD_IP"] + ":9090")
    await server.start()
    await server.wait_for_termination()
asyncio.run(main())
"""


async def test_init_containers_run_in_order_before_main(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        mount = [{"name": "work", "mountPath": "/work-shared"}]
        init = [
            {
                "name": f"init-{i}",
                "image": "busybox",
                "command": ["sh", "-c", f"echo {i} >> /work-shared/order"],
                "volumeMounts": mount,
            }
            for i in (1, 2)
        ]
        main = {
            "name": "main",
            "image": "busybox",
            "command": ["sh", "-c", "cat /work-shared/order; sleep 3600"],
            "volumeMounts": mount,
        }
        body = pod_spec("inits", kubelet.name, [main], initContainers=init, volumes=[{"name": "work", "emptyDir": {}}])
        await client.create(PODS, body)
        pod = await wait_pod(client, "inits", lambda p: container_status(p).get("ready") is True)
        inits = pod["status"]["initContainerStatuses"]
        assert [s["state"]["terminated"]["reason"] for s in inits] == ["Completed", "Completed"]
        order = kubelet.root / "pods" / pod["metadata"]["uid"] / "volumes" / "work" / "order"
        assert order.read_text() == "1\n2\n"
        conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert conditions["Initialized"] == "True"


async def test_liveness_failure_restarts_container(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        container = {
            "name": "flaky",
            "image": "busybox",
            "command": ["sh", "-c", "touch /tmp/alive-$(POD_NAME); sleep 2; rm -f /tmp/alive-$(POD_NAME); sleep 3600"],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}],
            "livenessProbe": {
                "exec": {"command": ["sh", "-c", "test -f /tmp/alive-$POD_NAME"]},
                "periodSeconds": 1,
                "failureThreshold": 2,
            },
        }
        await client.create(PODS, pod_spec("liveness", kubelet.name, [container]))
        pod = await wait_pod(client, "liveness", lambda p: container_status(p).get("restartCount", 0) >= 1)
        assert container_status(pod)["lastState"]["terminated"]["exitCode"] in (137, 143)


async def test_grpc_readiness_probe(apiserver: RunningApiServer, kubelet: KubeletProcess) -> None:
    async with client_for(apiserver) as client:
        container = {
            "name": "grpc",
            "image": "python:3",
            "command": ["python3", "-c", GRPC_HEALTH_SERVER],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "readinessProbe": {"grpc": {"port": 9090}, "periodSeconds": 1},
        }
        await client.create(PODS, pod_spec("grpc-ready", kubelet.name, [container]))
        pod = await wait_pod(client, "grpc-ready", lambda p: container_status(p).get("ready") is True)
        assert pod["status"]["phase"] == "Running"


async def test_static_pod_runs_with_mirror(apiserver: RunningApiServer, tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "static-web", "namespace": "default"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
            "terminationGracePeriodSeconds": 1,
        },
    }
    (manifests / "web.yaml").write_text(yaml.safe_dump(manifest))
    kubelet = KubeletProcess(
        apiserver,
        tmp_path / "k",
        "node-static",
        "127.0.1.240",
        "127.20.240.0/24",
        "--pod-manifest-path",
        str(manifests),
    )
    kubelet.start()
    try:
        async with client_for(apiserver) as client:
            pod = await wait_pod(client, "static-web-node-static", lambda p: container_status(p).get("ready") is True)
            annotations = pod["metadata"]["annotations"]
            assert annotations["kubernetes.io/config.source"] == "file"
            assert annotations["kubernetes.io/config.mirror"] == annotations["kubernetes.io/config.hash"]
            owner = pod["metadata"]["ownerReferences"][0]
            assert owner["kind"] == "Node" and owner["name"] == "node-static"
            (manifests / "web.yaml").unlink()
            await wait_gone(client, "static-web-node-static")
    finally:
        code = kubelet.stop()
        print(kubelet.logs(), file=sys.stderr)
        assert code == 0
    await asyncio.sleep(0)


async def test_post_start_and_pre_stop_hooks_see_the_mounts(
    apiserver: RunningApiServer, kubelet: KubeletProcess, tmp_path: Path
) -> None:
    host_dir = tmp_path / "hooks"
    container = {
        "name": "hooked",
        "image": "busybox",
        "command": ["sleep", "3600"],
        "workingDir": "/hooks",
        "volumeMounts": [{"name": "hooks", "mountPath": "/hooks"}],
        "lifecycle": {
            "postStart": {"exec": {"command": ["sh", "-c", "pwd > poststart"]}},
            "preStop": {"exec": {"command": ["sh", "-c", "echo bye > /hooks/prestop"]}},
        },
        "readinessProbe": {"exec": {"command": ["test", "-f", "/hooks/poststart"]}, "periodSeconds": 1},
    }
    volumes = [{"name": "hooks", "hostPath": {"path": str(host_dir), "type": "DirectoryOrCreate"}}]
    async with client_for(apiserver) as client:
        await client.create(PODS, pod_spec("hooked", kubelet.name, [container], volumes=volumes))
        await wait_pod(client, "hooked", lambda p: container_status(p).get("ready") is True)
        assert (host_dir / "poststart").read_text() == "/hooks\n"
        await client.delete(PODS, "hooked", "default")
        await wait_gone(client, "hooked")
        assert (host_dir / "prestop").read_text() == "bye\n"
