"""Handlers of resource requests: one code path for every resource, namespaced or not.

``handle(request, ri, served)`` checks the request against the resource row
(scope, verbs, subresources), decodes the body, calls the registry and shapes
the answer (object, Table, PartialObjectMetadata), as
k8s.io/apiserver endpoints/handlers does for every resource alike:

* get → 200 object; list → 200 ``<Kind>List``; watch → chunked stream;
* create (POST) → 201; update (PUT) → 200, or 201 when it created;
* patch → 200, or 201 when server-side apply created;
* delete → 200 with the object while finalizers or a grace period keep it,
  else 200 ``Status{Success}``, or the deleted object for the resources whose
  upstream store sets ``ReturnDeletedObject``; deletecollection → 200
  ``<Kind>List``;
* ``status`` and ``scale`` subresources → the registry's subresource writes;
  pods/binding, eviction, log, exec, attach and portforward never get here
  (:mod:`pod_subresources` serves them); pods/proxy → 501 until it is served.

Everything raises ApiError; the app turns it into the Status response.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from skiff.api.status import ApiError, bad_request, method_not_allowed, path_not_found, success, too_large
from skiff.apiserver import bodies, field_validation, query, scale, tables
from skiff.apiserver.field_managers import force_requested, write_manager
from skiff.apiserver.negotiation import (
    APPLY_PATCH,
    PATCH_TYPES,
    Shape,
    body_media_type,
    resource_shape,
)
from skiff.apiserver.patching import Mutate, build_mutate, supported_patch_types, unsupported_patch_type
from skiff.apiserver.request_info import RequestInfo
from skiff.apiserver.served import Served
from skiff.apiserver.watch_stream import EventObjectTransform, stream
from skiff.registry import request_notes
from skiff.registry.managed_fields import managing
from skiff.registry.metadata import utc_now
from skiff.registry.resource import Obj, ResourceInfo
from skiff.store import errors as store_errors

#: Node-agent subresources nothing serves yet (the others are skiff.apiserver.pod_subresources').
NODE_AGENT_SUBRESOURCES = ("proxy",)


def not_implemented(message: str) -> ApiError:
    """501: the API knows this request but nothing serves it yet."""
    return ApiError(501, "NotImplemented", message)


@dataclass
class Call:
    """One resource request in flight."""

    request: web.Request
    ri: RequestInfo
    served: Served
    field_checker: bodies.FieldChecker
    warnings: list[str] = field(default_factory=list)

    @property
    def info(self) -> ResourceInfo:
        return self.served.info

    @property
    def namespace(self) -> str:
        return self.ri.namespace if self.info.namespaced else ""

    def respond(self, obj: Any, status: int = 200) -> web.Response:
        headers = {"Content-Type": "application/json"}
        for text in self.warnings:  # the HTTP layer writes them with admission's, under one cap
            request_notes.add_warning(text)
        return web.Response(status=status, body=orjson.dumps(obj), headers=headers)

    def dry_run(self) -> bool:
        return query.dry_run(self.request.query.getall("dryRun", []))


def warning_header(text: str) -> str:
    """A ``Warning: 299 - "text"`` header value (RFC 7234 warn-code 299, as kube-apiserver sends).

    Control characters (an unknown field's name may hold any) become spaces: Go's server does that to CR
    and LF, and aiohttp refuses to write a header with any of them — it would drop the connection, after
    the write succeeded, without an answer.
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').translate(_CONTROL_TO_SPACE)
    return f'299 - "{escaped}"'


_CONTROL_TO_SPACE = {c: " " for c in (*range(0x20), 0x7F) if c != 0x09}

#: kube-apiserver's bounds on one answer's warnings (k8s.io/apiserver's warning recorder), in characters.
WARNINGS_TOTAL_CHARS = 4096
WARNING_ITEM_CHARS = 256


def warning_headers(texts: Sequence[str]) -> list[str]:
    """``Warning`` header values for one answer, bounded as kube-apiserver bounds them.

    Warnings are written whole while they total at most 4,096 characters.  The first one that would go
    past that turns truncation on: every warning so far is rewritten cut to 256 characters, later ones are
    cut too, and once 4,096 characters are written the rest are dropped.  Without a bound, a request whose
    admission warns per item (a pod with thousands of containers) would grow a header past what clients read.
    """
    headers: list[str] = []
    written, truncating = 0, False
    for index, text in enumerate(texts):
        if truncating:
            if written >= WARNINGS_TOTAL_CHARS:
                break
            text = text[:WARNING_ITEM_CHARS]
        if truncating or written + len(text) <= WARNINGS_TOTAL_CHARS:
            headers.append(warning_header(text))
            written += len(text)
            continue
        truncating = True
        cut = [t[:WARNING_ITEM_CHARS] for t in texts[: index + 1]]
        headers = [warning_header(t) for t in cut]
        written = sum(map(len, cut))
    return headers


async def handle(call: Call) -> web.StreamResponse:
    try:
        return await _dispatch(call)
    except store_errors.TooLarge as err:
        # The stored object is over the Store's request limit (etcd's 1.5 MiB).  kube-apiserver
        # passes etcd's error on as a reason-less 500 (kubernetes#112152 is open about it); we
        # answer 413, which says what is wrong and that retrying will not help.
        raise too_large(f"Request entity too large: {err.text}") from None


async def _dispatch(call: Call) -> web.StreamResponse:
    check_route(call.ri, call.info)
    sub = call.ri.subresource
    if sub in NODE_AGENT_SUBRESOURCES:
        raise not_implemented(
            f"{call.info.plural}/{sub} is not served yet (the kubelet serves log, exec, attach and portforward)"
        )
    verb = call.ri.verb
    if verb == "get":
        return await get(call)
    if verb == "list":
        return await list_(call)
    if verb == "watch":
        return await watch(call)
    if verb == "create":
        return await create(call)
    if verb == "update":
        return await update(call)
    if verb == "patch":
        return await patch(call)
    if verb == "delete":
        return await delete(call)
    return await delete_collection(call)


def check_route(ri: RequestInfo, info: ResourceInfo) -> None:
    """Scope, verb and subresource checks (what upstream's route table encodes)."""
    if ri.namespace and not info.namespaced:
        raise path_not_found()
    if ri.subresource and ri.subresource not in info.subresources:
        raise path_not_found()
    if info.namespaced and not ri.namespace and ri.verb not in ("list", "watch"):
        # /api/v1/pods serves only list and watch across namespaces.
        raise method_not_allowed(ri.verb, info.plural)
    if ri.verb == "create" and ri.name and not ri.subresource:
        raise method_not_allowed("create", info.plural)
    if not ri.subresource and ri.verb not in info.verbs:
        raise method_not_allowed(ri.verb, info.plural)
    if ri.subresource in ("status", "scale", "approval") and ri.verb not in ("get", "update", "patch"):
        raise method_not_allowed(ri.verb, f"{info.plural}/{ri.subresource}")
    if ri.extra:
        raise path_not_found()


# -- reads ---------------------------------------------------------------------------------------


async def get(call: Call) -> web.StreamResponse:
    obj = await call.served.registry.get(call.namespace, call.ri.name)
    if call.ri.subresource == "scale":
        return call.respond(scale.to_scale(call.info, obj))
    shape = resource_shape(call.request.headers.get("Accept"))
    now = utc_now()
    if shape.shape is Shape.TABLE:
        meta = {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")}
        include = tables.include_policy(call.request.query.get("includeObject"))
        return call.respond(tables.table(call.info, [obj], meta, now, include=include, meta_version=shape.meta_version))
    if shape.shape is Shape.PARTIAL_METADATA:
        return call.respond(tables.partial_object_metadata(obj, shape.meta_version))
    return call.respond(obj)


async def list_(call: Call) -> web.StreamResponse:
    q = query.list_query(call.request.query)
    result = await call.served.registry.list(call.namespace, q)
    shape = resource_shape(call.request.headers.get("Accept"))
    if shape.shape is Shape.TABLE:
        include = tables.include_policy(call.request.query.get("includeObject"))
        return call.respond(
            tables.table(
                call.info,
                result.get("items") or [],
                result.get("metadata") or {},
                utc_now(),
                include=include,
                meta_version=shape.meta_version,
            )
        )
    if shape.shape is Shape.PARTIAL_METADATA:
        return call.respond(
            tables.partial_object_metadata_list(
                result.get("items") or [], result.get("metadata") or {}, shape.meta_version
            )
        )
    return call.respond(result)


async def watch(call: Call) -> web.StreamResponse:
    q = query.list_query(call.request.query, name=call.ri.name)
    # Bad options raise here, before the stream starts: a plain error response, as upstream.
    shape = resource_shape(call.request.headers.get("Accept"))
    # Lines written as they are may come several to an item (fewer, larger writes); transformed ones one by one.
    lines = await call.served.registry.watch(call.namespace, q, coalesce=shape.shape is Shape.OBJECT)
    transform: EventObjectTransform | None = None
    if shape.shape is Shape.TABLE:
        include = tables.include_policy(call.request.query.get("includeObject"))
        info, version = call.info, shape.meta_version

        def to_table(obj: Obj, first: bool) -> Obj:
            meta = {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")}
            return tables.table(info, [obj], meta, utc_now(), include=include, meta_version=version, headers=first)

        transform = EventObjectTransform(to_table)
    elif shape.shape is Shape.PARTIAL_METADATA:
        version = shape.meta_version
        transform = EventObjectTransform(lambda obj, _first: tables.partial_object_metadata(obj, version))
    return await stream(call.request, lines, q.timeout_seconds, transform)


# -- writes --------------------------------------------------------------------------------------


async def read_object(call: Call) -> Obj:
    """The request body as an object of this resource, field validation applied."""
    body = await call.request.read()
    bodies.check_size(body)
    directive = bodies.field_validation(call.request.query.get("fieldValidation"))
    media = body_media_type(call.request.headers.get("Content-Type"))
    if media in PATCH_TYPES:
        raise unsupported_patch_type(
            media, ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
        )
    find_duplicates = directive in (bodies.STRICT, bodies.WARN)
    obj, duplicates = await bodies.decode_off_loop(
        body, bodies.decode_object, body, media, find_duplicates=find_duplicates
    )
    check_type_meta(call, obj)
    unknown = call.field_checker.unknown_fields(call.info, obj)  # and drops them, as upstream's decoding does
    api_version, kind = _expected_type(call)
    field_validation.enforce_on_decode(
        directive, bodies.field_findings(unknown, duplicates), call.warnings, api_version.rpartition("/")[2], kind
    )
    return obj


def check_type_meta(call: Call, obj: Obj) -> None:
    """apiVersion and kind, when given, must be the endpoint's (create.go / update.go)."""
    expected_version, expected_kind = _expected_type(call)
    version, kind = obj.get("apiVersion"), obj.get("kind")
    if version and version != expected_version:
        raise bad_request(
            f"the API version in the data ({version}) does not match the expected API version ({expected_version})"
        )
    if kind and kind != expected_kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({expected_kind})")


def _expected_type(call: Call) -> tuple[str, str]:
    if call.ri.subresource == "scale":
        return "autoscaling/v1", "Scale"
    if call.ri.subresource in ("binding", "eviction"):
        from skiff.apiserver.discovery import subresource_kind

        group, version, kind = subresource_kind(call.info, call.ri.subresource)
        return (f"{group}/{version}" if group else version), kind
    return call.info.group_version, call.info.kind


async def create(call: Call) -> web.StreamResponse:
    if call.ri.subresource:
        raise not_implemented(f"POST {call.info.plural}/{call.ri.subresource} is not served yet")
    obj = await read_object(call)
    with managing(write_manager(call.request, "create", "")):
        created = await call.served.registry.create(call.namespace, obj, dry_run=call.dry_run())
    return call.respond(created, 201)


async def update(call: Call) -> web.StreamResponse:
    obj = await read_object(call)
    sub = call.ri.subresource
    with managing(write_manager(call.request, "update", sub)):
        return await _update(call, obj, sub)


async def _update(call: Call, obj: Obj, sub: str) -> web.StreamResponse:
    if sub == "scale":
        # A Scale write is a replicas-only mutation of the parent, under the same CAS as a patch.
        mutate = scale.update_through_scale(call.info, obj, call.ri.name)
        result, _ = await call.served.registry.patch(call.namespace, call.ri.name, mutate, dry_run=call.dry_run())
        return call.respond(scale.to_scale(call.info, result))
    result, created = await call.served.registry.update(
        call.namespace, call.ri.name, obj, subresource=sub, dry_run=call.dry_run()
    )
    return call.respond(result, 201 if created else 200)


async def patch(call: Call) -> web.StreamResponse:
    body = await call.request.read()
    bodies.check_size(body)
    content_type = call.request.headers.get("Content-Type")
    patch_type = body_media_type(content_type) if content_type else ""
    if patch_type not in PATCH_TYPES:
        raise unsupported_patch_type(patch_type, supported_patch_types(call.info))
    directive = bodies.field_validation(call.request.query.get("fieldValidation"))
    field_manager = call.request.query.get("fieldManager", "")
    mutation = await bodies.decode_off_loop(
        body,
        build_mutate,
        call.info,
        patch_type,
        body,
        field_manager,
        call.ri.name,
        force=force_requested(call.request),
        subresource=call.ri.subresource,
    )
    with managing(write_manager(call.request, "patch", call.ri.subresource, patch_type)):
        return await _patch(call, patch_type, body, directive, mutation)


async def _patch(call: Call, patch_type: str, body: bytes, directive: str, mutation: Mutate) -> web.StreamResponse:
    checked = field_validation.CheckedPatch(
        mutation,
        call.field_checker,
        call.info,
        directive,
        patch_type,
        field_validation.patch_body_duplicates(directive, patch_type, body),
        call.namespace,
        call.ri.name,
    )
    mutate: Mutate = checked
    sub = call.ri.subresource
    if sub == "scale":
        mutate = scale.patch_through_scale(call.info, mutate)
        result, _ = await call.served.registry.patch(call.namespace, call.ri.name, mutate, dry_run=call.dry_run())
        call.warnings.extend(checked.warnings())
        return call.respond(scale.to_scale(call.info, result))
    result, created = await call.served.registry.patch(
        call.namespace,
        call.ri.name,
        mutate,
        subresource=sub,
        dry_run=call.dry_run(),
        create_if_missing=patch_type == APPLY_PATCH and not sub,
    )
    call.warnings.extend(checked.warnings())
    return call.respond(result, 201 if created else 200)


async def read_delete_options(call: Call) -> Obj:
    body = await call.request.read()
    bodies.check_size(body)
    options_body: Obj | None = None
    if body.strip():
        media = body_media_type(call.request.headers.get("Content-Type"))
        options_body, _ = bodies.decode_object(body, media)
    return query.delete_options(call.request.query, options_body)


#: (group, resource) whose upstream registry store sets ReturnDeletedObject: a delete that
#: removed the object answers with its last state instead of Status{Success}.  Custom
#: resources and every other built-in answer with the Status.
RETURNS_DELETED_OBJECT = frozenset(
    {
        ("", "namespaces"),
        ("", "pods"),
        ("", "podtemplates"),
        ("", "services"),
        ("", "serviceaccounts"),
        ("storage.k8s.io", "storageclasses"),
    }
)


async def delete(call: Call) -> web.StreamResponse:
    options = await read_delete_options(call)
    obj, deleted_now = await call.served.registry.delete(call.namespace, call.ri.name, options, dry_run=call.dry_run())
    if not deleted_now or (call.info.group, call.info.plural) in RETURNS_DELETED_OBJECT:
        return call.respond(obj)
    meta = obj.get("metadata") or {}
    return call.respond(success(call.ri.name, call.info.group, call.info.plural, str(meta.get("uid", ""))))


async def delete_collection(call: Call) -> web.StreamResponse:
    options = await read_delete_options(call)
    q = query.list_query(call.request.query)
    deleted = await call.served.registry.delete_collection(call.namespace, q, options, dry_run=call.dry_run())
    return call.respond(deleted)
