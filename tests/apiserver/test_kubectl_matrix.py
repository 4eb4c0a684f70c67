"""One focused scenario run with every kubectl on the image against one ``skiff apiserver``.

kubectl 1.27 to 1.33 and the gcloud dispatcher (``/usr/bin/kubectl``, which
reads ``/version`` and picks a binary) each get their own namespace, so the
versions cannot see each other's objects.  The tests assert what kubectl
prints: table headers and cells, messages, JSON fields.  Each test function
runs for every version before the next one starts; the objects the later
tests use are created once per version by the ``seeded`` fixture, which is
itself the ``create -f`` test.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from apiserver_harness import Kubectl, RunningApiServer, apiserver  # noqa: F401

BINARIES = {
    **{
        v: f"/usr/lib/google-cloud-sdk/bin/kubectl.{v}"
        for v in ("1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33")
    },
    "dispatcher": "/usr/bin/kubectl",
}
VERSIONS = [pytest.param(v, id=v) for v in BINARIES]

OBJECTS = """\
apiVersion: v1
kind: Pod
metadata:
  name: pod1
  labels: {app: web, role: single}
spec:
  containers:
  - name: main
    image: nginx:1.25
    ports:
    - containerPort: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: main
        image: nginx:1.25
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: web}
data:
  mode: fast
"""

APPLIED = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
data:
  mode: {mode}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: applied
spec:
  replicas: 1
  selector:
    matchLabels: {{app: applied}}
  template:
    metadata:
      labels: {{app: applied}}
    spec:
      containers:
      - name: main
        image: {image}
"""


class VersionedKubectl(Kubectl):
    """The harness's runner with a chosen binary and a default namespace."""

    def __init__(self, server: RunningApiServer, cache_dir: Path, binary: str, namespace: str) -> None:
        super().__init__(server, cache_dir)
        self.binary = binary
        self.namespace = namespace

    def command(self, *args: str) -> list[str]:
        return [
            self.binary,
            "--kubeconfig",
            str(self.server.kubeconfig),
            "--cache-dir",
            str(self.cache_dir),
            "-n",
            self.namespace,
            *args,
        ]

    def run(self, *args: str, stdin: str | None = None, timeout: float = 60) -> tuple[int, str, str]:
        done = subprocess.run(
            self.command(*args), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        return done.returncode, done.stdout, done.stderr


def namespace_for(version: str) -> str:
    return "kv-" + version.replace(".", "-")


@pytest.fixture(scope="module")
def runners(apiserver: RunningApiServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, VersionedKubectl]:
    base = tmp_path_factory.mktemp("kubectl-caches")
    return {
        version: VersionedKubectl(apiserver, base / version, binary, namespace_for(version))
        for version, binary in BINARIES.items()
    }


@pytest.fixture(scope="module")
def created() -> dict[str, str]:
    """What ``create -f`` printed per version (filled by the first test that needs it)."""
    return {}


@pytest.fixture
def seeded(version: str, runners: dict[str, VersionedKubectl], created: dict[str, str]) -> VersionedKubectl:
    kubectl = runners[version]
    if version not in created:
        assert kubectl.ok("create", "namespace", kubectl.namespace) == f"namespace/{kubectl.namespace} created\n"
        created[version] = kubectl.ok("create", "-f", "-", stdin=OBJECTS)
    return kubectl


def rows(out: str) -> list[list[str]]:
    """A kubectl table split into cells (columns are separated by two or more spaces)."""
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in out.splitlines()]


@pytest.mark.parametrize("version", VERSIONS)
def test_version_and_api_resources(version: str, runners: dict[str, VersionedKubectl]) -> None:
    kubectl = runners[version]
    info = json.loads(kubectl.ok("version", "-o", "json"))
    assert info["serverVersion"]["gitVersion"] == "v1.32.0-skiff"
    if version == "dispatcher":
        # The dispatcher picked the binary that matches the server's minor version.
        assert info["clientVersion"]["minor"] == "32+"
    else:
        assert info["clientVersion"]["minor"] == version.split(".")[1]
    table = rows(kubectl.ok("api-resources"))
    assert table[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    by_name = {row[0]: row for row in table[1:]}
    assert by_name["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    assert by_name["services"][1:] == ["svc", "v1", "true", "Service"]
    assert by_name["namespaces"][1:] == ["ns", "v1", "false", "Namespace"]


@pytest.mark.parametrize("version", VERSIONS)
def test_create_from_file_and_tables(version: str, seeded: VersionedKubectl, created: dict[str, str]) -> None:
    kubectl = seeded
    assert created[version] == (
        "pod/pod1 created\ndeployment.apps/web created\nservice/web created\nconfigmap/settings created\n"
    )
    pods = rows(kubectl.ok("get", "pods", "-o", "wide"))
    assert pods[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert pods[1][:4] == ["pod1", "0/1", "Pending", "0"]
    assert pods[1][5:] == ["<none>", "<none>", "<none>", "<none>"]

    deployments = rows(kubectl.ok("get", "deployments"))
    assert deployments[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deployments[1][:4] == ["web", "0/2", "0", "0"]

    services = rows(kubectl.ok("get", "services"))
    assert services[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    # The CLUSTER-IP cell depends on the service IP allocator; the other cells do not.
    assert services[1][:2] == ["web", "ClusterIP"]
    assert services[1][3:5] == ["<none>", "80/TCP"]

    configmaps = rows(kubectl.ok("get", "configmaps", "settings"))
    assert configmaps[0] == ["NAME", "DATA", "AGE"]
    assert configmaps[1][:2] == ["settings", "1"]


@pytest.mark.parametrize("version", VERSIONS)
def test_get_output_formats_and_selectors(version: str, seeded: VersionedKubectl) -> None:
    kubectl = seeded
    pod = json.loads(kubectl.ok("get", "pod", "pod1", "-o", "json"))
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["namespace"] == kubectl.namespace
    assert pod["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert pod["status"]["phase"] == "Pending"
    as_yaml = yaml.safe_load(kubectl.ok("get", "deployment", "web", "-o", "yaml"))
    assert as_yaml["spec"]["replicas"] == 2
    assert as_yaml["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted
    listed = json.loads(kubectl.ok("get", "configmaps,services", "-l", "app=web", "-o", "json"))
    assert listed["kind"] == "List"
    assert sorted((item["kind"], item["metadata"]["name"]) for item in listed["items"]) == [
        ("ConfigMap", "settings"),
        ("Service", "web"),
    ]
    assert kubectl.ok("get", "svc", "web", "-o", "jsonpath={.spec.ports[0].targetPort}") == "8080"
    assert kubectl.ok("get", "pods", "-o", "jsonpath={.items[*].metadata.name}") == "pod1"

    everywhere = rows(kubectl.ok("get", "pods", "-A", "-l", "role=single"))
    assert everywhere[0] == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [kubectl.namespace, "pod1", "0/1", "Pending", "0"] in [row[:5] for row in everywhere[1:]]
    assert len(everywhere) - 1 >= 1

    assert kubectl.ok("get", "pods", "--field-selector", "metadata.name=pod1", "-o", "name") == "pod/pod1\n"
    assert kubectl.ok("get", "pods", "--field-selector", "status.phase=Pending", "-o", "name") == "pod/pod1\n"
    assert kubectl.ok("get", "pods", "--field-selector", "status.phase=Running", "-o", "name") == ""
    code, out, err = kubectl.run("get", "pods", "-l", "app=none")
    assert (code, out) == (0, "")
    assert err == f"No resources found in {kubectl.namespace} namespace.\n"


@pytest.mark.parametrize("version", VERSIONS)
def test_describe(version: str, seeded: VersionedKubectl) -> None:
    kubectl = seeded
    pod = kubectl.ok("describe", "pod", "pod1").splitlines()
    # Admission gives every pod a service account, so describe aligns on "Service Account:" as upstream.
    assert "Name:             pod1" in pod
    assert f"Namespace:        {kubectl.namespace}" in pod
    assert "Service Account:  default" in pod
    assert "Status:           Pending" in pod
    assert "    Image:        nginx:1.25" in pod
    deployment = kubectl.ok("describe", "deployment", "web").splitlines()
    assert "Name:                   web" in deployment
    assert "Selector:               app=web" in deployment
    assert "StrategyType:           RollingUpdate" in deployment
    assert any(line.startswith("Replicas:               2 desired") for line in deployment)


@pytest.mark.parametrize("version", VERSIONS)
def test_label_annotate_patch_scale(version: str, seeded: VersionedKubectl) -> None:
    kubectl = seeded
    assert kubectl.ok("label", "pod", "pod1", "tier=fe") == "pod/pod1 labeled\n"
    # kubectl 1.27 printed "annotate" (kubernetes/kubernetes#118045 fixed the word in 1.28).
    word = "annotate" if version == "1.27" else "annotated"
    assert kubectl.ok("annotate", "deployment", "web", "note=hi") == f"deployment.apps/web {word}\n"
    assert kubectl.ok("label", "pod", "pod1", "tier-") == "pod/pod1 unlabeled\n"

    patched = "deployment.apps/web patched\n"
    assert (
        kubectl.ok("patch", "deployment", "web", "--type", "merge", "-p", '{"metadata":{"labels":{"m":"1"}}}')
        == patched
    )
    json_patch = '[{"op":"add","path":"/metadata/labels/j","value":"2"}]'
    assert kubectl.ok("patch", "deployment", "web", "--type", "json", "-p", json_patch) == patched
    # Strategic merge: containers merge by name, so the image changes and no container is added.
    strategic = '{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"nginx:1.26"}]}}}}'
    assert kubectl.ok("patch", "deployment", "web", "-p", strategic) == patched
    assert kubectl.ok("patch", "deployment", "web", "-p", strategic) == "deployment.apps/web patched (no change)\n"

    assert kubectl.ok("scale", "deployment", "web", "--replicas=3") == "deployment.apps/web scaled\n"
    code, _, err = kubectl.run("scale", "deployment", "web", "--replicas=5", "--current-replicas=2")
    assert code == 1
    assert "Expected replicas to be 2, was 3" in err

    deployment = json.loads(kubectl.ok("get", "deployment", "web", "-o", "json"))
    assert deployment["metadata"]["labels"] == {"app": "web", "m": "1", "j": "2"}
    assert deployment["metadata"]["annotations"] == {"note": "hi"}
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("main", "nginx:1.26")]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["generation"] == 3  # the image change and the scale; metadata does not count
    assert json.loads(kubectl.ok("get", "pod", "pod1", "-o", "json"))["metadata"]["labels"] == {
        "app": "web",
        "role": "single",
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_get_watch_with_request_timeout(version: str, seeded: VersionedKubectl) -> None:
    kubectl = seeded
    kubectl.ok("create", "configmap", "watched", "--from-literal=a=1")
    with subprocess.Popen(
        kubectl.command("get", "configmap", "watched", "-w", "--request-timeout=5s"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watcher:
        try:
            assert watcher.stdout is not None
            assert watcher.stdout.readline().split() == ["NAME", "DATA", "AGE"]
            assert watcher.stdout.readline().split()[:2] == ["watched", "1"]
            kubectl.ok("patch", "configmap", "watched", "--type", "merge", "-p", '{"data":{"b":"2"}}')
            assert watcher.stdout.readline().split()[:2] == ["watched", "2"]
            # The request timeout ends the watch, and kubectl exits 0 when it does.
            assert watcher.wait(timeout=30) == 0
        finally:
            if watcher.poll() is None:
                watcher.kill()


@pytest.mark.parametrize("version", VERSIONS)
def test_apply_and_diff(version: str, seeded: VersionedKubectl) -> None:
    kubectl = seeded
    first = APPLIED.format(mode="fast", image="nginx:1.25")
    assert kubectl.ok("apply", "-f", "-", stdin=first) == (
        "configmap/applied created\ndeployment.apps/applied created\n"
    )
    assert kubectl.ok("apply", "-f", "-", stdin=first) == (
        "configmap/applied unchanged\ndeployment.apps/applied unchanged\n"
    )
    second = APPLIED.format(mode="slow", image="nginx:1.26")
    before = kubectl.ok("get", "configmap,deployment", "applied", "-o", "json")

    # diff sends the patches with dryRun=All: it prints the change, exits 1 and stores nothing.
    code, out, err = kubectl.run("diff", "-f", "-", stdin=second)
    assert code == 1, err
    assert "-  mode: fast\n+  mode: slow\n" in out
    assert "-      - image: nginx:1.25\n+      - image: nginx:1.26\n" in out
    assert "-  generation: 1\n+  generation: 2\n" in out  # the dry run bumped it
    after_diff = kubectl.ok("get", "configmap,deployment", "applied", "-o", "json")
    assert json.loads(after_diff) == json.loads(before)
    assert kubectl.run("diff", "-f", "-", stdin=first)[:2] == (0, "")

    assert kubectl.ok("apply", "-f", "-", stdin=second) == (
        "configmap/applied configured\ndeployment.apps/applied configured\n"
    )
    assert kubectl.ok("get", "configmap", "applied", "-o", "jsonpath={.data.mode}") == "slow"
    assert kubectl.ok("get", "deployment", "applied", "-o", "jsonpath={.metadata.generation}") == "2"


@pytest.mark.parametrize("version", VERSIONS)
def test_delete_waits_and_is_gone(version: str, seeded: VersionedKubectl) -> None:
    kubectl = seeded
    assert kubectl.ok("delete", "pod", "pod1", "--wait") == 'pod "pod1" deleted\n'
    assert kubectl.ok("delete", "-f", "-", "--wait", stdin=OBJECTS.split("---\n", 1)[1]) == (
        'deployment.apps "web" deleted\nservice "web" deleted\nconfigmap "settings" deleted\n'
    )
    code, out, err = kubectl.run("get", "pods,deployments,services,configmaps", "-l", "app=web")
    assert (code, out) == (0, "")
    assert err == f"No resources found in {kubectl.namespace} namespace.\n"
    code, _, err = kubectl.run("delete", "configmap", "settings")
    assert code == 1
    assert err == 'Error from server (NotFound): configmaps "settings" not found\n'
