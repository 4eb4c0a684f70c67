"""A SPDY/3.1 session over any byte transport: the streams a kubectl client opens, as objects.

Kubernetes' SPDY clients (spdystream) only ever open streams from the client
side: each SYN_STREAM carries headers naming the stream's role (``streamType``
error/stdin/stdout/stderr/resize for exec and attach; error/data plus ``port``
and ``requestID`` for port-forward).  The server answers every SYN_STREAM with
an empty SYN_REPLY (spdystream does so before the stream is used), then both
sides write DATA frames and half-close with FIN.  PINGs are echoed; a
RST_STREAM or the end of the session ends a stream's input.

The transport is a :class:`ByteChannel`: the raw upgraded connection
(``Upgrade: SPDY/3.1``, kubectl < 1.30 exec, < 1.31 port-forward) or the
binary messages of a WebSocket (kubectl ≥ 1.31 port-forward tunnel).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from aiohttp import WSMsgType, web

from skiff.kubelet import spdy

#: DATA frames carry at most 24 bits of length; stay well under it.
MAX_DATA = 64 * 1024
#: Received bytes not yet consumed beyond which the session stops reading from the client.
HIGH_WATER = 4 * 1024 * 1024


class ByteChannel(Protocol):
    """An ordered byte stream both ways."""

    async def read(self) -> bytes:
        """The next bytes; b"" once the peer is gone."""
        ...

    async def write(self, data: bytes) -> None:
        """Send (silently dropped once the peer is gone)."""
        ...


class WebSocketChannel:
    """A WebSocket's binary messages as a byte stream (the SPDY-in-WebSocket tunnel)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        while not self.ws.closed:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY and msg.data:
                return bytes(msg.data)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
        return b""

    async def write(self, data: bytes) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_bytes(data)


class SpdyStream:
    """One client-opened stream: its headers, its inbound bytes, and writes back."""

    def __init__(self, session: SpdySession, stream_id: int, headers: dict[str, str]) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._inbound: asyncio.Queue[bytes] = asyncio.Queue()
        self._fin = False  # no more input will be delivered
        self._ended = False  # read() has returned the end
        self._closed = False
        #: When set, inbound data goes to this callback (``data``, ``fin``) in arrival order, not to ``read``;
        #: the callback's owner releases the bytes (``session.release``) once consumed.
        self.on_data: Callable[[bytes, bool], None] | None = None

    @property
    def kind(self) -> str:
        """The ``streamType`` header."""
        return self.headers.get("streamtype", "")

    async def read(self) -> bytes:
        """The next DATA payload; b"" once the client half-closed (FIN), reset it, or left."""
        if self._ended:
            return b""
        data = await self._inbound.get()
        if data:
            self.session.release(len(data))
        else:
            self._ended = True
        return data

    def discard(self) -> None:
        """Nobody will read this stream any more: drop what it holds and whatever still comes."""
        self._fin = self._ended = True
        while not self._inbound.empty():
            self.session.release(len(self._inbound.get_nowait()))
        self._inbound.put_nowait(b"")

    def _deliver(self, data: bytes, fin: bool) -> None:
        if self._fin:
            return
        self._fin = fin
        if data:
            self.session.hold(len(data))
        if self.on_data is not None:
            self.on_data(data, fin)
            return
        if data:
            self._inbound.put_nowait(data)
        if fin:
            self._inbound.put_nowait(b"")

    async def write(self, data: bytes) -> None:
        if self._closed:
            return
        for start in range(0, len(data), MAX_DATA):
            await self.session.send(spdy.data_frame(self.id, data[start : start + MAX_DATA]))

    async def close(self) -> None:
        """Half-close our side (FIN), once."""
        if not self._closed:
            self._closed = True
            await self.session.send(spdy.data_frame(self.id, b"", fin=True))


class SpdySession:
    """Reads frames, replies to SYN_STREAMs and hands each new stream to ``on_stream``.

    ``on_stream`` returns False to refuse a stream (it is reset).  ``run``
    returns when the peer leaves or sends GOAWAY; ``done`` is set then and every
    stream's ``read`` returns b"".
    """

    def __init__(self, channel: ByteChannel, on_stream: Callable[[SpdyStream], bool]) -> None:
        self.channel = channel
        self.on_stream = on_stream
        self.codec = spdy.HeaderCodec()
        self.streams: dict[int, SpdyStream] = {}
        self.last_stream = 0
        self.done = asyncio.Event()
        self._held = 0
        self._room = asyncio.Event()
        self._room.set()
        self._throttle = True

    def stop_throttling(self) -> None:
        """Read on regardless of unconsumed data (its consumer is done: it will be dropped)."""
        self._throttle = False
        self._room.set()

    def hold(self, size: int) -> None:
        """``size`` received bytes wait for their reader; past HIGH_WATER the session stops reading."""
        self._held += size
        if self._held > HIGH_WATER and self._throttle:
            self._room.clear()

    def release(self, size: int) -> None:
        self._held -= size
        if self._held <= HIGH_WATER // 2:
            self._room.set()

    async def send(self, frame: bytes) -> None:
        if not self.done.is_set():
            await self.channel.write(frame)

    async def run(self) -> None:
        reader = spdy.FrameReader()
        try:
            while chunk := await self.channel.read():
                for frame in reader.feed(chunk):
                    if not await self._handle(frame):
                        return
                # Back-pressure: the client's sends stall while its data waits to be consumed.
                await self._room.wait()
        except spdy.SpdyError:
            await self.send(spdy.goaway(self.last_stream, spdy.RST_PROTOCOL_ERROR))
        except ConnectionError:
            pass
        finally:
            self.done.set()
            for stream in self.streams.values():
                stream._deliver(b"", fin=True)

    async def _handle(self, frame: spdy.Frame) -> bool:
        """Handle one frame; False ends the session."""
        if isinstance(frame, spdy.DataFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                stream._deliver(frame.data, bool(frame.flags & spdy.FLAG_FIN))
            return True
        if frame.type == spdy.SYN_STREAM:
            stream_id, headers = spdy.parse_syn_stream(self.codec, frame)
            self.last_stream = max(self.last_stream, stream_id)
            stream = SpdyStream(self, stream_id, headers)
            await self.send(spdy.syn_reply(self.codec, stream_id, {}))
            if frame.flags & spdy.FLAG_FIN:
                stream._deliver(b"", fin=True)
            if self.on_stream(stream):
                self.streams[stream_id] = stream
            else:
                await self.send(spdy.rst_stream(stream_id, spdy.RST_PROTOCOL_ERROR))
        elif frame.type == spdy.PING:
            await self.send(spdy.control(spdy.PING, 0, frame.data))
        elif frame.type == spdy.RST_STREAM:
            stream = self.streams.get(spdy.stream_id_of(frame))
            if stream is not None:
                stream._deliver(b"", fin=True)
                stream._closed = True
        elif frame.type == spdy.GOAWAY:
            return False
        return True  # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do
