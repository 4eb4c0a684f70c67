"""Equivalents of the runtime-dependent tests of the official Python client's e2e suite.

kubernetes-client/python e2e_test/test_client.py runs against a real cluster:
pod APIs with exec (one-shot and interactive), exit codes, and port-forward
both raw and for HTTP.  The same operations, through the official client,
against a ``skiff up`` cluster.
"""

from __future__ import annotations

import gc
import json
import socket
import time
import uuid
import warnings
from collections.abc import Iterator

import pytest
from cluster_harness import RunningCluster, cluster
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import portforward, stream

__all__ = ["cluster"]

# The official client's stream() and portforward() leave their WebSocket's TLS socket for the garbage
# collector (upstream behaviour, not ours); the warnings it raises there are not findings of these tests.
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module", autouse=True)
def collect_client_sockets() -> Iterator[None]:
    """Collect the client's leftover sockets here, so no later module meets their warnings."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()


ECHO_SERVERS = """
import socket, threading
def serve(port, reply):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("$(POD_IP)", port)); s.listen()
    while True:
        conn, _ = s.accept()
        data = conn.recv(1024)
        conn.sendall(reply(data)); conn.close()
threading.Thread(target=serve, args=(1234, lambda d: d), daemon=True).start()
serve(1235, lambda d: d.upper())
"""


@pytest.fixture(scope="module")
def core(cluster: RunningCluster) -> Iterator[k8s.CoreV1Api]:
    api_client = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield k8s.CoreV1Api(api_client)
    finally:
        api_client.close()


def wait_running(core: k8s.CoreV1Api, name: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, "default")
        if pod.status.phase == "Running" and all(s.ready for s in pod.status.container_statuses or [False]):
            return
        time.sleep(0.3)
    raise AssertionError(f"pod {name} not running: {pod.status}")


def make_pod(core: k8s.CoreV1Api, command: list[str], image: str = "busybox") -> str:
    name = f"pyclient-{uuid.uuid4().hex[:8]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "command": command,
                    "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                }
            ],
        },
    }
    core.create_namespaced_pod("default", manifest)
    wait_running(core, name)
    return name


def test_pod_apis_with_exec(core: k8s.CoreV1Api) -> None:
    name = make_pod(core, ["sh", "-c", "sleep 3600"])
    out = stream(
        core.connect_get_namespaced_pod_exec,
        name,
        "default",
        command=["/bin/sh", "-c", "for i in 1 2 3; do echo line$i; done"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert out == "line1\nline2\nline3\n"
    interactive = stream(
        core.connect_get_namespaced_pod_exec,
        name,
        "default",
        command=["/bin/sh"],
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    try:
        interactive.write_stdin("echo test string 1\n")
        line = interactive.readline_stdout(timeout=10)
        assert line == "test string 1"
        interactive.write_stdin("echo test string 2 >&2\n")
        assert interactive.readline_stderr(timeout=10) == "test string 2"
        interactive.write_stdin("exit\n")
        interactive.update(timeout=5)
    finally:
        interactive.close()
    listed = core.list_namespaced_pod("default", field_selector=f"metadata.name={name}")
    assert [p.metadata.name for p in listed.items] == [name]
    core.delete_namespaced_pod(name, "default", body=k8s.V1DeleteOptions())


@pytest.mark.parametrize("code", [0, 1, 42])
def test_exit_codes(core: k8s.CoreV1Api, code: int) -> None:
    name = make_pod(core, ["sh", "-c", "sleep 3600"])
    try:
        resp = stream(
            core.connect_get_namespaced_pod_exec,
            name,
            "default",
            command=["/bin/sh", "-c", f"exit {code}"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        resp.run_forever(timeout=10)
        assert resp.returncode == code
        resp.close()
    finally:
        core.delete_namespaced_pod(name, "default", body=k8s.V1DeleteOptions())


def test_portforward_raw(core: k8s.CoreV1Api) -> None:
    name = make_pod(core, ["python3", "-c", ECHO_SERVERS], image="python:3")
    try:
        pf = portforward(core.connect_get_namespaced_pod_portforward, name, "default", ports="1234,1235")
        try:
            echo, upper = pf.socket(1234), pf.socket(1235)
            echo.sendall(b"hello")
            upper.sendall(b"hello")
            for sock, expected in ((echo, b"hello"), (upper, b"HELLO")):
                sock.settimeout(10)
                got = b""
                while len(got) < 5:
                    chunk = sock.recv(1024)
                    if not chunk:
                        break
                    got += chunk
                assert got == expected
                sock.close()
            assert pf.error(1234) is None and pf.error(1235) is None
        finally:
            pf.close()
    finally:
        core.delete_namespaced_pod(name, "default", body=k8s.V1DeleteOptions())


def test_portforward_http(core: k8s.CoreV1Api) -> None:
    name = make_pod(
        core, ["sh", "-c", "cd /tmp && exec python3 -m http.server 8080 --bind $(POD_IP)"], image="python:3"
    )
    try:
        pf = portforward(core.connect_get_namespaced_pod_portforward, name, "default", ports="8080")
        try:
            sock: socket.socket = pf.socket(8080)
            sock.settimeout(10)
            sock.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            response = b""
            while chunk := sock.recv(4096):
                response += chunk
            assert response.startswith(b"HTTP/1.0 200"), response[:200]
            assert b"Directory listing" in response
        finally:
            pf.close()
    finally:
        core.delete_namespaced_pod(name, "default", body=k8s.V1DeleteOptions())


def test_node_apis(core: k8s.CoreV1Api, cluster: RunningCluster) -> None:
    nodes = core.list_node()
    names = [n.metadata.name for n in nodes.items]
    assert cluster.node_name in names
    node = core.read_node(cluster.node_name)
    assert node.status.capacity["pods"] == "110"
    assert json.loads(json.dumps(node.metadata.labels))["kubernetes.io/hostname"] == cluster.node_name
