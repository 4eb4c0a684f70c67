"""Port-forward over SPDY/3.1 (upstream's ``portforward.k8s.io`` protocol).

Two transports carry the same session: a plain ``Upgrade: SPDY/3.1``
connection (kubectl 1.27-1.30) and a WebSocket with subprotocol
``SPDY/3.1+portforward.k8s.io`` whose binary messages carry the SPDY bytes
(kubectl ≥ 1.31).  The client opens, per forwarded connection, an *error*
stream and then a *data* stream (headers ``streamType``, ``port``,
``requestID``).  For each data stream the server dials ``pod_ip:port`` and
copies bytes both ways: a client FIN half-closes the TCP connection, the
pod's end-of-stream becomes a FIN on the data stream, a failed dial is
written on the error stream.  The session ends when the client leaves (every
connection is closed then).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from skiff.kubelet.spdy_session import ByteChannel, SpdySession, SpdyStream

#: The WebSocket subprotocol of the tunnel; the plain-SPDY X-Stream-Protocol-Version.
PROTOCOL = "SPDY/3.1+portforward.k8s.io"
PLAIN_PROTOCOL = "portforward.k8s.io"
READ_SIZE = 32 * 1024


@dataclass
class _Pair:
    """The error and data streams of one forwarded connection."""

    port: int
    error: SpdyStream | None = None
    data: SpdyStream | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class SpdyPortForward:
    def __init__(self, channel: ByteChannel, host: str, pod: str) -> None:
        self.host = host
        self.pod = pod
        self.session = SpdySession(channel, self._on_stream)
        self.pairs: dict[str, _Pair] = {}

    async def run(self) -> None:
        try:
            await self.session.run()
        finally:
            tasks = [task for pair in self.pairs.values() for task in pair.tasks]
            for task in tasks:
                task.cancel()
            # Their pod connections are closed by the time the session is over.
            await asyncio.gather(*tasks, return_exceptions=True)

    def _on_stream(self, stream: SpdyStream) -> bool:
        try:
            port = int(stream.headers.get("port", ""))
        except ValueError:
            return False
        request_id = stream.headers.get("requestid") or str(stream.id)
        pair = self.pairs.setdefault(request_id, _Pair(port))
        if stream.kind == "error":
            pair.error = stream
        elif stream.kind == "data":
            pair.data = stream
            pair.tasks.append(asyncio.create_task(self._forward(pair, stream)))
        else:
            return False
        return True

    async def _forward(self, pair: _Pair, stream: SpdyStream) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.host, pair.port)
        except OSError as err:
            message = (
                f"error forwarding port {pair.port} to pod {self.pod}: "
                f"dial tcp {self.host}:{pair.port}: {err.strerror or err}"
            )
            if pair.error is not None:
                await pair.error.write(message.encode())
                await pair.error.close()
            stream.discard()
            await stream.close()
            return
        inbound = asyncio.create_task(_client_to_pod(stream, writer))
        pair.tasks.append(inbound)
        try:
            while chunk := await reader.read(READ_SIZE):
                await stream.write(chunk)
        except OSError:
            pass
        finally:
            inbound.cancel()
            stream.discard()  # whatever the client still sends for this connection goes nowhere
            writer.close()
        await stream.close()
        if pair.error is not None:
            await pair.error.close()


async def _client_to_pod(stream: SpdyStream, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await stream.read():
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
