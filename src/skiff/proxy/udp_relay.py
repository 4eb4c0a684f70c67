"""One UDP listener of the proxy: per-client sessions relayed to an endpoint.

The first datagram from a client address opens a session: an endpoint is
picked by the ``Balancer`` and a connected UDP socket to it is made; replies
on that socket are sent back to the client from the listener's address, so
the client sees the service address answer.  A session lives until it has
been idle for ``idle_timeout_s`` or its endpoint leaves the service (like
kube-proxy clearing conntrack entries of removed UDP endpoints).  Datagrams
for a service port without endpoints are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from skiff.proxy.balancer import Balancer
from skiff.proxy.endpoints import Endpoint, ServicePortName
from skiff.proxy.listeners import ListenerKey

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT_S = 60.0
MAX_PENDING = 64

Address = tuple[str, int]


class _BackendProtocol(asyncio.DatagramProtocol):
    def __init__(self, listener: UdpListener, client: Address) -> None:
        self._listener = listener
        self._client = client

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._listener.reply(self._client, data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a dead endpoint: end the session so the next datagram re-picks.
        self._listener.close_session(self._client)


@dataclass
class _Session:
    endpoint: Endpoint
    last_active: float
    transport: asyncio.DatagramTransport | None = None
    pending: list[bytes] = field(default_factory=list)


class _ListenerProtocol(asyncio.DatagramProtocol):
    def __init__(self, listener: UdpListener) -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._listener.forward(addr, data)


class UdpListener:
    def __init__(
        self,
        key: ListenerKey,
        target: ServicePortName,
        balancer: Balancer,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        self.key = key
        self.target = target
        self._balancer = balancer
        self._idle_timeout_s = idle_timeout_s
        self._transport: asyncio.DatagramTransport | None = None
        self._sessions: dict[Address, _Session] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _ListenerProtocol(self), local_addr=(self.key.ip, self.key.port)
        )
        self._transport = transport
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *([self._sweeper] if self._sweeper else []), return_exceptions=True)
        for client in list(self._sessions):
            self.close_session(client)
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def forward(self, client: Address, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(client)
        if session is None:
            endpoint = self._balancer.next_endpoint(self.target, client[0])
            if endpoint is None:
                return
            session = self._sessions[client] = _Session(endpoint, loop.time())
            task = asyncio.create_task(self._open(client, session))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        session.last_active = loop.time()
        if session.transport is None:
            if len(session.pending) < MAX_PENDING:
                session.pending.append(data)
        else:
            session.transport.sendto(data)

    async def _open(self, client: Address, session: _Session) -> None:
        loop = asyncio.get_running_loop()
        endpoint = session.endpoint
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _BackendProtocol(self, client), remote_addr=(endpoint.ip, endpoint.port)
            )
        except OSError as err:
            log.info("%s: endpoint %s:%d failed: %s", self.target, endpoint.ip, endpoint.port, err)
            self._sessions.pop(client, None)
            return
        if self._sessions.get(client) is not session:
            transport.close()
            return
        session.transport = transport
        for data in session.pending:
            transport.sendto(data)
        session.pending.clear()

    def reply(self, client: Address, data: bytes) -> None:
        session = self._sessions.get(client)
        if session is not None:
            session.last_active = asyncio.get_running_loop().time()
        if self._transport is not None:
            self._transport.sendto(data, client)

    def close_session(self, client: Address) -> None:
        session = self._sessions.pop(client, None)
        if session is not None and session.transport is not None:
            session.transport.close()

    def prune(self, live: set[Endpoint]) -> None:
        """End sessions whose endpoint is no longer usable."""
        for client, session in list(self._sessions.items()):
            if session.endpoint not in live:
                self.close_session(client)

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.05, self._idle_timeout_s / 2))
            cutoff = loop.time() - self._idle_timeout_s
            for client, session in list(self._sessions.items()):
                if session.last_active < cutoff:
                    self.close_session(client)
