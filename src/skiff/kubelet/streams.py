"""The Kubernetes channel protocol over WebSocket: subprotocol names and frame codec.

Remote command (exec/attach) and port-forward streams carry several byte
streams over one WebSocket.  Every binary message starts with one byte naming
its channel (k8s.io/apimachinery pkg/util/httpstream/wsstream):

* remote command: 0 stdin, 1 stdout, 2 stderr, 3 error (v4+: a metav1.Status
  JSON document, sent once at the end), 4 resize (``{"Width":..,"Height":..}``);
  ``v5.channel.k8s.io`` adds channel 255 (close): a message ``[255, N]`` says
  the peer closed its side of channel N (how a client half-closes stdin).
* ``base64.channel.k8s.io`` variants send text messages instead: the channel is
  the ASCII digit ``'0' + N`` and the payload is base64.
* port-forward (kubelet websocket protocol ``v4.channel.k8s.io``): port i of the
  request uses data channel 2i and error channel 2i+1, and the first message on
  each channel carries the port as two little-endian bytes.

Pure: no I/O.  Used by the kubelet server and by the apiserver's relay alike
(the apiserver imports only the names, never the kubelet).
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass

STDIN = 0
STDOUT = 1
STDERR = 2
ERROR = 3
RESIZE = 4
CLOSE = 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
BASE64_V1 = "base64.channel.k8s.io"
BASE64_V4 = "v4.base64.channel.k8s.io"

#: What exec/attach accept, in the order the server prefers them.
REMOTE_COMMAND_PROTOCOLS = (V5, V4, V3, V2, V1, BASE64_V4, BASE64_V1)
#: What port-forward accepts (the kubelet's websocket port-forward protocols).
PORT_FORWARD_PROTOCOLS = (V4, BASE64_V4, V1, BASE64_V1)


@dataclass(frozen=True, slots=True)
class Protocol:
    """A negotiated subprotocol and what it implies for framing."""

    name: str

    @property
    def base64(self) -> bool:
        return "base64" in self.name

    @property
    def version(self) -> int:
        head = self.name.split(".", 1)[0]
        return int(head[1:]) if head.startswith("v") and head[1:].isdigit() else 1

    @property
    def has_status(self) -> bool:
        """v4+ sends a Status JSON on the error channel; older versions send plain text."""
        return self.version >= 4

    @property
    def has_close(self) -> bool:
        return self.version >= 5


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first protocol the client offered that we support; "" when it offered none (v1 binary)."""
    if not offered:
        return ""
    for name in offered:
        if name in supported:
            return name
    return None


def offered_protocols(header: str | None) -> list[str]:
    """The Sec-WebSocket-Protocol list of a request."""
    return [p.strip() for p in (header or "").split(",") if p.strip()]


def encode(channel: int, data: bytes, use_base64: bool = False) -> bytes | str:
    """One message for ``channel``: binary ``[channel] + data``, or the base64 text form."""
    if use_base64:
        return chr(ord("0") + channel) + base64.b64encode(data).decode("ascii")
    return bytes((channel,)) + data


def decode(message: bytes | str) -> tuple[int, bytes]:
    """(channel, payload) of one message; raises ValueError on an empty one."""
    if isinstance(message, str):
        if not message:
            raise ValueError("empty message")
        return ord(message[0]) - ord("0"), base64.b64decode(message[1:])
    if not message:
        raise ValueError("empty message")
    return message[0], bytes(message[1:])


def port_header(port: int) -> bytes:
    """The first payload on a port-forward channel: the port, little-endian uint16."""
    return struct.pack("<H", port)


def exit_status(code: int) -> bytes:
    """The v4 error-channel Status for a finished command (what kubectl turns into its exit code)."""
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    status = {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }
    return json.dumps(status).encode()


def failure_status(message: str, reason: str = "InternalError", code: int = 500) -> bytes:
    """An error-channel Status for a command that could not run at all."""
    status = {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}
    return json.dumps(status).encode()


def parse_resize(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from a resize message, or None when malformed."""
    try:
        size = json.loads(payload)
        return int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        return None
