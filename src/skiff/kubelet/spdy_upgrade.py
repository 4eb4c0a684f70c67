"""Plain SPDY upgrades: an aiohttp request turned into the raw byte stream after ``101``.

kubectl 1.27-1.29 exec/attach/cp and 1.27-1.30 port-forward send an HTTP/1.1
request with ``Connection: Upgrade``, ``Upgrade: SPDY/3.1`` and one or more
``X-Stream-Protocol-Version`` headers (in order of preference).  As upstream's
``httpstream.Handshake`` does, the server picks the first offered version it
supports and echoes it in the 101 response (no offer at all means the
unversioned v1 protocol; an offer with nothing in common is 403).  After the
101 the connection carries SPDY frames both ways.

aiohttp keeps owning the connection: like its WebSocket response, the
upgraded request gets a payload parser that hands every received byte to a
queue (pausing the transport while the queue is full), and writes go straight
to the transport with the protocol's drain for back-pressure.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

HEADER_PROTOCOL = "X-Stream-Protocol-Version"
HEADER_ACCEPTED = "X-Accepted-Stream-Protocol-Versions"
SPDY_31 = "SPDY/3.1"
#: Stop reading from the socket while this much received data is unconsumed.
READ_HIGH_WATER = 1 << 20
#: Wait for the transport to drain once this much is buffered for sending.
WRITE_HIGH_WATER = 1 << 20


def is_spdy_upgrade(request: web.Request) -> bool:
    connection = [p.strip().lower() for p in request.headers.get("Connection", "").split(",")]
    return "upgrade" in connection and request.headers.get("Upgrade", "").strip().lower() == SPDY_31.lower()


def offered_versions(request: web.Request) -> list[str]:
    return [v.strip() for value in request.headers.getall(HEADER_PROTOCOL, []) for v in value.split(",") if v.strip()]


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first offered version we support; "" with no offer (v1); None when nothing matches."""
    if not offered:
        return ""
    return next((v for v in offered if v in supported), None)


def refusal(offered: list[str], supported: tuple[str, ...]) -> web.Response:
    text = (
        f"unable to upgrade: unable to negotiate protocol: client supports {offered}, server accepts {list(supported)}"
    )
    return web.Response(
        status=403, text=text, content_type="text/plain", headers={HEADER_ACCEPTED: ", ".join(supported)}
    )


class _SwitchingProtocols(web.StreamResponse):
    """A 101 with no body framing (aiohttp would otherwise pick chunked encoding)."""

    _length_check = False


class _Feed:
    """The payload parser aiohttp feeds every byte after the upgrade to."""

    def __init__(self, upgraded: UpgradedConnection) -> None:
        self.upgraded = upgraded

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.upgraded._received(data)
        return False, b""

    def feed_eof(self) -> None:
        self.upgraded._received(b"")


class UpgradedConnection:
    """The raw connection after the 101: a :class:`skiff.kubelet.spdy_session.ByteChannel`."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.transport = request.transport
        self._buffer = bytearray()
        self._eof = False
        self._wakeup = asyncio.Event()
        self._paused = False

    def _received(self, data: bytes) -> None:
        if data:
            self._buffer += data
            if len(self._buffer) > READ_HIGH_WATER and self.transport is not None and not self._paused:
                self._paused = True
                self.transport.pause_reading()
        else:
            self._eof = True
        self._wakeup.set()

    async def read(self) -> bytes:
        while not self._buffer and not self._eof:
            self._wakeup.clear()
            await self._wakeup.wait()
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._paused and self.transport is not None and not self.transport.is_closing():
            self._paused = False
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > WRITE_HIGH_WATER:
            protocol: Any = self.request.protocol
            try:
                await protocol._drain_helper()
            except ConnectionError:
                return

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def accept(request: web.Request, version: str) -> tuple[web.StreamResponse, UpgradedConnection]:
    """Answer 101 (echoing the negotiated ``version``) and take over the connection."""
    headers = {"Connection": "Upgrade", "Upgrade": SPDY_31}
    if version:
        headers[HEADER_PROTOCOL] = version
    response = _SwitchingProtocols(status=101, headers=headers)
    # Take the incoming bytes over before the 101 goes out: the client may answer it at once.
    upgraded = UpgradedConnection(request)
    protocol: Any = request.protocol
    protocol.set_parser(_Feed(upgraded))
    protocol.keep_alive(False)
    await response.prepare(request)
    return response, upgraded
