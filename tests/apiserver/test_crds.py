"""CustomResourceDefinitions served at run time, driven by the real kubectl 1.32 and the official client.

One server for the module; each test uses its own CRD (group ``*.skiff.test``)
so the tests stay independent.  Waiting is event-driven (``kubectl wait``,
``--wait``), never a sleep.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml
from apiserver_harness import Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401
from kubernetes import client, config
from kubernetes.client.rest import ApiException

CRONTAB_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.{group}
spec:
  group: {group}
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [{short}]
    categories: [all]
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
            required: [cronSpec]
            properties:
              cronSpec:
                type: string
                pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){{4}}$'
              image:
                type: string
                default: busybox
              replicas:
                type: integer
                minimum: 1
                maximum: 10
              selector:
                type: string
          status:
            type: object
            properties:
              replicas:
                type: integer
              phase:
                type: string
              labelSelector:
                type: string
    subresources:
      status: {{}}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
        labelSelectorPath: .status.labelSelector
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Phase
      type: string
      jsonPath: .status.phase
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
"""

CRONTAB = """\
apiVersion: {group}/v1
kind: CronTab
metadata:
  name: {name}
spec:
  cronSpec: "* * * * */5"
  replicas: 2
"""


def _install(kubectl: Kubectl, group: str, short: str) -> None:
    assert "created" in kubectl.ok("apply", "-f", "-", stdin=CRONTAB_CRD.format(group=group, short=short))
    kubectl.ok("wait", "--for", "condition=established", "--timeout=30s", f"crd/crontabs.{group}")


def test_crd_becomes_established_and_discoverable(kubectl: Kubectl) -> None:
    group = "disco.skiff.test"
    _install(kubectl, group, "ctd")
    crd = json.loads(kubectl.ok("get", "crd", f"crontabs.{group}", "-o", "json"))
    conditions = {c["type"]: (c["status"], c["reason"]) for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": ("True", "NoConflicts"), "Established": ("True", "InitialNamesAccepted")}
    assert crd["status"]["acceptedNames"]["shortNames"] == ["ctd"]
    assert crd["status"]["storedVersions"] == ["v1"]
    rows = [line.split() for line in kubectl.ok("api-resources", "--api-group", group, "--no-headers").splitlines()]
    assert rows == [["crontabs", "ctd", f"{group}/v1", "true", "CronTab"]]
    # categories: `kubectl get all` includes the kind
    kubectl.ok("apply", "-f", "-", stdin=CRONTAB.format(group=group, name="in-all"))
    assert f"crontab.{group}/in-all" in kubectl.ok("get", "all", "-o", "name")


def test_custom_resource_lifecycle_with_kubectl(kubectl: Kubectl) -> None:
    group = "life.skiff.test"
    _install(kubectl, group, "ct")
    assert kubectl.ok("apply", "-f", "-", stdin=CRONTAB.format(group=group, name="tab")) == (
        f"crontab.{group}/tab created\n"
    )
    obj = json.loads(kubectl.ok("get", "ct", "tab", "-o", "json"))
    assert obj["apiVersion"] == f"{group}/v1" and obj["kind"] == "CronTab"
    assert obj["spec"]["image"] == "busybox"  # defaulted
    assert obj["metadata"]["generation"] == 1

    table = kubectl.ok("get", "ct").splitlines()
    assert table[0].split() == ["NAME", "SPEC", "REPLICAS", "PHASE", "AGE"]
    cells = table[1].split()
    assert cells[0] == "tab" and " ".join(cells[1:6]) == "* * * * */5" and cells[6] == "2"
    # Phase is null (an empty cell); Age is an age the server rendered from the timestamp
    assert len(cells) == 8 and cells[7].endswith("s")

    # the status subresource: a main-resource write ignores status, a /status write only changes status
    kubectl.ok("patch", "ct", "tab", "--type", "merge", "-p", '{"status":{"phase":"Ignored"}}')
    assert "status" not in json.loads(kubectl.ok("get", "ct", "tab", "-o", "json"))
    status_patch = '{"status":{"phase":"Running","replicas":2,"labelSelector":"app=tab"}}'
    kubectl.ok("patch", "ct", "tab", "--subresource", "status", "--type", "merge", "-p", status_patch)
    obj = json.loads(kubectl.ok("get", "ct", "tab", "-o", "json"))
    assert obj["status"]["phase"] == "Running" and obj["metadata"]["generation"] == 1

    # the scale subresource
    assert kubectl.ok("scale", "ct", "tab", "--replicas", "3") == f"crontab.{group}/tab scaled\n"
    scale = json.loads(kubectl.ok("get", "--raw", f"/apis/{group}/v1/namespaces/default/crontabs/tab/scale"))
    assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 3}
    assert scale["status"] == {"replicas": 2, "selector": "app=tab"}
    obj = json.loads(kubectl.ok("get", "ct", "tab", "-o", "json"))
    assert obj["spec"]["replicas"] == 3 and obj["metadata"]["generation"] == 2

    code, _, err = kubectl.run("scale", "ct", "tab", "--replicas", "11")
    assert code != 0 and "spec.replicas in body should be less than or equal to 10" in err

    # strategic merge patch on a CR is 415
    code, _, err = kubectl.run("patch", "ct", "tab", "--type", "strategic", "-p", '{"spec":{"replicas":4}}')
    assert code != 0 and "the body of the request was in an unknown format" in err
    kubectl.ok("patch", "ct", "tab", "--type", "json", "-p", '[{"op":"replace","path":"/spec/replicas","value":4}]')
    assert json.loads(kubectl.ok("get", "ct", "tab", "-o", "json"))["spec"]["replicas"] == 4

    assert kubectl.ok("delete", "ct", "tab") == f'crontab.{group} "tab" deleted\n'
    code, _, err = kubectl.run("get", "ct", "tab")
    assert code != 0 and f'crontabs.{group} "tab" not found' in err


def test_invalid_custom_resource_is_422_with_causes(apiserver: RunningApiServer, kubectl: Kubectl) -> None:
    group = "bad.skiff.test"
    _install(kubectl, group, "ctb")
    body = {
        "apiVersion": f"{group}/v1",
        "kind": "CronTab",
        "metadata": {"name": "bad"},
        "spec": {"cronSpec": "nope", "replicas": 0, "image": 5},
    }
    status, _, raw = apiserver.request(
        "POST",
        f"/apis/{group}/v1/namespaces/default/crontabs",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 422
    answer = json.loads(raw)
    assert answer["reason"] == "Invalid" and answer["details"]["kind"] == "CronTab"
    causes = {c["field"]: (c["reason"], c["message"]) for c in answer["details"]["causes"]}
    assert causes == {
        "spec.cronSpec": (
            "FieldValueInvalid",
            'Invalid value: "nope": spec.cronSpec in body should match '
            "'^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$'",
        ),
        "spec.image": (
            "FieldValueTypeInvalid",
            'Invalid value: "integer": spec.image in body must be of type string: "integer"',
        ),
        "spec.replicas": (
            "FieldValueInvalid",
            "Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
        ),
    }
    code, _, err = kubectl.run(
        "apply", "-f", "-", stdin=f"apiVersion: {group}/v1\nkind: CronTab\nmetadata:\n  name: x\nspec: {{}}\n"
    )
    assert code != 0 and "spec.cronSpec: Required value" in err


def test_unknown_fields_are_pruned_or_refused(kubectl: Kubectl) -> None:
    group = "prune.skiff.test"
    _install(kubectl, group, "ctp")
    doc = CRONTAB.format(group=group, name="extra") + "  bogus: 1\n"
    code, _, err = kubectl.run("apply", "-f", "-", stdin=doc)  # kubectl sends fieldValidation=Strict
    assert code != 0 and 'unknown field "spec.bogus"' in err
    kubectl.ok("apply", "--validate=false", "-f", "-", stdin=doc)
    assert "bogus" not in json.loads(kubectl.ok("get", "ctp", "extra", "-o", "json"))["spec"]


def test_crd_and_its_custom_resource_in_one_file(kubectl: Kubectl) -> None:
    group = "both.skiff.test"
    both = CRONTAB_CRD.format(group=group, short="ctx") + "---\n" + CRONTAB.format(group=group, name="together")
    code, out, err = kubectl.run("apply", "-f", "-", stdin=both)
    if code != 0:
        # A real cluster answers the first apply the same way: the CR's mapping is resolved before the CRD exists.
        assert "ensure CRDs are installed first" in err
        kubectl.ok("wait", "--for", "condition=established", "--timeout=30s", f"crd/crontabs.{group}")
        out = kubectl.ok("apply", "-f", "-", stdin=both)
    assert f"crontab.{group}/together" in out
    assert kubectl.ok("get", "ctx", "together", "-o", "name") == f"crontab.{group}/together\n"


def test_deleting_a_crd_deletes_its_resources_and_discovery(apiserver: RunningApiServer, kubectl: Kubectl) -> None:
    group = "gone.skiff.test"
    _install(kubectl, group, "ctg")
    for name in ("one", "two"):
        kubectl.ok("apply", "-f", "-", stdin=CRONTAB.format(group=group, name=name))
    kubectl.ok("create", "namespace", "gone-ns")
    kubectl.ok("apply", "-n", "gone-ns", "-f", "-", stdin=CRONTAB.format(group=group, name="three"))
    assert kubectl.ok("delete", "crd", f"crontabs.{group}") == (
        f'customresourcedefinition.apiextensions.k8s.io "crontabs.{group}" deleted\n'
    )
    code, _, err = kubectl.run("get", "crd", f"crontabs.{group}")
    assert code != 0 and "not found" in err
    status, _, _ = apiserver.request("GET", f"/apis/{group}/v1")
    assert status == 404
    assert group not in kubectl.ok("api-resources", "-o", "name")
    # Recreated, it starts empty: the old objects were deleted from the store, not just hidden.
    _install(kubectl, group, "ctg")
    listed = json.loads(kubectl.ok("get", "ctg", "-A", "-o", "json"))
    assert listed["items"] == []


@pytest.fixture
def custom_objects(apiserver: RunningApiServer) -> Iterator[client.CustomObjectsApi]:
    api_client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        yield client.CustomObjectsApi(api_client)
    finally:
        api_client.close()


def test_python_custom_objects_api(kubectl: Kubectl, custom_objects: client.CustomObjectsApi) -> None:
    group = "py.skiff.test"
    _install(kubectl, group, "ctpy")
    body = yaml.safe_load(CRONTAB.format(group=group, name="py"))
    created = custom_objects.create_namespaced_custom_object(group, "v1", "default", "crontabs", body)
    assert created["spec"]["image"] == "busybox" and created["metadata"]["uid"]
    read = custom_objects.get_namespaced_custom_object(group, "v1", "default", "crontabs", "py")
    assert read["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    listed = custom_objects.list_namespaced_custom_object(group, "v1", "default", "crontabs")
    assert listed["kind"] == "CronTabList"
    assert [(i["kind"], i["apiVersion"], i["metadata"]["name"]) for i in listed["items"]] == [
        ("CronTab", f"{group}/v1", "py")
    ]
    patched = custom_objects.patch_namespaced_custom_object(
        group, "v1", "default", "crontabs", "py", {"spec": {"replicas": 5}}
    )
    assert patched["spec"]["replicas"] == 5 and patched["metadata"]["generation"] == 2
    status = custom_objects.patch_namespaced_custom_object_status(
        group, "v1", "default", "crontabs", "py", {"status": {"phase": "Done"}}
    )
    assert status["status"] == {"phase": "Done"}
    custom_objects.delete_namespaced_custom_object(group, "v1", "default", "crontabs", "py")
    with pytest.raises(ApiException) as missing:
        custom_objects.get_namespaced_custom_object(group, "v1", "default", "crontabs", "py")
    assert missing.value.status == 404


def test_server_side_apply_of_a_custom_resource(kubectl: Kubectl) -> None:
    group = "ssa.skiff.test"
    _install(kubectl, group, "cts")
    doc = CRONTAB.format(group=group, name="applied")
    assert kubectl.ok("apply", "--server-side", "-f", "-", stdin=doc) == f"crontab.{group}/applied serverside-applied\n"
    kubectl.ok("apply", "--server-side", "-f", "-", stdin=doc.replace("replicas: 2", "replicas: 6"))
    obj = json.loads(kubectl.ok("get", "cts", "applied", "-o", "json"))
    assert obj["spec"]["replicas"] == 6 and obj["spec"]["image"] == "busybox"


def test_custom_resources_run_the_admission_chain(kubectl: Kubectl) -> None:
    group = "admit.skiff.test"
    _install(kubectl, group, "cta")
    code, _, err = kubectl.run("apply", "-n", "no-such-ns", "-f", "-", stdin=CRONTAB.format(group=group, name="x"))
    assert code != 0 and 'namespaces "no-such-ns" not found' in err, err
    code, _, err = kubectl.run("get", "cta", "x", "-n", "no-such-ns")
    assert code != 0 and "not found" in err
