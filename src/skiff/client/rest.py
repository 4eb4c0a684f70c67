"""The one REST client every Skiff component uses to talk to the API server.

Objects are plain dicts.  Every non-2xx answer becomes ``ApiError`` decoded
from the server's Status.  One aiohttp session (keep-alive pool) per client;
watches are long requests on the same pool, parsed from the chunked stream
one JSON object per line without any line-length limit (a 1 MiB ConfigMap is
one line).  A ``TokenSource`` supplies the bearer token per request instead of
a fixed one (client-go's token-source transport: a ServiceAccount token that is
refreshed before it expires); a 401 resets it, so the next request fetches a
new token (ResettableTokenSourceWrapTransport).  No retries here: callers (informers, controllers) own their
retry policy, because only they know whether a write is safe to repeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import aiohttp
import orjson

from skiff.client.config import ClientConfig
from skiff.client.errors import from_response, status_error
from skiff.client.resources import Resource

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}
REQUEST_TIMEOUT_S = 60.0


class TokenSource(Protocol):
    """Bearer tokens that change over time (skiff.client.clientbuilder)."""

    async def token(self) -> str: ...

    def reset(self) -> None:
        """Forget the cached token: the server refused it."""


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str
    object: dict[str, Any]


class ApiClient:
    def __init__(
        self,
        config: ClientConfig,
        user_agent: str = "skiff",
        *,
        max_connections: int = 64,
        token_source: TokenSource | None = None,
    ) -> None:
        self.config = config
        self._ssl = config.ssl_context()
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if config.token:
            self._headers["Authorization"] = f"Bearer {config.token}"
        self._token_source = token_source
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the pool; TLS transports need a moment to shut down (aiohttp's advice), else they leak."""
        if self._session is not None:
            await self._session.close()
            self._session = None
            if self._ssl is not None:
                await asyncio.sleep(0.25)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl if self._ssl else False)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self._session

    async def _with_token(self, headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
        if self._token_source is None:
            return headers
        return {**(headers or {}), "Authorization": f"Bearer {await self._token_source.token()}"}

    def _check_unauthorized(self, status: int) -> None:
        if status == 401 and self._token_source is not None:
            self._token_source.reset()

    # -- raw ---------------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = REQUEST_TIMEOUT_S,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request, whatever its status: (code, headers, body)."""
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        headers = await self._with_token(headers)
        async with self._http().request(
            method, self.config.server + path, params=params, data=body, headers=headers, timeout=timeout
        ) as resp:
            data = await resp.read()
            self._check_unauthorized(resp.status)
            return resp.status, dict(resp.headers), data

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        payload = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        headers = {"Content-Type": content_type} if payload is not None else None
        code, _, data = await self.request(method, path, params=params, body=payload, headers=headers)
        if code >= 300:
            raise from_response(code, data)
        result: dict[str, Any] = orjson.loads(data) if data else {}
        return result

    # -- typed verbs -------------------------------------------------------------------------------

    @staticmethod
    def path(res: Resource, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        out = res.base(namespace)
        if name:
            out += f"/{name}"
            if subresource:
                out += f"/{subresource}"
        return out

    async def get(
        self, res: Resource, name: str, namespace: str | None = None, *, subresource: str | None = None
    ) -> dict[str, Any]:
        return await self._call("GET", self.path(res, namespace, name, subresource))

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        params = _params(
            labelSelector=label_selector,
            fieldSelector=field_selector,
            limit=limit,
            resourceVersion=resource_version,
            **{"continue": continue_},
        )
        result = await self._call("GET", self.path(res, namespace), params=params)
        for item in result.get("items") or []:
            item.setdefault("apiVersion", res.api_version)
            item.setdefault("kind", res.kind)
        return result

    async def list_all(self, res: Resource, namespace: str | None = None, **selectors: str | None) -> dict[str, Any]:
        """Every page of a list (one consistent snapshot: the server pins continue tokens to a revision)."""
        first = await self.list(res, namespace, limit=500, **selectors)  # type: ignore[arg-type]
        items = list(first.get("items") or [])
        token = (first.get("metadata") or {}).get("continue")
        while token:
            page = await self.list(res, namespace, limit=500, continue_=token, **selectors)  # type: ignore[arg-type]
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
        first["items"] = items
        first.setdefault("metadata", {}).pop("continue", None)
        return first

    async def create(
        self,
        res: Resource,
        body: dict[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        name: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        ns = namespace if namespace is not None else (body.get("metadata") or {}).get("namespace")
        return await self._call(
            "POST", self.path(res, ns, name, subresource), body=body, params=_params(dryRun="All" if dry_run else None)
        )

    async def update(self, res: Resource, body: dict[str, Any], *, subresource: str | None = None) -> dict[str, Any]:
        meta = body.get("metadata") or {}
        return await self._call("PUT", self.path(res, meta.get("namespace"), meta["name"], subresource), body=body)

    async def update_status(self, res: Resource, body: dict[str, Any]) -> dict[str, Any]:
        return await self.update(res, body, subresource="status")

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: str = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> dict[str, Any]:
        params = _params(fieldManager=field_manager, force=None if force is None else str(force).lower())
        return await self._call(
            "PATCH",
            self.path(res, namespace, name, subresource),
            params=params,
            body=patch,
            content_type=PATCH_TYPES[patch_type],
        )

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            options["preconditions"] = preconditions
        return await self._call("DELETE", self.path(res, namespace, name), body=options)

    async def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> AsyncIterator[WatchEvent]:
        """Events until the server ends the stream; a 410 (or any ERROR event) is raised as ApiError."""
        params = _params(
            watch="true",
            resourceVersion=resource_version,
            labelSelector=label_selector,
            fieldSelector=field_selector,
            timeoutSeconds=timeout_seconds,
            allowWatchBookmarks="true" if allow_bookmarks else None,
        )
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=REQUEST_TIMEOUT_S)
        url, headers = self.config.server + res.base(namespace), await self._with_token(None)
        async with self._http().get(url, params=params, headers=headers, timeout=timeout) as resp:
            self._check_unauthorized(resp.status)
            if resp.status >= 300:
                raise from_response(resp.status, await resp.read())
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                while (cut := buffer.find(b"\n")) >= 0:
                    line, buffer = buffer[:cut], buffer[cut + 1 :]
                    if line.strip():
                        yield decode_event(line, res)


def decode_event(line: bytes, res: Resource) -> WatchEvent:
    doc = orjson.loads(line)
    kind, obj = doc.get("type", ""), doc.get("object") or {}
    if kind == "ERROR":
        raise status_error(obj)
    obj.setdefault("apiVersion", res.api_version)
    obj.setdefault("kind", res.kind)
    return WatchEvent(kind, obj)


def _params(**values: Any) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None}
