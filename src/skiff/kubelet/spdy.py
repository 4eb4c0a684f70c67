"""SPDY/3.1 framing: just what the kubelet's streaming server needs.

kubectl 1.27-1.29 exec/attach and 1.27-1.30 port-forward upgrade the HTTP
connection to SPDY/3.1; kubectl ≥ 1.31 port-forwards by tunnelling the same
session inside a WebSocket (subprotocol ``SPDY/3.1+portforward.k8s.io``; the
WebSocket's binary messages carry the raw SPDY byte stream).  This module
parses and builds the frames of such a session (draft-mbelshe-httpbis-spdy-00,
"SPDY Protocol - Draft 3"):

* control frames: ``1 | version(15) | type(16) | flags(8) | length(24) | data``;
* data frames: ``0 | stream-id(31) | flags(8) | length(24) | data``;
* header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are name/value lists with
  32-bit lengths, compressed by one zlib stream per direction that is primed
  with the protocol's fixed dictionary and flushed with Z_SYNC_FLUSH per block.

Flow control (WINDOW_UPDATE) is not enforced: Kubernetes' SPDY library
(spdystream) neither enforces nor needs it.  Pure: no I/O.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9
FLAG_FIN = 0x01
#: RST_STREAM status codes used here.
RST_PROTOCOL_ERROR = 1
RST_CANCEL = 5

# The SPDY/3 header-compression dictionary (a protocol constant, section 2.6.10.1 of the draft).
_DICTIONARY_PARTS = (
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\x00\x06delete"
    b"\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-encoding"
    b"\x00\x00\x00\x0faccept-language\x00\x00\x00\raccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow"
    b"\x00\x00\x00\rauthorization\x00\x00\x00\rcache-control\x00\x00\x00\nconnection\x00\x00\x00\x0ccontent-base"
    b"\x00\x00\x00\x10content-encoding\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-length"
    b"\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md5\x00\x00\x00\rcontent-range"
    b"\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect"
    b"\x00\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match"
    b"\x00\x00\x00\x11if-modified-since\x00\x00\x00\rif-none-match\x00\x00\x00\x08if-range"
    b"\x00\x00\x00\x13if-unmodified-since\x00\x00\x00\rlast-modified\x00\x00\x00\x08location"
    b"\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate"
    b"\x00\x00\x00\x13proxy-authorization\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after"
    b"\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding"
    b"\x00\x00\x00\x07upgrade\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via"
    b"\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get"
    b"\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1"
    b"\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\nset-cookie\x00\x00\x00\nkeep-alive"
    b"\x00\x00\x00\x06origin",
    b"100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    b"203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    b"403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable",
    b"Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    b"chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    b"text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
)
DICTIONARY = b"".join(_DICTIONARY_PARTS)


class SpdyError(ValueError):
    """A malformed frame or header block: the session must end."""


@dataclass(frozen=True, slots=True)
class ControlFrame:
    type: int
    flags: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DataFrame:
    stream_id: int
    flags: int
    data: bytes


Frame = ControlFrame | DataFrame


@dataclass
class FrameReader:
    """Incremental parser: ``feed`` bytes, get the complete frames back."""

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            first, second = struct.unpack(">II", self._buffer[:8])
            length = second & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            flags = second >> 24
            if first & 0x80000000:
                version = (first >> 16) & 0x7FFF
                if version != VERSION:
                    raise SpdyError(f"unsupported SPDY version {version}")
                frames.append(ControlFrame(first & 0xFFFF, flags, payload))
            else:
                frames.append(DataFrame(first & 0x7FFFFFFF, flags, payload))
        return frames


class HeaderCodec:
    """One zlib context per direction, as the protocol requires."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(level=9, zdict=DICTIONARY)

    def decode(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as err:
            raise SpdyError(f"bad header block: {err}") from None
        try:
            (count,) = struct.unpack_from(">I", raw, 0)
            offset, headers = 4, {}
            for _ in range(count):
                (size,) = struct.unpack_from(">I", raw, offset)
                name = raw[offset + 4 : offset + 4 + size].decode()
                offset += 4 + size
                (size,) = struct.unpack_from(">I", raw, offset)
                headers[name.lower()] = raw[offset + 4 : offset + 4 + size].decode()
                offset += 4 + size
        except (struct.error, UnicodeDecodeError) as err:
            raise SpdyError(f"bad header block: {err}") from None
        return headers

    def encode(self, headers: dict[str, str]) -> bytes:
        raw = bytearray(struct.pack(">I", len(headers)))
        for name, value in headers.items():
            for part in (name.lower().encode(), value.encode()):
                raw += struct.pack(">I", len(part)) + part
        return self._deflate.compress(bytes(raw)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


def control(frame_type: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, frame_type, (flags << 24) | len(data)) + data


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


def syn_stream(codec: HeaderCodec, stream_id: int, headers: dict[str, str], fin: bool = False) -> bytes:
    """A client's SYN_STREAM (no associated stream, priority 0): what kubectl sends to open a stream."""
    payload = struct.pack(">IIBB", stream_id & 0x7FFFFFFF, 0, 0, 0) + codec.encode(headers)
    return control(SYN_STREAM, FLAG_FIN if fin else 0, payload)


def syn_reply(codec: HeaderCodec, stream_id: int, headers: dict[str, str], fin: bool = False) -> bytes:
    return control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + codec.encode(headers))


def rst_stream(stream_id: int, status: int) -> bytes:
    return control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def goaway(last_stream_id: int, status: int = 0) -> bytes:
    return control(GOAWAY, 0, struct.pack(">II", last_stream_id, status))


def parse_syn_stream(codec: HeaderCodec, frame: ControlFrame) -> tuple[int, dict[str, str]]:
    """(stream id, headers) of a SYN_STREAM."""
    if len(frame.data) < 10:
        raise SpdyError("short SYN_STREAM")
    (stream_id,) = struct.unpack_from(">I", frame.data, 0)
    return stream_id & 0x7FFFFFFF, codec.decode(frame.data[10:])


def stream_id_of(frame: ControlFrame) -> int:
    """The stream a RST_STREAM / HEADERS / WINDOW_UPDATE frame is about."""
    if len(frame.data) < 4:
        raise SpdyError("short control frame")
    return int(struct.unpack_from(">I", frame.data, 0)[0]) & 0x7FFFFFFF
