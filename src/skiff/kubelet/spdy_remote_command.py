"""exec and attach over a plain SPDY upgrade (kubectl 1.27-1.29, remotecommand protocols v1-v4).

The client opens one SPDY stream per standard stream, named by its
``streamType`` header: ``error`` always, then ``stdin``, ``stdout``,
``stderr`` as requested, and ``resize`` with a tty (v3+: JSON
``{"Width":..,"Height":..}`` documents, one after another).  As upstream's
kubelet does, the command starts once every expected stream exists (or the
session is abandoned after :data:`STREAM_TIMEOUT_S`).  stdin's FIN is the
client half-closing stdin (what ``kubectl cp`` relies on).  When the command
ends, stdout and stderr get their FIN, the error stream carries the v4 Status
(v1-v3: the failure text, nothing on success) and its FIN; the client then
hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from skiff.kubelet import streams
from skiff.kubelet.remote_command import Channels, StreamOptions
from skiff.kubelet.spdy_session import ByteChannel, SpdySession, SpdyStream

#: X-Stream-Protocol-Version values served, in the order upstream's kubelet lists them.
PROTOCOLS = (streams.V4, streams.V3, streams.V2, streams.V1)
STREAM_KINDS = ("error", "stdin", "stdout", "stderr", "resize")
#: How long the client gets to open its streams (upstream: the stream creation timeout).
STREAM_TIMEOUT_S = 30.0
#: After the final status, how long the client gets to read it and hang up before we close.
HANGUP_WAIT_S = 10.0
MAX_RESIZE_DOCUMENT = 4096
_OUTPUT_KINDS = {streams.STDOUT: "stdout", streams.STDERR: "stderr", streams.ERROR: "error"}


class ClosableChannel(ByteChannel, Protocol):
    def close(self) -> None: ...


def expected_streams(opts: StreamOptions, protocol: streams.Protocol) -> set[str]:
    """The streams a client opens for these options (stderr rides on stdout with a tty)."""
    kinds = {"error"}
    if opts.stdin:
        kinds.add("stdin")
    if opts.stdout:
        kinds.add("stdout")
    if opts.stderr and not opts.tty:
        kinds.add("stderr")
    if opts.tty and protocol.version >= 3:
        kinds.add("resize")
    return kinds


class SpdyChannels:
    """:class:`skiff.kubelet.remote_command.Channels` over the streams of one SPDY session."""

    def __init__(self, channel: ByteChannel, protocol: streams.Protocol, expected: set[str]) -> None:
        self.protocol = protocol
        self.expected = expected
        self.by_kind: dict[str, SpdyStream] = {}
        self.ready = asyncio.Event()
        self.session = SpdySession(channel, self._on_stream)
        # stdin and resize data in the order it arrived (a resize sent before a line of input applies first).
        self._events: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._resize_buffer = b""

    def _on_stream(self, stream: SpdyStream) -> bool:
        if stream.kind not in STREAM_KINDS or stream.kind in self.by_kind:
            return False
        self.by_kind[stream.kind] = stream
        if stream.kind == "stdin":
            stream.on_data = self._on_stdin
        elif stream.kind == "resize":
            stream.on_data = self._on_resize
        if self.expected <= self.by_kind.keys():
            self.ready.set()
        return True

    def _on_stdin(self, data: bytes, fin: bool) -> None:
        if data:
            self._events.put_nowait((streams.STDIN, data))
        if fin:
            self._events.put_nowait((streams.CLOSE, bytes((streams.STDIN,))))

    def _on_resize(self, data: bytes, fin: bool) -> None:
        self.session.release(len(data))  # consumed right here
        sizes, rest = _json_documents(self._resize_buffer + data)
        self._resize_buffer = rest if len(rest) <= MAX_RESIZE_DOCUMENT else b""  # garbage is dropped
        for size in sizes:
            self._events.put_nowait((streams.RESIZE, size))

    async def send(self, channel: int, data: bytes) -> None:
        stream = self.by_kind.get(_OUTPUT_KINDS.get(channel, ""))
        if stream is not None:
            await stream.write(data)

    async def send_status(self, status: bytes, plain_text: str) -> None:
        for kind in ("stdout", "stderr"):
            if (stream := self.by_kind.get(kind)) is not None:
                await stream.close()
        error = self.by_kind.get("error")
        if error is not None:
            await error.write(status if self.protocol.has_status else plain_text.encode())
            await error.close()

    async def inbound(self) -> AsyncIterator[tuple[int, bytes]]:
        next_event = asyncio.create_task(self._events.get())
        hangup = asyncio.create_task(self.session.done.wait())
        try:
            while True:
                await asyncio.wait({next_event, hangup}, return_when=asyncio.FIRST_COMPLETED)
                if not next_event.done():
                    return  # the client is gone
                channel, payload = next_event.result()
                if channel == streams.STDIN:
                    self.session.release(len(payload))
                yield channel, payload
                next_event = asyncio.create_task(self._events.get())
        finally:
            next_event.cancel()
            hangup.cancel()


def _json_documents(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete JSON documents at the start of ``buffer`` (as JSON), and the incomplete rest."""
    decoder = json.JSONDecoder()
    text = buffer.decode(errors="replace")
    found: list[bytes] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        try:
            document, position = decoder.raw_decode(text, position)
        except ValueError:
            return found, text[position:].encode()
        found.append(json.dumps(document).encode())


async def serve(
    channel: ClosableChannel,
    version: str,
    opts: StreamOptions,
    run: Callable[[Channels], Awaitable[None]],
) -> None:
    """Run the session: wait for the client's streams, ``run`` the command, let the client hang up."""
    protocol = streams.Protocol(version or streams.V1)
    channels = SpdyChannels(channel, protocol, expected_streams(opts, protocol))
    reader = asyncio.create_task(channels.session.run())
    ready = asyncio.create_task(channels.ready.wait())
    try:
        await asyncio.wait({ready, reader}, timeout=STREAM_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if channels.ready.is_set() and not channels.session.done.is_set():
            await run(channels)
            channels.session.stop_throttling()  # unread stdin must not keep us from seeing the hang-up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(channels.session.done.wait(), HANGUP_WAIT_S)
    finally:
        ready.cancel()
        reader.cancel()
        channel.close()
