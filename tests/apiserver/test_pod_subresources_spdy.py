"""exec, cp, attach and port-forward with every kubectl from 1.27 to 1.33, through a real ``skiff apiserver``.

kubectl 1.27-1.29 exec/attach/cp and 1.27-1.30 port-forward use plain SPDY
upgrades (``Upgrade: SPDY/3.1``): the apiserver relays the raw connection to
the kubelet, which speaks SPDY.  Newer ones use WebSockets (and SPDY inside
a WebSocket for port-forward).  The cluster is the one of
test_pod_subresources_proxy: an in-process KubeletServer with a FakeRuntime.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import socket
import ssl
import struct
import termios
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import test_pod_subresources_proxy as proxy_suite
from apiserver_harness import RunningApiServer, apiserver  # noqa: F401  (fixture)
from test_pod_subresources_proxy import NS, Cluster, started

from skiff.kubelet import spdy

V4, V3 = "v4.channel.k8s.io", "v3.channel.k8s.io"
cluster = proxy_suite.cluster  # the fixture: an apiserver and an in-process kubelet with a fake runtime

KUBECTLS = [
    *(pytest.param(f"/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}", id=f"1.{minor}") for minor in range(27, 34)),
    pytest.param("/usr/bin/kubectl", id="default"),
]


async def run(kubectl: str, server: RunningApiServer, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        kubectl, "--kubeconfig", str(server.kubeconfig), *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def sleeping_pod(cluster: Cluster, name: str) -> None:
    await cluster.pod(name, ["c"])
    await started(cluster, name, "c", "sleep 600", wait=False)


@pytest.mark.parametrize("kubectl", KUBECTLS)
async def test_exec_output_and_exit_codes(cluster: Cluster, kubectl: str) -> None:
    pod = f"exec-{Path(kubectl).name.replace('.', '-')}"
    await sleeping_pod(cluster, pod)
    code, out, err = await run(kubectl, cluster.server, "exec", pod, "--", "echo", "hi")
    assert (code, out) == (0, "hi\n"), err
    code, out, err = await run(kubectl, cluster.server, "exec", pod, "--", "sh", "-c", "echo out; echo bad >&2; exit 7")
    assert (code, out, err.strip()) == (7, "out\n", "bad\ncommand terminated with exit code 7")


@pytest.mark.parametrize("kubectl", KUBECTLS)
async def test_exec_with_stdin(cluster: Cluster, kubectl: str) -> None:
    pod = f"stdin-{Path(kubectl).name.replace('.', '-')}"
    await sleeping_pod(cluster, pod)
    payload = b"shout\n" * 20000  # more than one frame and one socket buffer
    code, out, err = await run(kubectl, cluster.server, "exec", "-i", pod, "--", "tr", "a-z", "A-Z", stdin=payload)
    assert (code, out.encode()) == (0, payload.upper()), err


class Terminal:
    """A pty for kubectl's stdin/stdout/stderr; what kubectl writes is collected from the master side."""

    def __init__(self, rows: int, columns: int) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        os.set_blocking(self.master, False)
        self.output = b""
        self.changed = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: kubectl closed its side
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self.output += data
        self.changed.set()

    async def wait_for(self, text: bytes) -> None:
        while text not in self.output:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 60)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)


@pytest.mark.parametrize("kubectl", KUBECTLS)
async def test_exec_with_a_terminal(cluster: Cluster, kubectl: str) -> None:
    """``exec -it``: a pty in the container, kubectl's terminal size applied to it (the resize stream/channel)."""
    pod = f"tty-{Path(kubectl).name.replace('.', '-')}"
    await sleeping_pod(cluster, pod)
    terminal = Terminal(33, 99)
    proc = None
    try:
        proc = await asyncio.create_subprocess_exec(
            kubectl, "--kubeconfig", str(cluster.server.kubeconfig), "exec", "-it", pod, "--",
            "sh", "-c", "echo ready; read x; stty size; exit 4",
            stdin=terminal.slave, stdout=terminal.slave, stderr=terminal.slave, start_new_session=True,
        )  # fmt: skip
        os.close(terminal.slave)
        # The session is up (and kubectl's terminal raw, its size sent) once the command's output arrives.
        await terminal.wait_for(b"ready")
        os.write(terminal.master, b"go\r")
        await asyncio.wait_for(proc.wait(), 60)
        await terminal.wait_for(b"command terminated with exit code 4")
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        terminal.close()
    assert proc.returncode == 4
    assert b"33 99\r\n" in terminal.output, terminal.output


@pytest.mark.parametrize("kubectl", KUBECTLS)
async def test_cp_both_ways(cluster: Cluster, tmp_path: Path, kubectl: str) -> None:
    """kubectl cp is tar over exec: copying in needs stdin's half-close (SPDY FIN / v5 close)."""
    pod = f"cp-{Path(kubectl).name.replace('.', '-')}"
    await sleeping_pod(cluster, pod)
    source = tmp_path / "local.txt"
    source.write_text("copied through exec\n" * 5000)
    inside = tmp_path / "in-pod"
    inside.mkdir()
    code, _, err = await run(kubectl, cluster.server, "cp", str(source), f"{pod}:{inside}/remote.txt")
    assert code == 0, err
    assert (inside / "remote.txt").read_text() == source.read_text()
    back = tmp_path / "back.txt"
    code, _, err = await run(kubectl, cluster.server, "cp", f"{pod}:{inside}/remote.txt", str(back))
    assert code == 0, err
    assert back.read_text() == source.read_text()


@pytest.mark.parametrize("kubectl", KUBECTLS)
async def test_attach_with_stdin(cluster: Cluster, kubectl: str) -> None:
    pod = f"attach-{Path(kubectl).name.replace('.', '-')}"
    container = {"name": "c", "image": "busybox", "stdin": True}
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
            "spec": {"nodeName": cluster.node, "containers": [container]}}  # fmt: skip
    status, raw = await cluster.call("POST", f"/api/v1/namespaces/{NS}/pods", body)
    assert status == 201, raw
    created = json.loads(raw)
    created["status"]["phase"] = "Running"
    assert (await cluster.call("PUT", f"/api/v1/namespaces/{NS}/pods/{pod}/status", created))[0] == 200
    await cluster.runtime.run(NS, pod, "c", ["sh", "-c", "read l; echo got-$l"], stdin_fifo=True)
    code, out, err = await run(kubectl, cluster.server, "attach", "-i", pod, stdin=b"x\n")
    assert (code, out) == (0, "got-x\n"), err


class EchoServer:
    """Echoes every connection; ``idle`` is set while no connection is open."""

    def __init__(self) -> None:
        self.open = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.idle.clear()
        try:
            with contextlib.suppress(ConnectionError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.close()
            self.open -= 1
            if not self.open:
                self.idle.set()


@pytest.mark.parametrize("kubectl", KUBECTLS)
async def test_port_forward(cluster: Cluster, kubectl: str) -> None:
    echoes = EchoServer()
    echo = await asyncio.start_server(echoes.handle, "127.0.0.1", 0)
    remote = int(echo.sockets[0].getsockname()[1])
    pod = f"pf-{Path(kubectl).name.replace('.', '-')}"
    await cluster.pod(pod, ["c"])
    cluster.runtime.ips[(NS, pod)] = "127.0.0.1"
    proc = await asyncio.create_subprocess_exec(
        kubectl, "--kubeconfig", str(cluster.server.kubeconfig), "port-forward", "--address", "127.0.0.1",
        f"pod/{pod}", f":{remote}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert line.startswith("Forwarding from 127.0.0.1:"), line
        local = int(line.split("127.0.0.1:")[1].split(" ")[0])
        for attempt in range(2):  # two connections over the same session
            reader, writer = await asyncio.open_connection("127.0.0.1", local)
            payload = f"hello #{attempt} ".encode() * 20000
            writer.write(payload)
            await writer.drain()
            received = await asyncio.wait_for(reader.readexactly(len(payload)), 60)
            assert received == payload
            writer.close()
            await writer.wait_closed()
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await proc.communicate()
        assert "error" not in err.decode().lower(), err.decode()
        # kubectl is gone: the kubelet closes the connections it made to the pod.
        await asyncio.wait_for(echoes.idle.wait(), 60)
        echo.close()
        await echo.wait_closed()


@contextlib.asynccontextmanager
async def raw_upgrade(
    server: RunningApiServer, path: str, versions: list[str]
) -> AsyncIterator[tuple[int, dict[str, str], asyncio.StreamReader, asyncio.StreamWriter]]:
    """Send a plain SPDY upgrade request; the status and headers of the answer, and the connection."""
    ctx: ssl.SSLContext = server.ssl_context()
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx, server_hostname=host)
    try:
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: Upgrade", "Upgrade: SPDY/3.1"]
        lines += [f"X-Stream-Protocol-Version: {v}" for v in versions]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)).decode()
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head.split("\r\n")[1:] if line)
        }
        yield int(head.split(" ", 2)[1]), headers, reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def refusal(server: RunningApiServer, path: str, versions: list[str]) -> tuple[int, dict[str, Any]]:
    async with raw_upgrade(server, path, versions) as (status, headers, reader, _):
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 60)
        return status, json.loads(body)


async def test_spdy_upgrade_negotiation(cluster: Cluster) -> None:
    """The kubelet picks the client's first supported version; none in common is 403, as upstream answers."""
    await sleeping_pod(cluster, "negotiated")
    path = f"/api/v1/namespaces/{NS}/pods/negotiated/exec?command=true&stdout=true"
    async with raw_upgrade(cluster.server, path, ["v9.channel.k8s.io", "v3.channel.k8s.io"]) as (code, headers, _, _):
        assert (code, headers["upgrade"], headers["x-stream-protocol-version"]) == (101, "SPDY/3.1", V3)
    status, body = await refusal(cluster.server, path, ["v9.channel.k8s.io"])
    assert (status, body["reason"]) == (403, "Forbidden")
    assert "unable to negotiate protocol" in body["message"]
    status, body = await refusal(cluster.server, f"/api/v1/namespaces/{NS}/pods/absent/exec?command=true", [])
    assert (status, body["reason"]) == (404, "NotFound")


async def spdy_session(
    server: RunningApiServer, path: str, version: str, kinds: list[str], send: list[tuple[str, bytes]]
) -> dict[str, bytes]:
    """Open one stream per kind (as kubectl does), send ``send`` (stdin gets its FIN after), read until error's FIN."""
    async with raw_upgrade(server, path, [version]) as (status, headers, reader, writer):
        assert (status, headers["x-stream-protocol-version"]) == (101, version)
        codec, frames = spdy.HeaderCodec(), spdy.FrameReader()
        ids = {kind: 2 * i + 1 for i, kind in enumerate(kinds)}
        for kind in kinds:
            writer.write(spdy.syn_stream(codec, ids[kind], {"streamType": kind}))
        for kind, data in send:
            writer.write(spdy.data_frame(ids[kind], data))
        if "stdin" in ids:
            writer.write(spdy.data_frame(ids["stdin"], b"", fin=True))
        received = dict.fromkeys(kinds, b"")
        replied: set[int] = set()
        while not received.get("error", b"").endswith(b"<FIN>"):
            chunk = await asyncio.wait_for(reader.read(65536), 60)
            assert chunk, f"the session ended early: {received}"
            for frame in frames.feed(chunk):
                if isinstance(frame, spdy.DataFrame):
                    kind = next(k for k, v in ids.items() if v == frame.stream_id)
                    received[kind] += frame.data + (b"<FIN>" if frame.flags & spdy.FLAG_FIN else b"")
                elif frame.type == spdy.SYN_REPLY:
                    replied.add(spdy.stream_id_of(frame))
        assert replied == set(ids.values())
        return received


async def test_tty_resize_over_spdy(cluster: Cluster) -> None:
    """With a tty the client opens a resize stream: its JSON sizes reach the pty."""
    await sleeping_pod(cluster, "tty")
    query = "command=sh&command=-c&command=read+x%3B+stty+size&stdin=true&stdout=true&tty=true"
    received = await spdy_session(
        cluster.server, f"/api/v1/namespaces/{NS}/pods/tty/exec?{query}", V4,
        ["error", "stdin", "stdout", "resize"],
        [("resize", b'{"Width":100,"Height":30}\n{"Width":120,'), ("resize", b'"Height":40}\n'), ("stdin", b"go\n")],
    )  # fmt: skip
    assert received["stdout"].endswith(b"40 120\r\n<FIN>"), received
    assert json.loads(received["error"].removesuffix(b"<FIN>")) == {"metadata": {}, "status": "Success"}


async def test_v3_errors_are_plain_text(cluster: Cluster) -> None:
    """Before v4 the error stream carries the failure's text (nothing on success), not a Status."""
    await sleeping_pod(cluster, "old-protocol")
    query = "command=sh&command=-c&command=cat%3B+echo+oops+%3E%262%3B+exit+3&stdin=true&stdout=true&stderr=true"
    received = await spdy_session(
        cluster.server, f"/api/v1/namespaces/{NS}/pods/old-protocol/exec?{query}", V3,
        ["error", "stdin", "stdout", "stderr"], [("stdin", b"in and out\n")],
    )  # fmt: skip
    assert received == {
        "error": b"command terminated with non-zero exit code: exit status 3<FIN>",
        "stdin": b"",
        "stdout": b"in and out\n<FIN>",
        "stderr": b"oops\n<FIN>",
    }


async def test_legacy_bindings_resource_is_discovered(cluster: Cluster) -> None:
    """``bindings`` (create-only, namespaced) is listed in /api/v1 like kube-apiserver lists it."""
    code, out, err = await run("/usr/bin/kubectl", cluster.server, "api-resources", "--no-headers", "--api-group=")
    assert code == 0, err
    by_name = {row.split()[0]: row.split()[1:] for row in out.splitlines()}
    assert by_name["bindings"] == ["v1", "true", "Binding"]
    status, raw = await cluster.call("GET", "/api/v1")
    (row,) = [r for r in json.loads(raw)["resources"] if r["name"] == "bindings"]
    assert (status, row["verbs"], row["namespaced"], row["kind"]) == (200, ["create"], True, "Binding")
    for path in (f"/api/v1/namespaces/{NS}/bindings", "/api/v1/bindings", f"/api/v1/namespaces/{NS}/bindings/x"):
        status, raw = await cluster.call("GET", path)
        assert (status, json.loads(raw)["reason"]) == (405, "MethodNotAllowed"), path


async def test_port_forward_dial_failure_is_reported_on_the_error_stream(cluster: Cluster) -> None:
    """A port nobody listens on: the error stream carries the dial error, both streams end."""
    await cluster.pod("pf-refused", ["c"])
    cluster.runtime.ips[(NS, "pf-refused")] = "127.0.0.1"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])  # bound, never listening: connections are refused
        path = f"/api/v1/namespaces/{NS}/pods/pf-refused/portforward"
        async with raw_upgrade(cluster.server, path, ["portforward.k8s.io"]) as (status, headers, reader, writer):
            assert (status, headers["x-stream-protocol-version"]) == (101, "portforward.k8s.io")
            codec, frames = spdy.HeaderCodec(), spdy.FrameReader()
            for stream_id, kind in ((1, "error"), (3, "data")):
                headers = {"streamType": kind, "port": str(port), "requestID": "0"}
                writer.write(spdy.syn_stream(codec, stream_id, headers))
            received = {1: b"", 3: b""}
            ended: set[int] = set()
            while ended != {1, 3}:
                chunk = await asyncio.wait_for(reader.read(65536), 60)
                assert chunk, f"the session ended early: {received}"
                for frame in frames.feed(chunk):
                    if isinstance(frame, spdy.DataFrame):
                        received[frame.stream_id] += frame.data
                        if frame.flags & spdy.FLAG_FIN:
                            ended.add(frame.stream_id)
    assert received[3] == b""
    assert (
        received[1].decode().startswith(f"error forwarding port {port} to pod pf-refused: dial tcp 127.0.0.1:{port}: ")
    ), received
