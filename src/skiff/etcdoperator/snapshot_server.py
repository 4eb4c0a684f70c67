"""Hands snapshot files to restoring seed pods over HTTPS, as the original restore operator did over HTTP (19999).

The operator runs outside the pods and the seed's data directory lives in a
volume only the pod sees, so the seed fetches its snapshot itself: an init
container downloads ``/v1/snapshots/<token>`` from here before
``snapshot restore`` runs.  Tokens are random, one per staged file, and the
server only ever serves files it was handed (no path from the URL reaches the
filesystem).  The same app serves ``/healthz`` and Prometheus ``/metrics``.

A snapshot is the whole keyspace (Secrets included), so it travels over TLS
only: the server's certificate comes from a CA of the operator's own, made
on first start in its state directory and kept across restarts (a seed pod
created before a restart still names it), and each seed pod is handed that
CA's PEM to verify the server with — no trust in anything else is needed.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from skiff.api.certificates import ensure_serving_pki


class SnapshotServer:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._files: dict[str, Path] = {}
        self.registry = registry or CollectorRegistry()
        self.base_url = ""
        #: PEM of the CA that signed the serving certificate: what a fetching pod verifies against.
        self.ca_pem = ""
        self._runner: web.AppRunner | None = None

    def offer(self, path: Path, token: str | None = None) -> str:
        """Serve ``path`` under a token (a given one is reused after an operator restart); returns the URL."""
        token = token or secrets.token_urlsafe(16)
        self._files[token] = path
        return self.url(token)

    def url(self, token: str) -> str:
        return f"{self.base_url}/v1/snapshots/{token}"

    def withdraw(self, token: str) -> None:
        self._files.pop(token, None)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/snapshots/{token}", self._snapshot)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def start(self, host: str, port: int, pki_dir: Path) -> str:
        """Serve HTTPS on ``host:port`` with a certificate for ``host`` from the CA kept in ``pki_dir``."""
        context = await asyncio.to_thread(_serving_context, pki_dir, host)
        self.ca_pem = await asyncio.to_thread((pki_dir / "ca.crt").read_text)
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=context)
        await site.start()
        bound = self._runner.addresses[0][1] if self._runner.addresses else port
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"https://{shown}:{bound}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        path = self._files.get(request.match_info["token"])
        if path is None or not path.is_file():
            raise web.HTTPNotFound(text="no such snapshot\n")
        return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _serving_context(pki_dir: Path, host: str) -> ssl.SSLContext:
    pki = ensure_serving_pki(pki_dir, "skiff-etcd-operator-ca", "skiff-etcd-operator", [host])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    return context
