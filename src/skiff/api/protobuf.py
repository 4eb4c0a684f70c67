"""Decode ``application/vnd.kubernetes.protobuf`` request bodies into the JSON dicts the server stores.

kubectl's create generators, ``auth can-i``, ``drain``, ``create token`` and
client-go leader election send protobuf, not JSON.  The body is the magic
``k8s\\0`` followed by a ``runtime.Unknown``: typeMeta{apiVersion, kind}, raw
(the typed object's own protobuf), contentEncoding, contentType.

Contract of ``decode_k8s_protobuf``:

* returns ``{"apiVersion", "kind", ...}`` with the object's fields under their
  JSON names, as Go's ``encoding/json`` would write the decoded Go struct:
  scalars tagged ``omitempty`` are dropped when zero (gogo-protobuf writes every
  non-pointer field, so ``generateName: ""`` and ``generation: 0`` arrive on the
  wire); Go pointers and untagged fields keep their zero; messages on the wire
  are kept even when empty (``emptyDir: {}`` means something); a zero ``Time``
  is dropped (Go writes ``null``); empty lists and maps never appear; int64 stays
  a JSON number; ``bytes`` become base64;
* unknown fields are skipped (a newer client, or fields the table leaves out,
  such as ``status`` and ``managedFields``);
* raises ``ApiError`` 400 for malformed bytes (bad magic, truncated or
  over-long varints, lengths past the end, wrong wire types, invalid UTF-8,
  out-of-range times) and 415 for a kind or encoding it has no table for; it
  raises nothing else.

The wire reader is ours rather than ``google.protobuf``'s: without compiled
descriptors the runtime offers only an opaque unknown-field set, whereas the
wire format needs about fifty lines, and a schema table (protobuf_schema.py)
keeps the JSON rules (omitempty, inline, special types) in one readable place.
Decoding is pure and bounded by the input size: the table has no cycles, so
recursion depth is bounded by the schema.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from skiff.api.protobuf_schema import KINDS, MESSAGES, Field
from skiff.api.status import bad_request, unsupported_media_type

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_VARINT_KINDS = frozenset({"int32", "int64", "bool"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GO_ZERO_TIME_SECONDS = -62135596800  # time.Time{}.Unix(): Go marshals it as null
_OMIT = object()

Span = tuple[int, int]


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """The object in a Kubernetes protobuf body, as a JSON-ready dict with apiVersion and kind."""
    if not body.startswith(MAGIC):
        raise bad_request("protobuf: the body does not start with the Kubernetes magic number k8s\\x00")
    api_version, kind, raw, encoding, content_type = _envelope(body, len(MAGIC), len(body))
    if not kind:
        raise bad_request("Object 'Kind' is missing in the protobuf envelope")
    if encoding or content_type not in ("", CONTENT_TYPE):
        raise unsupported_media_type(f"{CONTENT_TYPE} with contentEncoding {encoding!r}, contentType {content_type!r}")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise unsupported_media_type(CONTENT_TYPE)
    return {"apiVersion": api_version, "kind": kind, **_message(body, raw, message, "")}


def _envelope(buf: bytes, start: int, end: int) -> tuple[str, str, Span, str, str]:
    """runtime.Unknown: 1 typeMeta{1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding, 4 contentType."""
    api_version = kind = encoding = content_type = ""
    raw: Span = (start, start)
    for number, wire, value in _fields(buf, start, end):
        if number not in (1, 2, 3, 4):
            continue
        span = _want_len(wire, value, f"runtime.Unknown field {number}")
        if number == 1:
            for inner, inner_wire, inner_value in _fields(buf, *span):
                if inner in (1, 2):
                    text = _text(buf, _want_len(inner_wire, inner_value, "typeMeta"), "typeMeta")
                    api_version, kind = (text, kind) if inner == 1 else (api_version, text)
        elif number == 2:
            raw = span
        elif number == 3:
            encoding = _text(buf, span, "contentEncoding")
        else:
            content_type = _text(buf, span, "contentType")
    return api_version, kind, raw, encoding, content_type


# --- wire format ---------------------------------------------------------------------------


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 70:
        if pos >= end:
            raise bad_request("protobuf: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, pos
        shift += 7
    raise bad_request("protobuf: varint longer than 10 bytes")


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): an int for varints, a (start, end) span for LEN, None for fixed."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise bad_request("protobuf: field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
        elif wire == _LEN:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise bad_request(f"protobuf: field {number} is {length} bytes long, past the end of its message")
            yield number, wire, (pos, pos + length)
            pos += length
        elif wire in (_FIXED64, _FIXED32):
            pos += 8 if wire == _FIXED64 else 4
            if pos > end:
                raise bad_request(f"protobuf: truncated fixed-size field {number}")
            yield number, wire, None
        else:
            raise bad_request(f"protobuf: field {number} has unsupported wire type {wire}")


def _want_len(wire: int, value: Any, where: str) -> Span:
    if wire != _LEN:
        raise bad_request(f"protobuf: {where} has wire type {wire}, want length-delimited")
    span: Span = value
    return span


def _text(buf: bytes, span: Span, where: str) -> str:
    try:
        return buf[span[0] : span[1]].decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"protobuf: {where} is not valid UTF-8") from None


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# --- schema-driven decoding ----------------------------------------------------------------


def _message(buf: bytes, span: Span, message: str, path: str, into: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decode into ``into`` (a fresh dict by default): an inline message fills its parent, and a
    message field seen twice merges, as protobuf (and gogo's generated Unmarshal) specify."""
    table = MESSAGES[message]
    out: dict[str, Any] = {} if into is None else into
    for number, wire, value in _fields(buf, *span):
        field = table.get(number)
        if field is not None:
            _apply(out, field, wire, value, buf, f"{path}.{field.name}" if path else field.name)
    return out


def _apply(out: dict[str, Any], field: Field, wire: int, value: Any, buf: bytes, path: str) -> None:
    if field.kind == "map":
        key, item = _map_entry(buf, _want_len(wire, value, path), field.target, path)
        out.setdefault(field.name, {})[key] = item
    elif field.kind == "inline":
        _message(buf, _want_len(wire, value, path), field.target, path, into=out)
    elif field.kind == "message":
        span = _want_len(wire, value, path)
        existing = out.get(field.name)
        if isinstance(existing, dict) and not field.repeated and field.target in MESSAGES:
            _message(buf, span, field.target, path, into=existing)
            return
        item = _convert(buf, span, field.target, path)
        if field.repeated:
            out.setdefault(field.name, []).append(item)
        elif item is _OMIT:
            out.pop(field.name, None)
        else:
            out[field.name] = item
    elif field.repeated:
        if wire == _LEN and field.kind in _VARINT_KINDS:  # packed encoding
            out.setdefault(field.name, []).extend(_packed(buf, value, field.kind))
        else:
            out.setdefault(field.name, []).append(_scalar(buf, wire, value, field.kind, path))
    else:
        item = _scalar(buf, wire, value, field.kind, path)
        if item or field.keep_zero:
            out[field.name] = item
        else:  # a later zero overrides an earlier value, and zero means unset
            out.pop(field.name, None)


def _scalar(buf: bytes, wire: int, value: Any, kind: str, path: str) -> Any:
    if kind in _VARINT_KINDS:
        if wire != _VARINT:
            raise bad_request(f"protobuf: {path} has wire type {wire}, want varint")
        if kind == "bool":
            return value != 0
        return _signed(value, 32 if kind == "int32" else 64)
    span = _want_len(wire, value, path)
    if kind == "bytes":
        return base64.b64encode(buf[span[0] : span[1]]).decode("ascii")
    return _text(buf, span, path)


def _packed(buf: bytes, span: Span, kind: str) -> Iterator[Any]:
    pos, end = span
    while pos < end:
        value, pos = _varint(buf, pos, end)
        yield value != 0 if kind == "bool" else _signed(value, 32 if kind == "int32" else 64)


def _map_entry(buf: bytes, span: Span, value_kind: str, path: str) -> tuple[str, Any]:
    """A map entry is a message {1 key, 2 value}; a missing part takes its zero value."""
    key = ""
    item: Any = None
    for number, wire, value in _fields(buf, *span):
        if number == 1:
            key = _text(buf, _want_len(wire, value, path), f"{path} key")
        elif number == 2 and value_kind in ("string", "bytes"):
            item = _scalar(buf, wire, value, value_kind, f"{path}[{key}]")
        elif number == 2:
            item = _convert(buf, _want_len(wire, value, path), value_kind, f"{path}[{key}]")
    if item is None:
        item = "" if value_kind in ("string", "bytes") else _convert(buf, (span[1], span[1]), value_kind, path)
    return key, None if item is _OMIT else item


def _convert(buf: bytes, span: Span, message: str, path: str) -> Any:
    """A message's JSON value: special types by hand, everything else through the table."""
    if message in ("Time", "MicroTime"):
        return _time(buf, span, message == "MicroTime", path)
    if message == "IntOrString":
        return _int_or_string(buf, span, path)
    if message == "Quantity":
        text = "0"  # an absent string is Go's zero Quantity
        for number, wire, value in _fields(buf, *span):
            if number == 1:
                text = _text(buf, _want_len(wire, value, path), path)
        return text
    if message == "ExtraValue":
        return [_text(buf, _want_len(w, v, path), path) for n, w, v in _fields(buf, *span) if n == 1]
    return _message(buf, span, message, path)


def _time(buf: bytes, span: Span, micro: bool, path: str) -> Any:
    """metav1.Time / MicroTime (Timestamp{1 seconds, 2 nanos}) as Go's RFC 3339 JSON, in UTC."""
    if span[0] == span[1]:
        return _OMIT  # Go writes nothing for the zero time
    seconds = nanos = 0
    for number, wire, value in _fields(buf, *span):
        if number == 1:
            seconds = _scalar(buf, wire, value, "int64", path)
        elif number == 2:
            nanos = _scalar(buf, wire, value, "int32", path)
    if not 0 <= nanos < 1_000_000_000:
        raise bad_request(f"protobuf: {path} has nanos {nanos} out of range")
    if seconds == _GO_ZERO_TIME_SECONDS and nanos == 0:
        return _OMIT
    try:
        moment = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        raise bad_request(f"protobuf: {path} has seconds {seconds} out of range") from None
    m = moment
    text = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
    return f"{text}.{nanos // 1000:06d}Z" if micro else f"{text}Z"


def _int_or_string(buf: bytes, span: Span, path: str) -> int | str:
    """intstr.IntOrString {1 type, 2 intVal, 3 strVal}: type 0 is the int, 1 the string."""
    kind, number_value, text = 0, 0, ""
    for number, wire, value in _fields(buf, *span):
        if number == 1:
            kind = _scalar(buf, wire, value, "int64", path)
        elif number == 2:
            number_value = _scalar(buf, wire, value, "int32", path)
        elif number == 3:
            text = _scalar(buf, wire, value, "string", path)
    if kind not in (0, 1):
        raise bad_request(f"protobuf: {path} has IntOrString type {kind}, want 0 or 1")
    return text if kind == 1 else number_value
