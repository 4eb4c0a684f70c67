"""The kubelet's SPDY session pieces without a network: back-pressure, resize parsing, version negotiation.

End-to-end SPDY (real kubectl 1.27-1.33 through the apiserver) is in
tests/apiserver/test_pod_subresources_spdy.py.
"""

from __future__ import annotations

import asyncio

from skiff.kubelet import spdy, spdy_remote_command, spdy_upgrade, streams
from skiff.kubelet.remote_command import StreamOptions
from skiff.kubelet.spdy_session import HIGH_WATER, SpdySession, SpdyStream

MIB = 1024 * 1024


class FakeChannel:
    """Bytes the test queues are what the session reads; what it writes is recorded."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.sent: list[bytes] = []

    async def read(self) -> bytes:
        return await self.incoming.get()

    async def write(self, data: bytes) -> None:
        self.sent.append(data)


async def settle() -> None:
    """Let every runnable task run until it blocks."""
    for _ in range(100):
        await asyncio.sleep(0)


async def test_unread_data_stops_the_session_reading_until_consumed() -> None:
    channel = FakeChannel()
    opened: list[SpdyStream] = []
    session = SpdySession(channel, lambda stream: opened.append(stream) is None)
    runner = asyncio.create_task(session.run())
    client = spdy.HeaderCodec()
    channel.incoming.put_nowait(spdy.syn_stream(client, 1, {"streamType": "data", "port": "80"}))
    chunks = HIGH_WATER // MIB + 2
    for _ in range(chunks):
        channel.incoming.put_nowait(spdy.data_frame(1, b"x" * MIB))
    await settle()
    # It stopped reading once more than HIGH_WATER was waiting: the last chunk is still queued.
    assert channel.incoming.qsize() == 1
    (stream,) = opened
    received = 0
    while channel.incoming.qsize():
        received += len(await stream.read())
        await settle()
    channel.incoming.put_nowait(spdy.data_frame(1, b"", fin=True))
    while data := await stream.read():
        received += len(data)
    assert received == chunks * MIB
    channel.incoming.put_nowait(b"")  # the client hangs up
    await runner
    assert session.done.is_set()
    assert await stream.read() == b""


async def test_input_in_arrival_order_and_stdin_half_close() -> None:
    """A resize sent before a line of input is applied before it; stdin's FIN is a close of channel 0."""
    channel = FakeChannel()
    opts = StreamOptions(stdin=True, stdout=True, stderr=False, tty=True)
    protocol = streams.Protocol(streams.V4)
    channels = spdy_remote_command.SpdyChannels(channel, protocol, spdy_remote_command.expected_streams(opts, protocol))
    runner = asyncio.create_task(channels.session.run())
    client = spdy.HeaderCodec()
    for stream_id, kind in ((1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")):
        channel.incoming.put_nowait(spdy.syn_stream(client, stream_id, {"streamType": kind}))
    channel.incoming.put_nowait(spdy.data_frame(7, b'{"Width":80,"Height":2'))
    channel.incoming.put_nowait(spdy.data_frame(7, b'4}\n{"Width":100,"Height":30}'))
    channel.incoming.put_nowait(spdy.data_frame(3, b"line\n", fin=True))
    await settle()
    assert channels.ready.is_set()
    channel.incoming.put_nowait(b"")
    events = [event async for event in channels.inbound()]
    assert events == [
        (streams.RESIZE, b'{"Width": 80, "Height": 24}'),
        (streams.RESIZE, b'{"Width": 100, "Height": 30}'),
        (streams.STDIN, b"line\n"),
        (streams.CLOSE, bytes((streams.STDIN,))),
    ]
    await runner
    replies = [f for f in spdy.FrameReader().feed(b"".join(channel.sent)) if isinstance(f, spdy.ControlFrame)]
    assert [spdy.stream_id_of(f) for f in replies if f.type == spdy.SYN_REPLY] == [1, 3, 5, 7]


def test_expected_streams_follow_the_options() -> None:
    v4, v2 = streams.Protocol(streams.V4), streams.Protocol(streams.V2)
    everything = StreamOptions(stdin=True, stdout=True, stderr=True, tty=False)
    assert spdy_remote_command.expected_streams(everything, v4) == {"error", "stdin", "stdout", "stderr"}
    tty = StreamOptions(stdin=True, stdout=True, stderr=True, tty=True)
    assert spdy_remote_command.expected_streams(tty, v4) == {"error", "stdin", "stdout", "resize"}
    assert spdy_remote_command.expected_streams(tty, v2) == {"error", "stdin", "stdout"}  # resize came with v3


def test_version_negotiation() -> None:
    supported = spdy_remote_command.PROTOCOLS
    assert spdy_upgrade.negotiate(["v5.channel.k8s.io", streams.V4, streams.V3], supported) == streams.V4
    assert spdy_upgrade.negotiate([streams.V2, streams.V4], supported) == streams.V2  # the client's order wins
    assert spdy_upgrade.negotiate([], supported) == ""  # no header: unversioned v1
    assert spdy_upgrade.negotiate(["v9.channel.k8s.io"], supported) is None
