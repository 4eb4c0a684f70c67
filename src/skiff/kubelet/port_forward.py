"""Port-forward over the kubelet's WebSocket protocol (``v4.channel.k8s.io``).

For the i-th requested port, channel 2i carries data and 2i+1 errors; the
server first sends each channel's port number (two little-endian bytes), then
opens one TCP connection to ``pod_ip:port`` and relays bytes both ways.  A
failed connection is reported as text on the error channel.  The socket is
closed when every port's connection has ended, or when the client leaves
(then the connections are closed too) — upstream's websocket port-forward
handler behaves the same way.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

from skiff.kubelet import streams
from skiff.kubelet.remote_command import Session

READ_SIZE = 64 * 1024


def parse_ports(values: list[str]) -> list[int]:
    """Ports from repeated ``port=`` (and comma-separated ``ports=``) values; ValueError when bad."""
    ports: list[int] = []
    for value in values:
        for part in value.split(","):
            port = int(part)
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is out of range")
            ports.append(port)
    return ports


class _Port:
    def __init__(self, index: int, port: int) -> None:
        self.index = index
        self.port = port
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()

    @property
    def data_channel(self) -> int:
        return 2 * self.index

    @property
    def error_channel(self) -> int:
        return 2 * self.index + 1


async def run_port_forward(ws: web.WebSocketResponse, protocol: streams.Protocol, host: str, ports: list[int]) -> None:
    session = Session(ws, protocol)
    forwards = [_Port(i, p) for i, p in enumerate(ports)]
    for fwd in forwards:
        await session.send(fwd.data_channel, streams.port_header(fwd.port))
        await session.send(fwd.error_channel, streams.port_header(fwd.port))
    relays = asyncio.create_task(_relay_all(session, host, forwards))
    inbound = asyncio.create_task(_receive(ws, forwards))
    try:
        await asyncio.wait({inbound, relays}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        inbound.cancel()
        for fwd in forwards:
            if fwd.writer is not None:
                fwd.writer.close()
        relays.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relays


async def _relay_all(session: Session, host: str, forwards: list[_Port]) -> None:
    await asyncio.gather(*(_relay(session, host, fwd) for fwd in forwards))


async def _relay(session: Session, host: str, fwd: _Port) -> None:
    """pod → client for one port; reports a failed dial on the error channel."""
    try:
        reader, writer = await asyncio.open_connection(host, fwd.port)
    except OSError as err:
        message = f"error forwarding port {fwd.port} to pod: dial tcp {host}:{fwd.port}: {err.strerror or err}"
        await session.send(fwd.error_channel, message.encode())
        fwd.connected.set()
        return
    fwd.writer = writer
    fwd.connected.set()
    try:
        while data := await reader.read(READ_SIZE):
            await session.send(fwd.data_channel, data)
    except OSError:
        pass
    finally:
        writer.close()


async def _receive(ws: web.WebSocketResponse, forwards: list[_Port]) -> None:
    """client → pod until the socket closes."""
    async for msg in ws:
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            continue
        try:
            channel, payload = streams.decode(msg.data)
        except ValueError:
            continue
        index, is_error = divmod(channel, 2)
        if is_error or index >= len(forwards) or not payload:
            continue
        fwd = forwards[index]
        await fwd.connected.wait()
        if fwd.writer is not None and not fwd.writer.is_closing():
            with contextlib.suppress(ConnectionError):
                fwd.writer.write(payload)
                await fwd.writer.drain()
