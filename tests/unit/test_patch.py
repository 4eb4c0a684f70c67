"""JSON patch, merge patch and strategic merge patch, checked against upstream's documented behaviour."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.api.patch import (
    MAX_JSON_PATCH_OPERATIONS,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)
from skiff.api.patch_schema import KINDS, schema_for, supports_strategic_merge
from skiff.api.status import ApiError

# --- RFC 6902 JSON patch ----------------------------------------------------------------------

DOC = {"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 1, "items": ["a", "b"]}}


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        pytest.param([], DOC, id="no-ops"),
        pytest.param(
            [{"op": "replace", "path": "/spec/replicas", "value": 3}],
            {**DOC, "spec": {"replicas": 3, "items": ["a", "b"]}},
            id="replace",
        ),
        pytest.param(
            [{"op": "add", "path": "/metadata/labels/tier", "value": "fe"}],
            {**DOC, "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}}},
            id="add-key",
        ),
        pytest.param(
            [{"op": "add", "path": "/spec/items/-", "value": "c"}],
            {**DOC, "spec": {"replicas": 1, "items": ["a", "b", "c"]}},
            id="append",
        ),
        pytest.param(
            [{"op": "remove", "path": "/metadata/labels/app"}],
            {**DOC, "metadata": {"name": "web", "labels": {}}},
            id="remove",
        ),
        pytest.param(
            [
                {"op": "test", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": "/spec/replicas", "value": 2},
            ],
            {**DOC, "spec": {"replicas": 2, "items": ["a", "b"]}},
            id="test-then-replace",
        ),
        pytest.param(
            [{"op": "move", "from": "/spec/items", "path": "/spec/list"}],
            {**DOC, "spec": {"replicas": 1, "list": ["a", "b"]}},
            id="move",
        ),
        pytest.param(
            [{"op": "replace", "path": "/spec/missing", "value": 1}],
            {**DOC, "spec": {"replicas": 1, "items": ["a", "b"], "missing": 1}},
            id="replace-missing-member-sets-it",  # evanphx/json-patch v4, what kubectl rollout undo needs
        ),
    ],
)
def test_json_patch_applies(ops: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(DOC)
    assert apply_json_patch(DOC, ops) == expected
    assert before == DOC


@pytest.mark.parametrize(
    "ops",
    [
        pytest.param([{"op": "test", "path": "/spec/replicas", "value": 5}], id="failed-test"),
        pytest.param([{"op": "remove", "path": "/spec/missing"}], id="remove-missing"),
        pytest.param([{"op": "replace", "path": "/nope/deeper", "value": 1}], id="replace-under-missing-parent"),
        pytest.param([{"op": "replace", "path": "/spec/items/2", "value": "c"}], id="replace-past-the-end"),
        pytest.param([{"op": "add", "path": "/nope/deeper", "value": 1}], id="add-under-missing-parent"),
        pytest.param([{"op": "frobnicate", "path": "/spec"}], id="unknown-op"),
        pytest.param([{"op": "add", "value": 1}], id="missing-path"),
        pytest.param([{"op": "add", "path": "/spec/items/9", "value": 1}], id="index-out-of-range"),
    ],
)
def test_json_patch_apply_failures_are_422(ops: list[dict[str, Any]]) -> None:
    with pytest.raises(ApiError) as caught:
        apply_json_patch(DOC, ops)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch", id="object"),
        pytest.param("x", "json: cannot unmarshal string into Go value of type jsonpatch.Patch", id="string"),
        pytest.param([1], "json: cannot unmarshal number into Go value of type jsonpatch.Operation", id="number-op"),
    ],
)
def test_json_patch_undecodable_is_400(body: Any, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        apply_json_patch(DOC, body)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (400, "BadRequest", message)


def test_json_patch_null_is_empty_and_too_many_ops_is_413() -> None:
    assert apply_json_patch(DOC, None) == DOC
    too_many = [{"op": "test", "path": "/spec/replicas", "value": 1}] * (MAX_JSON_PATCH_OPERATIONS + 1)
    with pytest.raises(ApiError) as caught:
        apply_json_patch(DOC, too_many)
    assert caught.value.code == 413
    assert caught.value.message == (
        "Request entity too large: The allowed maximum operations in a JSON patch is 10000, got 10001"
    )


# --- RFC 7386 merge patch (the RFC's own examples, plus upstream's null pruning) ---------------


@pytest.mark.parametrize(
    ("doc", "patch", "expected"),
    [
        pytest.param({"a": "b"}, {"a": "c"}, {"a": "c"}, id="replace-value"),
        pytest.param({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}, id="add-key"),
        pytest.param({"a": "b"}, {"a": None}, {}, id="null-deletes"),
        pytest.param({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}, id="null-deletes-one"),
        pytest.param({"a": ["b"]}, {"a": "c"}, {"a": "c"}, id="list-to-scalar"),
        pytest.param({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}, id="scalar-to-list"),
        pytest.param({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}, id="nested"),
        pytest.param({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}, id="lists-replace"),
        pytest.param({"e": None}, {"a": 1}, {"e": None, "a": 1}, id="existing-null-kept"),
        pytest.param({"a": "foo"}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}, id="new-object-pruned"),
        pytest.param({}, {"a": [None, {"x": None}]}, {"a": [None, {}]}, id="array-nulls-kept-object-nulls-pruned"),
        pytest.param({"spec": {"replicas": 1}}, {"spec": {"replicas": 3}}, {"spec": {"replicas": 3}}, id="scale"),
    ],
)
def test_merge_patch(doc: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    assert apply_merge_patch(doc, patch) == expected
    assert doc == before


@pytest.mark.parametrize("patch", [None, [], "x", 3])
def test_merge_patch_must_be_an_object(patch: Any) -> None:
    with pytest.raises(ApiError) as caught:
        apply_merge_patch({"a": 1}, patch)
    assert (caught.value.code, caught.value.message) == (400, "Invalid JSON Patch")


# --- strategic merge patch --------------------------------------------------------------------


def _pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a.io/x"]},
        "spec": {
            "containers": [
                {
                    "name": "nginx",
                    "image": "nginx:1",
                    "args": ["-a", "-b"],
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "name": "http"}],
                },
                {"name": "side", "image": "busybox"},
            ],
            **spec,
        },
    }


def _containers(result: dict[str, Any]) -> list[Any]:
    return result["spec"]["containers"]  # type: ignore[no-any-return]


SMP_CASES = [
    pytest.param(
        {"metadata": {"labels": {"tier": "fe", "app": None}}},
        lambda r: r["metadata"]["labels"] == {"tier": "fe"},
        id="map-merge-and-null-delete",
    ),
    pytest.param(
        {"metadata": {"annotations": {"a": "1", "b": None}}},
        lambda r: r["metadata"]["annotations"] == {"a": "1"},
        id="new-map-drops-nulls",
    ),
    pytest.param(
        {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}},
        lambda r: (
            [(c["name"], c["image"]) for c in _containers(r)] == [("nginx", "nginx:2"), ("side", "busybox")]
            and _containers(r)[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
        ),
        id="containers-merge-by-name",
    ),
    pytest.param(
        {"spec": {"containers": [{"name": "extra", "image": "x", "env": [{"name": "Z", "value": None}]}]}},
        lambda r: (
            [c["name"] for c in _containers(r)] == ["extra", "nginx", "side"]
            and _containers(r)[0] == {"name": "extra", "image": "x", "env": [{"name": "Z"}]}
        ),
        id="new-element-goes-first-without-nulls",
    ),
    pytest.param(
        {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}},
        lambda r: [c["name"] for c in _containers(r)] == ["nginx"],
        id="patch-delete-element",
    ),
    pytest.param(
        {"spec": {"containers": [{"name": "only", "image": "o"}, {"$patch": "replace"}]}},
        lambda r: _containers(r) == [{"name": "only", "image": "o"}],
        id="patch-replace-list",
    ),
    pytest.param(
        {"metadata": {"labels": {"$patch": "replace", "x": "1"}}},
        lambda r: r["metadata"]["labels"] == {"x": "1"},
        id="patch-replace-map",
    ),
    pytest.param(
        {"metadata": {"labels": {"$patch": "delete"}}},
        lambda r: r["metadata"]["labels"] == {},
        id="patch-delete-map",
    ),
    pytest.param(
        {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "nginx"}]}},
        lambda r: [c["name"] for c in _containers(r)] == ["side", "nginx"],
        id="set-element-order-reorders",
    ),
    pytest.param(
        {
            "metadata": {"labels": {"tier": "fe"}},
            "spec": {
                "$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}],
                "containers": [
                    {
                        "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                        "env": [{"name": "A", "value": "9"}],
                        "image": "nginx:1.27",
                        "name": "nginx",
                    }
                ],
            },
        },
        lambda r: (
            [c["name"] for c in _containers(r)] == ["nginx", "side"]
            and _containers(r)[0]["image"] == "nginx:1.27"
            and _containers(r)[0]["env"] == [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]
            and r["metadata"]["labels"] == {"app": "web", "tier": "fe"}
        ),
        id="kubectl-apply-observed-body",
    ),
    pytest.param(
        {
            "spec": {
                "containers": [
                    {
                        "name": "nginx",
                        "$setElementOrder/env": [{"name": "B"}, {"name": "A"}],
                        "env": [{"name": "A", "$patch": "delete"}],
                    }
                ]
            }
        },
        lambda r: _containers(r)[0]["env"] == [{"name": "B", "value": "2"}],
        id="kubectl-apply-removes-env",
    ),
    pytest.param(
        {"spec": {"containers": [{"name": "nginx", "ports": [{"containerPort": 443, "name": "https"}]}]}},
        lambda r: [p["containerPort"] for p in _containers(r)[0]["ports"]] == [443, 80],
        id="ports-merge-by-containerPort",
    ),
    pytest.param(
        {"spec": {"containers": [{"name": "nginx", "args": ["-c"]}]}},
        lambda r: _containers(r)[0]["args"] == ["-c"],
        id="list-without-strategy-replaced",
    ),
    pytest.param(
        {"spec": {"tolerations": [{"key": "k", "operator": "Exists"}]}},
        lambda r: r["spec"]["tolerations"] == [{"key": "k", "operator": "Exists"}],
        id="new-list-added",
    ),
    pytest.param(
        {"metadata": {"finalizers": ["b.io/y", "a.io/x"]}},
        lambda r: r["metadata"]["finalizers"] == ["b.io/y", "a.io/x"],
        id="finalizers-merge-as-set-in-patch-order",
    ),
    pytest.param(
        {"metadata": {"finalizers": ["b.io/y"]}},
        lambda r: r["metadata"]["finalizers"] == ["b.io/y", "a.io/x"],
        id="finalizers-union-new-first",
    ),
    pytest.param(
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.io/x"]}},
        lambda r: r["metadata"]["finalizers"] == [],
        id="delete-from-primitive-list",
    ),
    pytest.param(
        {"metadata": {"$deleteFromPrimitiveList/missing": ["x"]}},
        lambda r: "missing" not in r["metadata"],
        id="delete-from-absent-list-is-noop",
    ),
    pytest.param(
        {"spec": {"containers": [{"name": "nginx", "env": [{"name": "C", "value": "3"}]}]}},
        lambda r: [e["name"] for e in _containers(r)[0]["env"]] == ["C", "A", "B"],
        id="env-merge-by-name",
    ),
    pytest.param(
        {"spec": {"containers": "oops"}},
        lambda r: r["spec"]["containers"] == "oops",
        id="type-change-replaces",
    ),
    pytest.param(
        {"metadata": {"resourceVersion": "7", "managedFields": [{"manager": "m", "operation": "Update"}]}},
        lambda r: r["metadata"]["resourceVersion"] == "7" and r["metadata"]["managedFields"][0]["manager"] == "m",
        id="whole-object-metadata-accepted",
    ),
    pytest.param(
        {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}},
        lambda r: r["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}],
        id="volumes-added",
    ),
]


@pytest.mark.parametrize(("patch", "check"), SMP_CASES)
def test_strategic_merge_patch_on_pod(patch: dict[str, Any], check: Any) -> None:
    pod = _pod()
    before = copy.deepcopy(pod)
    patch_before = copy.deepcopy(patch)
    result = apply_strategic_merge_patch(pod, patch, schema_for("Pod"))
    assert check(result), result
    assert pod == before and patch == patch_before


def test_retain_keys_clears_other_keys() -> None:
    pod = _pod(volumes=[{"name": "v", "emptyDir": {}}])
    patch = {"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "configMap"], "configMap": {"name": "c"}}]}}
    result = apply_strategic_merge_patch(pod, patch, schema_for("Pod"))
    assert result["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "c"}}]


def test_retain_keys_on_deployment_strategy() -> None:
    deployment = {
        "metadata": {"name": "d"},
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
    }
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    result = apply_strategic_merge_patch(deployment, patch, schema_for("Deployment"))
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_pod_template_kinds_share_pod_spec_rules() -> None:
    template = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}}
    patch_template = {"spec": {"containers": [{"name": "b", "image": "2"}]}}
    deployment = {"spec": {"template": copy.deepcopy(template)}}
    result = apply_strategic_merge_patch(deployment, {"spec": {"template": patch_template}}, schema_for("Deployment"))
    assert [(c["name"], c["image"]) for c in result["spec"]["template"]["spec"]["containers"]] == [
        ("a", "1"),
        ("b", "2"),
    ]
    cronjob = {"spec": {"jobTemplate": {"spec": {"template": copy.deepcopy(template)}}}}
    patch = {"spec": {"jobTemplate": {"spec": {"template": patch_template}}}}
    result = apply_strategic_merge_patch(cronjob, patch, schema_for("CronJob"))
    assert len(result["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]) == 2


def test_service_ports_merge_by_port() -> None:
    service = {"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}}
    result = apply_strategic_merge_patch(service, {"spec": {"ports": [{"port": 8080}]}}, schema_for("Service"))
    assert [p["port"] for p in result["spec"]["ports"]] == [8080, 80]


def test_status_conditions_and_owner_references_merge() -> None:
    deployment = {
        "metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]},
        "status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]},
    }
    patch = {
        "metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]},
        "status": {"conditions": [{"type": "Available", "status": "True"}]},
    }
    result = apply_strategic_merge_patch(deployment, patch, schema_for("Deployment"))
    assert [r["uid"] for r in result["metadata"]["ownerReferences"]] == ["2", "1"]
    assert result["status"]["conditions"] == [
        {"type": "Available", "status": "True"},
        {"type": "Progressing", "status": "True"},
    ]


@pytest.mark.parametrize(
    ("patch", "code", "reason", "message"),
    [
        pytest.param(
            {"spec": {"containers": [{"image": "x"}]}},
            400,
            "BadRequest",
            "map: map[image:x] does not contain declared merge key: name",
            id="missing-merge-key",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "x", "$patch": "frob"}]}},
            400,
            "BadRequest",
            "unknown patch type: frob in map: map[$patch:frob name:x]",
            id="unknown-list-directive",
        ),
        pytest.param(
            {"spec": {"containers": [{"$patch": "merge"}]}},
            400,
            "BadRequest",
            "merging lists cannot yet be specified in the patch",
            id="merge-directive-in-list",
        ),
        pytest.param(
            {"metadata": {"labels": {"$patch": "merge"}}},
            400,
            "BadRequest",
            "unknown patch type: merge in map: map[$patch:merge]",
            id="merge-directive-in-map",
        ),
        pytest.param(
            {"metadata": {"finalizers": [["a"]]}},
            400,
            "BadRequest",
            "list element types are not identical: [[a.io/x] [[a]]]",
            id="mixed-element-types",
        ),
        pytest.param(
            {"spec": {"$setElementOrder": []}},
            400,
            "BadRequest",
            "invalid patch format of setElementOrder list",
            id="set-element-order-without-field",
        ),
        pytest.param(
            {"metadata": {"$deleteFromPrimitiveList": []}},
            400,
            "BadRequest",
            "invalid patch format of primitive list",
            id="delete-list-without-field",
        ),
        pytest.param(
            {"metadata": {"$retainKeys": "name"}},
            400,
            "BadRequest",
            "invalid patch format of retainKeys",
            id="retain-keys-not-a-list",
        ),
        pytest.param(
            {"metadata": {"$retainKeys": ["name"], "labels": {"a": "b"}}},
            400,
            "BadRequest",
            "invalid patch format of retainKeys",
            id="retain-keys-missing-patched-key",
        ),
        pytest.param(
            {"spec": {"$setElementOrder/containers": [{"name": "nginx"}], "containers": [{"name": "side"}]}},
            400,
            "BadRequest",
            "the order in patch list:\n[map[name:side]]\n doesn't match $setElementOrder list:\n[map[name:nginx]]",
            id="set-element-order-mismatch",
        ),
        pytest.param(
            ["not", "a", "map"],
            400,
            "BadRequest",
            "json: cannot unmarshal array into Go value of type map[string]interface {}",
            id="patch-not-an-object",
        ),
    ],
)
def test_strategic_merge_patch_errors(patch: Any, code: int, reason: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        apply_strategic_merge_patch(_pod(), patch, schema_for("Pod"))
    assert (caught.value.code, caught.value.reason, caught.value.message) == (code, reason, message)


def test_lists_of_lists_are_422() -> None:
    pod = {"metadata": {"finalizers": []}}
    with pytest.raises(ApiError) as caught:
        apply_strategic_merge_patch(pod, {"metadata": {"finalizers": [["a"]]}}, schema_for("Pod"))
    assert (caught.value.code, caught.value.reason) == (422, "Invalid")


def test_strategic_merge_patch_null_body_is_a_noop() -> None:
    assert apply_strategic_merge_patch(_pod(), None, schema_for("Pod")) == _pod()


@pytest.mark.parametrize(
    ("kind", "group", "expected"),
    [
        pytest.param("Pod", None, True, id="pod"),
        pytest.param("Deployment", "apps", True, id="deployment"),
        pytest.param("ConfigMap", "", True, id="configmap-no-special-fields"),
        pytest.param("CustomResourceDefinition", "apiextensions.k8s.io", True, id="crd-itself"),
        pytest.param("Widget", "example.com", False, id="custom-resource"),
        pytest.param("Deployment", "example.com", False, id="cr-reusing-builtin-kind"),
    ],
)
def test_supports_strategic_merge(kind: str, group: str | None, expected: bool) -> None:
    assert supports_strategic_merge(kind, group) is expected


def test_schema_table_entries_from_upstream_tags() -> None:
    pod = KINDS["Pod"]
    assert pod.lookup("spec.containers").merge_key == "name"
    assert pod.lookup("spec.containers[].ports").merge_key == "containerPort"
    assert pod.lookup("spec.initContainers[].volumeMounts").merge_key == "mountPath"
    assert pod.lookup("spec.volumes").strategies == ("merge", "retainKeys")
    assert pod.lookup("metadata.ownerReferences").merge_key == "uid"
    assert pod.lookup("spec.tolerations").strategies == ()
    deployment = KINDS["Deployment"]
    assert deployment.lookup("spec.template.spec.containers[].env").merge_key == "name"
    assert deployment.lookup("spec.template.metadata.finalizers").strategies == ("merge",)
    assert deployment.lookup("spec.strategy").strategies == ("retainKeys",)
    assert KINDS["CronJob"].lookup("spec.jobTemplate.spec.template.spec.imagePullSecrets").merge_key == "name"
    assert KINDS["Service"].lookup("spec.ports").merge_key == "port"
