"""Server-side apply and managedFields against ``skiff apiserver``: real kubectl 1.32 and the Python client.

What upstream does and these check: an unchanged re-apply writes nothing;
``kubectl scale`` (an Update through ``/scale``, its manager taken from the
User-Agent) owns ``.spec.replicas``, so applying another value conflicts
(409, kubectl prints the server's message and its advice) until
``--force-conflicts`` moves the field; a label dropped from the applied file
is removed; both managers show with ``--show-managed-fields``.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
from typing import Any

import yaml
from apiserver_harness import Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401

NS = "default"
DEPLOY_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments"


def deployment(name: str, replicas: int, labels: dict[str, str]) -> str:
    doc: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]},
            },
        },
    }
    return yaml.safe_dump(doc)


def get(kubectl: Kubectl, name: str, *flags: str) -> dict[str, Any]:
    out = kubectl.ok("get", "deployment", name, "-n", NS, "-o", "json", *flags)
    result: dict[str, Any] = json.loads(out)
    return result


def test_kubectl_server_side_apply_lifecycle(kubectl: Kubectl) -> None:
    first = deployment("ssa-web", 2, {"app": "ssa-web", "tier": "fe"})
    assert kubectl.ok("apply", "--server-side", "-f", "-", stdin=first).strip() == (
        "deployment.apps/ssa-web serverside-applied"
    )
    created = get(kubectl, "ssa-web")
    assert "managedFields" not in created["metadata"]  # kubectl hides them by default
    # Applying the same file again changes nothing: no write, same resourceVersion.
    kubectl.ok("apply", "--server-side", "-f", "-", stdin=first)
    assert get(kubectl, "ssa-web")["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    kubectl.ok("scale", "deployment", "ssa-web", "-n", NS, "--replicas=5")
    code, _, err = kubectl.run("apply", "--server-side", "-f", "-", stdin=deployment("ssa-web", 3, {"app": "ssa-web"}))
    assert code == 1
    assert err.startswith(
        'error: Apply failed with 1 conflict: conflict with "kubectl.1.32" with subresource "scale" '
        "using apps/v1: .spec.replicas\n"
        "Please review the fields above--they currently have other managers."
    ), err
    assert "--force-conflicts" in err
    assert get(kubectl, "ssa-web")["spec"]["replicas"] == 5  # nothing applied

    # Forcing takes .spec.replicas over; the label the file no longer has is removed.
    kubectl.ok(
        "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=deployment("ssa-web", 3, {"app": "ssa-web"})
    )
    obj = get(kubectl, "ssa-web", "--show-managed-fields")
    assert obj["spec"]["replicas"] == 3
    assert obj["metadata"]["labels"] == {"app": "ssa-web"}
    entries = {(e["manager"], e["operation"], e.get("subresource", "")): e for e in obj["metadata"]["managedFields"]}
    applied = entries[("kubectl", "Apply", "")]
    assert applied["fieldsV1"]["f:spec"]["f:replicas"] == {}
    assert applied["fieldsV1"]["f:metadata"] == {"f:labels": {"f:app": {}}}
    container = applied["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    assert container["f:ports"] == {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}
    # kubectl scale lost its only field, so its entry is gone; the deployment's creator-less
    # defaults are nobody's.
    assert ("kubectl.1.32", "Update", "scale") not in entries

    # Another manager's Update shows next to the applier.
    kubectl.ok("label", "deployment", "ssa-web", "-n", NS, "team=a")
    obj = get(kubectl, "ssa-web", "--show-managed-fields")
    managers = sorted((e["manager"], e["operation"]) for e in obj["metadata"]["managedFields"])
    assert managers == [("kubectl", "Apply"), ("kubectl-label", "Update")]
    label_entry = next(e for e in obj["metadata"]["managedFields"] if e["manager"] == "kubectl-label")
    assert label_entry["fieldsV1"] == {"f:metadata": {"f:labels": {"f:team": {}}}}


def test_kubectl_create_records_an_update_entry(kubectl: Kubectl) -> None:
    kubectl.ok("create", "deployment", "ssa-created", "-n", NS, "--image=nginx:1.27")
    obj = get(kubectl, "ssa-created", "--show-managed-fields")
    (entry,) = obj["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == ("kubectl-create", "Update", "apps/v1")
    fields = entry["fieldsV1"]
    assert fields["f:metadata"] == {"f:labels": {".": {}, "f:app": {}}}
    assert fields["f:spec"]["f:selector"] == {}
    assert "f:progressDeadlineSeconds" in fields["f:spec"]  # defaulted fields belong to the creator
    assert "f:status" not in fields


def test_python_client_server_side_apply(apiserver: RunningApiServer) -> None:
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(apiserver.kubeconfig))
    try:
        core = client.CoreV1Api(api_client)
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa-py"}, "data": {"a": "1", "b": "2"}}
        kwargs: dict[str, Any] = {"field_manager": "py", "_content_type": "application/apply-patch+yaml"}
        first = core.patch_namespaced_config_map("ssa-py", NS, body, **kwargs)
        assert first.data == {"a": "1", "b": "2"}
        (entry,) = first.metadata.managed_fields
        assert (entry.manager, entry.operation) == ("py", "Apply")
        assert entry.fields_v1 == {"f:data": {"f:a": {}, "f:b": {}}}
        # Another manager owns "b" with a different value: a conflict, forced through.
        core.patch_namespaced_config_map("ssa-py", NS, {"data": {"b": "3"}}, field_manager="other")
        try:
            core.patch_namespaced_config_map("ssa-py", NS, body, **kwargs)
        except client.ApiException as err:
            status = json.loads(err.body)
            assert (err.status, status["reason"]) == (409, "Conflict")
            assert status["details"]["causes"] == [
                {
                    "reason": "FieldManagerConflict",
                    "message": 'conflict with "other" using v1',
                    "field": ".data.b",
                }
            ]
        else:
            raise AssertionError("expected a conflict")
        forced = core.patch_namespaced_config_map("ssa-py", NS, {**body, "data": {"b": "2"}}, force=True, **kwargs)
        # "a" is no longer applied and nobody else owns it: removed.  "b" moved to the applier.
        assert forced.data == {"b": "2"}
        assert [(e.manager, e.fields_v1) for e in forced.metadata.managed_fields] == [("py", {"f:data": {"f:b": {}}})]
        # Resetting managedFields with [{}] clears ownership.
        core.patch_namespaced_config_map("ssa-py", NS, {"metadata": {"managedFields": [{}]}}, field_manager="x")
        assert core.read_namespaced_config_map("ssa-py", NS).metadata.managed_fields is None
    finally:
        api_client.close()


def test_apply_errors(apiserver: RunningApiServer) -> None:
    apply = {"Content-Type": "application/apply-patch+yaml"}
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ssa-err"}}
    wrong = json.dumps({**doc, "apiVersion": "apps/v1beta1"}).encode()
    status, _, body = apiserver.request("PATCH", f"{DEPLOY_PATH}/ssa-err?fieldManager=m", wrong, apply)
    assert (status, json.loads(body)["message"]) == (
        400,
        "Incorrect version specified in apply patch. Specified patch version: apps/v1beta1, expected: apps/v1",
    )
    managed = json.dumps({**doc, "metadata": {"name": "ssa-err", "managedFields": []}}).encode()
    status, _, body = apiserver.request("PATCH", f"{DEPLOY_PATH}/ssa-err?fieldManager=m", managed, apply)
    assert (status, json.loads(body)["message"]) == (400, "metadata.managedFields must be nil")
    merge = {"Content-Type": "application/merge-patch+json"}
    status, _, body = apiserver.request("PATCH", f"{DEPLOY_PATH}/ssa-err?force=true", b"{}", merge)
    assert (status, json.loads(body)["message"]) == (
        422,
        'PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch',
    )


WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.ssa.example.com}
spec:
  group: ssa.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: string}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  properties:
                    name: {type: string}
                    port: {type: integer}
"""


def widget(*ports: str) -> str:
    doc = {
        "apiVersion": "ssa.example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": NS},
        "spec": {"size": "s", "ports": [{"name": p, "port": 80 + i} for i, p in enumerate(ports)]},
    }
    return yaml.safe_dump(doc)


def test_kubectl_apply_custom_resource_by_list_map_keys(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "--server-side", "-f", "-", stdin=WIDGET_CRD)
    kubectl.ok("wait", "--for", "condition=established", "--timeout=30s", "crd/widgets.ssa.example.com")
    kubectl.ok("apply", "--server-side", "-f", "-", stdin=widget("http", "https"))
    kubectl.ok("apply", "--server-side", "-f", "-", stdin=widget("https"))
    obj = json.loads(kubectl.ok("get", "widget", "w", "-n", NS, "-o", "json", "--show-managed-fields"))
    assert obj["spec"]["ports"] == [{"name": "https", "port": 80}]
    (entry,) = obj["metadata"]["managedFields"]
    assert entry["fieldsV1"] == {
        "f:spec": {"f:ports": {'k:{"name":"https"}': {".": {}, "f:name": {}, "f:port": {}}}, "f:size": {}}
    }
