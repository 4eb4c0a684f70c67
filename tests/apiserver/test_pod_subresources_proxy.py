"""pods/log, exec, attach and portforward through a real ``skiff apiserver`` to an in-process KubeletServer.

The kubelet is registered as a Node (InternalIP + daemonEndpoints port); its
pods are real processes (FakeRuntime).  Clients: raw HTTPS, the real kubectl
(logs; exec, cp, attach and port-forward with every kubectl version are in
test_pod_subresources_spdy) and the official Python client's ``stream()`` and
``portforward()`` (WebSocket v4/v5).  Blocking clients run in threads so the
in-process kubelet keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from apiserver_harness import KUBECTL, RunningApiServer, apiserver  # noqa: F401  (fixture)
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.stream import portforward
from kubernetes.stream import stream as k8s_stream
from pod_subresources_fake_kubelet import FakeRuntime

from skiff.kubelet.server import KubeletServer

NS = "default"
JSON = {"Content-Type": "application/json"}


@dataclass
class Cluster:
    server: RunningApiServer
    runtime: FakeRuntime
    node: str

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        status, _, raw = await asyncio.to_thread(self.server.request, method, path, data, JSON)
        return status, raw

    async def pod(self, name: str, containers: list[str], *, bound: bool = True, phase: str = "Running") -> None:
        spec: dict[str, Any] = {"containers": [{"name": c, "image": "busybox"} for c in containers]}
        if bound:
            spec["nodeName"] = self.node
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
        status, raw = await self.call("POST", f"/api/v1/namespaces/{NS}/pods", pod)
        assert status == 201, raw
        created = json.loads(raw)
        created["status"]["phase"] = phase
        status, raw = await self.call("PUT", f"/api/v1/namespaces/{NS}/pods/{name}/status", created)
        assert status == 200, raw


async def register_node(server: RunningApiServer, name: str, ip: str, port: int) -> None:
    body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    status, _, raw = await asyncio.to_thread(server.request, "POST", "/api/v1/nodes", json.dumps(body).encode(), JSON)
    assert status == 201, raw
    node = json.loads(raw)
    node["status"] = {
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }
    status, _, raw = await asyncio.to_thread(
        server.request, "PUT", f"/api/v1/nodes/{name}/status", json.dumps(node).encode(), JSON
    )
    assert status == 200, raw


_counter = iter(range(1000))


@pytest.fixture
async def cluster(apiserver: RunningApiServer, tmp_path: Path) -> AsyncIterator[Cluster]:  # noqa: F811
    runtime = FakeRuntime(tmp_path / "pods")
    kubelet = KubeletServer(runtime, "127.0.0.1", 0, tmp_path / "kubelet-certs")
    await kubelet.start()
    node = f"node-{next(_counter)}"
    try:
        await register_node(apiserver, node, "127.0.0.1", kubelet.port)
        yield Cluster(apiserver, runtime, node)
    finally:
        await kubelet.stop()
        await runtime.stop()


async def kubectl(server: RunningApiServer, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(server.kubeconfig), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.contextmanager
def python_client(server: RunningApiServer) -> Iterator[k8s_client.CoreV1Api]:
    api_client = k8s_config.new_client_from_config(config_file=str(server.kubeconfig))
    try:
        yield k8s_client.CoreV1Api(api_client)
    finally:
        api_client.close()


# -- logs ----------------------------------------------------------------------------------------


async def started(cluster: Cluster, pod: str, container: str, script: str, *, wait: bool = True) -> None:
    state = await cluster.runtime.run(NS, pod, container, ["sh", "-c", script], ip="127.0.0.1")
    if wait and state.proc is not None:
        await state.proc.wait()


async def test_logs_through_the_apiserver(cluster: Cluster) -> None:
    await cluster.pod("logger", ["c"])
    await started(cluster, "logger", "c", "echo one; echo two; echo three")
    assert await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/logger/log") == (200, b"one\ntwo\nthree\n")
    assert await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/logger/log?tailLines=1") == (200, b"three\n")
    code, out, err = await kubectl(cluster.server, "logs", "logger", "--tail=2")
    assert (code, out) == (0, "two\nthree\n"), err


async def test_kubectl_logs_follow(cluster: Cluster) -> None:
    await cluster.pod("follower", ["c"])
    await started(cluster, "follower", "c", "echo start; sleep 1; echo end", wait=False)
    code, out, err = await kubectl(cluster.server, "logs", "-f", "follower")
    assert (code, out) == (0, "start\nend\n"), err


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        pytest.param("", 400, "a container name must be specified for pod two-c, choose one of: [a b]", id="pick"),
        pytest.param("?container=z", 400, "container z is not valid for pod two-c", id="unknown"),
        pytest.param("?container=a&tailLines=-1", 422,
                     'PodLogOptions "two-c" is invalid: tailLines: Invalid value: -1: must be greater than or equal '
                     "to 0", id="tail"),
    ],
)  # fmt: skip
async def test_log_container_choice(cluster: Cluster, query: str, code: int, message: str) -> None:
    status, _ = await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/two-c")
    if status == 404:
        await cluster.pod("two-c", ["a", "b"])
    status, raw = await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/two-c/log{query}")
    assert (status, json.loads(raw)["message"]) == (code, message)


async def test_logs_of_an_unbound_pod_are_empty(cluster: Cluster) -> None:
    await cluster.pod("unbound", ["c"], bound=False, phase="Pending")
    assert await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/unbound/log") == (200, b"")
    status, raw = await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/unbound/exec?command=true&stdout=1")
    assert (status, json.loads(raw)["message"]) == (400, "pod unbound does not have a host assigned")


async def test_kubelet_errors_become_statuses(cluster: Cluster) -> None:
    await cluster.pod("not-started", ["c"])
    status, raw = await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/not-started/log")
    assert (status, json.loads(raw)["reason"]) == (404, "NotFound")


async def test_unreachable_kubelet_is_503(cluster: Cluster) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = int(sock.getsockname()[1])
    await register_node(cluster.server, f"{cluster.node}-dead", "127.0.0.1", dead_port)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "on-dead-node"},
           "spec": {"nodeName": f"{cluster.node}-dead", "containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    assert (await cluster.call("POST", f"/api/v1/namespaces/{NS}/pods", pod))[0] == 201
    status, raw = await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/on-dead-node/log")
    body = json.loads(raw)
    assert (status, body["reason"]) == (503, "ServiceUnavailable")
    assert body["message"].startswith("error dialing backend: ")


async def test_missing_node_is_not_found(cluster: Cluster) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "on-no-node"},
           "spec": {"nodeName": "no-such-node", "containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    assert (await cluster.call("POST", f"/api/v1/namespaces/{NS}/pods", pod))[0] == 201
    status, raw = await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/on-no-node/log")
    assert (status, json.loads(raw)["message"]) == (404, 'nodes "no-such-node" not found')


# -- exec ----------------------------------------------------------------------------------------


def _python_exec(server: RunningApiServer, pod: str, command: list[str]) -> tuple[str, int | None]:
    with python_client(server) as api:
        resp = k8s_stream(
            api.connect_get_namespaced_pod_exec, pod, NS, command=command,
            stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False,
        )  # fmt: skip
        resp.run_forever(timeout=60)
        out = resp.read_stdout()
        code = resp.returncode
        resp.close()
        # websocket-client skips closing its socket when the server closed first.
        resp.sock.shutdown()
        return out, code


async def test_python_client_exec_and_exit_codes(cluster: Cluster) -> None:
    await cluster.pod("pyexec", ["c"])
    await started(cluster, "pyexec", "c", "sleep 600", wait=False)
    assert await asyncio.to_thread(_python_exec, cluster.server, "pyexec", ["echo", "hello"]) == ("hello\n", 0)
    out, code = await asyncio.to_thread(_python_exec, cluster.server, "pyexec", ["sh", "-c", "echo x; exit 5"])
    assert (out, code) == ("x\n", 5)


async def test_exec_errors_before_upgrade(cluster: Cluster) -> None:
    await cluster.pod("done-pod", ["c"], phase="Succeeded")
    status, raw = await cluster.call("GET", f"/api/v1/namespaces/{NS}/pods/done-pod/exec?command=true&stdout=1")
    assert (status, json.loads(raw)["message"]) == (
        400,
        "cannot exec into a container in a completed pod; current phase is Succeeded",
    )
    await cluster.pod("idle", ["c"])  # bound, Running, but the kubelet runs no process for it
    ssl_ctx = cluster.server.ssl_context()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(
                f"{cluster.server.url}/api/v1/namespaces/{NS}/pods/idle/exec?command=true&stdout=1",
                protocols=("v5.channel.k8s.io",), ssl=ssl_ctx,
            )  # fmt: skip
        assert caught.value.status == 404


async def test_attach_through_the_apiserver(cluster: Cluster) -> None:
    await cluster.pod("attached", ["c"])
    await cluster.runtime.run(NS, "attached", "c", ["sh", "-c", "read l; echo got $l"], stdin_fifo=True)
    ssl_ctx = cluster.server.ssl_context()
    url = f"{cluster.server.url}/api/v1/namespaces/{NS}/pods/attached/attach?stdin=true&stdout=true"
    frames: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"), ssl=ssl_ctx) as ws,
    ):
        assert ws.protocol == "v5.channel.k8s.io"
        await ws.send_bytes(b"\x00hi\n")
        async for msg in ws:
            frames.append(msg.data)
    assert b"\x01got hi\n" in frames
    assert frames[-1] == b'\x03{"metadata": {}, "status": "Success"}'


# -- port-forward --------------------------------------------------------------------------------


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


def _python_port_forward(server: RunningApiServer, pod: str, port: int) -> bytes:
    with python_client(server) as api:
        pf = portforward(api.connect_get_namespaced_pod_portforward, pod, NS, ports=str(port))
        sock = pf.socket(port)
        sock.settimeout(30)
        payload = b"raw bytes \x00\x01\x02" * 1000
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            assert chunk, "the forwarded connection closed early"
            received += chunk
        sock.close()
        pf.close()
        return received


async def test_python_client_port_forward(cluster: Cluster) -> None:
    echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = int(echo.sockets[0].getsockname()[1])
    try:
        await cluster.pod("forwarded", ["c"])
        cluster.runtime.ips[(NS, "forwarded")] = "127.0.0.1"
        received = await asyncio.to_thread(_python_port_forward, cluster.server, "forwarded", port)
        assert received == b"raw bytes \x00\x01\x02" * 1000
    finally:
        echo.close()
        await echo.wait_closed()


async def test_stream_subresources_need_an_upgrade(cluster: Cluster) -> None:
    """exec without a WebSocket or SPDY upgrade is a 400 (kubectl's SPDY and WebSocket paths:
    test_pod_subresources_spdy)."""
    await cluster.pod("no-upgrade", ["c"])
    status, raw = await cluster.call("POST", f"/api/v1/namespaces/{NS}/pods/no-upgrade/exec?command=true&stdout=1")
    assert (status, json.loads(raw)["message"]) == (
        400,
        "unable to upgrade connection: pods/exec needs a WebSocket or SPDY/3.1 upgrade",
    )
