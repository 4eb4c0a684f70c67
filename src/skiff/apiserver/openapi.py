"""OpenAPI documents: v3 per group/version with real schemas, v2 as protobuf for older kubectl.

* ``/openapi/v3`` — the index ``{"paths": {"api/v1": {"serverRelativeURL":
  "/openapi/v3/api/v1?hash=H"}, ...}}`` where H is the uppercase SHA-512 of
  the document, as kube-apiserver (kube-openapi handler3) does.
* ``/openapi/v3/<gv>`` — ``openapi: 3.0.0`` with, for every resource of the
  group/version, upstream's operations (list/create/deletecollection on the
  collection, get/replace/patch/delete on the item, the ``status`` and
  ``scale`` subresources, the all-namespaces list), each with
  ``x-kubernetes-action`` and ``x-kubernetes-group-version-kind``, the query
  parameters upstream declares (``dryRun``, ``fieldManager``,
  ``fieldValidation``, ``force``, list and delete options), request and
  response bodies ``$ref``-ing ``components.schemas``; the components are
  every schema reachable from those kinds (:mod:`skiff.registry.schemas`).
  kubectl ≥ 1.29 looks for the PATCH operation's ``fieldValidation`` before
  sending ``fieldValidation=Strict`` (cli-runtime query_param_verifier_v3.go);
  ``kubectl explain`` renders the component schemas.
  The PATCH request body deliberately does *not* list
  strategic-merge-patch: our schemas lack ``x-kubernetes-patch-strategy`` and
  ``-merge-key``, and kubectl would compute client-side apply patches from
  them if it were listed (apply/patcher.go ``gvkSupportsPatchOpenAPIV3``);
  without it kubectl uses its compiled-in types, correct for built-in kinds.
* ``/openapi/v2`` — gnostic's ``openapi_v2.Document`` protobuf (client-go
  reads v2 only as protobuf).  It holds ``swagger``, ``info`` and, per kind, a
  path whose PATCH operation carries ``x-kubernetes-group-version-kind`` and
  the ``fieldValidation`` query parameter: kubectl 1.27/1.28 check exactly that
  in v2 (query_param_verifier.go) before sending ``fieldValidation=Strict``.
  It has no ``definitions``: kubectl would otherwise take patch metadata (and
  client-side validation) from them, and ours carry no patch strategies.
  The Content-Type uses dots (``...spec.v2.v1.0+protobuf``): Go's mime parser
  rejects the ``@`` form (compat doc §2.5).

Custom resources (apiextensions-apiserver controller/openapi/builder): each
served CRD version's operations are in its GV's document like a built-in's
(answering JSON and YAML only: no protobuf for CRs), and its structural schema
is a component named as upstream names CRD definitions — kube-openapi's
ToRESTFriendlyName of ``<group>/<version>.<Kind>``, the group's labels
reversed: ``com.example.stable.v1.CronTab`` (and ``...CronTabList``).  As
upstream's ``buildKubeNative``, the schema gets ``metadata`` (a ``$ref`` to
ObjectMeta), ``apiVersion`` and ``kind`` (TypeMeta's), the three resource
fields at every ``x-kubernetes-embedded-resource`` too, int-or-string nodes
unfolded to their ``anyOf`` (structural ``Unfold``), and
``x-kubernetes-group-version-kind``; a version without a schema is a bare
``type: object``.  ``kubectl explain <plural>.spec`` renders them.  The list
kind is assumed ``<Kind>List`` (the resource table does not carry listKind).
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any

import orjson
from aiohttp import web

from skiff.registry.custom.strategy import CustomResourceStrategy
from skiff.registry.resource import ResourceInfo
from skiff.registry.schemas import META, KindSchemas, builtin_schemas, ref

V2_PROTOBUF_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_MEDIA_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
_CR_MEDIA_TYPES = ("application/json", "application/yaml")
_PATCH_BODY_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


def gv_path(group: str, version: str) -> str:
    """The key of a group/version in the v3 index: ``api/v1`` or ``apis/apps/v1``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


# -- parameters (upstream's names and descriptions, abridged) --------------------------------------


def _query(name: str, description: str, type_: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": True}}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "description": description,
        "required": True,
        "schema": {"type": "string", "uniqueItems": True},
    }


DRY_RUN = _query(
    "dryRun",
    "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun "
    "directive will result in an error response and no further processing of the request. Valid values are: "
    "- All: all dry run stages will be processed",
)
FIELD_MANAGER = _query(
    "fieldManager",
    "fieldManager is a name associated with the actor or entity that is making these changes. The value must be "
    "less than or 128 characters long, and only contain printable characters.",
)
FIELD_VALIDATION = _query(
    "fieldValidation",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing "
    "unknown or duplicate fields. Valid values are: - Ignore: ignores unknown/duplicate fields. - Warn: responds "
    "with a warning for each unknown/duplicate field, but successfully serves the request (the default). - Strict: "
    "fails the request on unknown/duplicate fields.",
)
FORCE = _query(
    "force",
    'Force is going to "force" Apply requests. It means user will re-acquire conflicting fields owned by other '
    "people. Force flag must be unset for non-apply patch requests.",
    "boolean",
)
PRETTY = _query("pretty", "If 'true', then the output is pretty printed.")
_LIST_PARAMS = [
    _query("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type BOOKMARK.", "boolean"),
    _query("continue", "The continue option should be set when retrieving more results from the server."),
    _query("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _query("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _query("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
    _query(
        "resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from."
    ),
    _query("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
    _query("sendInitialEvents", "`sendInitialEvents=true` may be set together with `watch=true`.", "boolean"),
    _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _query("watch", "Watch for changes to the described resources and return them as a stream.", "boolean"),
]
_DELETE_PARAMS = [
    _query("gracePeriodSeconds", "The duration in seconds before the object should be deleted.", "integer"),
    _query("orphanDependents", "Deprecated: please use the PropagationPolicy.", "boolean"),
    _query("propagationPolicy", "Whether and how garbage collection will be performed."),
    DRY_RUN,
]


# -- operations -------------------------------------------------------------------------------------


def _camel_group(group: str) -> str:
    if not group:
        return "Core"
    return "".join(part.capitalize() for part in group.removesuffix(".k8s.io").split("."))


def _content(schema: dict[str, Any], media_types: Sequence[str]) -> dict[str, Any]:
    return {t: {"schema": schema} for t in media_types}


class _GvDocument:
    """Builds one group/version document."""

    def __init__(self, schemas: KindSchemas) -> None:
        self.schemas = schemas
        self.paths: dict[str, Any] = {}
        self.roots: list[str] = [f"{META}.Status", f"{META}.DeleteOptions", f"{META}.Patch"]
        self.media_types: Sequence[str] = _MEDIA_TYPES

    def responses(self, schema: dict[str, Any], *codes: str) -> dict[str, Any]:
        names = {"200": "OK", "201": "Created", "202": "Accepted"}
        return {code: {"description": names[code], "content": _content(schema, self.media_types)} for code in codes}

    def kind_ref(self, group: str, version: str, kind: str) -> dict[str, Any]:
        name = self.schemas.for_kind(group, version, kind)
        if name is None:
            return {"type": "object"}
        self.roots.append(name)
        return ref(name)

    def add(self, info: ResourceInfo) -> None:
        self.media_types = _CR_MEDIA_TYPES if isinstance(info.strategy, CustomResourceStrategy) else _MEDIA_TYPES
        prefix = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
        scope = "/namespaces/{namespace}" if info.namespaced else ""
        collection = f"{prefix}{scope}/{info.plural}"
        gvk = {"group": info.group, "version": info.version, "kind": info.kind}
        obj = self.kind_ref(info.group, info.version, info.kind)
        obj_list = self.kind_ref(info.group, info.version, info.kind + "List")
        suffix = f"{_camel_group(info.group)}{info.version.capitalize()}{'Namespaced' if info.namespaced else ''}"
        common = [_path_param("namespace", "object name and auth scope, such as for teams and projects")]
        scope_params = common if info.namespaced else []
        name_param = _path_param("name", f"name of the {info.kind}")

        def op(verb: str, action: str, description: str, **extra: Any) -> dict[str, Any]:
            return {
                "description": description,
                "operationId": f"{verb}{suffix}{info.kind}",
                "tags": [f"{_camel_group(info.group).lower()}_{info.version}"],
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                **extra,
            }

        coll: dict[str, Any] = {"parameters": [*scope_params, PRETTY]}
        if "list" in info.verbs:
            coll["get"] = op(
                "list", "list", f"list or watch objects of kind {info.kind}",
                parameters=_LIST_PARAMS, responses=self.responses(obj_list, "200"),
            )  # fmt: skip
        if "create" in info.verbs:
            coll["post"] = op(
                "create", "post", f"create a {info.kind}",
                parameters=[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
                requestBody={"content": {"application/json": {"schema": obj}}, "required": True},
                responses=self.responses(obj, "200", "201", "202"),
            )  # fmt: skip
        if "deletecollection" in info.verbs:
            coll["delete"] = op(
                "deleteCollection", "deletecollection", f"delete collection of {info.kind}",
                parameters=[*_DELETE_PARAMS, *_LIST_PARAMS], responses=self.responses(ref(f"{META}.Status"), "200"),
            )  # fmt: skip
        if len(coll) > 1:
            self.paths[collection] = coll
        item: dict[str, Any] = {"parameters": [name_param, *scope_params, PRETTY]}
        if "get" in info.verbs:
            item["get"] = op("read", "get", f"read the specified {info.kind}", responses=self.responses(obj, "200"))
        if "update" in info.verbs:
            item["put"] = self._put(op, "replace", info.kind, obj)
        if "patch" in info.verbs:
            item["patch"] = self._patch(op, "patch", info.kind, obj)
        if "delete" in info.verbs:
            item["delete"] = op(
                "delete", "delete", f"delete a {info.kind}", parameters=_DELETE_PARAMS,
                requestBody={"content": {"application/json": {"schema": ref(f"{META}.DeleteOptions")}}},
                responses=self.responses(ref(f"{META}.Status"), "200", "202"),
            )  # fmt: skip
        if len(item) > 1:
            self.paths[f"{collection}/{{name}}"] = item
        if info.namespaced and "list" in info.verbs:
            self.paths[f"{prefix}/{info.plural}"] = {
                "parameters": [PRETTY],
                "get": {
                    **op("list", "list", f"list or watch objects of kind {info.kind}"),
                    "operationId": f"list{suffix.removesuffix('Namespaced')}{info.kind}ForAllNamespaces",
                    "parameters": _LIST_PARAMS,
                    "responses": self.responses(obj_list, "200"),
                },
            }
        for sub in ("status", "scale"):
            if sub not in info.subresources:
                continue
            body = obj if sub == "status" else self.kind_ref("autoscaling", "v1", "Scale")
            name = f"{info.kind}{sub.capitalize()}"
            self.paths[f"{collection}/{{name}}/{sub}"] = {
                "parameters": [name_param, *scope_params, PRETTY],
                "get": op(
                    "read", "get", f"read {sub} of the specified {info.kind}", responses=self.responses(body, "200")
                )
                | {"operationId": f"read{suffix}{name}"},
                "put": self._put(op, "replace", info.kind, body) | {"operationId": f"replace{suffix}{name}"},
                "patch": self._patch(op, "patch", info.kind, body) | {"operationId": f"patch{suffix}{name}"},
            }

    def _put(self, op: Any, verb: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = op(
            verb, "put", f"replace the specified {kind}",
            parameters=[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION],
            requestBody={"content": {"application/json": {"schema": body}}, "required": True},
            responses=self.responses(body, "200", "201"),
        )  # fmt: skip
        return result

    def _patch(self, op: Any, verb: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = op(
            verb, "patch", f"partially update the specified {kind}",
            parameters=[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE],
            requestBody={"content": {t: {"schema": ref(f"{META}.Patch")} for t in _PATCH_BODY_TYPES}, "required": True},
            responses=self.responses(body, "200", "201"),
        )  # fmt: skip
        return result


# -- custom resources ------------------------------------------------------------------------------

_CONVENTIONS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
#: builder.go's descriptions of an embedded resource's type fields (not TypeMeta's own wording).
_EMBEDDED_API_VERSION = (
    f"apiVersion defines the versioned schema of this representation of an object. More info: {_CONVENTIONS}#resources"
)
_EMBEDDED_KIND = (
    f"kind is a string value representing the type of this object. In CamelCase. More info: {_CONVENTIONS}#types-kinds"
)
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def crd_definition_name(group: str, version: str, kind: str) -> str:
    """``com.example.stable.v1.CronTab``: kube-openapi's ToRESTFriendlyName of ``<group>/<version>.<Kind>``."""
    return ".".join([*reversed(group.split(".")), version, kind])


def _resource_fields(schemas: KindSchemas) -> tuple[dict[str, Any], dict[str, Any]]:
    """(an object's, a list's) ``apiVersion``/``kind``/``metadata`` properties, as the built-in kinds have them."""
    pod, pod_list = schemas.for_kind("", "v1", "Pod"), schemas.for_kind("", "v1", "PodList")
    if pod is None or pod_list is None:
        schemas = builtin_schemas()
        pod, pod_list = schemas.for_kind("", "v1", "Pod"), schemas.for_kind("", "v1", "PodList")
    assert pod is not None and pod_list is not None
    fields = ("apiVersion", "kind", "metadata")
    obj_props, list_props = schemas.components[pod]["properties"], schemas.components[pod_list]["properties"]
    return {f: obj_props[f] for f in fields}, {f: list_props[f] for f in fields}


def _unfold(node: Any, metadata: dict[str, Any]) -> None:
    """In place: int-or-string nodes get their ``anyOf``; embedded resources their type fields and metadata."""
    if not isinstance(node, dict):
        return
    for child in (node.get("properties") or {}).values():
        _unfold(child, metadata)
    for key in ("items", "additionalProperties"):
        _unfold(node.get(key), metadata)
    if node.get("x-kubernetes-int-or-string") is True and node.get("anyOf") != _INT_OR_STRING_ANY_OF:
        if "anyOf" in node:
            node["allOf"] = [{"anyOf": copy.deepcopy(_INT_OR_STRING_ANY_OF)}, *node.get("allOf", [])]
        else:
            node["anyOf"] = copy.deepcopy(_INT_OR_STRING_ANY_OF)
    if node.get("x-kubernetes-embedded-resource") is True:
        props = node.setdefault("properties", {})
        props["apiVersion"] = {"description": _EMBEDDED_API_VERSION, "type": "string"}
        props["kind"] = {"description": _EMBEDDED_KIND, "type": "string"}
        props["metadata"] = dict(metadata)
        required = node.setdefault("required", [])
        required.extend(f for f in ("kind", "apiVersion") if f not in required)


def custom_resource_schema(info: ResourceInfo, schemas: KindSchemas) -> dict[str, Any] | None:
    """The component of a CR's kind (see the module docstring); None when ``info`` is not a custom resource."""
    strategy = info.strategy
    if not isinstance(strategy, CustomResourceStrategy):
        return None
    fields, _ = _resource_fields(schemas)
    if strategy.rules.schema is None:
        out: dict[str, Any] = {"type": "object"}
    else:
        out = copy.deepcopy(strategy.rules.schema)
        _unfold(out, fields["metadata"])
        out.setdefault("properties", {}).update(copy.deepcopy(fields))
    out["x-kubernetes-group-version-kind"] = [{"group": info.group, "kind": info.kind, "version": info.version}]
    return out


def custom_resource_list_schema(info: ResourceInfo, schemas: KindSchemas) -> dict[str, Any]:
    """builder.go's ``buildListSchema``: items of the kind, ListMeta, TypeMeta."""
    _, list_fields = _resource_fields(schemas)
    item = crd_definition_name(info.group, info.version, info.kind)
    return {
        "description": f"{info.kind}List is a list of {info.kind}",
        "required": ["items"],
        "properties": {
            "items": {
                "description": f"List of {info.plural}. More info: {_CONVENTIONS}",
                "type": "array",
                "items": ref(item),
            },
            **copy.deepcopy(list_fields),
        },
        "x-kubernetes-group-version-kind": [{"group": info.group, "kind": f"{info.kind}List", "version": info.version}],
    }


def with_custom_resources(schemas: KindSchemas, infos: Sequence[ResourceInfo]) -> KindSchemas:
    """``schemas`` plus the kinds (and lists) of the custom resources among ``infos``."""
    components: dict[str, Any] = {}
    kinds: dict[tuple[str, str, str], str] = {}
    for info in infos:
        schema = custom_resource_schema(info, schemas)
        if schema is None:
            continue
        name = crd_definition_name(info.group, info.version, info.kind)
        components[name] = schema
        components[name + "List"] = custom_resource_list_schema(info, schemas)
        kinds[(info.group, info.version, info.kind)] = name
        kinds[(info.group, info.version, info.kind + "List")] = name + "List"
    if not components:
        return schemas
    return KindSchemas({**schemas.components, **components}, {**schemas.kinds, **kinds})


def v3_group_version(
    title: str, version: str, infos: Sequence[ResourceInfo], schemas: KindSchemas | None = None
) -> dict[str, Any]:
    """The per-GV document (see the module docstring)."""
    builder = _GvDocument(with_custom_resources(schemas or builtin_schemas(), infos))
    for info in infos:
        builder.add(info)
    return {
        "openapi": "3.0.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(builder.paths.items())),
        "components": {"schemas": builder.schemas.closure(builder.roots)},
    }


class OpenApiV3:
    """The v3 index and its per-GV documents, serialised once per resource-table change."""

    def __init__(
        self, title: str, version: str, infos: Sequence[ResourceInfo], schemas: KindSchemas | None = None
    ) -> None:
        by_gv: dict[tuple[str, str], list[ResourceInfo]] = {}
        for info in infos:
            by_gv.setdefault((info.group, info.version), []).append(info)
        self.documents: dict[str, bytes] = {}
        self.hashes: dict[str, str] = {}
        for (group, gv_version), members in by_gv.items():
            key = gv_path(group, gv_version)
            body = orjson.dumps(v3_group_version(title, version, members, schemas))
            self.documents[key] = body
            self.hashes[key] = hashlib.sha512(body).hexdigest().upper()
        self.index = orjson.dumps(
            {"paths": {k: {"serverRelativeURL": f"/openapi/v3/{k}?hash={h}"} for k, h in self.hashes.items()}}
        )


# -- v2 (protobuf) ---------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _bool_field(number: int) -> bytes:
    return _varint(number << 3) + b"\x01"


def v2_protobuf(title: str, version: str, infos: Sequence[ResourceInfo] = ()) -> bytes:
    """gnostic ``Document{swagger: "2.0", info, paths}``, protobuf-encoded (see the module docstring).

    Field numbers are those of gnostic's openapiv2/OpenAPIv2.proto: Document
    (1 swagger, 2 info, 8 paths), Info (1 title, 2 version), Paths (2 path),
    NamedPathItem (1 name, 2 value), PathItem (8 patch), Operation
    (5 operation_id, 8 parameters, 13 vendor_extension), ParametersItem
    (1 parameter), Parameter (2 non_body_parameter), NonBodyParameter
    (3 query_parameter_sub_schema), QueryParameterSubSchema (2 in, 4 name,
    6 type, 20 unique_items), NamedAny (1 name, 2 value), Any (2 yaml).
    """
    document = _field(1, b"2.0") + _field(2, _field(1, title.encode()) + _field(2, version.encode()))
    paths = b""
    for info in infos:
        if "patch" not in info.verbs:
            continue
        prefix = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
        scope = "/namespaces/{namespace}" if info.namespaced else ""
        path = f"{prefix}{scope}/{info.plural}/{{name}}"
        gvk_yaml = f"group: {_yaml_string(info.group)}\nkind: {info.kind}\nversion: {info.version}\n"
        extension = _field(1, b"x-kubernetes-group-version-kind") + _field(2, _field(2, gvk_yaml.encode()))
        params = b""
        for name in ("dryRun", "fieldManager", "fieldValidation", "force"):
            query = _field(2, b"query") + _field(4, name.encode()) + _field(6, b"string") + _bool_field(20)
            params += _field(8, _field(1, _field(2, _field(3, query))))
        operation = _field(5, f"patch{info.kind}".encode()) + params + _field(13, extension)
        paths += _field(2, _field(1, path.encode()) + _field(2, _field(8, operation)))
    if paths:
        document += _field(8, paths)
    return document


def _yaml_string(text: str) -> str:
    return f'"{text}"' if not text else text


def v2_json(title: str, version: str) -> dict[str, Any]:
    return {"swagger": "2.0", "info": {"title": title, "version": version}, "paths": {}}


def openapi_v3_response(path: str, document: bytes, digest: str, requested_hash: str | None) -> web.Response:
    """A GV document with kube-openapi's caching headers.

    The ETag is the document's hash.  Asked with the current ``?hash=``, the
    answer may be cached (``public, immutable``, expiring in a year); with a
    stale hash, upstream redirects (301) to the current URL; without one the
    client must revalidate.
    """
    headers = {"Content-Type": "application/json", "Etag": f'"{digest}"'}
    if requested_hash is None:
        headers["Cache-Control"] = "no-cache, private"
    elif requested_hash == digest:
        headers["Cache-Control"] = "public, immutable"
        headers["Expires"] = formatdate(time.time() + 365 * 24 * 3600, usegmt=True)
    else:
        raise web.HTTPMovedPermanently(f"{path}?hash={digest}", headers={"Cache-Control": "no-cache, private"})
    return web.Response(body=document, headers=headers)
