"""pods/log, pods/exec, pods/attach and pods/portforward: proxied to the pod's kubelet.

As kube-apiserver does (pkg/registry/core/pod/strategy.go LogLocation,
ExecLocation, AttachLocation, PortForwardLocation):

* the container defaults to the pod's only container; with several, 400
  ``a container name must be specified for pod X, choose one of: [a b]``; an
  unknown one 400 ``container c is not valid for pod X``;
* logs of a pod not yet bound to a node are empty (200, no body); exec,
  attach and port-forward answer 400 ``pod X does not have a host assigned``;
  exec/attach into a Succeeded/Failed pod is 400;
* the kubelet is found from the Node: ``status.addresses`` (InternalIP first)
  and ``status.daemonEndpoints.kubeletEndpoint.Port`` (10250 when unset).

The apiserver dials the kubelet over HTTPS and presents its own kubelet
client certificate (kubeadm's ``CN=kube-apiserver-kubelet-client``, from the
data dir's PKI), which the kubelet authenticates and has authorized by the
API server (``nodes/proxy``, bound by ``kubeadm:apiserver-kubelet-client``).
With ``--kubelet-certificate-authority`` it verifies the kubelet's serving
certificate against that CA, host name included (the node address it
dials); without it, as upstream, it does not verify (a joined kubelet serves
a self-signed certificate).

Logs are streamed through as ``text/plain``.  exec/attach/portforward are
WebSocket passthrough: the apiserver first opens a WebSocket to the kubelet
offering the client's subprotocols, then accepts the client's upgrade with the
one the kubelet chose and relays every frame both ways until either side
closes; kubectl ≥ 1.31 port-forward's SPDY-in-WebSocket tunnel is relayed the
same way (the kubelet speaks the SPDY).  Plain SPDY upgrades (kubectl < 1.30
exec/attach, < 1.31 port-forward) are relayed as raw connections after both
101s (:mod:`pod_spdy_relay`).  Errors before the upgrade are Status responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web

from skiff.api.status import ApiError, Cause, Details, bad_request, invalid, service_unavailable
from skiff.apiserver import pod_spdy_relay
from skiff.apiserver.served import ServedResources
from skiff.registry.resource import Obj

DEFAULT_KUBELET_PORT = 10250
ADDRESS_PREFERENCE = ("InternalIP", "Hostname", "InternalDNS", "ExternalIP", "ExternalDNS")
CONNECT_TIMEOUT_S = 10.0
#: Subprotocol prefix of a SPDY-tunnelling WebSocket (kubectl ≥ 1.31 port-forward): relayed like the others.
SPDY_TUNNEL_PREFIX = "SPDY/3.1+"
_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid"}


@dataclass(frozen=True)
class KubeletDialer:
    """How the apiserver reaches kubelets: its kubelet client cert; the serving cert verified against ``ca_file``."""

    client_cert: Path | None = None
    client_key: Path | None = None
    #: --kubelet-certificate-authority; None dials without verifying (upstream's default).
    ca_file: Path | None = None

    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """Made once (it reads the cert files), shared by every kubelet connection."""
        if self.ca_file is not None:
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert is not None and self.client_key is not None:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx

    def session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
        return aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(ssl=self.ssl_context))


# -- where ---------------------------------------------------------------------------------------


def pick_container(pod: Obj, requested: str) -> str:
    """validateContainer: the named container must exist; no name means the only one."""
    name = str((pod.get("metadata") or {}).get("name") or "")
    spec = pod.get("spec") or {}
    containers = [str(c.get("name")) for c in spec.get("containers") or []]
    inits = [str(c.get("name")) for c in spec.get("initContainers") or []]
    ephemeral = [str(c.get("name")) for c in spec.get("ephemeralContainers") or []]
    if requested:
        if requested not in (*containers, *inits, *ephemeral):
            raise bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    if len(containers) == 1:
        return containers[0]
    if not containers:
        raise bad_request(f"pod {name} does not have a container")
    message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
    if inits:
        message += f" or one of the init containers: [{' '.join(inits)}]"
    if ephemeral:
        message += f" or one of the ephemeral containers: [{' '.join(ephemeral)}]"
    raise bad_request(message)


async def kubelet_base_url(served: ServedResources, node_name: str) -> str:
    """``https://ip:port`` of a node's kubelet, from the Node object."""
    nodes = served.find("", "v1", "nodes")
    if nodes is None:
        raise service_unavailable("nodes are not served")
    node = await nodes.registry.get(None, node_name)
    status = node.get("status") or {}
    addresses = [a for a in status.get("addresses") or [] if isinstance(a, dict) and a.get("address")]
    ranked = sorted(
        addresses,
        key=lambda a: ADDRESS_PREFERENCE.index(a["type"]) if a.get("type") in ADDRESS_PREFERENCE else 99,
    )
    if not ranked:
        raise service_unavailable(f"no preferred addresses found; known addresses: {addresses}")
    host = str(ranked[0]["address"])
    port = int(((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0)
    port = port if port > 0 else DEFAULT_KUBELET_PORT
    return f"https://{f'[{host}]' if ':' in host else host}:{port}"


def _bound_node(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


# -- logs ----------------------------------------------------------------------------------------

LOG_PARAMS = ("follow", "previous", "tailLines", "sinceSeconds", "sinceTime", "timestamps", "limitBytes")


def _log_params(query: Mapping[str, str], name: str) -> dict[str, str]:
    """PodLogOptions, validated as ValidatePodLogOptions does (422 PodLogOptions)."""
    causes: list[Cause] = []
    for key, least, message in (
        ("tailLines", 0, "must be greater than or equal to 0"),
        ("limitBytes", 1, "must be greater than 0"),
        ("sinceSeconds", 1, "must be greater than 0"),
    ):
        raw = query.get(key)
        if raw is None:
            continue
        try:
            value = int(raw)
        except ValueError:
            raise bad_request(f'unable to parse quantity\'s suffix: invalid value "{raw}" for {key}') from None
        if value < least:
            causes.append(Cause("FieldValueInvalid", f"Invalid value: {value}: {message}", key))
    if query.get("sinceSeconds") and query.get("sinceTime"):
        causes.append(
            Cause("FieldValueForbidden", "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified", "")
        )
    if causes:
        raise invalid("PodLogOptions", "", name, causes)
    return {key: query[key] for key in LOG_PARAMS if key in query}


async def _kubelet_error(response: aiohttp.ClientResponse) -> ApiError:
    return kubelet_error(response.status, (await response.text(errors="replace")).strip())


def kubelet_error(code: int, text: str) -> ApiError:
    """A kubelet's refusal (plain text) as the Status the client gets."""
    if code in _REASONS:
        return ApiError(code, _REASONS[code], text or f"the kubelet answered {code}")
    return service_unavailable(f"error from the kubelet ({code}): {text}")


def _dial_error(url: str, err: BaseException) -> ApiError:
    return service_unavailable(f"error dialing backend: {url}: {err or type(err).__name__}")


async def logs(served: ServedResources, dialer: KubeletDialer, request: web.Request, pod: Obj) -> web.StreamResponse:
    meta = pod.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    container = pick_container(pod, request.query.get("container", ""))
    params = _log_params(request.query, name)
    node = _bound_node(pod)
    if not node:
        return web.Response(status=200, body=b"", headers={"Content-Type": "text/plain"})
    base = await kubelet_base_url(served, node)
    url = f"{base}/containerLogs/{quote(namespace)}/{quote(name)}/{quote(container)}"
    async with dialer.session() as session:
        try:
            upstream = await session.get(url, params=params)
        except (aiohttp.ClientError, OSError) as err:
            raise _dial_error(url, err) from None
        async with upstream:
            if upstream.status != 200:
                raise await _kubelet_error(upstream)
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            return response


# -- exec / attach / portforward -----------------------------------------------------------------


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _stream_query(request: web.Request, subresource: str) -> list[tuple[str, str]]:
    """The kubelet's query for exec/attach (command, input, output, error, tty) or portforward (port)."""
    query = request.query
    if subresource == "portforward":
        ports = [p for value in query.getall("ports", []) for p in value.split(",") if p]
        tunnel = SPDY_TUNNEL_PREFIX in request.headers.get("Sec-WebSocket-Protocol", "")
        tunnel = tunnel or pod_spdy_relay.is_spdy_upgrade(request)
        if not ports and not tunnel:  # a SPDY session names its ports in its stream headers
            raise bad_request("at least one port must be specified")
        return [("port", p) for p in ports]
    out: list[tuple[str, str]] = []
    if subresource == "exec":
        commands = query.getall("command", [])
        if not commands:
            raise bad_request("you must specify at least one command for the container")
        out += [("command", c) for c in commands]
    for ours, theirs in (("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty")):
        if query.get(ours, "").lower() in ("1", "true", "t"):
            out.append((theirs, "1"))
    return out


async def stream(
    served: ServedResources, dialer: KubeletDialer, request: web.Request, pod: Obj, subresource: str
) -> web.StreamResponse:
    meta = pod.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    path = f"/portForward/{quote(namespace)}/{quote(name)}"
    if subresource != "portforward":
        container = pick_container(pod, request.query.get("container", ""))
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            raise bad_request(f"cannot {subresource} into a container in a completed pod; current phase is {phase}")
        kubelet_path = "exec" if subresource == "exec" else "attach"
        path = f"/{kubelet_path}/{quote(namespace)}/{quote(name)}/{quote(container)}"
    query = _stream_query(request, subresource)
    node = _bound_node(pod)
    if not node:
        raise bad_request(f"pod {name} does not have a host assigned")
    url = f"{await kubelet_base_url(served, node)}{path}?{urlencode(query)}"
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    if pod_spdy_relay.is_spdy_upgrade(request):
        return await pod_spdy_relay.relay(request, url, dialer.ssl_context, kubelet_error, _dial_error)
    if not _is_websocket(request):
        raise bad_request(f"unable to upgrade connection: pods/{subresource} needs a WebSocket or SPDY/3.1 upgrade")
    async with dialer.session() as session:
        try:
            backend = await session.ws_connect(url, protocols=offered, max_msg_size=0, autoping=True)
        except aiohttp.WSServerHandshakeError as err:
            raise await _handshake_error(session, url, err) from None
        except (aiohttp.ClientError, OSError) as err:
            raise _dial_error(url, err) from None
        async with backend:
            chosen = backend.protocol
            client = web.WebSocketResponse(protocols=(chosen,) if chosen else (), max_msg_size=0, autoping=True)
            await client.prepare(request)
            await _relay(client, backend)
            await client.close()
            return client


async def _handshake_error(session: aiohttp.ClientSession, url: str, err: aiohttp.WSServerHandshakeError) -> ApiError:
    """The kubelet refused the upgrade: ask again without it to read its error text."""
    try:
        async with session.get(url) as response:
            if response.status >= 400:
                return await _kubelet_error(response)
    except (aiohttp.ClientError, OSError):
        pass
    return ApiError(err.status if err.status in _REASONS else 503, _REASONS.get(err.status, "ServiceUnavailable"),
                    f"unable to upgrade connection to the kubelet: {err.message}", Details())  # fmt: skip


async def _relay(client: web.WebSocketResponse, backend: aiohttp.ClientWebSocketResponse) -> None:
    async def client_to_backend() -> None:
        async for msg in client:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await backend.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await backend.send_str(msg.data)

    async def backend_to_client() -> None:
        async for msg in backend:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await client.send_str(msg.data)

    tasks = {asyncio.create_task(client_to_backend()), asyncio.create_task(backend_to_client())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError, ConnectionError):
                await task
        await backend.close()
