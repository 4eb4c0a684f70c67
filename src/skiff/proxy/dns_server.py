"""The cluster DNS server: UDP and TCP on one address, answering from a ``DnsTable``.

UDP replies larger than the client's limit (512 bytes or its EDNS0 size) come
back empty with TC set, and the client retries over TCP (RFC 1035 framing: a
two-byte length before each message; several queries per connection; idle
connections closed after ``TCP_IDLE_S``).  Malformed packets are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from typing import Any, cast

from dnslib import DNSError, DNSRecord  # type: ignore[import-untyped]

from skiff.proxy.dns_answer import AnswerPolicy, answer, pack_for_udp, udp_payload_limit
from skiff.proxy.dns_records import DnsTable

log = logging.getLogger(__name__)

TCP_IDLE_S = 30.0


def parse_address(text: str, default_port: int = 53) -> tuple[str, int]:
    """``"127.253.0.10"`` or ``"127.253.0.10:5353"`` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    return host, int(port)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = self._server.parse(data)
        if request is None or self.transport is None:
            return
        reply = answer(request, self._server.table, self._server.policy)
        self.transport.sendto(pack_for_udp(reply, udp_payload_limit(request)), addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS UDP error: %s", exc)


class DnsServer:
    """Serves ``table`` on ``host:port`` over UDP and TCP until ``stop``."""

    def __init__(self, table: DnsTable, host: str, port: int, policy: AnswerPolicy | None = None) -> None:
        self.table = table
        self.host = host
        self.port = port
        self.policy = policy or AnswerPolicy()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self.queries = 0

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Bind TCP first: with port 0 it picks the port, and UDP takes the same number.
        self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port, reuse_address=True)
        self.port = self._tcp.sockets[0].getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self.host, self.port)
        )
        self._udp = transport
        log.info("cluster DNS serving %s on %s:%d (UDP and TCP)", self.table.zone, self.host, self.port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None

    def parse(self, data: bytes) -> DNSRecord | None:
        try:
            request = DNSRecord.parse(data)
        except (DNSError, ValueError, IndexError, struct.error):
            return None
        if request.header.qr:  # a response, not a query: never answer it
            return None
        self.queries += 1
        return request

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_S)
                (length,) = struct.unpack("!H", header)
                request = self.parse(await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_S))
                if request is None:
                    break
                data: bytes = answer(request, self.table, self.policy).pack()
                writer.write(struct.pack("!H", len(data)) + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # Server stopping: end normally (asyncio's stream server logs cancelled handler tasks).
            writer.transport.abort()
            return
        finally:
            self._connections.discard(task)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
