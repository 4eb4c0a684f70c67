"""KubeletServer /healthz and /containerLogs against real processes writing real log files."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pod_subresources_fake_kubelet import FakeRuntime

from skiff.kubelet.server import KubeletServer

LINES = "for i in 1 2 3 4 5; do echo line$i; done"


@pytest.fixture
async def kubelet(tmp_path: Path) -> AsyncIterator[tuple[FakeRuntime, str]]:
    runtime = FakeRuntime(tmp_path / "pods")
    server = KubeletServer(runtime, "127.0.0.1", 0, tmp_path / "certs")
    await server.start()
    try:
        yield runtime, f"https://127.0.0.1:{server.port}"
    finally:
        await server.stop()
        await runtime.stop()


async def fetch(url: str, **params: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params, ssl=False) as response:
        return response.status, await response.text()


async def finished(runtime: FakeRuntime, pod: str, script: str, container: str = "c") -> None:
    state = await runtime.run("default", pod, container, ["sh", "-c", script])
    assert state.proc is not None
    await state.proc.wait()


async def test_healthz_and_self_signed_cert_reused(tmp_path: Path) -> None:
    runtime = FakeRuntime(tmp_path / "pods")
    first = KubeletServer(runtime, "127.0.0.1", 0, tmp_path / "certs")
    await first.start()
    try:
        assert await fetch(f"https://127.0.0.1:{first.port}/healthz") == (200, "ok")
    finally:
        await first.stop()
    cert = (tmp_path / "certs" / "kubelet.crt").read_bytes()
    second = KubeletServer(runtime, "127.0.0.1", 0, tmp_path / "certs")
    await second.start()
    try:
        assert await fetch(f"https://127.0.0.1:{second.port}/healthz") == (200, "ok")
    finally:
        await second.stop()
    assert (tmp_path / "certs" / "kubelet.crt").read_bytes() == cert


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, "line1\nline2\nline3\nline4\nline5\n", id="all"),
        pytest.param({"tailLines": "2"}, "line4\nline5\n", id="tail"),
        pytest.param({"tailLines": "0"}, "", id="tail-zero"),
        pytest.param({"tailLines": "50"}, "line1\nline2\nline3\nline4\nline5\n", id="tail-more-than-lines"),
        pytest.param({"limitBytes": "8"}, "line1\nli", id="limit-bytes"),
        pytest.param({"tailLines": "1", "limitBytes": "3"}, "lin", id="tail-and-limit"),
    ],
)
async def test_container_logs_options(kubelet: tuple[FakeRuntime, str], params: dict[str, str], expected: str) -> None:
    runtime, base = kubelet
    await finished(runtime, "p", LINES)
    assert await fetch(f"{base}/containerLogs/default/p/c", **params) == (200, expected)


async def test_timestamps_prefix_every_line(kubelet: tuple[FakeRuntime, str]) -> None:
    runtime, base = kubelet
    await finished(runtime, "p", LINES)
    status, text = await fetch(f"{base}/containerLogs/default/p/c", timestamps="true")
    assert status == 200
    lines = text.splitlines()
    assert len(lines) == 5
    for i, line in enumerate(lines, 1):
        assert re.fullmatch(rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{9}}Z line{i}", line), line


async def test_since_seconds_uses_the_file_time(kubelet: tuple[FakeRuntime, str]) -> None:
    runtime, base = kubelet
    await finished(runtime, "p", LINES)
    log = runtime.containers[("default", "p", "c")].current
    an_hour_ago = time.time() - 3600
    os.utime(log, (an_hour_ago, an_hour_ago))
    assert await fetch(f"{base}/containerLogs/default/p/c", sinceSeconds="60") == (200, "")
    status, text = await fetch(f"{base}/containerLogs/default/p/c", sinceSeconds="7200")
    assert (status, text.count("\n")) == (200, 5)


async def test_previous_is_the_last_run(kubelet: tuple[FakeRuntime, str]) -> None:
    runtime, base = kubelet
    await finished(runtime, "p", "echo first run")
    status, text = await fetch(f"{base}/containerLogs/default/p/c", previous="true")
    assert status == 400
    assert text == 'previous terminated container "c" in pod "p" not found'
    await finished(runtime, "p", "echo second run")
    assert await fetch(f"{base}/containerLogs/default/p/c", previous="true") == (200, "first run\n")
    assert await fetch(f"{base}/containerLogs/default/p/c") == (200, "second run\n")


async def test_follow_streams_until_the_container_exits(kubelet: tuple[FakeRuntime, str]) -> None:
    runtime, base = kubelet
    await runtime.run("default", "p", "c", ["sh", "-c", "echo a; sleep 0.5; echo b; sleep 0.3; echo c"])
    status, text = await fetch(f"{base}/containerLogs/default/p/c", follow="true")
    assert (status, text) == (200, "a\nb\nc\n")


async def test_follow_stops_when_the_client_leaves(kubelet: tuple[FakeRuntime, str]) -> None:
    runtime, base = kubelet
    await runtime.run("default", "p", "c", ["sh", "-c", "while true; do echo tick; sleep 0.05; done"])
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/containerLogs/default/p/c", params={"follow": "true"}, ssl=False) as response,
    ):
        first = await response.content.readuntil(b"\n")
        assert first == b"tick\n"
    # The server survives the abandoned stream and keeps serving.
    assert await fetch(f"{base}/healthz") == (200, "ok")
    status, text = await fetch(f"{base}/containerLogs/default/p/c", tailLines="1")
    assert (status, text) == (200, "tick\n")


@pytest.mark.parametrize(
    ("path", "params", "code", "message"),
    [
        pytest.param("default/nope/c", {}, 404, 'container "c" in pod "nope" is not available', id="unknown-pod"),
        pytest.param("default/p/c", {"tailLines": "x"}, 400, "invalid tailLines: 'x' is not an integer", id="bad-tail"),
        pytest.param("default/p/c", {"limitBytes": "-1"}, 400, "invalid limitBytes: must be non-negative", id="neg"),
        pytest.param("default/p/c", {"sinceTime": "yesterday"}, 400, "invalid sinceTime: 'yesterday'", id="time"),
    ],
)
async def test_container_logs_errors(
    kubelet: tuple[FakeRuntime, str], path: str, params: dict[str, str], code: int, message: str
) -> None:
    runtime, base = kubelet
    await finished(runtime, "p", "echo x")
    assert await fetch(f"{base}/containerLogs/{path}", **params) == (code, message)


async def test_follow_of_a_log_written_concurrently_sees_every_line(kubelet: tuple[FakeRuntime, str]) -> None:
    runtime, base = kubelet
    await runtime.run("default", "p", "c", ["sh", "-c", "for i in $(seq 1 200); do echo n$i; done; sleep 0.2"])
    status, text = await fetch(f"{base}/containerLogs/default/p/c", follow="1")
    assert status == 200
    assert text.splitlines() == [f"n{i}" for i in range(1, 201)]
    await asyncio.sleep(0)
