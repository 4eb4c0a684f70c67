"""The HTTP application: one aiohttp app, one middleware, one dispatcher.

Request path through ``ApiApp``:

1. the middleware counts the request (metrics), authenticates it (client
   cert, bearer token, or anonymous; bad credentials are 401), switches to
   the impersonated user when ``Impersonate-*`` headers ask to
   (``apiserver.impersonation``, itself checked with the authorizer),
   authorizes it through the ``Authorizer`` seam, and turns every
   ``ApiError`` into its Status response (exact bytes, ``application/json``);
   any other exception is logged and answered 500 without a traceback; what
   admission noted for the request (``registry.request_notes``) becomes
   ``Warning`` headers and audit annotations, on success and refusal alike;
2. ``dispatch`` serves /version, health, /metrics, discovery, OpenAPI and the
   self reviews, and hands resource paths to :mod:`resource_handlers`.

Responses are JSON (orjson); request bodies over 3 MiB are 413; every
response carries an ``Audit-Id`` (the client's ``Audit-ID`` if it sent one, as
upstream).  With an ``Auditor`` the middleware also writes the request's
audit events (``apiserver.audit``): RequestReceived once the user is known,
ResponseComplete when the handler returns.  The plain-HTTP port (``--insecure-port``,
loopback only) treats a request without valid credentials as the privileged
``system:unsecured`` user, as kube-apiserver's old insecure port did —
kubectl never sends credentials over http.
"""

from __future__ import annotations

import datetime
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from skiff.api.selectors import parse_field_selector
from skiff.api.status import ApiError, internal_error, path_not_found, too_large, unauthorized
from skiff.apiserver import audit as audit_mod
from skiff.apiserver import (
    bodies,
    discovery,
    health,
    impersonation,
    pod_proxy,
    pod_subresources,
    resource_handlers,
    reviews,
)
from skiff.apiserver.auth import (
    AUTHENTICATED_GROUP,
    AllowAuthenticated,
    Attributes,
    Authenticator,
    Authorizer,
    UserInfo,
    forbidden_error,
    is_public_path,
)
from skiff.apiserver.metrics import MUTATING, ApiMetrics, labels_of
from skiff.apiserver.negotiation import (
    JSON,
    PROTOBUF,
    YAML,
    aggregated_discovery_content_type,
    aggregated_discovery_version,
    body_media_type,
)
from skiff.apiserver.openapi import (
    V2_PROTOBUF_CONTENT_TYPE,
    OpenApiV3,
    openapi_v3_response,
    v2_json,
    v2_protobuf,
)
from skiff.apiserver.request_info import RequestInfo, parse_resource_path
from skiff.apiserver.served import ServedResources
from skiff.apiserver.serviceaccount_tokens import (
    JWKS_PATH,
    OPENID_CONFIGURATION_PATH,
    ServiceAccountTokens,
    is_token_request,
)
from skiff.registry import request_notes
from skiff.registry.generic import GenericRegistry
from skiff.registry.request_user import CURRENT_USER
from skiff.registry.resource import Obj

log = logging.getLogger(__name__)

UNSECURED = UserInfo("system:unsecured", groups=("system:masters", AUTHENTICATED_GROUP))
OPENAPI_TITLE = "Kubernetes"

# Typed request keys: aiohttp warns (NotAppKeyWarning) on plain string keys.
_USER_KEY = web.RequestKey("skiff_user", UserInfo)
_INFO_KEY: web.RequestKey[RequestInfo | None] = web.RequestKey("skiff_request_info")
_AUDIT_ID_KEY = web.RequestKey("skiff_audit_id", str)
_audit_random = random.Random()
_AUDIT_LEVEL_KEY: web.RequestKey[tuple[audit_mod.Level, frozenset[str]]] = web.RequestKey("skiff_audit_level")


def _json(obj: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), headers={"Content-Type": content_type})


def _add_notes(
    response: web.StreamResponse, notes: request_notes.RequestNotes, record: audit_mod.AuditRecord | None
) -> None:
    """What admission noted: ``Warning`` headers (unless already streaming) and audit annotations."""
    if not response.prepared:
        for header in resource_handlers.warning_headers(notes.warnings):
            response.headers.add("Warning", header)
    if record is not None:
        for key, value in notes.audit_annotations.items():
            record.annotations.setdefault(key, value)


def error_response(err: ApiError) -> web.Response:
    response = web.Response(status=err.code, body=err.body(), headers={"Content-Type": "application/json"})
    for key, value in err.headers.items():
        response.headers[key] = value
    return response


@dataclass
class ApiApp:
    """Everything the HTTP layer serves from; ``build()`` makes the aiohttp Application."""

    served: ServedResources
    authenticator: Authenticator = field(default_factory=Authenticator)
    authorizer: Authorizer = field(default_factory=AllowAuthenticated)
    field_checker: bodies.FieldChecker = field(default_factory=bodies.ObjectMetaFieldChecker)
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    livez_checks: Mapping[str, health.Check] = field(default_factory=dict)
    readyz_checks: Mapping[str, health.Check] = field(default_factory=dict)
    #: host:port clients reach us at (APIVersions.serverAddressByClientCIDRs).
    server_address: str = ""
    #: How pods/log, exec, attach and portforward reach kubelets (binding and eviction need nothing).
    kubelet_dialer: pod_proxy.KubeletDialer = field(default_factory=pod_proxy.KubeletDialer)
    #: Serves serviceaccounts/token (TokenRequest); None answers it 501 like any unserved subresource.
    sa_tokens: ServiceAccountTokens | None = None
    #: Writes audit events (--audit-policy-file); None audits nothing.
    auditor: audit_mod.Auditor | None = None
    _cache: dict[Any, Any] = field(default_factory=dict)

    def build(self) -> web.Application:
        app = web.Application(client_max_size=bodies.MAX_REQUEST_BODY_BYTES, middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        app.on_response_prepare.append(_set_audit_id)
        return app

    # -- middleware ----------------------------------------------------------------------------
    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.monotonic()
        ri = parse_resource_path(request.method, request.path, request.query.get("watch"))
        request[_INFO_KEY] = ri
        request[_AUDIT_ID_KEY] = request.headers.get("Audit-ID") or new_audit_id()
        record = self._audit_record(request, ri) if self.auditor is not None else None
        labels = labels_of(ri, request.method)
        kind = "mutating" if ri is not None and ri.verb in MUTATING else "readOnly"
        long_running = ri is not None and ri.verb == "watch"
        m = self.metrics
        values = tuple(labels.values())
        m.child(m.inflight, kind).inc()
        if long_running:
            m.child(m.longrunning, *values).inc()
        code = 500
        response: web.StreamResponse | None = None
        notes = request_notes.begin()
        try:
            try:
                await self._authenticate_and_authorize(request, ri, record)
                response = await handler(request)
            except web.HTTPRequestEntityTooLarge:
                response = error_response(
                    too_large(f"Request entity too large: limit is {bodies.MAX_REQUEST_BODY_BYTES}")
                )
            except ApiError as err:
                response = error_response(err)
            except web.HTTPException as err:
                code = err.status
                raise
            except ConnectionResetError:
                raise
            except Exception as err:
                log.exception("%s %s failed", request.method, request.path_qs)
                response = error_response(internal_error(f"{type(err).__name__} while serving {request.method}"))
            _add_notes(response, notes, record)
            code = response.status
            return response
        finally:
            if record is not None:
                await self._audit_complete(request, record, code, response)
            m.child(m.inflight, kind).dec()
            if long_running:
                m.child(m.longrunning, *values).dec()
            else:
                m.child(m.latency, *values).observe(time.monotonic() - started)
            m.child(m.requests, *values, "apiserver", str(code)).inc()

    async def _authenticate_and_authorize(
        self, request: web.Request, ri: RequestInfo | None, record: audit_mod.AuditRecord | None = None
    ) -> None:
        authorization = request.headers.get("Authorization")
        if request.secure:
            peercert = request.transport.get_extra_info("peercert") if request.transport else None
            user = await self.authenticator.authenticate_request(peercert, authorization)
        else:
            user = await self.authenticator.authenticate_request(None, authorization) if authorization else UNSECURED
            user = user or UNSECURED
        if user is None:
            raise unauthorized()
        request[_USER_KEY] = user
        CURRENT_USER.set(user)
        if record is not None:
            self._audit_received(request, record, user)
        public = is_public_path(request.path)
        # Upstream's filter order: authentication, audit, impersonation, authorization.
        impersonated = impersonation.impersonate(user, request.headers, self.authorizer)
        if impersonated is not None:
            user = request[_USER_KEY] = impersonated
            CURRENT_USER.set(user)
            if record is not None:
                record.impersonated_user = user
        if public:
            _annotate_decision(record, True, "")
            return
        attributes = _attributes(request, ri)
        allowed, reason = self.authorizer.authorize(user, attributes)
        _annotate_decision(record, allowed, reason)
        if not allowed:
            raise forbidden_error(user, attributes, reason)

    # -- audit -------------------------------------------------------------------------------
    def _audit_record(self, request: web.Request, ri: RequestInfo | None) -> audit_mod.AuditRecord:
        forwarded = request.headers.get("X-Forwarded-For", "")
        ips = [ip.strip() for ip in forwarded.split(",") if ip.strip()]
        if request.remote and request.remote not in ips:
            ips.append(request.remote)
        return audit_mod.AuditRecord(
            audit_id=request[_AUDIT_ID_KEY],
            method=request.method,
            request_uri=request.path_qs,
            verb=ri.verb if ri is not None else _attributes(request, None).verb,
            path=request.path,
            info=ri,
            source_ips=tuple(ips),
            user_agent=request.headers.get("User-Agent", ""),
            received=datetime.datetime.now(datetime.UTC),
        )

    def _audit_received(self, request: web.Request, record: audit_mod.AuditRecord, user: UserInfo) -> None:
        assert self.auditor is not None
        record.user = user
        level, omit = self.auditor.level_of(record)
        request[_AUDIT_LEVEL_KEY] = (level, omit)
        if level != "None" and "RequestReceived" not in omit:
            now = datetime.datetime.now(datetime.UTC)
            self.auditor.emit(audit_mod.build_event(record, level, "RequestReceived", now))

    async def _audit_complete(
        self, request: web.Request, record: audit_mod.AuditRecord, code: int, response: web.StreamResponse | None
    ) -> None:
        assert self.auditor is not None
        level, omit = request.get(_AUDIT_LEVEL_KEY) or self.auditor.level_of(record)
        if level == "None" or "ResponseComplete" in omit:
            return
        request_object = response_object = status = None
        if isinstance(response, web.Response) and isinstance(response.body, bytes):
            # Only plain responses: streamed and upgraded ones (watch, exec) have no body to show.
            if level != "Metadata" and request.method in ("POST", "PUT", "PATCH") and request.body_exists:
                try:
                    request_object = _request_object(await request.read(), request.headers.get("Content-Type"))
                except (web.HTTPException, OSError):
                    request_object = None
            if "json" in (response.content_type or "") and (code >= 400 or level == "RequestResponse"):
                response_object = audit_mod.json_object(response.body)
                if code >= 400 and response_object is not None and response_object.get("kind") == "Status":
                    status = response_object
        now = datetime.datetime.now(datetime.UTC)
        event = audit_mod.build_event(
            record,
            level,
            "ResponseComplete",
            now,
            code=code,
            status=status,
            request_object=request_object,
            response_object=response_object,
        )
        self.auditor.emit(event)

    # -- dispatch ------------------------------------------------------------------------------
    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        ri: RequestInfo | None = request[_INFO_KEY]
        if ri is not None:
            if ri.verb == "create" and (ri.group, ri.resource) in reviews.REVIEWS and not ri.name:
                return await self._review(request, ri)
            if self.sa_tokens is not None and is_token_request(ri):
                return await self.sa_tokens.handle(request, ri, _subresource_admission(self.served, ri))
            if pod_subresources.is_routed_here(ri):
                return await pod_subresources.PodSubresources(self.served, self.kubelet_dialer).handle(request, ri)
            served = self.served.find(ri.group, ri.version, ri.resource)
            if served is None:
                raise path_not_found()
            call = resource_handlers.Call(request, ri, served, self.field_checker)
            return await resource_handlers.handle(call)
        if request.method not in ("GET", "HEAD"):
            raise path_not_found()
        if path == "/version":
            return _json(health.version_info())
        for endpoint in ("/healthz", "/livez", "/readyz"):
            if path == endpoint or path.startswith(endpoint + "/"):
                return await self._health(request, endpoint, path)
        if path == "/metrics":
            return web.Response(body=self.metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4"})
        if self.sa_tokens is not None and path == OPENID_CONFIGURATION_PATH:
            return _json(self.sa_tokens.openid_configuration())
        if self.sa_tokens is not None and path == JWKS_PATH:
            return _json(self.sa_tokens.jwks(), content_type="application/jwk-set+json")
        if path.startswith("/openapi/"):
            return self._openapi(request, path)
        return self._discovery(request, path)

    async def _health(self, request: web.Request, endpoint: str, path: str) -> web.Response:
        checks = self.readyz_checks if endpoint == "/readyz" else self.livez_checks
        only = path[len(endpoint) + 1 :]
        verbose = "verbose" in request.query
        status, text = await health.run_checks(
            endpoint.lstrip("/"), checks, only, verbose, request.query.getall("exclude", [])
        )
        return web.Response(status=status, text=text, content_type="text/plain")

    def _discovery(self, request: web.Request, path: str) -> web.Response:
        parts = [p for p in path.split("/") if p]
        accept = request.headers.get("Accept")
        if parts in (["api"], ["apis"]):
            agg = aggregated_discovery_version(accept)
            core = parts == ["api"]
            if agg is not None:
                wanted = agg
                doc = self._cached(
                    ("aggregated", core, wanted),
                    lambda: discovery.aggregated_discovery(self.served.infos(), core=core, version=wanted),
                )
                return _json(doc, content_type=aggregated_discovery_content_type(wanted))
            if core:
                return _json(discovery.api_versions(self.server_address))
            return _json(self._cached(("groups",), lambda: discovery.api_group_list(self.served.infos())))
        if (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            infos = self.served.in_group_version(group, version)
            if not infos:
                raise path_not_found()
            gv = f"{group}/{version}" if group else version
            return _json(self._cached(("resources", gv), lambda: discovery.api_resource_list(gv, infos)))
        if len(parts) == 2 and parts[0] == "apis":
            groups = discovery.api_group_list(self.served.infos())["groups"]
            match = next((g for g in groups if g["name"] == parts[1]), None)
            if match is None:
                raise path_not_found()
            return _json({"kind": "APIGroup", "apiVersion": "v1", **match})
        raise path_not_found()

    def _openapi(self, request: web.Request, path: str) -> web.Response:
        version = health.GIT_VERSION
        if path == "/openapi/v2":
            if "protobuf" in (request.headers.get("Accept") or ""):
                body = self._cached(("openapi-v2",), lambda: v2_protobuf(OPENAPI_TITLE, version, self.served.infos()))
                return web.Response(body=body, headers={"Content-Type": V2_PROTOBUF_CONTENT_TYPE})
            return _json(v2_json(OPENAPI_TITLE, version))
        v3: OpenApiV3 = self._cached(("openapi-v3",), lambda: OpenApiV3(OPENAPI_TITLE, version, self.served.infos()))
        if path == "/openapi/v3":
            return web.Response(body=v3.index, headers={"Content-Type": "application/json"})
        key = path.removeprefix("/openapi/v3/")
        document = v3.documents.get(key)
        if document is None:
            raise path_not_found()
        return openapi_v3_response(path, document, v3.hashes[key], request.query.get("hash"))

    def _cached(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        full = (self.served.generation, *key)
        if full not in self._cache:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[full] = make()
        return self._cache[full]

    async def _review(self, request: web.Request, ri: RequestInfo) -> web.Response:
        body = await request.read()
        bodies.check_size(body)
        obj: dict[str, Any] = {}
        if body.strip():
            obj, _ = bodies.decode_object(body, body_media_type(request.headers.get("Content-Type")))
        user: UserInfo = request[_USER_KEY]
        answer = await reviews.review(
            ri.resource, ri.version, ri.namespace, obj, user, self.authenticator, self.authorizer
        )
        return _json(answer, 201)


def _request_object(body: bytes, content_type: str | None) -> dict[str, Any] | None:
    """The body as the audit event's requestObject: an object decoded from JSON, YAML or protobuf.

    Patches (their own media types) are logged when they are JSON objects, as upstream logs the patch.
    """
    media = body_media_type(content_type)
    if media not in (JSON, YAML, "application/x-yaml", "text/yaml", PROTOBUF):
        return audit_mod.json_object(body)
    try:
        obj, _ = bodies.decode_object(body, media)
    except (ApiError, ValueError):
        return None
    return obj


async def _set_audit_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, streamed ones too, names its audit ID (upstream's ``Audit-Id`` header)."""
    response.headers.setdefault("Audit-Id", request.get(_AUDIT_ID_KEY) or new_audit_id())


def new_audit_id() -> str:
    """A random (version 4) UUID naming one request.

    It needs to be unique, not unguessable, so it comes from the process's
    Mersenne Twister (seeded from the OS once) instead of ``uuid.uuid4()``,
    whose ``os.urandom`` call per request showed up at ~3% of the API server's
    CPU under load.
    """
    return str(uuid.UUID(int=_audit_random.getrandbits(128), version=4))


def _annotate_decision(record: audit_mod.AuditRecord | None, allowed: bool, reason: str) -> None:
    """The annotations upstream's authorization filter adds to the audit event."""
    if record is None:
        return
    record.annotations["authorization.k8s.io/decision"] = "allow" if allowed else "forbid"
    record.annotations["authorization.k8s.io/reason"] = reason


def _subresource_admission(served: ServedResources, ri: RequestInfo) -> Callable[[Obj], Awaitable[None]] | None:
    """The admission chain for a create on ``ri``'s subresource, served outside the generic registry."""
    found = served.find(ri.group, ri.version, ri.resource)
    registry = found.registry if found is not None else None
    if not isinstance(registry, GenericRegistry):
        return None

    async def admit(body: Obj) -> None:
        await registry.admit_subresource_create(ri.namespace, ri.name, body, ri.subresource)

    return admit


def _attributes(request: web.Request, ri: RequestInfo | None) -> Attributes:
    if ri is None:
        verb = {"GET": "get", "HEAD": "get", "POST": "post", "PUT": "put", "PATCH": "patch", "DELETE": "delete"}
        return Attributes(verb=verb.get(request.method, request.method.lower()), path=request.path)
    return Attributes(
        verb=ri.verb,
        path=request.path,
        resource_request=True,
        namespace=ri.namespace,
        api_group=ri.group,
        api_version=ri.version,
        resource=ri.resource,
        subresource=ri.subresource,
        name=ri.name or (selected_name(request.query.get("fieldSelector")) if ri.verb in ("list", "watch") else ""),
    )


def selected_name(field_selector: str | None) -> str:
    """The one name a ``metadata.name=`` field selector pins, as upstream's RequestInfo names a list or
    watch of a single object (so RBAC resourceNames and the Node authorizer can allow it); "" otherwise."""
    if not field_selector:
        return ""
    try:
        name = parse_field_selector(field_selector).exact_match("metadata.name") or ""
    except ApiError:
        return ""  # the list itself answers the bad selector
    # Only a name that could be a path segment (path.IsValidPathSegmentName).
    return "" if name in (".", "..") or "/" in name or "%" in name else name
