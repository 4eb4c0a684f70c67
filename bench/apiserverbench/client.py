"""The benchmark's HTTP client: one aiohttp session, JSON bodies, minimal valid pods.

Transport (``--transport``):

* ``https`` (default) — the server's TLS port, verified against the data
  dir's CA, authenticated with the generated admin client certificate
  (``skiff.apiserver.pki``), as kubectl and controllers connect;
* ``http`` — the loopback-only plain port (``--insecure-port``), no TLS and
  no authentication: shows what TLS costs.

Connections are kept alive and unlimited in number (one per concurrent
request or watch), except where a cell asks for a fixed, pre-opened pool: the
open-loop cell, where an unbounded pool would open a new connection — a TLS
handshake, costly for the server — whenever the server falls behind, and so
feed the very backlog it measures (the first full run showed 37% of the
API server's samples in ``do_handshake``).  Real clients keep a bounded pool
too (client-go: HTTP/2, or 25 idle HTTP/1.1 connections per host).

Bodies are read in full and not parsed (the figures are the server's, not a
JSON parser's), except where a resourceVersion is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from apiserverbench.servers import RunningServer
from skiff.apiserver.pki import Pki

HTTPS = "https"
HTTP = "http"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"


class RequestFailed(RuntimeError):
    """A response other than the expected 2xx; the message carries the status and the body's start."""


@dataclass
class Api:
    session: aiohttp.ClientSession
    base: str

    async def call(
        self, method: str, path: str, body: Any = None, content_type: str = JSON, expect: int = 200
    ) -> bytes:
        """One request; the exact body bytes of an ``expect`` (or 201) response, else RequestFailed."""
        data = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        headers = {"Accept": JSON}
        if data is not None:
            headers["Content-Type"] = content_type
        async with self.session.request(method, self.base + path, data=data, headers=headers) as response:
            payload = await response.read()
            if response.status not in (expect, 201):
                raise RequestFailed(f"{method} {path}: {response.status} {payload[:300]!r}")
            return payload


@contextlib.asynccontextmanager
async def open_api(server: RunningServer, transport: str, connections: int = 0) -> AsyncIterator[Api]:
    """A session to ``server``; ``connections`` > 0 caps (and pre-opens) its pool, 0 leaves it unbounded."""
    if transport == HTTPS:
        pki = Pki(server.data_dir / "pki")
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        connector = aiohttp.TCPConnector(limit=connections, ssl=ctx)
        base = server.https_url
    elif transport == HTTP:
        connector = aiohttp.TCPConnector(limit=connections)
        base = server.http_url
    else:
        raise ValueError(f"unknown transport {transport!r}")
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        api = Api(session, base)
        if connections:
            await asyncio.gather(*(api.call("GET", "/readyz") for _ in range(connections)))
        yield api


def pod(name: str, namespace: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """A minimal valid pod: one container; the server defaults the rest (~1 KiB stored)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"app": "bench"}}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }


def pods_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/pods" + (f"/{name}" if name else "")


async def ensure_namespace(api: Api, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    with contextlib.suppress(RequestFailed):  # 409 AlreadyExists on a second call is fine
        await api.call("POST", "/api/v1/namespaces", body)
    await api.call("GET", f"/api/v1/namespaces/{name}")
