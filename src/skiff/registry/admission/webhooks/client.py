"""Calling a webhook over HTTPS: upstream's webhook ClientManager and service resolver.

``HttpsCaller(reader).call(hook, review)`` POSTs the AdmissionReview as JSON
and returns the decoded answer, or raises ``CallError`` with upstream's
wording (``failed to call webhook: Post "<url>": <why>``).  The URL carries
``?timeout=<n>s`` as upstream's client adds it, and the whole call — service
resolution, connect, TLS, answer — must finish within ``timeoutSeconds``
(``context deadline exceeded`` otherwise).

* ``clientConfig.url`` is dialled as given; the server's certificate must
  chain to ``caBundle`` (the system roots when it is empty) and name the URL's
  host.
* ``clientConfig.service`` is addressed as ``https://<svc>.<ns>.svc:<port><path>``
  and the certificate must name ``<svc>.<ns>.svc``.  The connection goes to
  one ready address of the Service's Endpoints for that port (chosen at
  random), as upstream's endpoint routing does: this works whether or not
  ``skiff proxy`` serves the Service's virtual IP.  A Service without ready
  endpoints is dialled at its ClusterIP (upstream's default, served by the
  proxy); an ExternalName Service at its external name.

Reads of Services and Endpoints go through the injected ``ObjectReader``
(watch cache first).  Each call opens its own connection and closes it.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
import orjson

from skiff.api.field_errors import go_quote
from skiff.registry.admission.chain import ObjectReader
from skiff.registry.admission.webhooks.configuration import ServiceReference, Webhook
from skiff.registry.admission.webhooks.errors import CallError

#: OpenSSL verify codes that Go reports as an unknown authority.
_UNKNOWN_AUTHORITY = frozenset({18, 19, 20, 21})
_HOST_MISMATCH = frozenset({62, 64})
_EXPIRED = frozenset({9, 10})
#: How many CA bundles' SSL contexts are kept.
MAX_CONTEXTS = 64


class WebhookCaller(Protocol):
    async def call(self, hook: Webhook, review: Mapping[str, Any]) -> Any:
        """The webhook's decoded answer to ``review``; CallError when there is none."""
        ...


class _Unroutable(Exception):
    """The service reference leads nowhere (upstream's resolver errors)."""


class HttpsCaller:
    def __init__(self, reader: ObjectReader, *, choose: Callable[[Sequence[str]], str] = random.choice) -> None:
        self.reader = reader
        self.choose = choose
        self._contexts: dict[bytes, ssl.SSLContext] = {}

    async def call(self, hook: Webhook, review: Mapping[str, Any]) -> Any:
        config = hook.client
        if config.error:
            raise CallError(f"could not get REST client: {config.error}")
        context = self._ssl_context(config.ca_bundle)
        ref = config.service
        query = f"?timeout={hook.timeout_s}s"
        shown = (f"https://{ref.host}:{ref.port}{ref.path}" if ref is not None else config.url) + query
        body = orjson.dumps(review)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        address, expected_host = "", urlsplit(shown).hostname or ""
        try:
            async with asyncio.timeout(hook.timeout_s):
                target, server_hostname = shown, None
                if ref is not None:
                    host, port = await self._resolve(ref)
                    address = f"{host}:{port}"
                    target = f"https://{_bracketed(host)}:{port}{ref.path}{query}"
                    server_hostname = ref.host
                    headers["Host"] = f"{ref.host}:{ref.port}"
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(
                        target, data=body, headers=headers, ssl=context, server_hostname=server_hostname
                    ) as answer,
                ):
                    status, raw = answer.status, await answer.read()
        except TimeoutError:
            raise CallError(f'failed to call webhook: Post "{shown}": context deadline exceeded') from None
        except _Unroutable as err:
            raise CallError(f'failed to call webhook: Post "{shown}": {err}') from None
        except aiohttp.ClientError as err:
            why = _connect_error(err, address, expected_host)
            raise CallError(f'failed to call webhook: Post "{shown}": {why}') from None
        if not 200 <= status < 300:
            raise CallError(f"failed to call webhook: {_status_text(status, raw)}")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise CallError(f"failed to call webhook: {err}") from None

    def _ssl_context(self, ca_bundle: bytes) -> ssl.SSLContext:
        context = self._contexts.get(ca_bundle)
        if context is None:
            try:
                context = ssl.create_default_context(cadata=ca_bundle.decode("ascii") if ca_bundle else None)
            except (ssl.SSLError, UnicodeDecodeError, ValueError) as err:
                raise CallError(f"could not get REST client: unable to load root certificates: {err}") from None
            if len(self._contexts) >= MAX_CONTEXTS:
                self._contexts.clear()
            self._contexts[ca_bundle] = context
        return context

    async def _resolve(self, ref: ServiceReference) -> tuple[str, int]:
        """(host, port) to dial for a service reference (upstream's ResolveEndpoint, then ResolveCluster)."""
        service = await self.reader.get("", "services", ref.namespace, ref.name, fresh=False)
        if service is None:
            raise _Unroutable(f"service {go_quote(ref.name)} not found")
        spec = service.get("spec") or {}
        kind = spec.get("type") or "ClusterIP"
        if kind == "ExternalName":
            return str(spec.get("externalName") or ""), ref.port
        if kind not in ("ClusterIP", "NodePort", "LoadBalancer"):
            raise _Unroutable(f"unsupported service type {go_quote(str(kind))}")
        port = next((p for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("port") == ref.port), None)
        if port is None:
            raise _Unroutable(f"no service port {ref.port} found for service {go_quote(ref.name)}")
        endpoints = await self.reader.get("", "endpoints", ref.namespace, ref.name, fresh=False)
        found = self._endpoint(endpoints, str(port.get("name") or ""))
        if found is not None:
            return found
        cluster_ip = str(spec.get("clusterIP") or "")
        if cluster_ip in ("", "None"):
            raise _Unroutable(f"no endpoints available for service {go_quote(ref.name)}")
        return cluster_ip, ref.port

    def _endpoint(self, endpoints: Mapping[str, Any] | None, port_name: str) -> tuple[str, int] | None:
        for subset in (endpoints or {}).get("subsets") or []:
            addresses = [str(a["ip"]) for a in subset.get("addresses") or [] if isinstance(a, dict) and a.get("ip")]
            for port in subset.get("ports") or []:
                if str(port.get("name") or "") == port_name and addresses and isinstance(port.get("port"), int):
                    return self.choose(addresses), int(port["port"])
        return None


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _connect_error(err: aiohttp.ClientError, address: str, expected_host: str) -> str:
    """Go's net/http and crypto/tls wording for the usual failures."""
    if isinstance(err, aiohttp.ClientConnectorCertificateError):
        cert_error = err.certificate_error
        code = getattr(cert_error, "verify_code", None)
        if code in _UNKNOWN_AUTHORITY:
            why = "x509: certificate signed by unknown authority"
        elif code in _HOST_MISMATCH:
            why = f"x509: certificate is not valid for {expected_host}"
        elif code in _EXPIRED:
            why = "x509: certificate has expired or is not yet valid"
        else:
            why = f"x509: {getattr(cert_error, 'verify_message', '') or cert_error}"
        return f"tls: failed to verify certificate: {why}"
    if isinstance(err, aiohttp.ClientConnectorError):
        where = address or f"{_bracketed(err.host)}:{err.port}"
        if isinstance(err.os_error, ConnectionRefusedError):
            return f"dial tcp {where}: connect: connection refused"
        return f"dial tcp {where}: {err.os_error.strerror or err.os_error}"
    return str(err) or type(err).__name__


def _status_text(status: int, raw: bytes) -> str:
    """client-go's error for a non-2xx answer that is not a Status (NewGenericServerResponse)."""
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    if isinstance(answer, dict) and answer.get("kind") == "Status" and answer.get("message"):
        return str(answer["message"])
    text = raw.decode("utf-8", "replace").strip()
    if status == 404:
        return "the server could not find the requested resource"
    if status >= 500 and text:
        return f"an error on the server ({go_quote(text)}) has prevented the request from succeeding"
    return f"the server responded with the status code {status} but did not return more information"
