"""Hypothesis strategies for hostile request bodies, shared by the in-process and the over-HTTPS body fuzzers.

* ``SAMPLES``: one valid object per fuzzed kind — the starting points.
* ``json_bodies`` / ``yaml_bodies`` / ``protobuf_bodies``: a sample, structurally
  mutated (subtrees replaced by any JSON value, removed, wrapped, nested 150 to
  1,100 levels deep), serialized, then byte-mutated (truncated, flipped, hostile
  tokens inserted: NaN, 1e999, lone surrogates, invalid UTF-8, YAML tags,
  anchors and aliases, overlong varints, huge lengths, unknown wire types).
  Protobuf bodies are built from the decoder's own message table, so most of
  them reach deep into the schema before a mutation breaks them.
* ``patch_bodies``: a patch type and a body for it (JSON patch operations,
  merge and strategic-merge documents, apply configurations), mutated alike.
* ``plain_json_problem``: what a decoder's result must be — plain JSON within
  ``bodies.MAX_DEPTH`` — or why it is not.

Everything is drawn by Hypothesis: with ``derandomize`` the cases are the same
on every run.
"""

from __future__ import annotations

import copy
import json
import math
import re
from typing import Any

import yaml
from hypothesis import strategies as st

from skiff.api.protobuf import MAGIC
from skiff.api.protobuf_schema import KINDS, MESSAGES
from skiff.apiserver.bodies import MAX_DEPTH
from skiff.apiserver.negotiation import APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws.  Hypothesis favours the simplest choice (0, the first element), so
    the rare outcome is the last one: ``st.integers(0, n - 1) == 0`` would be true far more often."""
    return st.sampled_from(range(n)).map(lambda i: i == n - 1)


# --- starting points ------------------------------------------------------------------------

_POD_SPEC = {
    "containers": [
        {
            "name": "c",
            "image": "busybox",
            "args": ["sleep", "1"],
            "env": [{"name": "A", "value": "1"}],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
        }
    ],
    "volumes": [{"name": "v", "emptyDir": {}}],
}

#: (plural, object) — every kind the HTTPS fuzzer writes, in the ``fuzz`` namespace where namespaced.
SAMPLES: dict[str, dict[str, Any]] = {
    "configmaps": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "1"}},
    "secrets": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "1"}},
    "pods": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "s", "labels": {"app": "s"}}, "spec": _POD_SPEC},
    "services": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"selector": {"app": "s"}, "ports": [{"port": 80, "targetPort": "http"}]},
    },
    "deployments": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "s"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "s"}},
            "template": {"metadata": {"labels": {"app": "s"}}, "spec": _POD_SPEC},
        },
    },
    "jobs": {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "s"},
        "spec": {"template": {"spec": {**_POD_SPEC, "restartPolicy": "Never"}}, "backoffLimit": 1},
    },
    "roles": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "s"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    },
    "leases": {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "s"},
        "spec": {"holderIdentity": "h", "leaseDurationSeconds": 15, "renewTime": "2024-01-01T00:00:00.000000Z"},
    },
}

# --- what a decoder may return --------------------------------------------------------------

_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1


def plain_json_problem(value: Any) -> str | None:
    """None when ``value`` is plain JSON nested at most MAX_DEPTH deep; else what is wrong with it."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "$")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                return f"{path}: deeper than {MAX_DEPTH}"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return f"{path}: key {key!r} is not a string"
                    stack.append((child, depth + 1, f"{path}.{key}"))
            else:
                stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return f"{path}: a string JSON cannot carry"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not _INT64_MIN <= item <= _UINT64_MAX:
                return f"{path}: integer {item} out of 64-bit range"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{path}: {item}"
        else:
            return f"{path}: a {type(item).__name__}"
    return None


# --- JSON values and structural mutations ---------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["", "0", "-1", "1.5", "true", "null", "a" * 300, "2024-01-01T00:00:00Z", "100Mi", "x=y"])
)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, and what JSON text cannot carry (NaN, infinities, integers past 64 bits)."""
    return st.recursive(
        _SCALARS,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=max_leaves,
    )


#: Replaced in the serialized text by that many levels of nesting (too deep to serialize as a value).
_DEEP = re.compile(r"__deep_(\d+)_(list|map)__")
DEEP_LEVELS = (150, MAX_DEPTH - 2, MAX_DEPTH, MAX_DEPTH + 1, 260, 1100, 10_000)


def _nesting(levels: int, shape: str, flow_yaml: bool = False) -> str:
    if shape == "list":
        return "[" * levels + "1" + "]" * levels
    return ("{a: " if flow_yaml else '{"a":') * levels + "1" + "}" * levels


def expand_deep(text: str, flow_yaml: bool = False) -> str:
    return _DEEP.sub(lambda m: _nesting(int(m.group(1)), m.group(2), flow_yaml), text)


@st.composite
def structurally_mutated(draw: st.DrawFn, obj: Any) -> Any:
    """``obj`` with 0-3 random subtrees replaced, removed, wrapped, extended or nested deep."""
    root = copy.deepcopy(obj)
    for _ in range(draw(st.integers(0, 3))):
        parent: Any = None
        key: Any = None
        node = root
        while isinstance(node, dict | list) and node and draw(st.integers(0, 3)) > 0:
            parent = node
            key = draw(st.sampled_from(sorted(node, key=str) if isinstance(node, dict) else range(len(node))))
            node = node[key]
        action = draw(st.sampled_from(["replace", "delete", "wrap", "extend", "deep", "stringify"]))
        if action == "extend" and isinstance(node, dict):
            node[draw(st.text(max_size=8) | st.sampled_from(["status", "metadata", "spec", "$patch"]))] = draw(
                json_values()
            )
            continue
        if parent is None:
            continue  # the root stays an object: other strategies cover non-object bodies
        if action == "delete":
            del parent[key]
        elif action == "wrap":
            parent[key] = draw(st.sampled_from([[node], {"x": node}]))
        elif action == "deep":
            parent[key] = f"__deep_{draw(st.sampled_from(DEEP_LEVELS))}_{draw(st.sampled_from(['list', 'map']))}__"
        elif action == "stringify":
            parent[key] = json.dumps(node)
        else:
            parent[key] = draw(json_values())
    return root


# --- byte mutations -------------------------------------------------------------------------

JSON_TOKENS = (
    b"NaN", b"-Infinity", b"1e999", b"-0", b"123456789012345678901234567890", b"1" * 400,
    b'"\\ud800"', b'"\\udc00\\ud800"', b'"\\u0000"', b"\xff", b"\xc3", b"\x00", b"\xef\xbb\xbf",
    b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"null", b"true", b" ", b"\n",
    b"[" * 300, b'{"a":' * 300, b'"a":1,"a":2,',
)  # fmt: skip

YAML_TOKENS = (
    b"&a ", b"*a", b"&b [*a, *a, *a, *a, *a, *a, *a, *a]", b"<<: *a\n", b"<<: [*a, *a]\n", b"? ", b"- ", b": ",
    b"!!binary ", b"!!set ", b"!!omap ", b"!!pairs ", b"!!timestamp ", b"!!int ", b"!!float ", b"!!bool ",
    b"!!null ", b"!!str ", b"!!map ", b"!!seq ", b"!!python/object:os.system ", b"!local ", b"!<tag:x> ",
    b"---\n", b"...\n", b"%YAML 1.1\n", b"%TAG ! tag:x,2000:\n", b".nan", b"-.inf", b"~", b"0x1F", b"0o17",
    b"1_000", b"190:20:30", b"2001-12-14t21:59:43.10-05:00", b"2024-01-01", b'"\\ud800"', b'"\\x00"', b"'",
    b"|\n", b">-\n", b"\t", b"{", b"}", b"[", b"]", b"#", b"\xff", b"\x00", b"@", b"`", b"\r", b"\xc2\x85",
)  # fmt: skip

PROTOBUF_TOKENS = (
    b"\xff" * 11,  # a varint longer than 10 bytes
    b"\x80",  # a truncated varint
    b"\x12\xff\xff\xff\xff\x0f",  # field 2, length 2^32 - 1
    b"\x12\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # field 2, length 2^64 - 1
    b"\x00",  # field number 0
    b"\x0b", b"\x0c", b"\x0e", b"\x0f",  # wire types 3, 4, 6, 7
    b"\x09", b"\x0d",  # fixed64 / fixed32 with nothing after
    b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # field 1 varint 2^64 - 1
    b"\x0a\x02\xff\xfe",  # field 1: invalid UTF-8
)  # fmt: skip


@st.composite
def byte_mutated(draw: st.DrawFn, body: bytes, tokens: tuple[bytes, ...], keep: int = 0, edits: int = 3) -> bytes:
    """``body`` after up to ``edits`` edits: truncate, flip a byte, insert a token or random bytes, cut or
    repeat a slice; usually past the first ``keep`` bytes (a magic number)."""
    data = bytearray(body)
    for _ in range(draw(st.integers(0, edits))):
        start = 0 if draw(one_in(10)) else min(keep, len(data))
        at = draw(st.sampled_from(range(start, len(data) + 1)))  # uniform: integers() favour the low end
        op = draw(st.sampled_from(["truncate", "flip", "token", "bytes", "cut", "repeat"]))
        if op == "truncate":
            del data[at:]
        elif op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "token":
            data[at:at] = draw(st.sampled_from(tokens))
        elif op == "bytes":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 32))]
    return bytes(data)


# --- bodies ---------------------------------------------------------------------------------


def _json_text(value: Any) -> bytes:
    return expand_deep(json.dumps(value, allow_nan=True)).encode()


@st.composite
def json_bodies(draw: st.DrawFn, samples: dict[str, dict[str, Any]] = SAMPLES, edits: int = 3) -> tuple[str, bytes]:
    """(plural, body): a mutated sample as JSON text, mutated again as bytes (up to ``edits`` edits)."""
    plural = draw(st.sampled_from(sorted(samples)))
    value = draw(structurally_mutated(samples[plural]))
    return plural, draw(byte_mutated(_json_text(value), JSON_TOKENS, edits=edits))


_YAML_VALUES = (
    "1", "x", "~", ".nan", ".inf", "0x1F", "0o17", "1_000", "190:20:30", "2024-01-01", "2001-12-14t21:59:43.10-05:00",
    "!!binary aGVsbG8=", "!!binary '%%%'", "!!set {a, b}", "!!omap [{a: 1}, {b: 2}]", "!!int abc", "!!bool x",
    "!!float y", "!!timestamp z", "!!python/name:os.system", "&a {x: 1}", "*a", "{<<: *a, y: 2}", "&r [*r]",
    '"\\ud800"', "!!str 1", "[a, {b: c}]", "{? [a]: b}", "{1: a, true: b, ~: c, 1.5: d}", "|\n  text",
    "123456789012345678901234567890", "1e400", "-.inf", "__deep_300_list__", "__deep_1100_map__",
)  # fmt: skip

_ALIAS_BOMB = "\n".join(
    ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 9)]
)


@st.composite
def yaml_bodies(draw: st.DrawFn, samples: dict[str, dict[str, Any]] = SAMPLES, edits: int = 3) -> tuple[str, bytes]:
    """(plural, body): a mutated sample as YAML, with YAML-only values spliced in, then byte-mutated."""
    plural = draw(st.sampled_from(sorted(samples)))
    value = draw(structurally_mutated(samples[plural]))
    text = yaml.safe_dump(value, default_flow_style=draw(st.sampled_from([None, True, False])), allow_unicode=True)
    lines = text.splitlines()
    for _ in range(draw(st.integers(0, 3))):
        extra = draw(st.sampled_from(_YAML_VALUES))
        key = draw(st.sampled_from(["x", "data", "spec", "metadata", "1", "true", "~", "? [a]", "<<"]))
        lines.insert(draw(st.integers(0, len(lines))), f"{key}: {extra}")
    if draw(one_in(10)):
        lines.append(_ALIAS_BOMB)
    body = expand_deep("\n".join(lines), flow_yaml=True).encode()
    return plural, draw(byte_mutated(body, YAML_TOKENS, edits=edits))


# --- protobuf -------------------------------------------------------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def _len(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + varint(len(payload)) + payload


_PB_TEXT = st.text(max_size=10).map(str.encode) | st.sampled_from([b"\xff\xfe", b"\xc3", b"", b"a" * 64])
_PB_INT = st.integers(-(1 << 63), (1 << 64) - 1) | st.sampled_from([0, 1, -1, 999_999_999, 1_000_000_000])


@st.composite
def _pb_value(draw: st.DrawFn, number: int, kind: str, target: str, depth: int) -> bytes:
    """One field on the wire, usually with the right wire type, sometimes with another."""
    if draw(one_in(16)):  # the wrong wire type (or a bogus one) for this field
        wire = draw(st.sampled_from([0, 1, 2, 5]))
        filler = {0: varint(draw(_PB_INT)), 1: b"\0" * 8, 2: varint(1) + b"x", 5: b"\0" * 4}[wire]
        return _key(number, wire) + filler
    if kind in ("int32", "int64", "bool"):
        if draw(one_in(6)):  # packed
            return _len(number, b"".join(varint(draw(_PB_INT)) for _ in range(draw(st.integers(0, 3)))))
        return _key(number, 0) + varint(draw(_PB_INT))
    if kind in ("string", "bytes"):
        return _len(number, draw(_PB_TEXT))
    if kind == "map":
        value = draw(_PB_TEXT) if target in ("string", "bytes") else draw(pb_message(target, depth + 1))
        return _len(number, _len(1, draw(_PB_TEXT)) + _len(2, value))
    return _len(number, draw(pb_message(target, depth + 1)))


@st.composite
def pb_message(draw: st.DrawFn, message: str, depth: int = 0) -> bytes:
    """A message of the decoder's table (or a special one) with 0-5 of its fields and maybe an unknown one."""
    if message in ("Time", "MicroTime"):
        return _key(1, 0) + varint(draw(_PB_INT)) + _key(2, 0) + varint(draw(_PB_INT))
    if message == "IntOrString":
        return (
            _key(1, 0) + varint(draw(st.integers(-1, 3))) + _key(2, 0) + varint(draw(_PB_INT)) + _len(3, draw(_PB_TEXT))
        )
    if message in ("Quantity", "ExtraValue"):
        return b"".join(_len(1, draw(_PB_TEXT)) for _ in range(draw(st.integers(0, 2))))
    table = MESSAGES.get(message, {})
    if depth > 5 or not table:
        return b""
    parts = []
    for field in draw(st.lists(st.sampled_from(sorted(table.values(), key=lambda f: f.number)), max_size=5)):
        kind = "message" if field.kind == "inline" else field.kind
        target = field.target if field.kind in ("message", "inline", "map") else ""
        parts.append(draw(_pb_value(field.number, kind, target, depth)))
    if draw(one_in(6)):
        parts.append(_len(draw(st.integers(1, (1 << 29) - 1)), draw(st.binary(max_size=6))))
    return b"".join(parts)


_PB_KINDS = sorted(KINDS.items())


@st.composite
def protobuf_bodies(draw: st.DrawFn, kind_of: tuple[str, str] | None = None, edits: int = 3) -> tuple[str, str, bytes]:
    """(apiVersion, kind, body): a ``k8s\\0`` envelope around a drawn message (of ``kind_of`` if given),
    then byte-mutated."""
    (api_version, kind), message = draw(st.sampled_from([k for k in _PB_KINDS if kind_of in (None, k[0])]))
    raw = draw(pb_message(message))
    type_meta = _len(1, api_version.encode()) + _len(2, kind.encode())
    if draw(one_in(8)):
        type_meta = draw(st.sampled_from([b"", _len(2, kind.encode()), _len(1, b"v1") + _len(2, b"Nope")]))
    envelope = _len(1, type_meta) + _len(2, raw)
    if draw(one_in(8)):
        envelope += _len(3, draw(st.sampled_from([b"gzip", b""]))) + _len(4, draw(st.sampled_from([b"a/b", b""])))
    return api_version, kind, draw(byte_mutated(MAGIC + envelope, PROTOBUF_TOKENS, keep=len(MAGIC), edits=edits))


# --- patches --------------------------------------------------------------------------------

PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)
_POINTERS = (
    "", "/", "/metadata", "/metadata/labels", "/metadata/labels/a", "/metadata/annotations/a~1b", "/data/a",
    "/spec", "/spec/containers/0", "/spec/containers/-", "/spec/template/spec/containers/0/image", "/x/y",
    "/spec/replicas", "/~2", "/rules/0/verbs/99999999999999999999", "/metadata/name", "/kind", "/a/" * 150,
)  # fmt: skip


@st.composite
def json_patch_ops(draw: st.DrawFn) -> list[Any]:
    ops: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        op: dict[str, Any] = {"op": draw(st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"]))}
        op["path"] = draw(st.sampled_from(_POINTERS) | json_values(max_leaves=2))
        if draw(st.booleans()):
            op["value"] = draw(json_values() | st.just("__deep_199_map__"))
        if draw(one_in(4)):
            op["from"] = draw(st.sampled_from(_POINTERS))
        ops.append(draw(json_values(max_leaves=3)) if draw(one_in(16)) else op)
    return ops


@st.composite
def patch_bodies(
    draw: st.DrawFn, samples: dict[str, dict[str, Any]] = SAMPLES, edits: int = 3, patch_type: str | None = None
) -> tuple[str, str, bytes]:
    """(plural, patch type, body): a patch (of ``patch_type`` if given) for one of the samples, mutated as
    a value and as bytes."""
    plural = draw(st.sampled_from(sorted(samples)))
    patch_type = patch_type or draw(st.sampled_from(PATCH_TYPES))
    if patch_type == JSON_PATCH:
        value: Any = draw(json_patch_ops())
    elif patch_type == APPLY_PATCH:
        value = draw(structurally_mutated(samples[plural]))
    else:
        partial = {k: v for k, v in samples[plural].items() if k not in ("apiVersion", "kind", "metadata")}
        value = draw(structurally_mutated(partial))
        if draw(one_in(4)):
            value[draw(st.sampled_from(["$patch", "$retainKeys", "$setElementOrder/x", "spec"]))] = draw(
                st.sampled_from(["replace", "delete", "merge", "x", [], [{"a": 1}], None])
            )
    if patch_type == APPLY_PATCH and draw(st.booleans()):
        text = expand_deep(yaml.safe_dump(value), flow_yaml=True).encode()
        return plural, patch_type, draw(byte_mutated(text, YAML_TOKENS, edits=edits))
    return plural, patch_type, draw(byte_mutated(_json_text(value), JSON_TOKENS, edits=edits))
