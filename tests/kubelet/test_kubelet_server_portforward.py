"""KubeletServer /portForward (v4 channel WebSocket protocol) to real TCP servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pod_subresources_fake_kubelet import FakeRuntime

from skiff.kubelet import spdy
from skiff.kubelet.server import KubeletServer

POD_IP = "127.0.0.1"


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, POD_IP, 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def kubelet(tmp_path: Path) -> AsyncIterator[tuple[FakeRuntime, str]]:
    runtime = FakeRuntime(tmp_path / "pods")
    runtime.ips[("default", "web")] = POD_IP
    server = KubeletServer(runtime, "127.0.0.1", 0, tmp_path / "certs")
    await server.start()
    try:
        yield runtime, f"https://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> bytes:
    msg = await ws.receive(timeout=30)
    assert msg.type == aiohttp.WSMsgType.BINARY, msg
    data: bytes = msg.data
    return data


async def test_port_forward_relays_raw_bytes(kubelet: tuple[FakeRuntime, str], echo_port: int) -> None:
    _, base = kubelet
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"{base}/portForward/default/web", params={"port": str(echo_port)}, protocols=("v4.channel.k8s.io",),
            ssl=False,
        ) as ws,
    ):  # fmt: skip
        assert ws.protocol == "v4.channel.k8s.io"
        header = struct.pack("<H", echo_port)
        assert {await next_frame(ws), await next_frame(ws)} == {b"\x00" + header, b"\x01" + header}
        payload = bytes(range(256)) * 64
        await ws.send_bytes(b"\x00" + payload)
        received = b""
        while len(received) < len(payload):
            frame = await next_frame(ws)
            assert frame[0] == 0
            received += frame[1:]
        assert received == payload


async def test_port_forward_two_ports_and_a_refused_one(kubelet: tuple[FakeRuntime, str], echo_port: int) -> None:
    _, base = kubelet
    closed = socket_port_nobody_listens_on()
    params = [("port", str(echo_port)), ("port", str(closed))]
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{base}/portForward/default/web", params=params, protocols=("v4.channel.k8s.io",),
                           ssl=False) as ws,
    ):  # fmt: skip
        frames = [await next_frame(ws) for _ in range(4)]
        assert sorted(f[0] for f in frames) == [0, 1, 2, 3]
        error = await next_frame(ws)
        assert error[0] == 3
        assert f"error forwarding port {closed} to pod" in error[1:].decode()
        await ws.send_bytes(b"\x00ping")
        assert await next_frame(ws) == b"\x00ping"


def socket_port_nobody_listens_on() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((POD_IP, 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("pod", "params", "code", "message"),
    [
        pytest.param("web", {}, 400, "at least one port must be specified", id="no-port"),
        pytest.param("web", {"port": "0"}, 400, "invalid port: port 0 is out of range", id="zero"),
        pytest.param("gone", {"port": "80"}, 404, 'pod "gone" in namespace "default" has no address on this node',
                     id="unknown-pod"),
    ],
)  # fmt: skip
async def test_port_forward_errors(
    kubelet: tuple[FakeRuntime, str], pod: str, params: dict[str, str], code: int, message: str
) -> None:
    _, base = kubelet
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/portForward/default/{pod}", params=params, ssl=False) as response,
    ):
        assert (response.status, await response.text()) == (code, message)


def test_spdy_dictionary_is_the_protocol_constant() -> None:
    # 1423 bytes; its Adler-32 is the dictionary id SPDY/3 peers put in their zlib headers.
    assert (len(spdy.DICTIONARY), zlib.adler32(spdy.DICTIONARY)) == (1423, 0xE3C6A7C2)


def test_spdy_header_blocks_round_trip_across_frames() -> None:
    client, server = spdy.HeaderCodec(), spdy.HeaderCodec()
    for headers in ({"streamtype": "error", "port": "80", "requestid": "0"}, {"streamtype": "data", "port": "80"}):
        frame = spdy.control(spdy.SYN_STREAM, 0, struct.pack(">IIBB", 1, 0, 0, 0) + client.encode(headers))
        (parsed,) = spdy.FrameReader().feed(frame)
        assert isinstance(parsed, spdy.ControlFrame)
        assert spdy.parse_syn_stream(server, parsed) == (1, headers)


async def test_spdy_tunnel_reports_a_refused_port(kubelet: tuple[FakeRuntime, str]) -> None:
    _, base = kubelet
    closed = socket_port_nobody_listens_on()
    codec = spdy.HeaderCodec()
    frames = spdy.FrameReader()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{base}/portForward/default/web", protocols=("SPDY/3.1+portforward.k8s.io",),
                           ssl=False) as ws,
    ):  # fmt: skip
        assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
        for stream_id, kind in ((1, "error"), (3, "data")):
            headers = {"streamtype": kind, "port": str(closed), "requestid": "0"}
            await ws.send_bytes(
                spdy.control(spdy.SYN_STREAM, 0, struct.pack(">IIBB", stream_id, 0, 0, 0) + codec.encode(headers))
            )
        await ws.send_bytes(spdy.control(spdy.PING, 0, struct.pack(">I", 7)))
        seen: list[spdy.Frame] = []
        while not any(isinstance(f, spdy.DataFrame) and f.stream_id == 3 and f.flags & spdy.FLAG_FIN for f in seen):
            msg = await ws.receive(timeout=30)
            seen += frames.feed(msg.data)
    replies_to = [spdy.stream_id_of(f) for f in seen if isinstance(f, spdy.ControlFrame) and f.type == spdy.SYN_REPLY]
    assert replies_to == [1, 3]
    assert spdy.ControlFrame(spdy.PING, 0, struct.pack(">I", 7)) in seen
    errors = b"".join(f.data for f in seen if isinstance(f, spdy.DataFrame) and f.stream_id == 1)
    assert f"error forwarding port {closed} to pod web: dial tcp 127.0.0.1:{closed}".encode() in errors
