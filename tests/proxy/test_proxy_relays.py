"""The TCP and UDP relays in-process, over real loopback sockets."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from skiff.client.clock import RealClock
from skiff.proxy.balancer import Balancer
from skiff.proxy.endpoints import Endpoint, ServicePortName
from skiff.proxy.listeners import ListenerKey
from skiff.proxy.tcp_relay import TcpListener
from skiff.proxy.udp_relay import UdpListener

TCP = ServicePortName("default", "svc", "", "TCP")
UDP = ServicePortName("default", "svc", "", "UDP")


def net() -> str:
    return f"127.{random.randint(150, 199)}.{random.randint(1, 254)}"


async def until(predicate: object, limit_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def upper_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A backend that answers only once the client has closed its write side."""
    data = await reader.read()
    writer.write(b"got:" + data.upper())
    await writer.drain()
    writer.close()


@asynccontextmanager
async def tcp_proxy(balancer: Balancer, ip: str) -> AsyncIterator[ListenerKey]:
    key = ListenerKey(ip, 8000, "TCP")
    listener = TcpListener(key, TCP, balancer)
    await listener.start()
    try:
        yield key
    finally:
        await listener.stop()


async def test_tcp_relay_forwards_half_close() -> None:
    base = net()
    backend = await asyncio.start_server(upper_after_eof, f"{base}.2", 9000)
    balancer = Balancer(RealClock())
    balancer.update(TCP, [Endpoint(f"{base}.2", 9000)], None)
    try:
        async with tcp_proxy(balancer, f"{base}.1") as key:
            reader, writer = await asyncio.open_connection(key.ip, key.port)
            writer.write(b"hello")
            writer.write_eof()
            assert await reader.read() == b"got:HELLO"
            writer.close()
    finally:
        backend.close()
        await backend.wait_closed()


async def test_tcp_without_endpoints_resets() -> None:
    base = net()
    balancer = Balancer(RealClock())
    balancer.update(TCP, [], None)
    async with tcp_proxy(balancer, f"{base}.1") as key:
        reader, writer = await asyncio.open_connection(key.ip, key.port)
        try:
            data = await reader.read()
        except ConnectionResetError:
            data = b""
        assert data == b""
        writer.close()


async def test_tcp_skips_a_dead_endpoint() -> None:
    base = net()
    backend = await asyncio.start_server(upper_after_eof, f"{base}.3", 9000)
    balancer = Balancer(RealClock())
    balancer.update(TCP, [Endpoint(f"{base}.2", 9000), Endpoint(f"{base}.3", 9000)], None)  # .2: nothing listens
    try:
        async with tcp_proxy(balancer, f"{base}.1") as key:
            for _ in range(4):
                reader, writer = await asyncio.open_connection(key.ip, key.port)
                writer.write(b"x")
                writer.write_eof()
                assert await reader.read() == b"got:X"
                writer.close()
    finally:
        backend.close()
        await backend.wait_closed()


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"echo:" + data, addr)


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.put_nowait(data)


async def test_udp_sessions_relay_prune_and_expire() -> None:
    loop = asyncio.get_running_loop()
    base = net()
    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=(f"{base}.2", 9000))
    balancer = Balancer(RealClock())
    endpoint = Endpoint(f"{base}.2", 9000)
    balancer.update(UDP, [endpoint], None)
    listener = UdpListener(ListenerKey(f"{base}.1", 53, "UDP"), UDP, balancer, idle_timeout_s=0.2)
    await listener.start()
    client, protocol = await loop.create_datagram_endpoint(Client, remote_addr=(f"{base}.1", 53))
    try:
        client.sendto(b"one")
        assert await asyncio.wait_for(protocol.received.get(), 5) == b"echo:one"
        assert listener.session_count == 1
        listener.prune(set())  # the endpoint left the service
        assert listener.session_count == 0
        client.sendto(b"two")
        assert await asyncio.wait_for(protocol.received.get(), 5) == b"echo:two"
        await until(lambda: listener.session_count == 0)  # idle timeout
        balancer.update(UDP, [], None)
        client.sendto(b"dropped")
        await asyncio.sleep(0.1)
        assert protocol.received.empty()
        assert listener.session_count == 0
    finally:
        client.close()
        await listener.stop()
        echo.close()


async def test_stopping_a_listener_closes_its_connections_cleanly() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    base = net()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    backend = await asyncio.start_server(silent, f"{base}.2", 9000)
    balancer = Balancer(RealClock())
    balancer.update(TCP, [Endpoint(f"{base}.2", 9000)], None)
    listener = TcpListener(ListenerKey(f"{base}.1", 8000, "TCP"), TCP, balancer)
    await listener.start()
    try:
        reader, writer = await asyncio.open_connection(f"{base}.1", 8000)
        writer.write(b"open")
        await writer.drain()
        await asyncio.sleep(0.05)  # let the relay connect to the backend
        await listener.stop()
        try:
            assert await reader.read() == b""
        except ConnectionResetError:
            pass
        writer.close()
        await asyncio.sleep(0)
        assert errors == []
    finally:
        loop.set_exception_handler(None)
        backend.close()
        await backend.wait_closed()
