"""``FieldType`` memoises what it computes; what it answers stays the same (pure)."""

from __future__ import annotations

from skiff.registry.builtin import find
from skiff.registry.field_types import KIND_MAP, KIND_SCALAR, KIND_UNTYPED, LIST_MAP, FieldType, root_type
from skiff.registry.resource import ResourceInfo


def _pods() -> ResourceInfo:
    info = find("", "v1", "pods")
    assert info is not None
    return info


def test_named_fields_and_items_are_built_once() -> None:
    root = root_type(_pods())
    spec, named = root.field("spec")
    assert named and root.field("spec") == (spec, True)
    containers, _ = spec.field("containers")
    assert containers.item() is containers.item()
    ports, _ = containers.item().field("ports")
    assert (ports.path, ports.owner, ports.name) == ("spec.containers[].ports", "Container", "ports")
    assert ports.list_type()[0] == LIST_MAP
    assert ports.list_type() is ports.list_type()


def test_map_values_carry_their_key() -> None:
    meta, _ = root_type(_pods()).field("metadata")
    labels, _ = meta.field("labels")
    first, named = labels.field("app")
    second, _ = labels.field("tier")
    assert not named
    assert (first.path, first.name, first.kind) == ("metadata.labels.app", "app", KIND_SCALAR)
    assert (second.path, second.name, second.kind) == ("metadata.labels.tier", "tier", KIND_SCALAR)
    assert first.resolved() == FieldType(first.schema, first.components).resolved()
    requests = root_type(_pods()).field("spec")[0].field("containers")[0].item().field("resources")[0]
    cpu, _ = requests.field("requests")[0].field("cpu")
    assert (cpu.kind, cpu.resolved()[1]) == (KIND_SCALAR, "Quantity")


def test_free_form_children() -> None:
    untyped = FieldType({}, {})
    child, named = untyped.field("x")
    assert (named, child.kind, child.path) == (False, KIND_UNTYPED, "x")
    assert untyped.field("y")[0].path == "y"


def test_zero_is_a_fresh_value_each_time() -> None:
    root = root_type(_pods())
    zero = {"metadata": {}, "spec": {"containers": None, "resources": {}}, "status": {"resources": {}}}
    first = root.zero()
    assert first == zero
    first["spec"]["resources"]["x"] = 1
    first["metadata"]["name"] = "n"
    assert root.zero() == zero
    assert root.kind == KIND_MAP
