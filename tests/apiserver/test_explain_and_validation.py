"""``kubectl explain`` over our OpenAPI documents, and fieldValidation with real kubectl and raw HTTP."""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import http.client
import json
import subprocess
from pathlib import Path

import pytest
from apiserver_harness import Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401

KUBECTL_1_27 = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27"

TYPO = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replica: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: c
        image: nginx
        imagee: nginx
"""

STRICT_ERROR = (
    'Error from server (BadRequest): error when creating "{file}": Deployment in version "v1" cannot be handled '
    'as a Deployment: strict decoding error: unknown field "spec.replica", '
    'unknown field "spec.template.spec.containers[0].imagee"\n'
)


def _request(
    server: RunningApiServer, method: str, path: str, body: bytes, content_type: str
) -> tuple[int, list[str], dict[str, object]]:
    """(status, every Warning header, JSON body)."""
    conn = http.client.HTTPSConnection(server.host, server.port, context=server.ssl_context(), timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.headers.get_all("Warning") or [], json.loads(response.read())
    finally:
        conn.close()


def test_explain_prints_fields_with_types_and_descriptions(kubectl: Kubectl) -> None:
    pods = kubectl.ok("explain", "pods")
    assert "KIND:       Pod\nVERSION:    v1\n" in pods
    assert "Pod is a collection of containers that can run on a host." in pods
    assert "  spec\t<PodSpec>\n" in pods
    assert "  metadata\t<ObjectMeta>\n    Standard object's metadata." in pods
    strategy = kubectl.ok("explain", "deployment.spec.strategy")
    assert "GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n" in strategy
    assert "FIELD: strategy <DeploymentStrategy>" in strategy
    assert "  rollingUpdate\t<RollingUpdateDeployment>\n" in strategy
    assert '  type\t<string>\n    Type of deployment. Can be "Recreate" or "RollingUpdate".' in strategy
    assert "FIELD: targetPort <IntOrString>" in kubectl.ok("explain", "service.spec.ports.targetPort")
    assert "FIELD: limits <map[string]Quantity>" in kubectl.ok("explain", "pods.spec.containers.resources.limits")


def test_explain_recursive_prints_the_field_tree(kubectl: Kubectl) -> None:
    tree = kubectl.ok("explain", "pods", "--recursive")
    assert "    containers\t<[]Container> -required-\n" in tree
    assert "      imagePullPolicy\t<string>\n" in tree
    assert "      labels\t<map[string]string>\n" in tree


def test_explain_with_kubectl_1_27(apiserver: RunningApiServer, tmp_path: Path) -> None:
    cmd = [KUBECTL_1_27, "--kubeconfig", str(apiserver.kubeconfig), "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run([*cmd, "explain", "deployment.spec.strategy"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "  rollingUpdate\t<RollingUpdateDeployment>\n" in done.stdout


@pytest.mark.parametrize("binary", [None, KUBECTL_1_27], ids=["kubectl-1.32", "kubectl-1.27"])
def test_apply_with_a_typo_fails_with_the_strict_decoding_error(
    kubectl: Kubectl, apiserver: RunningApiServer, tmp_path: Path, binary: str | None
) -> None:
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(TYPO.format(name=f"typo-{tmp_path.name[-8:].lower().strip('_')}"))
    if binary is None:
        code, _, err = kubectl.run("apply", "-f", str(manifest))
    else:
        cmd = [binary, "--kubeconfig", str(apiserver.kubeconfig), "--cache-dir", str(tmp_path / "cache")]
        done = subprocess.run([*cmd, "apply", "-f", str(manifest)], capture_output=True, text=True, check=False)
        code, err = done.returncode, done.stderr
    assert code == 1
    assert err == STRICT_ERROR.format(file=manifest)


def test_validate_false_stores_no_unknown_field_and_warn_prints_warnings(kubectl: Kubectl, tmp_path: Path) -> None:
    ignored = tmp_path / "ignored.yaml"
    ignored.write_text(TYPO.format(name="typo-ignored"))
    code, out, err = kubectl.run("apply", "--validate=false", "-f", str(ignored))
    assert (code, out, err) == (0, "deployment.apps/typo-ignored created\n", "")
    stored = json.loads(kubectl.ok("get", "deployment", "typo-ignored", "-o", "json"))
    assert "replica" not in stored["spec"]
    assert "imagee" not in stored["spec"]["template"]["spec"]["containers"][0]
    warned = tmp_path / "warned.yaml"
    warned.write_text(TYPO.format(name="typo-warned"))
    code, out, err = kubectl.run("create", "--validate=warn", "-f", str(warned))
    assert (code, out) == (0, "deployment.apps/typo-warned created\n")
    assert err == (
        'Warning: unknown field "spec.replica"\nWarning: unknown field "spec.template.spec.containers[0].imagee"\n'
    )


def test_raw_requests_strict_duplicates_warn_and_patches(apiserver: RunningApiServer) -> None:
    base = "/api/v1/namespaces/default/configmaps"
    dup = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fv1","name":"fv1"},"dat":{}}'
    status, _, body = _request(apiserver, "POST", f"{base}?fieldValidation=Strict", dup, "application/json")
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "dat", duplicate field "metadata.name"'
    )
    status, warnings, body = _request(apiserver, "POST", f"{base}?fieldValidation=Warn", dup, "application/json")
    assert status == 201
    assert warnings == ['299 - "unknown field \\"dat\\""', '299 - "duplicate field \\"metadata.name\\""']
    assert "dat" not in body
    patch = b'{"data":{"a":"b"},"spec":{"x":1}}'
    merge = "application/merge-patch+json"
    status, _, body = _request(apiserver, "PATCH", f"{base}/fv1?fieldValidation=Strict", patch, merge)
    assert (status, body["message"]) == (400, 'strict decoding error: unknown field "spec"')
    status, warnings, body = _request(apiserver, "PATCH", f"{base}/fv1", patch, merge)
    assert (status, warnings, body["data"], "spec" in body) == (
        200,
        ['299 - "unknown field \\"spec\\""'],
        {"a": "b"},
        False,
    )


def test_openapi_v3_documents_are_cacheable_by_hash(apiserver: RunningApiServer) -> None:
    _, _, body = apiserver.request("GET", "/openapi/v3")
    url = json.loads(body)["paths"]["apis/apps/v1"]["serverRelativeURL"]
    status, headers, body = apiserver.request("GET", url)
    assert (status, headers["Cache-Control"]) == (200, "public, immutable")
    doc = json.loads(body)
    assert "io.k8s.api.apps.v1.Deployment" in doc["components"]["schemas"]
    status, headers, _ = apiserver.request("GET", "/openapi/v3/apis/apps/v1?hash=STALE")
    assert (status, headers["Location"]) == (301, url)
