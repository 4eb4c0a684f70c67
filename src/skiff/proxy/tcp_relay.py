"""One TCP listener of the proxy: accept, pick an endpoint, relay both ways.

A connection goes to the endpoint the ``Balancer`` picks for the client's
address; when connecting fails the next endpoint is tried (up to
``MAX_TRIES``), like the userspace kube-proxy.  With no usable endpoint the
connection is reset at once (SO_LINGER 0), the closest a userspace proxy gets
to the REJECT rule kube-proxy installs for Services without endpoints.  Half
closes are forwarded (EOF on one side → shutdown(SHUT_WR) on the other), so
request/response protocols that close their write side still work.  Stopping
the listener closes the connections it relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct

from skiff.proxy.balancer import Balancer
from skiff.proxy.endpoints import Endpoint, ServicePortName
from skiff.proxy.listeners import ListenerKey

log = logging.getLogger(__name__)

MAX_TRIES = 4
CONNECT_TIMEOUT_S = 5.0
CHUNK = 64 * 1024


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN, so the client sees the connection refused/reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()


class TcpListener:
    def __init__(self, key: ListenerKey, target: ServicePortName, balancer: Balancer) -> None:
        self.key = key
        self.target = target
        self._balancer = balancer
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.key.ip, self.key.port, reuse_address=True)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await self._serve(client_reader, client_writer)
        except asyncio.CancelledError:
            # Stopped with the listener.  End normally: asyncio's stream server calls
            # ``exception()`` on this task, which raises (and logs) for a cancelled one.
            client_writer.transport.abort()
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        peer = client_writer.get_extra_info("peername")
        client_ip = str(peer[0]) if peer else ""
        backend = await self._connect(client_ip)
        if backend is None:
            reset(client_writer)
            return
        backend_reader, backend_writer = backend
        try:
            await self._relay(client_reader, client_writer, backend_reader, backend_writer)
        finally:
            for writer in (client_writer, backend_writer):
                writer.close()
            for writer in (client_writer, backend_writer):
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()

    async def _connect(self, client_ip: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        tried: frozenset[Endpoint] = frozenset()
        for _ in range(MAX_TRIES):
            endpoint = self._balancer.next_endpoint(self.target, client_ip, tried)
            if endpoint is None:
                return None
            try:
                return await asyncio.wait_for(asyncio.open_connection(endpoint.ip, endpoint.port), CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as err:
                log.info("%s: endpoint %s:%d failed: %s", self.target, endpoint.ip, endpoint.port, err)
                tried = tried | {endpoint}
        return None

    @staticmethod
    async def _relay(
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        backend_reader: asyncio.StreamReader,
        backend_writer: asyncio.StreamWriter,
    ) -> None:
        """Copy both directions until both have ended; an error in either ends both."""
        up = asyncio.ensure_future(_pipe(client_reader, backend_writer))
        down = asyncio.ensure_future(_pipe(backend_reader, client_writer))
        try:
            done, _pending = await asyncio.wait((up, down), return_when=asyncio.FIRST_EXCEPTION)
            if any(t.exception() is not None for t in done):
                reset(client_writer)
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
