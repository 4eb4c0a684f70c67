"""The real kubectl 1.32 against ``skiff apiserver``: outputs asserted, not just exit codes."""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
import subprocess

import yaml
from apiserver_harness import KUBECTL, Kubectl, apiserver, kubectl  # noqa: F401

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  labels:
    app: web
data:
  greeting: hello
"""


def test_version_reports_the_server(kubectl: Kubectl) -> None:
    out = kubectl.ok("version", "-o", "json")
    assert json.loads(out)["serverVersion"]["gitVersion"] == "v1.32.0-skiff"


def test_api_resources_lists_core_and_named_groups(kubectl: Kubectl) -> None:
    rows = [line.split() for line in kubectl.ok("api-resources", "--no-headers").splitlines()]
    by_name = {row[0]: row for row in rows}
    assert by_name["configmaps"][1:] == ["cm", "v1", "true", "ConfigMap"]
    assert by_name["deployments"][1:] == ["deploy", "apps/v1", "true", "Deployment"]
    assert by_name["namespaces"][1:] == ["ns", "v1", "false", "Namespace"]


def test_configmap_lifecycle(kubectl: Kubectl) -> None:
    assert kubectl.ok("create", "-f", "-", stdin=CONFIGMAP.format(name="life")) == "configmap/life created\n"
    table = kubectl.ok("get", "configmap", "life").splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    assert table[1].split()[:2] == ["life", "1"]

    obj = json.loads(kubectl.ok("get", "configmap", "life", "-o", "json"))
    assert obj["data"] == {"greeting": "hello"}
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert int(obj["metadata"]["resourceVersion"]) > 0
    assert (
        yaml.safe_load(kubectl.ok("get", "configmap", "life", "-o", "yaml"))["metadata"]["uid"]
        == obj["metadata"]["uid"]
    )

    assert kubectl.ok("label", "configmap", "life", "tier=fe") == "configmap/life labeled\n"
    kubectl.ok("patch", "configmap", "life", "--type", "merge", "-p", '{"data":{"m":"1"}}')
    kubectl.ok("patch", "configmap", "life", "--type", "json", "-p", '[{"op":"add","path":"/data/j","value":"2"}]')
    kubectl.ok("patch", "configmap", "life", "-p", '{"data":{"s":"3"}}')  # strategic merge
    after = json.loads(kubectl.ok("get", "configmap", "life", "-o", "json"))
    assert after["data"] == {"greeting": "hello", "m": "1", "j": "2", "s": "3"}
    assert after["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert kubectl.ok("get", "configmap", "-l", "tier=fe", "-o", "name") == "configmap/life\n"

    assert kubectl.ok("delete", "configmap", "life") == 'configmap "life" deleted\n'
    code, _, err = kubectl.run("get", "configmap", "life")
    assert code == 1
    assert err == 'Error from server (NotFound): configmaps "life" not found\n'


def test_failed_json_patch_test_op_is_invalid(kubectl: Kubectl) -> None:
    kubectl.ok("create", "-f", "-", stdin=CONFIGMAP.format(name="jp"))
    code, _, err = kubectl.run(
        "patch", "configmap", "jp", "--type", "json", "-p", '[{"op":"test","path":"/data/greeting","value":"no"}]'
    )
    assert code == 1
    # What kubectl prints for upstream's 422 NewGenericServerResponse.
    assert err == "The request is invalid: the server rejected our request due to an error in our request\n"


def test_apply_create_configure_and_server_side(kubectl: Kubectl) -> None:
    assert kubectl.ok("apply", "-f", "-", stdin=CONFIGMAP.format(name="ap")) == "configmap/ap created\n"
    changed = CONFIGMAP.format(name="ap").replace("hello", "bye")
    assert kubectl.ok("apply", "-f", "-", stdin=changed) == "configmap/ap configured\n"
    assert kubectl.ok("apply", "-f", "-", stdin=changed) == "configmap/ap unchanged\n"
    out = kubectl.ok("apply", "--server-side", "-f", "-", stdin=CONFIGMAP.format(name="ssa"))
    assert out == "configmap/ssa serverside-applied\n"
    assert kubectl.ok("get", "configmap", "ssa", "-o", "jsonpath={.data.greeting}") == "hello"


def test_protobuf_bodies_from_create_generators(kubectl: Kubectl) -> None:
    assert kubectl.ok("create", "configmap", "gen", "--from-literal=a=b") == "configmap/gen created\n"
    assert kubectl.ok("get", "configmap", "gen", "-o", "jsonpath={.data.a}") == "b"


def test_auth_can_i_and_whoami(kubectl: Kubectl) -> None:
    assert kubectl.ok("auth", "can-i", "create", "pods") == "yes\n"
    rules = kubectl.ok("auth", "can-i", "--list").splitlines()
    assert rules[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert rules[1].split() == ["*.*", "[]", "[]", "[*]"]
    whoami = kubectl.ok("auth", "whoami", "-o", "json")
    assert json.loads(whoami)["status"]["userInfo"] == {
        "username": "kubernetes-admin",
        "groups": ["system:masters", "system:authenticated"],
    }


def test_get_watch_prints_rows_as_they_change(kubectl: Kubectl) -> None:
    kubectl.ok("create", "-f", "-", stdin=CONFIGMAP.format(name="watched"))
    cmd = [KUBECTL, "--kubeconfig", str(kubectl.server.kubeconfig), "--cache-dir", str(kubectl.cache_dir)]
    with subprocess.Popen(
        [*cmd, "get", "configmap", "watched", "-w", "--request-timeout=5s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as watcher:
        try:
            assert watcher.stdout is not None
            header = watcher.stdout.readline()  # printed once the initial Table arrived: the watch is next
            assert header.split() == ["NAME", "DATA", "AGE"]
            assert watcher.stdout.readline().split()[:2] == ["watched", "1"]
            kubectl.ok("patch", "configmap", "watched", "--type", "merge", "-p", '{"data":{"more":"x"}}')
            assert watcher.stdout.readline().split()[:2] == ["watched", "2"]
            watcher.wait(timeout=30)
        finally:
            if watcher.poll() is None:
                watcher.kill()
