"""Open a Store from a URL: ``sqlite://PATH``, ``https://HOST:PORT[,HOST:PORT...]`` or ``etcd://HOST:PORT[,...]``.

The one place that maps the ``--store`` flag of every command to a backend.

etcd over TLS: ``https://`` (or ``etcds://``), with the CA, client certificate
and key of kube-apiserver's ``--etcd-cafile``/``--etcd-certfile``/
``--etcd-keyfile`` (each endpoint may repeat the scheme, as in
``--etcd-servers``).  ``etcd://`` (or ``http://``) is plaintext, asked for
explicitly; giving it TLS files is refused rather than silently ignored.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from skiff.store.protocol import Store

SCHEMES = ("sqlite://", "https://", "etcds://", "etcd://", "http://")
_TLS_SCHEMES = ("https://", "etcds://")
_PLAIN_SCHEMES = ("etcd://", "http://")


async def open_store(
    url: str, *, ca_file: Path | None = None, cert_file: Path | None = None, key_file: Path | None = None
) -> Store:
    if url.startswith("sqlite://"):
        from skiff.store.sqlite import SqliteStore

        path = await asyncio.to_thread(_prepare_path, url.removeprefix("sqlite://"))
        return await SqliteStore.open(path)
    scheme = next((s for s in (*_TLS_SCHEMES, *_PLAIN_SCHEMES) if url.startswith(s)), None)
    if scheme is not None:
        from skiff.store.etcd import EtcdStore

        tls = scheme in _TLS_SCHEMES
        if not tls and (ca_file or cert_file or key_file):
            raise ValueError(f"{url!r} is plaintext but TLS files were given: use https://")
        endpoints = [_strip_scheme(e, tls) for e in url.removeprefix(scheme).split(",") if e]
        if not endpoints:
            raise ValueError(f"no etcd endpoints in {url!r}")
        return await EtcdStore.connect(endpoints, ca_file=ca_file, cert_file=cert_file, key_file=key_file, tls=tls)
    raise ValueError(f"unknown store URL {url!r}: expected one of {', '.join(SCHEMES)}")


def _strip_scheme(endpoint: str, tls: bool) -> str:
    """``HOST:PORT`` of one endpoint; one with the other kind of scheme is refused (no mixing)."""
    if endpoint.startswith(_PLAIN_SCHEMES if tls else _TLS_SCHEMES):
        raise ValueError(f"etcd endpoint {endpoint!r}: all endpoints must use TLS, or none")
    for scheme in (*_TLS_SCHEMES, *_PLAIN_SCHEMES):
        endpoint = endpoint.removeprefix(scheme)
    return endpoint.rstrip("/")


def _prepare_path(text: str) -> Path:
    path = Path(text).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
