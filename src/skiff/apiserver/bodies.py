"""Request bodies: read within the size limit, decode by Content-Type, check fields.

* Size: kube-apiserver refuses request bodies over 3 MiB
  (``MaxRequestBodyBytes``) with 413; the Store refuses objects over its own
  1.5 MiB limit later, also with 413 (the registry translates that).
* Formats: JSON (also when Content-Type is missing), YAML, and Kubernetes
  protobuf (the ``k8s\\0`` envelope; decoded by :mod:`skiff.api.protobuf`).
  Anything else is 415.  Bodies that do not parse are 400, with the decoder's
  complaint in the message.
* Values: what the decoders return is plain JSON — dicts with string keys,
  lists, strings, finite numbers (integers within 64 bits), booleans, null —
  nested at most ``MAX_DEPTH`` levels; anything else is 400.  Go's
  encoding/json allows 10,000 levels; ours is lower because everything after
  decoding recurses in Python and orjson writes at most 254 levels, and a
  stored object is written inside a List, a watch event or a Table row.
  YAML is read as sigs.k8s.io/yaml reads it: timestamps stay strings,
  non-string keys (numbers, booleans) become strings, ``!!binary`` becomes
  text, NaN and infinities are refused; aliases may not expand the document
  past ``len(body) + MAX_YAML_ALIAS_EXPANSION`` values (go-yaml refuses
  "excessive aliasing" too), so an alias bomb is 400, not a memory blow-up.
* fieldValidation (``Strict`` / ``Warn`` / ``Ignore``): duplicate JSON fields
  are found while parsing; unknown fields need schemas, so they go through the
  ``FieldChecker`` seam (the server plugs in the OpenAPI-schema checker of
  :mod:`skiff.apiserver.field_validation`; the default here knows only ObjectMeta).  Strict makes the findings a 400
  ``strict decoding error: ...``; Warn turns them into ``Warning`` headers.
  Without the parameter Kubernetes defaults to Warn; we then skip the
  (slower) duplicate scan and check only unknown fields.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import orjson
import yaml

from skiff.api.status import ApiError, bad_request, too_large, unsupported_media_type
from skiff.apiserver.negotiation import JSON, PROTOBUF, YAML
from skiff.registry.metadata import META_ORDER
from skiff.registry.resource import Obj, ResourceInfo

#: kube-apiserver's request body limit (3 MiB).
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024

#: How deep a decoded body may nest (``{"a": 1}`` is 1 deep); see the module docstring.
MAX_DEPTH = 200

#: How many values YAML aliases may add beyond one per byte of the body.
MAX_YAML_ALIAS_EXPANSION = 100_000

#: Bodies this large are decoded on a worker thread (see ``decode_off_loop``).
OFF_LOOP_BODY_BYTES = 256 * 1024

T = TypeVar("T")

_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

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
    """(value, duplicate field paths); 400 when the body is not JSON or nests deeper than MAX_DEPTH."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise bad_request(f"the body of the request could not be decoded as JSON: {err}") from None
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH:  # fewer brackets cannot nest deeper: skip the walk
        check_depth(value)
    if not find_duplicates:
        return value, []
    # orjson keeps the last of repeated keys; the standard parser (slower) tells which repeated.
    try:
        pairs = json.loads(body, object_pairs_hook=_pairs_hook)
    except (ValueError, RecursionError) as err:  # not expected once orjson accepted the text: belt and braces
        raise bad_request(f"the body of the request could not be decoded as JSON: {err}") from None
    found: list[str] = []
    _duplicate_paths(pairs, "", found)
    return value, found


def check_depth(value: Any, what: str = "the body of the request") -> None:
    """400 when ``value`` nests deeper than MAX_DEPTH (objects and arrays count, scalars do not)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth >= MAX_DEPTH:
                    raise too_deep(what)
                stack.append((child, depth + 1))


def too_deep(what: str = "the body of the request") -> ApiError:
    return bad_request(f"{what} exceeded the maximum nesting depth of {MAX_DEPTH}")


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with three changes for request bodies.

    Composing recurses once per level, so the depth is bounded here (past it,
    PyYAML would hit RecursionError).  Keys become JSON keys as they are read.
    Timestamps stay the text they were, sets become maps and ordered maps lists
    of maps, as go-yaml v2 reads them into ``interface{}``.
    """

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self.depth = 0

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """SafeConstructor's, with each key made a JSON key as it is read: ``1`` and ``true`` are equal
        Python keys, but distinct JSON ones."""
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark
            )
        self.flatten_mapping(node)  # type: ignore[no-untyped-call]
        return {
            _yaml_key(self.construct_object(key, deep=True)): self.construct_object(value, deep=deep)  # type: ignore[no-untyped-call]
            for key, value in node.value
        }

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.depth > MAX_DEPTH:  # one more than MAX_DEPTH: a scalar leaf is a node too
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, f"exceeded the maximum nesting depth of {MAX_DEPTH}", mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-untyped-call]
        finally:
            self.depth -= 1


def _as_text(loader: _YamlLoader, node: yaml.Node) -> Any:
    return loader.construct_yaml_str(node)


def _as_map(loader: _YamlLoader, node: yaml.Node) -> Any:
    return loader.construct_yaml_map(node)


def _as_list(loader: _YamlLoader, node: yaml.Node) -> Any:
    return loader.construct_yaml_seq(node)


_YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
_YamlLoader.add_constructor("tag:yaml.org,2002:set", _as_map)
_YamlLoader.add_constructor("tag:yaml.org,2002:omap", _as_list)
_YamlLoader.add_constructor("tag:yaml.org,2002:pairs", _as_list)


def decode_yaml(body: bytes) -> Any:
    """The YAML document as plain JSON values (see the module docstring); 400 when it is not that.

    A body that is JSON — what client-go sends as ``application/apply-patch+yaml`` — is read as JSON:
    the same value (JSON is YAML), except that ``1e3`` is a number as go-yaml reads it (PyYAML's YAML 1.1
    makes it a string), and a hundred times faster than PyYAML, which holds the event loop for seconds
    on a 3 MiB body.
    """
    if body.lstrip()[:1] in (b"{", b"["):
        try:
            return decode_json(body)[0]
        except ApiError:
            pass  # YAML flow style ({a: 1}) or not valid at all: PyYAML says which
    try:
        value = yaml.load(body, Loader=_YamlLoader)  # a SafeLoader
    except (yaml.YAMLError, RecursionError, ValueError, LookupError) as err:
        # PyYAML's constructors of explicitly tagged scalars (``!!int abc``, ``!!bool x``) raise plain
        # ValueError / KeyError; RecursionError: merge keys (``<<``) are flattened recursively.
        raise bad_request(f"the body of the request could not be decoded as YAML: {err}") from None
    return _YamlToJson(len(body) + MAX_YAML_ALIAS_EXPANSION).convert(value, 0)


class _YamlToJson:
    """Copies what PyYAML built into JSON values, counting them: shared (aliased) values are copied
    each time, so the count bounds what aliases expand to, and a cycle runs into MAX_DEPTH."""

    def __init__(self, budget: int) -> None:
        self.left = budget

    def convert(self, value: Any, depth: int) -> Any:
        self.left -= 1
        if self.left < 0:
            raise bad_request("the body of the request could not be decoded as YAML: excessive aliasing")
        if isinstance(value, dict | list) and depth >= MAX_DEPTH:
            raise too_deep()
        if isinstance(value, dict):
            return {_yaml_key(key): self.convert(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list):
            return [self.convert(item, depth + 1) for item in value]
        return _yaml_scalar(value)


def _yaml_key(key: Any) -> str:
    """sigs.k8s.io/yaml's JSON key for a YAML key: strings as they are, numbers and booleans as text."""
    if isinstance(key, str | bytes):
        return _json_text(key)
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int) or (isinstance(key, float) and math.isfinite(key)):
        return str(key)
    raise bad_request(f"the body of the request could not be decoded as YAML: unsupported map key: {key!r}")


def _yaml_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str | bytes):
        return _json_text(value)
    if isinstance(value, int):
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
        value = float(value) if abs(value) < 1 << 1024 else math.inf  # go-yaml falls back to float64
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise bad_request(f"the body of the request could not be decoded as YAML: json: unsupported value: {value!r}")


def _json_text(text: str | bytes) -> str:
    """Text JSON can carry: bytes (``!!binary``) and lone surrogates (``"\\ud800"``) become U+FFFD,
    as Go's encoding/json writes invalid UTF-8."""
    if isinstance(text, bytes):
        return text.decode("utf-8", "replace")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", text)
    return text


async def decode_off_loop(body: bytes, decode: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``decode(*args, **kwargs)``, on a worker thread when ``body`` is large.

    PyYAML takes seconds over a 3 MiB block-style document; on the event loop
    that would stall every other request for as long (kube-apiserver decodes in
    the request's own goroutine).  On a thread the interpreter still hands the
    loop a turn every few milliseconds.  Small bodies stay on the loop, where
    they cost less than a thread hop.
    """
    if len(body) < OFF_LOOP_BODY_BYTES:
        return decode(*args, **kwargs)
    return await asyncio.to_thread(decode, *args, **kwargs)


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
