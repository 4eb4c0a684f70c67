"""Custom resources in the OpenAPI v3 documents: their schemas as components, ``kubectl explain`` over them.

One server for the module.  The CRD carries descriptions, an int-or-string
field and an embedded resource, so ``kubectl explain`` (1.32 and 1.27, which
both read OpenAPI v3) has something of each to render.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from apiserver_harness import Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401

KUBECTL_1_27 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27"
GROUP = "stable.openapi.skiff.test"
DEFINITION = "test.skiff.openapi.stable.v1.CronTab"

CRD = f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{plural: crontabs, singular: crontab, kind: CronTab}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        description: CronTab runs a command on a schedule.
        type: object
        properties:
          metadata:
            type: object
          spec:
            description: What the CronTab should do.
            type: object
            required: [cronSpec]
            properties:
              cronSpec:
                description: The schedule, in cron format.
                type: string
              replicas:
                description: How many copies to run at once.
                type: integer
              budget:
                description: A count or a percentage.
                x-kubernetes-int-or-string: true
              template:
                description: The pod each run starts.
                type: object
                x-kubernetes-embedded-resource: true
                x-kubernetes-preserve-unknown-fields: true
    subresources:
      status: {{}}
"""


@pytest.fixture(scope="module")
def installed(apiserver: RunningApiServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    kubectl = Kubectl(apiserver, tmp_path_factory.mktemp("cache"))
    kubectl.ok("apply", "-f", "-", stdin=CRD)
    kubectl.ok("wait", "--for", "condition=established", "--timeout=30s", f"crd/crontabs.{GROUP}")


def _document(apiserver: RunningApiServer, key: str) -> dict[str, object]:
    status, _, body = apiserver.request("GET", f"/openapi/v3/{key}")
    assert status == 200, body
    document: dict[str, object] = json.loads(body)
    return document


def test_crd_version_document_has_the_schema_as_a_component(installed: None, apiserver: RunningApiServer) -> None:
    index = _document(apiserver, "")["paths"]
    assert isinstance(index, dict) and f"apis/{GROUP}/v1" in index
    document = _document(apiserver, f"apis/{GROUP}/v1")
    schemas = document["components"]["schemas"]  # type: ignore[index]
    crontab = schemas[DEFINITION]
    assert crontab["x-kubernetes-group-version-kind"] == [{"group": GROUP, "kind": "CronTab", "version": "v1"}]
    assert (
        crontab["properties"]["metadata"]["$ref"]
        == "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    assert crontab["properties"]["apiVersion"]["type"] == "string"
    assert crontab["properties"]["spec"]["properties"]["budget"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    assert schemas[DEFINITION + "List"]["properties"]["items"]["items"] == {
        "$ref": f"#/components/schemas/{DEFINITION}"
    }
    paths = document["paths"]
    create = paths[f"/apis/{GROUP}/v1/namespaces/{{namespace}}/crontabs"]["post"]  # type: ignore[index]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{DEFINITION}"
    }
    assert "application/vnd.kubernetes.protobuf" not in create["responses"]["201"]["content"]


def test_explain_custom_resource_fields(installed: None, kubectl: Kubectl) -> None:
    top = kubectl.ok("explain", "crontabs")
    assert f"GROUP:      {GROUP}\nKIND:       CronTab\nVERSION:    v1\n" in top
    assert "CronTab runs a command on a schedule." in top
    assert "  metadata\t<ObjectMeta>\n    Standard object's metadata." in top
    spec = kubectl.ok("explain", "crontabs.spec")
    assert "FIELD: spec <Object>" in spec
    assert "What the CronTab should do." in spec
    assert "  cronSpec\t<string> -required-\n    The schedule, in cron format." in spec
    assert "  replicas\t<integer>\n    How many copies to run at once." in spec
    template = kubectl.ok("explain", "crontabs.spec.template")
    assert "  apiVersion\t<string>" in template and "  metadata\t<ObjectMeta>" in template
    labels = kubectl.ok("explain", "crontabs.metadata.labels")
    assert "FIELD: labels <map[string]string>" in labels


def test_explain_custom_resource_with_kubectl_1_27(
    installed: None, apiserver: RunningApiServer, tmp_path: Path
) -> None:
    cmd = [KUBECTL_1_27, "--kubeconfig", str(apiserver.kubeconfig), "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run([*cmd, "explain", "crontabs.spec"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "  cronSpec\t<string> -required-\n    The schedule, in cron format." in done.stdout
