"""field_sets' fast paths give what the plain walks give: compare's skipping of equal subtrees,
FieldsV1 decoding that knows when its input is the encoding, prefix exclusion, memoised types.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from skiff.registry import field_sets
from skiff.registry.builtin import BUILTIN
from skiff.registry.field_sets import (
    compare,
    decode_fields_v1,
    encode_fields_v1,
    exclude_prefixes,
    field_set,
    from_fields_v1,
    to_fields_v1,
)
from skiff.registry.field_types import FieldType, root_type

POD = next(i for i in BUILTIN if i.kind == "Pod")


def pod(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}]}],
            "terminationGracePeriodSeconds": 30,
        },
        "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}], **status},
    }


def diff(old: Any, new: Any) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]], set[tuple[str, ...]]]:
    c = compare(old, new, root_type(POD))
    return c.added, c.removed, c.modified


# -- compare: equal subtrees are skipped, equal-but-differently-typed ones are not ---------------------
def test_equal_objects_differ_in_nothing() -> None:
    assert diff(pod(), copy.deepcopy(pod())) == (set(), set(), set())


def test_key_order_is_no_change() -> None:
    new = pod()
    new["spec"] = dict(reversed(list(new["spec"].items())))
    assert diff(pod(), new) == (set(), set(), set())


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(30, 30.0, id="int-float"),
        pytest.param(1, True, id="int-bool"),
        pytest.param(0, False, id="zero-false"),
    ],
)
def test_equal_values_of_other_types_are_modified(before: Any, after: Any) -> None:
    """``30 == 30.0`` but the walk's leaves tell them apart: the subtree holding them is not skipped."""
    old, new = pod(), pod()
    old["spec"]["terminationGracePeriodSeconds"] = before
    new["spec"]["terminationGracePeriodSeconds"] = after
    assert old == new
    assert diff(old, new) == (set(), set(), {("f:spec", "f:terminationGracePeriodSeconds")})


PORT = ("f:spec", "f:containers", 'k:{"name":"c"}', "f:ports")


def test_other_types_deep_in_a_list_item_are_modified() -> None:
    old, new = pod(), pod()
    old["spec"]["containers"][0]["ports"][0]["hostPort"] = 8080
    new["spec"]["containers"][0]["ports"][0]["hostPort"] = 8080.0
    assert old == new
    item = (*PORT, 'k:{"containerPort":80,"protocol":"TCP"}')
    assert diff(old, new) == (set(), set(), {(*item, "f:hostPort")})


def test_other_types_in_a_key_are_other_items() -> None:
    old, new = pod(), pod()
    new["spec"]["containers"][0]["ports"][0]["containerPort"] = 80.0
    assert old == new
    before, after = (
        (*PORT, 'k:{"containerPort":80,"protocol":"TCP"}'),
        (*PORT, 'k:{"containerPort":80.0,"protocol":"TCP"}'),
    )
    added, removed, modified = diff(old, new)
    assert added == {after, (*after, "f:containerPort"), (*after, "f:protocol")}
    assert removed == {before, (*before, "f:containerPort"), (*before, "f:protocol")}
    assert modified == set()


def test_changed_list_item_only() -> None:
    new = pod()
    new["status"]["conditions"][0]["status"] = "True"
    assert diff(pod(), new) == (set(), set(), {("f:status", "f:conditions", 'k:{"type":"Ready"}', "f:status")})


def test_added_and_removed_subtrees() -> None:
    old, new = pod(), pod(podIPs=[{"ip": "10.0.0.1"}])
    del new["metadata"]["labels"]
    added, removed, modified = diff(old, new)
    assert added == {("f:status", "f:podIPs"), ("f:status", "f:podIPs", 'k:{"ip":"10.0.0.1"}'),
                     ("f:status", "f:podIPs", 'k:{"ip":"10.0.0.1"}', "f:ip")}  # fmt: skip
    assert removed == {("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:app")}
    assert modified == set()


class CountingType:
    """A FieldType stand-in that counts the children asked of it (the walks memoise theirs per node)."""

    asked: list[str] = []  # (shared on purpose: every node of one tree counts here)

    def __init__(self, inner: FieldType, where: str = "") -> None:
        self.inner, self.where = inner, where

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def atomic(self) -> bool:
        return self.inner.atomic

    def list_type(self) -> Any:
        return self.inner.list_type()

    def field(self, key: str) -> tuple[FieldType, bool]:
        CountingType.asked.append(f"{self.where}/{key}")
        child, named = self.inner.field(key)
        return cast(FieldType, CountingType(child, f"{self.where}/{key}")), named

    def item(self) -> FieldType:
        CountingType.asked.append(f"{self.where}[]")
        return cast(FieldType, CountingType(self.inner.item(), f"{self.where}[]"))


def counting_root() -> FieldType:
    return cast(FieldType, CountingType(root_type(POD)))


def test_walks_skip_equal_subtrees_and_build_each_type_once() -> None:
    root = counting_root()
    CountingType.asked.clear()
    compare(pod(), copy.deepcopy(pod()), root)
    assert CountingType.asked == []  # nothing differs: no type looked at below the root
    new = pod()
    new["status"]["conditions"][0]["status"] = "True"
    compare(pod(), new, root)
    first = list(CountingType.asked)
    assert "/spec" not in first and "/metadata" not in first  # equal sections: skipped
    assert "/status/conditions" in first
    CountingType.asked.clear()
    compare(pod(), new, root)
    assert CountingType.asked == []  # the same walk again: every type it needs is memoised
    field_set(new, root)
    assert set(CountingType.asked).isdisjoint(first)  # only types the compare did not need


def test_field_set_and_compare_agree_with_a_fresh_type() -> None:
    """Memoised nodes give what a type built afresh gives."""
    obj = pod(podIPs=[{"ip": "10.0.0.1"}])
    assert field_set(obj, counting_root()) == field_set(obj, root_type(POD))
    assert field_set(obj, counting_root()) == field_set(obj, counting_root())


# -- FieldsV1: decoding knows when its input is the encoding ------------------------------------------
CANONICAL = {
    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
    "f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:image": {}, "f:name": {}}}},
}


def test_encoding_decodes_as_canonical() -> None:
    fields, canonical = decode_fields_v1(CANONICAL)
    assert canonical
    assert fields == from_fields_v1(CANONICAL)
    assert to_fields_v1(fields) == CANONICAL


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"f:spec": {}, "f:metadata": {}}, id="out-of-order"),
        pytest.param({"f:a": {"f:b": {}, ".": {}}}, id="dot-not-first"),
        pytest.param({"f:a": {".": {}}}, id="dot-alone"),
        pytest.param({".": {}, "f:a": {}}, id="dot-on-root"),
        pytest.param({"f:a": {".": {"x": {}}, "f:b": {}}}, id="dot-not-empty"),
        pytest.param({"f:a": {'k:{ "name": "c" }': {}}}, id="key-spelling"),
        pytest.param({"f:a": {'k:{"b":1,"a":2}': {}}}, id="key-field-order"),
        pytest.param({"f:p": {'k:{"port":1}': {}, 'k:{"port":1.0}': {}}}, id="tie"),
    ],
)
def test_other_spellings_are_not_canonical(raw: dict[str, Any]) -> None:
    fields, canonical = decode_fields_v1(raw)
    assert not canonical
    assert fields == from_fields_v1(raw)


def test_decode_errors_unchanged() -> None:
    with pytest.raises(ValueError, match="invalid FieldsV1 element"):
        decode_fields_v1({"x:a": {}})
    with pytest.raises(ValueError, match="FieldsV1 must be an object"):
        decode_fields_v1([])


def test_encode_reports_ties() -> None:
    out, alone = encode_fields_v1({("f:p", 'k:{"port":1}'), ("f:p", 'k:{"port":1.0}')})
    assert not alone and set(out["f:p"]) == {'k:{"port":1}', 'k:{"port":1.0}'}
    out, alone = encode_fields_v1({("f:p", 'k:{"port":1}'), ("f:p", 'k:{"port":2}'), ("f:q",)})
    assert alone and out == {"f:p": {'k:{"port":1}': {}, 'k:{"port":2}': {}}, "f:q": {}}


# -- exclude_prefixes ------------------------------------------------------------------------------------
PATHS = frozenset(
    {
        ("f:status",),
        ("f:status", "f:phase"),
        ("f:spec", "f:replicas"),
        ("f:metadata", "f:labels"),
        ("f:metadata", "f:labels", "f:app"),
        ("f:metadata", "f:annotations", "f:a"),
        (),
    }
)


@pytest.mark.parametrize(
    "prefixes",
    [
        (),
        (("f:status",),),
        (("f:spec",), ("f:metadata", "f:labels")),
        (("f:nothing",),),
        ((),),
    ],
)
def test_exclude_prefixes(prefixes: tuple[tuple[str, ...], ...]) -> None:
    expected = frozenset(p for p in PATHS if not any(p[: len(b)] == b for b in prefixes))
    assert exclude_prefixes(PATHS, prefixes) == expected


def test_roots_are_bounded() -> None:
    for _ in range(field_sets._MAX_ROOTS + 5):
        field_set({"spec": {"a": 1}}, counting_root())
    assert len(field_sets._ROOTS) <= field_sets._MAX_ROOTS
