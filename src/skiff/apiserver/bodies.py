"""Request bodies: read within the size limit, decode by Content-Type, check fields.

* Size: kube-apiserver refuses request bodies over 3 MiB
  (``MaxRequestBodyBytes``) with 413; the Store refuses objects over its own
  1.5 MiB limit later, also with 413 (the registry translates that).
* Formats: JSON (also when Content-Type is missing), YAML, and Kubernetes
  protobuf (the ``k8s\\0`` envelope; decoded by :mod:`skiff.api.protobuf`).
  Anything else is 415.  Bodies that do not parse are 400, with the decoder's
  complaint in the message.
* fieldValidation (``Strict`` / ``Warn`` / ``Ignore``): duplicate JSON fields
  are found while parsing; unknown fields need schemas, so they go through the
  ``FieldChecker`` seam (the server plugs in the OpenAPI-schema checker of
  :mod:`skiff.apiserver.field_validation`; the default here knows only ObjectMeta).  Strict makes the findings a 400
  ``strict decoding error: ...``; Warn turns them into ``Warning`` headers.
  Without the parameter Kubernetes defaults to Warn; we then skip the
  (slower) duplicate scan and check only unknown fields.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import orjson
import yaml

from skiff.api.status import bad_request, too_large, unsupported_media_type
from skiff.apiserver.negotiation import JSON, PROTOBUF, YAML
from skiff.registry.metadata import META_ORDER
from skiff.registry.resource import Obj, ResourceInfo

#: kube-apiserver's request body limit (3 MiB).
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024

STRICT, WARN, IGNORE = "Strict", "Warn", "Ignore"
FIELD_VALIDATIONS = (STRICT, WARN, IGNORE)

#: metav1.ObjectMeta's JSON fields.
OBJECT_META_FIELDS = frozenset(META_ORDER)


def field_validation(value: str | None) -> str:
    """The fieldValidation query parameter ("" when absent: the server default, Warn)."""
    if not value:
        return ""
    for known in FIELD_VALIDATIONS:
        if value.lower() == known.lower():
            return known
    raise bad_request(f"fieldValidation parameter unsupported: {value}; supported values: Ignore, Warn, Strict")


def check_size(body: bytes) -> None:
    if len(body) > MAX_REQUEST_BODY_BYTES:
        raise too_large(f"Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}")


class _Pairs(dict[str, Any]):
    """A JSON object that remembers which of its keys appeared more than once."""

    duplicates: list[str]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> _Pairs:
    out = _Pairs()
    out.duplicates = []
    for key, value in pairs:
        if key in out:
            out.duplicates.append(key)
        out[key] = value
    return out


def _duplicate_paths(value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, _Pairs):
        found.extend(f"{path}.{key}" if path else key for key in value.duplicates)
        for key, child in value.items():
            _duplicate_paths(child, f"{path}.{key}" if path else key, found)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            _duplicate_paths(child, f"{path}[{i}]", found)


def decode_json(body: bytes, *, find_duplicates: bool = False) -> tuple[Any, list[str]]:
    """(value, duplicate field paths); 400 when the body is not JSON."""
    try:
        if not find_duplicates:
            return orjson.loads(body), []
        value = json.loads(body, object_pairs_hook=_pairs_hook)
    except (orjson.JSONDecodeError, ValueError) as err:
        raise bad_request(f"the body of the request could not be decoded as JSON: {err}") from None
    found: list[str] = []
    _duplicate_paths(value, "", found)
    return value, found


def decode_yaml(body: bytes) -> Any:
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as err:
        raise bad_request(f"the body of the request could not be decoded as YAML: {err}") from None


def decode_object(body: bytes, media_type: str, *, find_duplicates: bool = False) -> tuple[Obj, list[str]]:
    """A create/update body as an object dict, with duplicate-field paths (JSON only)."""
    duplicates: list[str] = []
    if media_type == JSON:
        value, duplicates = decode_json(body, find_duplicates=find_duplicates)
    elif media_type in (YAML, "application/x-yaml", "text/yaml"):
        value = decode_yaml(body)
    elif media_type == PROTOBUF:
        from skiff.api.protobuf import decode_k8s_protobuf

        value = decode_k8s_protobuf(body)
    else:
        raise unsupported_media_type(media_type)
    if not isinstance(value, dict):
        raise bad_request("the body of the request must be a JSON object")
    return value, duplicates


class FieldChecker(Protocol):
    """Finds fields a kind does not have (dotted paths) and drops them from ``obj``, as upstream decoding does.

    The server's checker is :class:`skiff.apiserver.field_validation.SchemaFieldChecker`.
    """

    def unknown_fields(self, info: ResourceInfo, obj: Obj) -> list[str]: ...


class ObjectMetaFieldChecker:
    """Knows only ObjectMeta: reports unknown ``metadata.*`` fields.  Schemas come later."""

    def unknown_fields(self, info: ResourceInfo, obj: Obj) -> list[str]:
        meta = obj.get("metadata")
        if not isinstance(meta, Mapping):
            return []
        return [f"metadata.{key}" for key in meta if key not in OBJECT_META_FIELDS]


def field_findings(unknown: list[str], duplicates: list[str]) -> list[str]:
    """Upstream's wording for each finding (sigs.k8s.io/json strict errors)."""
    return [f'unknown field "{p}"' for p in unknown] + [f'duplicate field "{p}"' for p in duplicates]


def enforce_field_validation(directive: str, findings: list[str], warnings: list[str]) -> None:
    """Strict: 400 with every finding; Warn (and the default): add them as warnings; Ignore: drop."""
    if not findings or directive == IGNORE:
        return
    if directive == STRICT:
        raise bad_request("strict decoding error: " + ", ".join(findings))
    warnings.extend(findings)
