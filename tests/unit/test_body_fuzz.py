"""The request-body decoders under Hypothesis, in process: a 4xx ``ApiError`` or plain JSON, nothing else.

What the HTTP handlers run on a body before the registry sees it, fuzzed with
the strategies of ``tests/apiserver/body_fuzz.py`` (deterministic: derandomized,
no example database; bounded: ``EXAMPLES`` cases per fuzzer):

* JSON bodies — decoded with and without the duplicate-field scan (the two
  must agree), then checked and pruned by the kind's schema field checker;
* YAML bodies, the same way;
* protobuf ``k8s\\0`` envelopes built from the decoder's own table, mutated;
* arbitrary bytes under every media type;
* patches of every type — decoded, then applied to a stored-looking object
  through the field checker, as the PATCH handler does.

A decoded value must be plain JSON nested at most ``bodies.MAX_DEPTH`` deep
(what the store and the responses can write).  Every refusal is a 4xx —
including the strategic-merge errors upstream passes on as a reason-less 500.

The regression table at the end holds each crash the fuzzers found, fixed.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from body_fuzz import (
    SAMPLES,
    json_bodies,
    patch_bodies,
    plain_json_problem,
    protobuf_bodies,
    yaml_bodies,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from skiff.api.protobuf import MAGIC
from skiff.api.status import ApiError
from skiff.apiserver import bodies, field_validation
from skiff.apiserver.field_validation import SchemaFieldChecker
from skiff.apiserver.negotiation import JSON, PROTOBUF, YAML
from skiff.apiserver.patching import build_mutate
from skiff.registry.apply import apply_configuration
from skiff.registry.builtin import BUILTIN
from skiff.registry.managed_fields import APPLY, WriteManager
from skiff.registry.resource import ResourceInfo
from skiff.registry.schemas import builtin_schemas

EXAMPLES = {"json": 1200, "yaml": 500, "protobuf": 1500, "bytes": 500, "patch": 1200}
CASES: Counter[str] = Counter()
FAILURES: Counter[str] = Counter()


def fuzz_settings(name: str) -> settings:
    return settings(
        max_examples=EXAMPLES[name],
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    print(f"\nbody fuzz cases {dict(CASES)}")


@pytest.fixture(scope="module")
def checker() -> SchemaFieldChecker:
    return SchemaFieldChecker(builtin_schemas())


def info_for(api_version: str, kind: str) -> ResourceInfo | None:
    return next((i for i in BUILTIN if i.group_version == api_version and i.kind == kind), None)


def plural_info(plural: str) -> ResourceInfo:
    sample = SAMPLES[plural]
    info = info_for(sample["apiVersion"], sample["kind"])
    assert info is not None
    return info


def outcome(call: Callable[[], Any]) -> Any:
    """The call's result, or the ApiError it raised — which must be a 4xx."""
    try:
        return call()
    except ApiError as err:
        assert 400 <= err.code < 500, f"{err.code} {err.reason}: {err.message}"
        return err


def assert_plain(value: Any) -> None:
    problem = plain_json_problem(value)
    assert problem is None, problem


def decode_and_check(
    body: bytes, media: str, info: ResourceInfo | None, checker: SchemaFieldChecker, find_duplicates: bool
) -> Any:
    """What read_object does: decode, then (when the kind is known) check and prune unknown fields."""
    decoded = outcome(lambda: bodies.decode_object(body, media, find_duplicates=find_duplicates))
    if isinstance(decoded, ApiError):
        return decoded
    obj, _ = decoded
    assert_plain(obj)
    if info is not None:
        outcome(lambda: checker.unknown_fields(info, obj))
        assert_plain(obj)
    return decoded


@given(case=json_bodies())
@fuzz_settings("json")
def test_json_bodies(checker: SchemaFieldChecker, case: tuple[str, bytes]) -> None:
    plural, body = case
    CASES["json"] += 1
    decode_and_check(body, JSON, plural_info(plural), checker, find_duplicates=False)
    plain = outcome(lambda: bodies.decode_json(body))
    scanned = outcome(lambda: bodies.decode_json(body, find_duplicates=True))
    # With or without the duplicate scan: the same answer (a different message is fine).
    assert isinstance(plain, ApiError) == isinstance(scanned, ApiError)
    if not isinstance(scanned, ApiError):
        assert scanned[0] == plain[0]


@given(case=yaml_bodies())
@fuzz_settings("yaml")
def test_yaml_bodies(checker: SchemaFieldChecker, case: tuple[str, bytes]) -> None:
    plural, body = case
    CASES["yaml"] += 1
    decode_and_check(body, YAML, plural_info(plural), checker, find_duplicates=False)


@given(case=protobuf_bodies())
@fuzz_settings("protobuf")
def test_protobuf_bodies(checker: SchemaFieldChecker, case: tuple[str, str, bytes]) -> None:
    api_version, kind, body = case
    CASES["protobuf"] += 1
    decode_and_check(body, PROTOBUF, info_for(api_version, kind), checker, find_duplicates=False)


@given(media=st.sampled_from([JSON, YAML, PROTOBUF]), body=st.binary(max_size=64), magic=st.booleans())
@fuzz_settings("bytes")
def test_arbitrary_bytes(checker: SchemaFieldChecker, media: str, body: bytes, magic: bool) -> None:
    CASES["bytes"] += 1
    if magic and media == PROTOBUF:
        body = MAGIC + body
    decode_and_check(body, media, None, checker, find_duplicates=True)


def stored(plural: str, with_managed_fields: bool) -> dict[str, Any]:
    """The sample as the registry would hand it to a patch: system metadata, maybe an apply's managedFields."""
    info = plural_info(plural)
    obj = copy.deepcopy(SAMPLES[plural])
    if with_managed_fields:
        obj = apply_configuration(info, None, obj, WriteManager("before", APPLY), False)
    obj["metadata"].update(
        namespace="fuzz", uid="0b9f0a4e-3c1a-4f7e-8d7c-6b1f2e3d4c5b", resourceVersion="7",
        creationTimestamp="2024-01-01T00:00:00Z",
    )  # fmt: skip
    return obj


@given(
    case=patch_bodies(),
    directive=st.sampled_from(["", bodies.STRICT, bodies.WARN, bodies.IGNORE]),
    with_managed_fields=st.booleans(),
    force=st.booleans(),
)
@fuzz_settings("patch")
def test_patch_bodies(
    checker: SchemaFieldChecker,
    case: tuple[str, str, bytes],
    directive: str,
    with_managed_fields: bool,
    force: bool,
) -> None:
    plural, patch_type, body = case
    CASES["patch"] += 1
    info = plural_info(plural)
    live = stored(plural, with_managed_fields)

    def patched() -> Any:
        mutate = build_mutate(info, patch_type, body, "fuzzer", "s", force=force)
        duplicates = field_validation.patch_body_duplicates(directive, patch_type, body)
        checked = field_validation.CheckedPatch(mutate, checker, info, directive, patch_type, duplicates, "fuzz", "s")
        return checked(copy.deepcopy(live))

    result = outcome(patched)
    if not isinstance(result, ApiError):
        assert_plain(result)


# --- regressions: each crash the fuzzers found, now a 400 --------------------------------------


def _deep(levels: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * levels + "1" + close * levels).encode()


def _cm(extra: str) -> bytes:
    return ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},' + extra + "}").encode()


def _cm_yaml(extra: str) -> bytes:
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n" + extra).encode()


ALIAS_BOMB = _cm_yaml(
    "x: &l0 [a, a, a, a, a, a, a, a, a, a]\n"
    + "".join(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]\n" for n in range(1, 9))
)

REJECTED = [
    # RecursionError (500) in the duplicate scan of a Strict/Warn create.
    pytest.param(
        JSON, _cm('"x":' + _deep(1000).decode()), True, "exceeded the maximum nesting depth", id="json-deep-dup-scan"
    ),
    # Accepted, then orjson could not write it (TypeError, 500) when the object was stored.
    pytest.param(
        JSON, _cm('"x":' + _deep(300, '{"a":', "}").decode()), False, "maximum nesting depth", id="json-300-deep"
    ),
    # The duplicate scan used the standard parser, which accepts NaN, 1e999 and lone surrogates.
    pytest.param(JSON, _cm('"x":NaN'), True, "could not be decoded as JSON", id="json-nan-dup-scan"),
    pytest.param(JSON, _cm('"x":1e999'), True, "could not be decoded as JSON", id="json-infinity-dup-scan"),
    pytest.param(
        JSON, _cm('"data":{"a":"\\ud800"}'), True, "could not be decoded as JSON", id="json-surrogate-dup-scan"
    ),
    # PyYAML's composer recursed past the interpreter's limit (RecursionError, 500).
    pytest.param(
        YAML, _cm_yaml("x: " + _deep(1000).decode()), False, "exceeded the maximum nesting depth", id="yaml-deep"
    ),
    pytest.param(YAML, _cm_yaml("x: " + _deep(201).decode()), False, "maximum nesting depth", id="yaml-201-deep"),
    # A self-referencing alias: a cyclic value (orjson: TypeError, 500).
    pytest.param(YAML, _cm_yaml("x: &a [*a]"), False, "maximum nesting depth", id="yaml-recursive-alias"),
    # A billion laughs: shared by reference in PyYAML, a billion values once copied or written.
    pytest.param(YAML, ALIAS_BOMB, False, "excessive aliasing", id="yaml-alias-bomb"),
    # Explicit tags whose PyYAML constructors raise ValueError / KeyError.
    pytest.param(YAML, _cm_yaml("x: !!int abc"), False, "could not be decoded as YAML", id="yaml-bad-int-tag"),
    pytest.param(YAML, _cm_yaml("x: !!bool abc"), False, "could not be decoded as YAML", id="yaml-bad-bool-tag"),
    pytest.param(YAML, _cm_yaml("x: .nan"), False, "unsupported value", id="yaml-nan"),
    pytest.param(YAML, _cm_yaml("x: {~: 1}"), False, "unsupported map key", id="yaml-null-key"),
    # JSON text sent as YAML (client-go's apply patches) is read as JSON first: the limit holds there too.
    pytest.param(YAML, _cm('"x":' + _deep(1000).decode()), False, "maximum nesting depth", id="yaml-json-text-deep"),
]


@pytest.mark.parametrize(("media", "body", "find_duplicates", "message"), REJECTED)
def test_rejected_bodies_are_400(media: str, body: bytes, find_duplicates: bool, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        bodies.decode_object(body, media, find_duplicates=find_duplicates)
    assert caught.value.code == 400
    assert message in caught.value.message


ACCEPTED = [
    # A non-string key reached managed-fields code (TypeError, 500): sigs.k8s.io/yaml makes keys strings.
    pytest.param(_cm_yaml("data: {1: a, true: b, 1.5: c}"), {"1": "a", "true": "b", "1.5": "c"}, id="yaml-scalar-keys"),
    # datetime.date values: timestamps stay text, as go-yaml v2 reads them into interface{}.
    pytest.param(
        _cm_yaml("data: {a: 2024-01-01, b: 2001-12-14t21:59:43.10-05:00}"),
        {"a": "2024-01-01", "b": "2001-12-14t21:59:43.10-05:00"},
        id="yaml-timestamps",
    ),
    pytest.param(_cm_yaml("data: {a: !!binary aGVsbG8=}"), {"a": "hello"}, id="yaml-binary"),
    pytest.param(_cm_yaml('data: {a: "\\ud800"}'), {"a": "\ufffd"}, id="yaml-lone-surrogate"),
    pytest.param(_cm_yaml("data: !!set {a}"), {"a": None}, id="yaml-set"),
    pytest.param(_cm_yaml("data: {a: &v x, b: *v}"), {"a": "x", "b": "x"}, id="yaml-alias"),
]


@pytest.mark.parametrize(("body", "data"), ACCEPTED)
def test_yaml_values_become_plain_json(body: bytes, data: dict[str, Any]) -> None:
    obj, _ = bodies.decode_object(body, YAML)
    assert_plain(obj)
    assert obj["data"] == data


def test_json_text_sent_as_yaml_is_read_as_json() -> None:
    """As go-yaml reads it (``1e3`` is a number; PyYAML's YAML 1.1 would make it a string); flow-style YAML
    that is not JSON still goes to the YAML parser."""
    assert bodies.decode_yaml(b' {"a": 1e3, "b": [1, "x"]}') == {"a": 1000.0, "b": [1, "x"]}
    assert bodies.decode_yaml(b"{a: 1e3, b: [1, x]}") == {"a": "1e3", "b": [1, "x"]}
    assert bodies.decode_yaml(b'["\\ud800"]') == ["\ufffd"]  # orjson refuses it; YAML replaces it


@pytest.mark.parametrize("media", [JSON, YAML])
def test_bodies_at_the_depth_limit_are_accepted(media: str) -> None:
    levels = bodies.MAX_DEPTH - 2  # under the object and its "x"
    body = _cm('"x":' + _deep(levels).decode()) if media == JSON else _cm_yaml("x: " + _deep(levels).decode())
    obj, _ = bodies.decode_object(body, media, find_duplicates=True)
    assert_plain(obj)


def test_json_patch_cannot_nest_past_the_limit() -> None:
    """Each level of a JSON patch is within the limit; the patched object would not be (500 when stored)."""
    info = plural_info("configmaps")
    value = _deep(150, '{"a":', "}").decode()
    body = f'[{{"op":"add","path":"/x","value":{value}}},{{"op":"add","path":"/x{"/a" * 149}","value":{value}}}]'
    mutate = build_mutate(info, "application/json-patch+json", body.encode(), "", "s")
    with pytest.raises(ApiError) as caught:
        mutate(stored("configmaps", False))
    assert (caught.value.code, caught.value.message) == (
        400,
        f"the patched object exceeded the maximum nesting depth of {bodies.MAX_DEPTH}",
    )
