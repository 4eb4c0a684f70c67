"""KubeletServer /exec and /attach over the WebSocket channel protocols, against real processes."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pod_subresources_fake_kubelet import FakeRuntime

from skiff.kubelet.server import KubeletServer


@pytest.fixture
async def kubelet(tmp_path: Path) -> AsyncIterator[tuple[FakeRuntime, str]]:
    runtime = FakeRuntime(tmp_path / "pods")
    await runtime.run("default", "p", "c", ["sleep", "600"])
    server = KubeletServer(runtime, "127.0.0.1", 0, tmp_path / "certs")
    await server.start()
    try:
        yield runtime, f"https://127.0.0.1:{server.port}"
    finally:
        await server.stop()
        await runtime.stop()


@dataclass
class Outcome:
    protocol: str | None
    channels: dict[int, bytes] = field(default_factory=dict)
    closed: list[int] = field(default_factory=list)

    def text(self, channel: int) -> str:
        return self.channels.get(channel, b"").decode()

    def status(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.channels[3])
        return loaded


async def session_run(
    url: str,
    params: list[tuple[str, str]],
    protocols: tuple[str, ...] = ("v5.channel.k8s.io", "v4.channel.k8s.io"),
    send: list[bytes | str] = (),  # type: ignore[assignment]
) -> Outcome:
    """Connect, send ``send`` frames, read every frame until the server closes."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, params=params, protocols=protocols, ssl=False) as ws,
    ):
        outcome = Outcome(ws.protocol)
        for frame in send:
            if isinstance(frame, str):
                await ws.send_str(frame)
            else:
                await ws.send_bytes(frame)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                channel, payload = msg.data[0], msg.data[1:]
            elif msg.type == aiohttp.WSMsgType.TEXT:
                channel, payload = int(msg.data[0]), base64.b64decode(msg.data[1:])
            else:
                continue
            if channel == 255:
                outcome.closed.append(payload[0])
                continue
            outcome.channels[channel] = outcome.channels.get(channel, b"") + payload
        return outcome


def command(*argv: str, stdin: bool = False, tty: bool = False) -> list[tuple[str, str]]:
    params = [("command", a) for a in argv] + [("stdout", "1")]
    if not tty:
        params.append(("stderr", "1"))
    if stdin:
        params.append(("stdin", "1"))
    if tty:
        params.append(("tty", "1"))
    return params


async def test_exec_echo_v5(kubelet: tuple[FakeRuntime, str]) -> None:
    _, base = kubelet
    out = await session_run(f"{base}/exec/default/p/c", command("echo", "hi"))
    assert out.protocol == "v5.channel.k8s.io"
    assert out.text(1) == "hi\n"
    assert out.status() == {"metadata": {}, "status": "Success"}


async def test_exec_runs_with_the_container_env_and_dir(kubelet: tuple[FakeRuntime, str]) -> None:
    runtime, base = kubelet
    out = await session_run(f"{base}/exec/default/p/c", command("sh", "-c", "echo $POD_NAME; pwd"))
    assert out.text(1) == f"p\n{runtime.containers[('default', 'p', 'c')].directory}\n"


async def test_exec_exit_code_and_stderr_v4(kubelet: tuple[FakeRuntime, str]) -> None:
    _, base = kubelet
    out = await session_run(
        f"{base}/exec/default/p/c", command("sh", "-c", "echo oops >&2; exit 3"), protocols=("v4.channel.k8s.io",)
    )
    assert out.protocol == "v4.channel.k8s.io"
    assert out.text(2) == "oops\n"
    status = out.status()
    assert status["status"] == "Failure"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}


async def test_exec_stdin_closed_by_v5_close_frame(kubelet: tuple[FakeRuntime, str]) -> None:
    _, base = kubelet
    out = await session_run(
        f"{base}/exec/default/p/c",
        command("sh", "-c", "cat; echo done", stdin=True),
        send=[b"\x00hello ", b"\x00world\n", b"\xff\x00"],
    )
    assert out.text(1) == "hello world\ndone\n"
    assert out.status()["status"] == "Success"


async def test_exec_base64_protocol(kubelet: tuple[FakeRuntime, str]) -> None:
    _, base = kubelet
    out = await session_run(
        f"{base}/exec/default/p/c", command("printf", "\\001\\002"), protocols=("v4.base64.channel.k8s.io",)
    )
    assert out.protocol == "v4.base64.channel.k8s.io"
    assert out.channels[1] == b"\x01\x02"


async def test_exec_tty_gets_a_terminal_and_resize(kubelet: tuple[FakeRuntime, str]) -> None:
    _, base = kubelet
    resize = b"\x04" + json.dumps({"Width": 101, "Height": 42}).encode()
    out = await session_run(
        f"{base}/exec/default/p/c",
        command("sh", "-c", "read x; test -t 1 && echo is-a-tty; stty size", stdin=True, tty=True),
        send=[resize, b"\x00go\n"],
    )
    assert "is-a-tty" in out.text(1)
    assert "42 101" in out.text(1)
    assert out.status()["status"] == "Success"


async def test_exec_missing_binary_reports_failure(kubelet: tuple[FakeRuntime, str]) -> None:
    _, base = kubelet
    out = await session_run(f"{base}/exec/default/p/c", command("no-such-binary-here"))
    status = out.status()
    assert status["status"] == "Failure"
    assert status["reason"] == "InternalError"
    assert "no-such-binary-here" in status["message"]


@pytest.mark.parametrize(
    ("path", "params", "code", "message"),
    [
        pytest.param("default/p/nope", command("true"), 404, 'container "nope" in pod "p" is not running', id="gone"),
        pytest.param("default/p/c", [("stdout", "1")], 400, "you must specify a command", id="no-command"),
        pytest.param(
            "default/p/c", [("command", "true")], 400, "you must specify at least 1 of stdin, stdout, stderr", id="io"
        ),
    ],
)
async def test_exec_errors_before_upgrade(
    kubelet: tuple[FakeRuntime, str], path: str, params: list[tuple[str, str]], code: int, message: str
) -> None:
    _, base = kubelet
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(f"{base}/exec/{path}", params=params, protocols=("v5.channel.k8s.io",), ssl=False)
        assert caught.value.status == code
        async with session.get(f"{base}/exec/{path}", params=params, ssl=False) as response:
            assert (response.status, await response.text()) == (code, message)


async def test_exec_without_websocket_upgrade_is_refused(kubelet: tuple[FakeRuntime, str]) -> None:
    _, base = kubelet
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/exec/default/p/c", params=command("true"), headers={"Upgrade": "SPDY/3.1"}, ssl=False
        ) as response,
    ):
        assert response.status == 400
        assert "only WebSocket upgrades are supported" in await response.text()


async def test_attach_writes_stdin_and_follows_output(kubelet: tuple[FakeRuntime, str]) -> None:
    runtime, base = kubelet
    state = await runtime.run("default", "a", "c", ["sh", "-c", "read line; echo got $line"], stdin_fifo=True)
    out = await session_run(
        f"{base}/attach/default/a/c", [("stdin", "1"), ("stdout", "1"), ("stderr", "1")], send=[b"\x00ping\n"]
    )
    assert out.text(1) == "got ping\n"
    assert out.status()["status"] == "Success"
    assert state.proc is not None and state.proc.returncode == 0
