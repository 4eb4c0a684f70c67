"""Plain SPDY upgrades of pods/exec, attach and portforward: relayed byte for byte to the kubelet.

kubectl 1.27-1.29 exec/attach/cp and 1.27-1.30 port-forward send
``Connection: Upgrade``, ``Upgrade: SPDY/3.1`` and their
``X-Stream-Protocol-Version`` offers.  As kube-apiserver's upgrade-aware
proxy does, the apiserver sends the same upgrade request to the kubelet over
its own TLS connection, and:

* when the kubelet answers anything but 101, that answer becomes a Status
  (the client sees a plain error before any upgrade);
* on 101, it answers the client 101 with the kubelet's negotiated
  version, then splices the two raw connections until either side hangs up.
  The SPDY session itself (framing, header compression, streams) is entirely
  between kubectl and the kubelet.

aiohttp only treats WebSocket upgrades as upgrades, so after the 101 the
client connection's bytes are taken from aiohttp's protocol the way its
WebSocket response takes them: a payload parser that feeds a buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web
from yarl import URL

from skiff.api.status import ApiError

HEADER_PROTOCOL = "X-Stream-Protocol-Version"
SPDY_31 = "SPDY/3.1"
CONNECT_TIMEOUT_S = 10.0
READ_SIZE = 64 * 1024
#: Pause reading a side whose data the other side has not taken yet beyond this.
HIGH_WATER = 1 << 20
MAX_ERROR_BODY = 64 * 1024


def is_spdy_upgrade(request: web.Request) -> bool:
    connection = [p.strip().lower() for p in request.headers.get("Connection", "").split(",")]
    return "upgrade" in connection and request.headers.get("Upgrade", "").strip().lower() == SPDY_31.lower()


class _SwitchingProtocols(web.StreamResponse):
    """A 101 with no body framing (aiohttp would otherwise pick chunked encoding)."""

    _length_check = False


class _ClientSide:
    """The client's connection after the 101: what aiohttp's protocol receives lands here."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.transport = request.transport
        self.buffer = bytearray()
        self.eof = False
        self.wakeup = asyncio.Event()
        self.paused = False

    # the payload-parser interface aiohttp's request handler calls
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self.wakeup.set()
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True
        self.wakeup.set()

    async def read(self) -> bytes:
        while not self.buffer and not self.eof:
            self.wakeup.clear()
            await self.wakeup.wait()
        data = bytes(self.buffer)
        self.buffer.clear()
        if self.paused and self.transport is not None and not self.transport.is_closing():
            self.paused = False
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("client gone")
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > HIGH_WATER:
            protocol: Any = self.request.protocol
            await protocol._drain_helper()


def _upgrade_request(request: web.Request, url: URL) -> bytes:
    lines = [
        f"{request.method} {url.raw_path_qs} HTTP/1.1",
        f"Host: {url.raw_authority}",
        "Connection: Upgrade",
        f"Upgrade: {SPDY_31}",
        *(f"{HEADER_PROTOCOL}: {v}" for v in request.headers.getall(HEADER_PROTOCOL, [])),
        "User-Agent: skiff-apiserver",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"malformed status line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def _error_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> str:
    length = headers.get("content-length", "")
    with contextlib.suppress(asyncio.IncompleteReadError, OSError, TimeoutError):
        if length.isdigit():
            body = await asyncio.wait_for(reader.readexactly(min(int(length), MAX_ERROR_BODY)), CONNECT_TIMEOUT_S)
        else:
            body = await asyncio.wait_for(reader.read(MAX_ERROR_BODY), CONNECT_TIMEOUT_S)
        return body.decode(errors="replace").strip()
    return ""


async def relay(
    request: web.Request,
    url: str,
    ssl_context: Any,
    kubelet_error: Callable[[int, str], ApiError],
    dial_error: Callable[[str, BaseException], ApiError],
) -> web.StreamResponse:
    """Upgrade to the kubelet at ``url``; on its 101 upgrade the client and splice the two."""
    target = URL(url)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(target.host, target.port, ssl=ssl_context), CONNECT_TIMEOUT_S
        )
    except (OSError, TimeoutError) as err:
        raise dial_error(url, err) from None
    try:
        writer.write(_upgrade_request(request, target))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT_S)
        status, headers = _parse_head(head[:-4])
        if status != 101:
            raise kubelet_error(status, await _error_body(reader, headers))
        response_headers = {"Connection": "Upgrade", "Upgrade": SPDY_31}
        if headers.get(HEADER_PROTOCOL.lower()):
            response_headers[HEADER_PROTOCOL] = headers[HEADER_PROTOCOL.lower()]
        response = _SwitchingProtocols(status=101, headers=response_headers)
        # Take the client's bytes over before the 101 goes out: it may answer it at once.
        client = _ClientSide(request)
        protocol: Any = request.protocol
        protocol.set_parser(client)
        protocol.keep_alive(False)
        await response.prepare(request)
        await _splice(client, reader, writer)
        return response
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as err:
        raise dial_error(url, err) from None
    finally:
        writer.close()


async def _splice(client: _ClientSide, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    async def up() -> None:
        while data := await client.read():
            writer.write(data)
            await writer.drain()

    async def down() -> None:
        while data := await reader.read(READ_SIZE):
            await client.write(data)

    await _first_of(up, down)
    if client.transport is not None:
        client.transport.close()  # flushes what is buffered, then closes


async def _first_of(*jobs: Callable[[], Coroutine[Any, Any, None]]) -> None:
    tasks: set[asyncio.Task[None]] = {asyncio.create_task(job()) for job in jobs}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
