"""TLS on the store's gRPC connections: the PEM files, listen URLs, and grpc credentials made from them.

One definition for both ends: the facade serves with
:func:`server_credentials`, the etcd driver and the test members dial with
:func:`channel_credentials`.

A server always requires client certificates signed by ``ca_file`` (etcd's
``--client-cert-auth``): a store reached without one is the whole cluster's
data and every credential in it, so TLS without client authentication is not
offered.  Plaintext is served only when the listen URL asks for it with
``http://``, as etcd decides by the scheme of ``--listen-client-urls``;
``https://HOST:PORT`` and a bare ``HOST:PORT`` mean TLS.

Blocking (the credentials read their files): call through ``asyncio.to_thread``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

HTTPS = "https://"
HTTP = "http://"


@dataclass(frozen=True)
class TlsFiles:
    """A serving (or client) certificate and key, and the CA its peers' certificates must chain to."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class ListenUrl:
    """Where to listen and whether with TLS (``tls`` False only for an explicit ``http://``)."""

    address: str
    tls: bool

    @property
    def url(self) -> str:
        return f"{HTTPS if self.tls else HTTP}{self.address}"


def parse_listen_url(text: str) -> ListenUrl:
    """``https://HOST:PORT`` or ``HOST:PORT`` (TLS), ``http://HOST:PORT`` (plaintext); port 0 picks one."""
    tls = not text.startswith(HTTP)
    address = text.removeprefix(HTTPS).removeprefix(HTTP).rstrip("/")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or "://" in address:
        raise ValueError(f"{text!r}: expected https://HOST:PORT, HOST:PORT or http://HOST:PORT")
    return ListenUrl(address, tls)


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """Serve with ``cert_file``; refuse every client without a certificate signed by ``ca_file``."""
    return grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())],
        root_certificates=tls.ca_file.read_bytes(),
        require_client_auth=True,
    )


def channel_credentials(
    ca_file: str | Path | None, cert_file: str | Path | None = None, key_file: str | Path | None = None
) -> grpc.ChannelCredentials:
    """Verify the server against ``ca_file`` (None: the system's roots) and present ``cert_file``/``key_file``."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("a client certificate and its key go together")
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca_file).read_bytes() if ca_file else None,
        private_key=Path(key_file).read_bytes() if key_file else None,
        certificate_chain=Path(cert_file).read_bytes() if cert_file else None,
    )
