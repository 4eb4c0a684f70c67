"""managedFields and server-side apply: FieldsV1, field sets, Update ownership, apply merge/conflicts/removal.

Expected values are upstream's (structured-merge-diff's FieldsV1 and conflict
texts, as kube-apiserver 1.32 shows them for the same objects).
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.api.status import ApiError
from skiff.apiserver.field_managers import prefix_from_user_agent
from skiff.registry import field_sets, managed_fields
from skiff.registry.apply import LAST_APPLIED, apply_configuration, merge
from skiff.registry.builtin import BUILTIN
from skiff.registry.custom.strategy import CustomResourceStrategy, version_rules
from skiff.registry.field_sets import field_set, path_string, to_fields_v1
from skiff.registry.field_types import root_type
from skiff.registry.managed_fields import (
    APPLY,
    REQUEST_MANAGER,
    UPDATE,
    Entry,
    WriteManager,
    cap_update_managers,
    decode,
    encode,
    is_reset,
    managing,
    record_write,
)
from skiff.registry.resource import Obj, ResourceInfo

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
LATER = datetime(2024, 5, 1, 12, 5, 0, tzinfo=UTC)


def info_of(kind: str) -> ResourceInfo:
    return next(i for i in BUILTIN if i.kind == kind)


DEPLOYMENT = info_of("Deployment")
CONFIGMAP = info_of("ConfigMap")
POD = info_of("Pod")

WIDGET = ResourceInfo(
    "example.com",
    "v1",
    "widgets",
    "widget",
    "Widget",
    True,
    CustomResourceStrategy(
        version_rules(
            {
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "size": {"type": "string"},
                                    "ports": {
                                        "type": "array",
                                        "x-kubernetes-list-type": "map",
                                        "x-kubernetes-list-map-keys": ["name"],
                                        "items": {
                                            "type": "object",
                                            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                                        },
                                    },
                                    "tags": {"type": "array", "items": {"type": "string"}},
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                            }
                        },
                    }
                }
            }
        ),
        True,
    ),
)


def deployment(replicas: int = 2, labels: dict[str, str] | None = None, **container: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels or {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", **container}]},
            },
        },
    }


def configmap(**data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}, "data": data}


def entries(obj: Obj) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def updated(info: ResourceInfo, old: Obj | None, new: Obj, manager: str, when: datetime = NOW, sub: str = "") -> Obj:
    out = copy.deepcopy(new)
    with managing(WriteManager(manager, UPDATE, sub)):
        record_write(info, old, out, when)
    return out


def applied(info: ResourceInfo, live: Obj | None, config: Obj, manager: str, force: bool = False) -> Obj:
    """An apply as the registry runs it: the mutate, then the write hook that stamps the time."""
    out = apply_configuration(info, copy.deepcopy(live) if live else None, config, WriteManager(manager, APPLY), force)
    with managing(WriteManager(manager, APPLY)):
        record_write(info, live, out, NOW)
    return out


# -- FieldsV1 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        pytest.param([("f:a",)], {"f:a": {}}, id="leaf"),
        pytest.param([("f:a",), ("f:a", "f:b")], {"f:a": {".": {}, "f:b": {}}}, id="member-with-children"),
        pytest.param([("f:a", "f:b")], {"f:a": {"f:b": {}}}, id="not-a-member"),
        pytest.param(
            [("f:p", 'k:{"port":8080}'), ("f:p", 'k:{"port":443}'), ("f:p", 'k:{"port":80}')],
            {"f:p": {'k:{"port":80}': {}, 'k:{"port":443}': {}, 'k:{"port":8080}': {}}},
            id="keys-numeric-order",
        ),
        pytest.param(
            [("f:z",), ("f:a",), ("f:l", 'v:"x"'), ("f:l", "v:1")],
            {"f:a": {}, "f:l": {"v:1": {}, 'v:"x"': {}}, "f:z": {}},
            id="numbers-before-strings",
        ),
    ],
)
def test_fields_v1_encoding(paths: list[tuple[str, ...]], expected: dict[str, Any]) -> None:
    encoded = to_fields_v1(paths)
    assert json.dumps(encoded) == json.dumps(expected)  # order too
    assert field_sets.from_fields_v1(encoded) == frozenset(paths)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({"x:y": {}}, id="bad-prefix"),
        pytest.param({"k:{bad": {}}, id="bad-key-json"),
        pytest.param({"f:a": 1}, id="not-a-trie"),
    ],
)
def test_fields_v1_decode_rejects(raw: Any) -> None:
    with pytest.raises(ValueError):
        field_sets.from_fields_v1(raw)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        pytest.param(("f:spec", "f:replicas"), ".spec.replicas", id="fields"),
        pytest.param(("f:spec", 'k:{"name":"nginx"}', "f:image"), '.spec[name="nginx"].image', id="key"),
        pytest.param(('k:{"containerPort":80,"protocol":"TCP"}',), '[containerPort=80,protocol="TCP"]', id="two-keys"),
        pytest.param(("f:finalizers", 'v:"a/b"'), '.finalizers[="a/b"]', id="set-value"),
        pytest.param(("f:l", "i:3"), ".l[3]", id="index"),
    ],
)
def test_path_string(path: tuple[str, ...], text: str) -> None:
    assert path_string(path) == text


# -- field sets from objects ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("info", "obj", "expected"),
    [
        pytest.param(
            CONFIGMAP,
            configmap(a="1"),
            {"f:apiVersion": {}, "f:data": {"f:a": {}}, "f:kind": {}, "f:metadata": {"f:name": {}, "f:namespace": {}}},
            id="map-keys",
        ),
        pytest.param(
            DEPLOYMENT,
            {"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {}}}}},
            {"f:spec": {"f:selector": {}, "f:template": {"f:metadata": {"f:labels": {}}}}},
            id="atomic-struct-and-empty-map",
        ),
        pytest.param(
            POD,
            {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}},
            {
                "f:spec": {
                    "f:containers": {
                        'k:{"name":"c"}': {
                            ".": {},
                            "f:name": {},
                            "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                        }
                    }
                }
            },
            id="list-map-keys-with-default",
        ),
        pytest.param(
            POD,
            {"metadata": {"finalizers": ["a", "b"]}, "spec": {"nodeName": None, "volumes": []}},
            {"f:metadata": {"f:finalizers": {'v:"a"': {}, 'v:"b"': {}}}, "f:spec": {"f:nodeName": {}}},
            id="set-null-and-empty-list",
        ),
        pytest.param(
            POD,
            {"spec": {"tolerations": [{"key": "k"}], "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["h"]}]}},
            {
                "f:spec": {
                    "f:hostAliases": {'k:{"ip":"1.2.3.4"}': {".": {}, "f:hostnames": {}, "f:ip": {}}},
                    "f:tolerations": {},
                }
            },
            id="atomic-list-and-atomic-items-list",
        ),
        pytest.param(
            WIDGET,
            {"spec": {"ports": [{"name": "a", "port": 1}], "tags": ["x"], "extra": {"k": {"deep": 1}, "l": [1]}}},
            {
                "f:spec": {
                    "f:extra": {"f:k": {".": {}, "f:deep": {}}, "f:l": {}},
                    "f:ports": {'k:{"name":"a"}': {".": {}, "f:name": {}, "f:port": {}}},
                    "f:tags": {},
                }
            },
            id="custom-resource-extensions-and-untyped",
        ),
        pytest.param(
            WIDGET,
            {"metadata": {"finalizers": ["a"], "ownerReferences": [{"uid": "u", "name": "n"}]}},
            {
                "f:metadata": {
                    "f:finalizers": {'v:"a"': {}},
                    "f:ownerReferences": {'k:{"uid":"u"}': {".": {}, "f:name": {}, "f:uid": {}}},
                }
            },
            id="custom-resource-object-meta",
        ),
    ],
)
def test_field_set(info: ResourceInfo, obj: Obj, expected: dict[str, Any]) -> None:
    assert to_fields_v1(field_set(obj, root_type(info))) == expected


def test_compare_marks_new_containers_and_changed_leaves() -> None:
    old = configmap(a="1", b="2")
    new = configmap(a="9", c="3")
    new["metadata"]["labels"] = {"x": "y"}
    diff = field_sets.compare(old, new, root_type(CONFIGMAP))
    assert diff.modified == {("f:data", "f:a")}
    assert diff.removed == {("f:data", "f:b")}
    assert diff.added == {("f:data", "f:c"), ("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:x")}


# -- Update ownership -------------------------------------------------------------------------------
def test_create_owns_what_it_set_against_the_zero_object() -> None:
    obj = deployment()
    obj["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}}
    created = updated(DEPLOYMENT, None, obj, "kubectl-create")
    (entry,) = created["metadata"]["managedFields"]
    assert entry == {
        "manager": "kubectl-create",
        "operation": "Update",
        "apiVersion": "apps/v1",
        "time": "2024-05-01T12:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {'k:{"name":"nginx"}': {".": {}, "f:image": {}, "f:name": {}}}},
                },
            },
        },
    }


def test_update_takes_changed_fields_and_keeps_its_old_ones() -> None:
    created = updated(CONFIGMAP, None, configmap(a="1", b="2"), "creator")
    edited = copy.deepcopy(created)
    edited["data"]["a"] = "9"
    edited["data"]["c"] = "3"
    del edited["data"]["b"]
    after = updated(CONFIGMAP, created, edited, "editor", LATER)
    assert entries(after)[("creator", UPDATE)]["fieldsV1"] == {"f:data": {}}  # only the map itself is left
    editor = entries(after)[("editor", UPDATE)]
    assert editor["fieldsV1"] == {"f:data": {"f:a": {}, "f:c": {}}}
    assert editor["time"] == "2024-05-01T12:05:00Z"
    # A later no-op write by the same manager keeps its entry (and time) unchanged.
    again = updated(CONFIGMAP, after, copy.deepcopy(after), "editor", datetime(2030, 1, 1, tzinfo=UTC))
    assert again["metadata"]["managedFields"] == after["metadata"]["managedFields"]


def test_status_is_not_owned_through_the_main_resource() -> None:
    old = updated(DEPLOYMENT, None, deployment(), "creator")
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 3}
    new["spec"]["replicas"] = 4
    after = updated(DEPLOYMENT, old, new, "writer")
    assert entries(after)[("writer", UPDATE)]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    through_status = updated(DEPLOYMENT, old, new, "ctrl", sub="status")
    ctrl = next(e for e in through_status["metadata"]["managedFields"] if e["manager"] == "ctrl")
    assert (ctrl["subresource"], ctrl["fieldsV1"]) == ("status", {"f:status": {".": {}, "f:replicas": {}}})


@pytest.mark.parametrize(
    ("sent", "expected_managers"),
    [
        pytest.param(None, ["creator", "w"], id="absent-keeps-stored"),
        pytest.param([{}], ["w"], id="one-empty-entry-resets"),
        pytest.param([], ["w"], id="empty-list-resets"),
        pytest.param(
            [{"manager": "mine", "operation": "Update", "apiVersion": "v1", "fieldsV1": {"f:data": {"f:a": {}}}}],
            ["mine", "w"],
            id="given-replaces",
        ),
    ],
)
def test_managed_fields_sent_by_the_client(sent: Any, expected_managers: list[str]) -> None:
    created = updated(CONFIGMAP, None, configmap(a="1"), "creator")
    new = copy.deepcopy(created)
    new["data"]["z"] = "2"
    if sent is None:
        del new["metadata"]["managedFields"]
    else:
        new["metadata"]["managedFields"] = sent
    after = updated(CONFIGMAP, created, new, "w")
    assert sorted(e["manager"] for e in after["metadata"]["managedFields"]) == expected_managers


def test_is_reset() -> None:
    assert is_reset([]) and is_reset([{}])
    assert not is_reset(None) and not is_reset([{}, {}]) and not is_reset([{"manager": "m"}])


def test_update_managers_are_capped() -> None:
    managers = {}
    for i in range(12):
        entry = Entry(f"m{i:02}", UPDATE, "v1", f"2024-01-01T00:00:{i:02}Z", fields=frozenset({(f"f:x{i}",)}))
        managers[entry.key] = entry
    capped = cap_update_managers(managers)
    names = sorted(e.manager for e in capped.values())
    assert len(names) == 10 and "ancient-changes" in names and "m00" not in names and "m02" not in names
    bucket = next(e for e in capped.values() if e.manager == "ancient-changes")
    assert bucket.fields == {("f:x0",), ("f:x1",), ("f:x2",)}


def test_no_manager_no_tracking() -> None:
    assert REQUEST_MANAGER.get() is None
    obj = configmap(a="1")
    record_write(CONFIGMAP, None, obj, NOW)
    assert "managedFields" not in obj["metadata"]


# -- apply --------------------------------------------------------------------------------------------------
def test_apply_creates_with_an_apply_entry() -> None:
    created = applied(DEPLOYMENT, None, deployment(), "kubectl")
    (entry,) = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["time"]) == ("kubectl", "Apply", "2024-05-01T12:00:00Z")
    assert entry["fieldsV1"]["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert created["spec"]["replicas"] == 2


def test_reapplying_the_same_configuration_changes_nothing() -> None:
    created = applied(DEPLOYMENT, None, deployment(), "kubectl")
    again = apply_configuration(DEPLOYMENT, copy.deepcopy(created), deployment(), WriteManager("kubectl", APPLY), False)
    assert again == created


def test_conflict_with_an_update_manager_and_force() -> None:
    created = applied(DEPLOYMENT, None, deployment(), "kubectl")
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 5
    scaled = updated(DEPLOYMENT, created, scaled, "kubectl", sub="scale")
    with pytest.raises(ApiError) as caught:
        applied(DEPLOYMENT, scaled, deployment(replicas=3), "kubectl")
    body = json.loads(caught.value.body())
    assert (body["code"], body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas'
    )
    assert body["details"] == {
        "causes": [
            {
                "reason": "FieldManagerConflict",
                "message": 'conflict with "kubectl" with subresource "scale" using apps/v1',
                "field": ".spec.replicas",
            }
        ]
    }
    # The same value is no conflict: the field becomes shared.
    shared = applied(DEPLOYMENT, scaled, deployment(replicas=5), "kubectl")
    assert shared["metadata"]["managedFields"][1]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    # Force moves the field: the scaler's entry, left empty, goes.
    forced = applied(DEPLOYMENT, scaled, deployment(replicas=3), "kubectl", force=True)
    assert forced["spec"]["replicas"] == 3
    assert [(e["manager"], e["operation"]) for e in forced["metadata"]["managedFields"]] == [("kubectl", "Apply")]


def test_several_conflicts_message() -> None:
    live = applied(CONFIGMAP, None, configmap(a="1", b="2"), "alice")
    with pytest.raises(ApiError) as caught:
        applied(CONFIGMAP, live, configmap(a="x", b="y"), "bob")
    assert caught.value.message == 'Apply failed with 2 conflicts: conflicts with "alice":\n- .data.a\n- .data.b'


def test_dropped_fields_are_removed_unless_someone_else_owns_them() -> None:
    live = applied(CONFIGMAP, None, configmap(a="1", b="2", c="3"), "alice")
    live = applied(CONFIGMAP, live, configmap(c="3"), "bob")  # bob co-owns c
    after = applied(CONFIGMAP, live, configmap(a="1"), "alice")
    assert after["data"] == {"a": "1", "c": "3"}
    # Dropping everything: alice's entry goes, the map keeps what bob owns.
    last = applied(CONFIGMAP, after, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}, "alice")
    assert last["data"] == {"c": "3"}
    assert [e["manager"] for e in last["metadata"]["managedFields"]] == ["bob"]


def test_dropped_list_item_goes_whole() -> None:
    two = deployment()
    two["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "busybox"})
    live = applied(DEPLOYMENT, None, two, "kubectl")
    live["spec"]["template"]["spec"]["containers"][1]["imagePullPolicy"] = "Always"  # defaulted, unowned
    after = applied(DEPLOYMENT, live, deployment(), "kubectl")
    assert [c["name"] for c in after["spec"]["template"]["spec"]["containers"]] == ["nginx"]


def test_update_manager_keeps_a_field_the_applier_drops() -> None:
    live = applied(DEPLOYMENT, None, deployment(replicas=3), "kubectl")
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 3  # no change: the applier keeps sole ownership
    config = deployment()
    del config["spec"]["replicas"]
    after = applied(DEPLOYMENT, live, config, "kubectl")
    assert "replicas" not in after["spec"]
    other = updated(DEPLOYMENT, live, {**copy.deepcopy(live), "spec": {**live["spec"], "replicas": 7}}, "hpa")
    kept = applied(DEPLOYMENT, other, config, "kubectl")
    assert kept["spec"]["replicas"] == 7


@pytest.mark.parametrize(
    ("live", "config", "expected"),
    [
        pytest.param(["a", "b"], ["c"], ["a", "b", "c"], id="append-new"),
        pytest.param(["a", "b", "c"], ["c", "a"], ["b", "c", "a"], id="config-orders-shared"),
        pytest.param(["a", "b", "c"], ["b", "x"], ["a", "b", "c", "x"], id="live-only-items-stay-before-new"),
        pytest.param(["a", "b"], ["x", "b"], ["a", "x", "b"], id="new-before-its-successor"),
    ],
)
def test_set_merge_order(live: list[str], config: list[str], expected: list[str]) -> None:
    t = root_type(POD)
    obj = merge({"metadata": {"finalizers": live}}, {"metadata": {"finalizers": config}}, t)
    assert obj["metadata"]["finalizers"] == expected


def test_associative_list_merges_items_by_key() -> None:
    live = deployment(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    config = deployment(env=[{"name": "B", "value": "3"}])
    merged = merge(live, config, root_type(DEPLOYMENT))
    assert merged["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "3"},
    ]
    # An atomic list is replaced whole.
    live = deployment(args=["a", "b"])
    assert merge(live, deployment(args=["c"]), root_type(DEPLOYMENT))["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] == ["c"]


def test_client_side_apply_fields_may_be_taken_by_kubectl() -> None:
    config = configmap(a="1")
    annotated = copy.deepcopy(config)
    annotated["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(config)}
    live = updated(CONFIGMAP, None, annotated, "kubectl-client-side-apply")
    with pytest.raises(ApiError):
        applied(CONFIGMAP, live, configmap(a="2"), "someone")
    after = applied(CONFIGMAP, live, configmap(a="2"), "kubectl")
    assert after["data"] == {"a": "2"}
    assert json.loads(after["metadata"]["annotations"][LAST_APPLIED]) == configmap(a="2")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "managedFields": []}},
            "metadata.managedFields must be nil",
            id="managed-fields",
        ),
        pytest.param(
            {"kind": "ConfigMap", "metadata": {"name": "cm"}},
            "Incorrect version specified in apply patch. Specified patch version: , expected: v1",
            id="no-api-version",
        ),
    ],
)
def test_apply_rejects(config: Obj, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        apply_configuration(CONFIGMAP, None, config, WriteManager("m", APPLY), False)
    assert (caught.value.code, caught.value.message) == (400, message)


def test_entries_sort_apply_first_then_time() -> None:
    def entry(manager: str, operation: str, day: int) -> dict[str, Any]:
        time = f"2024-01-0{day}T00:00:00Z"
        return {"manager": manager, "operation": operation, "apiVersion": "v1", "time": time, "fieldsV1": {"f:a": {}}}

    raw = [entry("u2", "Update", 2), entry("u1", "Update", 1), entry("ap", "Apply", 3)]
    assert [e["manager"] for e in encode(decode(raw))] == ["ap", "u1", "u2"]


@pytest.mark.parametrize(
    ("agent", "manager"),
    [
        pytest.param("kubectl.1.32/v1.32.2 (linux/amd64) kubernetes/67a30c0", "kubectl.1.32", id="kubectl"),
        pytest.param("OpenAPI-Generator/31.0.0/python", "OpenAPI-Generator", id="python-client"),
        pytest.param("a\x00b/1", "ab", id="unprintable-dropped"),
        pytest.param("x" * 200, "x" * 128, id="cut-to-128"),
        pytest.param("", "", id="none"),
    ],
)
def test_manager_from_user_agent(agent: str, manager: str) -> None:
    assert prefix_from_user_agent(agent) == manager


# -- re-encoding only what changed ---------------------------------------------------------------------
def fields_v1_of(obj: Obj) -> dict[str, Any]:
    return {e["manager"]: e["fieldsV1"] for e in obj["metadata"]["managedFields"]}


def scaled_by_two_managers() -> Obj:
    """A Deployment created by "creator" and then scaled by "scaler" (two entries, as stored)."""
    created = json.loads(json.dumps(updated(DEPLOYMENT, None, deployment(), "creator")))
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 5
    stored: Obj = json.loads(json.dumps(updated(DEPLOYMENT, created, scaled, "scaler", LATER)))
    return stored


def test_untouched_entries_keep_the_request_fields_v1() -> None:
    """The request's own FieldsV1 objects of entries the write leaves alone are put back as they are."""
    live = scaled_by_two_managers()
    new = copy.deepcopy(live)
    new["metadata"]["labels"]["tier"] = "web"
    sent = fields_v1_of(new)
    with managing(WriteManager("labeller", UPDATE)):
        record_write(DEPLOYMENT, live, new, LATER)
    out = fields_v1_of(new)
    assert out["creator"] is sent["creator"] and out["scaler"] is sent["scaler"]
    assert out["labeller"] == {"f:metadata": {"f:labels": {"f:tier": {}}}}
    assert out == {m: to_fields_v1(field_sets.from_fields_v1(f)) for m, f in out.items()}


def test_entries_from_the_stored_object_are_copies() -> None:
    """Without managedFields in the request the stored ones are used: equal, never the stored objects."""
    live = scaled_by_two_managers()
    new = copy.deepcopy(live)
    del new["metadata"]["managedFields"]
    new["metadata"]["labels"]["tier"] = "web"
    with managing(WriteManager("labeller", UPDATE)):
        record_write(DEPLOYMENT, live, new, LATER)
    stored, out = fields_v1_of(live), fields_v1_of(new)
    assert out["creator"] == stored["creator"] and out["creator"] is not stored["creator"]
    assert out["scaler"] == stored["scaler"] and out["scaler"] is not stored["scaler"]


def test_other_spellings_of_fields_v1_are_encoded_afresh() -> None:
    """FieldsV1 that is not exactly the encoding (order, spelling) comes out as the encoding."""
    live = scaled_by_two_managers()
    new = copy.deepcopy(live)
    scaler = next(e for e in new["metadata"]["managedFields"] if e["manager"] == "scaler")
    scaler["fieldsV1"] = {"f:spec": {"f:replicas": {".": {}}}}  # a member spelled with "." alone
    creator = next(e for e in new["metadata"]["managedFields"] if e["manager"] == "creator")
    creator["fieldsV1"] = dict(reversed(list(creator["fieldsV1"].items())))  # f:spec before f:metadata
    new["metadata"]["labels"]["tier"] = "web"
    with managing(WriteManager("labeller", UPDATE)):
        record_write(DEPLOYMENT, live, new, LATER)
    out = fields_v1_of(new)
    assert out["scaler"] == {"f:spec": {"f:replicas": {}}}
    assert list(out["creator"]) == ["f:metadata", "f:spec"]
    assert out["creator"] == fields_v1_of(live)["creator"]


def test_a_writer_changing_only_its_own_fields_keeps_its_fields_v1() -> None:
    """A lease renewal: the writer takes back exactly what it owned; only its time moves."""
    live = scaled_by_two_managers()
    new = copy.deepcopy(live)
    new["spec"]["replicas"] = 7
    sent = fields_v1_of(new)
    with managing(WriteManager("scaler", UPDATE)):
        record_write(DEPLOYMENT, live, new, datetime(2024, 5, 1, 13, 0, 0, tzinfo=UTC))
    assert fields_v1_of(new)["scaler"] is sent["scaler"]
    assert entries(new)[("scaler", UPDATE)]["time"] == "2024-05-01T13:00:00Z"


def test_entries_with_the_same_fields_get_objects_of_their_own() -> None:
    raw: list[dict[str, Any]] = [
        {"manager": m, "operation": UPDATE, "apiVersion": "v1", "time": "2024-01-01T00:00:00Z", "fieldsV1": {"f:a": {}}}
        for m in ("one", "two")
    ]
    encodings: managed_fields.Encodings = {}
    out = encode(decode(raw, encodings), encodings)
    assert [e["fieldsV1"] for e in out] == [{"f:a": {}}, {"f:a": {}}]
    assert out[0]["fieldsV1"] is not out[1]["fieldsV1"]


def test_remembered_encodings_are_fresh_objects_and_errors_are_not_remembered() -> None:
    fields = frozenset({("f:a",), ("f:b", "f:c")})
    first = encode({("m", UPDATE, "", "v1"): Entry("m", UPDATE, "v1", "t", fields=fields)})
    second = encode({("m", UPDATE, "", "v1"): Entry("m", UPDATE, "v1", "t", fields=frozenset(fields))})
    assert first == second and first[0]["fieldsV1"] is not second[0]["fieldsV1"]
    bad = [{"manager": "m", "operation": UPDATE, "fieldsV1": {"x:a": {}}}]
    for _ in range(2):
        with pytest.raises(ValueError, match="invalid FieldsV1 element"):
            decode(bad)


def test_remembered_field_sets_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(managed_fields, "_MAX_DECODED", 8)
    monkeypatch.setattr(managed_fields, "_MAX_ENCODED", 4)
    for n in range(20):
        decode([{"manager": "m", "operation": UPDATE, "fieldsV1": {f"f:a{n:02d}": {}}}])
    assert len(managed_fields._DECODED) <= 8 and len(managed_fields._ENCODED) <= 4
