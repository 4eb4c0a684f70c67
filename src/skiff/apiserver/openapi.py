"""OpenAPI documents — minimal for now: just what kubectl's apply/create need.

* ``/openapi/v2`` — gnostic's ``openapi_v2.Document`` protobuf with only
  ``swagger`` and ``info``.  client-go only reads v2 as protobuf; this empty
  document is enough for ``kind: List`` files, a CRD and its CR in one file,
  and kubectl ≤ 1.28 validation (compat doc §2.5).  The Content-Type uses dots
  (``...spec.v2.v1.0+protobuf``): Go's mime parser rejects the ``@`` form.
* ``/openapi/v3`` — the index ``{"paths": {"api/v1": {"serverRelativeURL": ...?hash=H}}}``
  and one document per group/version holding, for each kind, only its PATCH
  operation with ``x-kubernetes-group-version-kind`` and the ``fieldValidation``
  query parameter: kubectl ≥ 1.29 checks exactly that before sending
  ``fieldValidation=Strict`` (cli-runtime query_param_verifier_v3.go).  The PATCH
  request body deliberately does *not* list strategic-merge-patch: without
  schemas, kubectl would then fail to compute an apply patch from v3; leaving it
  out makes kubectl fall back to its compiled-in types, which is correct for
  built-in kinds (kubectl apply/patcher.go).

Missing (a later session): component schemas, hence ``kubectl explain`` and
schema-driven field validation; CRD schemas.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from skiff.registry.resource import ResourceInfo

V2_PROTOBUF_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2); payloads here stay under 128 bytes each."""
    if len(payload) > 127:
        raise ValueError("payload too long for a one-byte length")
    return bytes([number << 3 | 2, len(payload)]) + payload


def v2_protobuf(title: str, version: str) -> bytes:
    """``Document{swagger: "2.0", info: Info{title, version}}``, protobuf-encoded."""
    info = _field(1, title.encode()) + _field(2, version.encode())
    return _field(1, b"2.0") + _field(2, info)


def v2_json(title: str, version: str) -> dict[str, Any]:
    return {"swagger": "2.0", "info": {"title": title, "version": version}, "paths": {}}


def gv_path(group: str, version: str) -> str:
    """The key of a group/version in the v3 index: ``api/v1`` or ``apis/apps/v1``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


_FIELD_VALIDATION = {
    "name": "fieldValidation",
    "in": "query",
    "description": "fieldValidation instructs the server on how to handle objects in the request "
    "containing unknown or duplicate fields: Ignore, Warn (the default) or Strict.",
    "schema": {"type": "string", "uniqueItems": True},
}
_DRY_RUN = {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
_FIELD_MANAGER = {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
_PATCH_BODY_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


def _object_path(info: ResourceInfo) -> str:
    prefix = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    if info.namespaced:
        return f"{prefix}/namespaces/{{namespace}}/{info.plural}/{{name}}"
    return f"{prefix}/{info.plural}/{{name}}"


def v3_group_version(title: str, version: str, infos: Sequence[ResourceInfo]) -> dict[str, Any]:
    """The per-GV document: one PATCH operation per kind (see the module docstring)."""
    paths: dict[str, Any] = {}
    for info in infos:
        if "patch" not in info.verbs:
            continue
        paths[_object_path(info)] = {
            "patch": {
                "operationId": f"patch{info.kind}",
                "parameters": [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION],
                "requestBody": {
                    "content": {t: {"schema": {"type": "object"}} for t in _PATCH_BODY_TYPES},
                    "required": True,
                },
                "responses": {"200": {"description": "OK"}, "201": {"description": "Created"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind},
            }
        }
    return {"openapi": "3.0.0", "info": {"title": title, "version": version}, "paths": paths, "components": {}}


class OpenApiV3:
    """The v3 index and its per-GV documents, serialised once per resource-table change."""

    def __init__(self, title: str, version: str, infos: Sequence[ResourceInfo]) -> None:
        by_gv: dict[tuple[str, str], list[ResourceInfo]] = {}
        for info in infos:
            by_gv.setdefault((info.group, info.version), []).append(info)
        self.documents: dict[str, bytes] = {}
        self.hashes: dict[str, str] = {}
        for (group, gv_version), members in by_gv.items():
            key = gv_path(group, gv_version)
            body = orjson.dumps(v3_group_version(title, version, members))
            self.documents[key] = body
            self.hashes[key] = hashlib.sha512(body).hexdigest().upper()
        self.index = orjson.dumps(
            {"paths": {k: {"serverRelativeURL": f"/openapi/v3/{k}?hash={h}"} for k, h in self.hashes.items()}}
        )
