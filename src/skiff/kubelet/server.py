"""The kubelet's HTTPS API: what the apiserver proxies pods/log, exec, attach and portforward to.

Endpoints (the real kubelet's paths and query parameters):

* ``GET /healthz`` → ``ok``;
* ``GET /containerLogs/{ns}/{pod}/{container}`` with PodLogOptions
  (``follow``, ``previous``, ``tailLines``, ``sinceSeconds``, ``sinceTime``,
  ``timestamps``, ``limitBytes``), streamed as chunked ``text/plain``;
* ``GET|POST /exec/{ns}/{pod}/{container}?command=..&stdin&stdout&stderr&tty``
  and ``/attach/{ns}/{pod}/{container}``: WebSocket upgrade with the
  channel subprotocols (v5, v4, ... see :mod:`skiff.kubelet.streams`);
* ``GET|POST /portForward/{ns}/{pod}?port=..``: WebSocket, v4 port-forward;
  or, with subprotocol ``SPDY/3.1+portforward.k8s.io``, the SPDY session that
  kubectl ≥ 1.31 tunnels inside the WebSocket (ports in the stream headers).

Plain SPDY upgrades (``Connection: Upgrade``, ``Upgrade: SPDY/3.1``: kubectl
< 1.30 exec/attach, < 1.31 port-forward) are served on the same paths: the
version comes from ``X-Stream-Protocol-Version`` (see
:mod:`skiff.kubelet.spdy_upgrade`) and the session from
:mod:`skiff.kubelet.spdy_remote_command` / :mod:`skiff.kubelet.spdy_port_forward`.

Errors before the upgrade are plain-text bodies with the status code, as the
kubelet answers (the apiserver wraps them into a Status).

TLS only (a plain HTTP request fails the handshake), with the serving
certificate ``tls_files`` names (``--tls-cert-file``/``--tls-private-key-file``)
or else a self-signed one (:mod:`skiff.kubelet.serving_cert`), until
``use_certificate`` swaps in another for new connections (a certificate from
the cluster CA, :mod:`skiff.kubelet.server_certificate`).  With
``client_ca_pem`` client certificates are requested and verified against it.
With ``auth`` (:mod:`skiff.kubelet.server_auth`) every request, whatever its
path, is authenticated and authorized before it is routed, as upstream's
auth filter; without it (in-process tests, as upstream's server with no
AuthInterface) every request is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from skiff.kubelet import spdy_remote_command, spdy_upgrade, streams
from skiff.kubelet.log_stream import LogOptionError, parse_log_options, stream_log
from skiff.kubelet.port_forward import parse_ports, run_port_forward
from skiff.kubelet.remote_command import Channels, Session, StreamOptions, run_attach, run_exec
from skiff.kubelet.server_auth import KubeletAuth
from skiff.kubelet.serving_cert import ensure_serving_cert
from skiff.kubelet.spdy_port_forward import PLAIN_PROTOCOL as SPDY_PORT_FORWARD
from skiff.kubelet.spdy_port_forward import PROTOCOL as SPDY_TUNNEL
from skiff.kubelet.spdy_port_forward import SpdyPortForward
from skiff.kubelet.spdy_session import WebSocketChannel
from skiff.kubelet.view import PodRuntimeView

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SHUTDOWN_GRACE_S = 2.0


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name)
    return value is not None and value.lower() in ("1", "true", "t", "yes", "")


def _plain_error(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


class KubeletServer:
    def __init__(
        self,
        view: PodRuntimeView,
        host: str,
        port: int,
        cert_dir: Path,
        client_ca_pem: str | None = None,
        *,
        auth: KubeletAuth | None = None,
        tls_files: tuple[Path, Path] | None = None,
    ) -> None:
        self.view = view
        self.host = host
        self.port = port
        self.cert_dir = cert_dir
        self.client_ca_pem = client_ca_pem
        self.auth = auth
        self.tls_files = tls_files
        self._runner: web.AppRunner | None = None
        self._ssl: ssl.SSLContext | None = None
        self._sessions: set[asyncio.Task[Any]] = set()

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth_filter] if self.auth is not None else [])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self._container_logs)
        for verb in ("GET", "POST"):
            app.router.add_route(verb, "/exec/{ns}/{pod}/{container}", self._session(self._exec))
            app.router.add_route(verb, "/attach/{ns}/{pod}/{container}", self._session(self._attach))
            app.router.add_route(verb, "/portForward/{ns}/{pod}", self._session(self._port_forward))
        return app

    def _session(self, handler: Handler) -> Handler:
        """Track a streaming handler so that ``stop`` can end it and wait for its cleanup."""

        async def tracked(request: web.Request) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None
            self._sessions.add(task)
            try:
                return await handler(request)
            finally:
                self._sessions.discard(task)

        return tracked

    @web.middleware
    async def _auth_filter(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Upstream's InstallAuthFilter: 401/403/500 in plain text, or on to the route."""
        assert self.auth is not None
        peercert = request.transport.get_extra_info("peercert") if request.transport is not None else None
        refusal = await self.auth.refusal(request.method, request.path, peercert, request.headers)
        if refusal is not None:
            return _plain_error(*refusal)
        return await handler(request)

    async def start(self) -> None:
        if self.tls_files is not None:
            cert, key = self.tls_files
        else:
            cert, key = await asyncio.to_thread(ensure_serving_cert, self.cert_dir, [self.host])
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        if self.client_ca_pem is not None:
            ctx.load_verify_locations(cadata=self.client_ca_pem)
            ctx.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is one way to authenticate, not required
        self._runner = web.AppRunner(
            self.build_app(), handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock, ssl_context=ctx).start()
        self._ssl = ctx

    def use_certificate(self, cert: Path, key: Path) -> None:
        """Serve ``cert`` from now on: new connections get it, open ones keep theirs (a rotated certificate).

        Called on the loop, not in a thread: the context is the one the loop's handshakes use.
        """
        assert self._ssl is not None, "use_certificate before start"
        self._ssl.load_cert_chain(str(cert), str(key))
        self.tls_files = (cert, key)

    async def stop(self) -> None:
        """Stop serving; returns once every exec/attach/port-forward session has ended (processes reaped)."""
        sessions = list(self._sessions)
        for task in sessions:
            if not task.cancelling():  # one being cancelled already (its client left) is cleaning up: let it
                task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers ------------------------------------------------------------------------------
    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        try:
            opts = parse_log_options(request.query)
        except LogOptionError as err:
            return _plain_error(400, str(err))
        logs = self.view.container_logs(ns, pod, container)
        if logs is None:
            return _plain_error(404, f'container "{container}" in pod "{pod}" is not available')
        path = logs.current
        if opts.previous:
            if logs.previous is None:
                return _plain_error(400, f'previous terminated container "{container}" in pod "{pod}" not found')
            path = logs.previous

        def still_running() -> bool:
            now = self.view.container_logs(ns, pod, container)
            return now is not None and now.running and now.current == path

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):  # the client went away: nothing left to tell it
            await stream_log(path, opts, still_running if not opts.previous else lambda: False, response.write)
            await response.write_eof()
        return response

    def _stream_options(self, request: web.Request) -> StreamOptions:
        return StreamOptions(
            stdin=_flag(request, "stdin") or _flag(request, "input"),
            stdout=_flag(request, "stdout") or _flag(request, "output"),
            stderr=_flag(request, "stderr") or _flag(request, "error"),
            tty=_flag(request, "tty"),
        )

    async def _upgrade(
        self, request: web.Request, supported: tuple[str, ...]
    ) -> tuple[web.WebSocketResponse, streams.Protocol] | web.Response:
        """Accept the WebSocket with a negotiated subprotocol, or the error response to send instead."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _plain_error(400, "unable to upgrade connection: only WebSocket upgrades are supported")
        offered = streams.offered_protocols(request.headers.get("Sec-WebSocket-Protocol"))
        chosen = streams.negotiate(offered, supported)
        if chosen is None:
            return _plain_error(400, f"unable to upgrade: unable to negotiate protocol: client supports {offered}")
        ws = web.WebSocketResponse(protocols=(chosen,) if chosen else (), max_msg_size=0, autoping=True)
        await ws.prepare(request)
        return ws, streams.Protocol(chosen or streams.V1)

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        opts = self._stream_options(request)
        command = request.query.getall("command", [])
        if not command:
            return _plain_error(400, "you must specify a command")
        if not (opts.stdin or opts.stdout or opts.stderr):
            return _plain_error(400, "you must specify at least 1 of stdin, stdout, stderr")
        target = self.view.exec_target(ns, pod, container)
        if target is None:
            return _plain_error(404, f'container "{container}" in pod "{pod}" is not running')
        if spdy_upgrade.is_spdy_upgrade(request):
            return await self._spdy_remote_command(
                request, opts, lambda channels: run_exec(channels, target, command, opts)
            )
        upgraded = await self._upgrade(request, streams.REMOTE_COMMAND_PROTOCOLS)
        if isinstance(upgraded, web.Response):
            return upgraded
        ws, protocol = upgraded
        await run_exec(Session(ws, protocol), target, command, opts)
        await ws.close()
        return ws

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        opts = self._stream_options(request)
        if not (opts.stdin or opts.stdout or opts.stderr):
            return _plain_error(400, "you must specify at least 1 of stdin, stdout, stderr")
        target = self.view.exec_target(ns, pod, container)
        logs = self.view.container_logs(ns, pod, container)
        if target is None or logs is None:
            return _plain_error(404, f'container "{container}" in pod "{pod}" is not running')

        def running() -> bool:
            now = self.view.container_logs(ns, pod, container)
            return now is not None and now.running and now.current == logs.current

        if spdy_upgrade.is_spdy_upgrade(request):
            return await self._spdy_remote_command(
                request, opts, lambda channels: run_attach(channels, target, logs, running, opts)
            )
        upgraded = await self._upgrade(request, streams.REMOTE_COMMAND_PROTOCOLS)
        if isinstance(upgraded, web.Response):
            return upgraded
        ws, protocol = upgraded
        await run_attach(Session(ws, protocol), target, logs, running, opts)
        await ws.close()
        return ws

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        offered = streams.offered_protocols(request.headers.get("Sec-WebSocket-Protocol"))
        if SPDY_TUNNEL in offered or spdy_upgrade.is_spdy_upgrade(request):
            return await self._spdy_port_forward(request, ns, pod)
        try:
            ports = parse_ports([*request.query.getall("port", []), *request.query.getall("ports", [])])
        except ValueError as err:
            return _plain_error(400, f"invalid port: {err}")
        if not ports:
            return _plain_error(400, "at least one port must be specified")
        ip = self.view.pod_ip(ns, pod)
        if ip is None:
            return _plain_error(404, f'pod "{pod}" in namespace "{ns}" has no address on this node')
        upgraded = await self._upgrade(request, streams.PORT_FORWARD_PROTOCOLS)
        if isinstance(upgraded, web.Response):
            return upgraded
        ws, protocol = upgraded
        await run_port_forward(ws, protocol, ip, ports)
        await ws.close()
        return ws

    async def _spdy_port_forward(self, request: web.Request, ns: str, pod: str) -> web.StreamResponse:
        """kubectl's SPDY port-forward (plain or in a WebSocket): ports come in the SPDY stream headers."""
        ip = self.view.pod_ip(ns, pod)
        if ip is None:
            return _plain_error(404, f'pod "{pod}" in namespace "{ns}" has no address on this node')
        if spdy_upgrade.is_spdy_upgrade(request):
            return await self._spdy(request, (SPDY_PORT_FORWARD,), lambda conn, _: SpdyPortForward(conn, ip, pod).run())
        upgraded = await self._upgrade(request, (SPDY_TUNNEL,))
        if isinstance(upgraded, web.Response):
            return upgraded
        ws, _ = upgraded
        await SpdyPortForward(WebSocketChannel(ws), ip, pod).run()
        await ws.close()
        return ws

    async def _spdy_remote_command(
        self, request: web.Request, opts: StreamOptions, run: Callable[[Channels], Awaitable[None]]
    ) -> web.StreamResponse:
        return await self._spdy(
            request,
            spdy_remote_command.PROTOCOLS,
            lambda conn, version: spdy_remote_command.serve(conn, version, opts, run),
        )

    async def _spdy(
        self,
        request: web.Request,
        supported: tuple[str, ...],
        serve: Callable[[spdy_upgrade.UpgradedConnection, str], Awaitable[None]],
    ) -> web.StreamResponse:
        """Negotiate the stream protocol version, answer 101 and serve the SPDY session on the raw connection."""
        offered = spdy_upgrade.offered_versions(request)
        version = spdy_upgrade.negotiate(offered, supported)
        if version is None:
            return spdy_upgrade.refusal(offered, supported)
        response, conn = await spdy_upgrade.accept(request, version)
        try:
            await serve(conn, version)
        finally:
            conn.close()
        return response
