"""kubectl 1.32's ``create`` generators, ``edit`` and ``rollout`` against ``skiff apiserver``.

Each generator builds the object on the client and POSTs it (most as
protobuf); the test reads the stored object back with ``get -o json`` and
checks the fields the generator set and the server defaulted.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from apiserver_harness import KUBECTL, Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NS = "gen"


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data file for --from-file and a self-signed certificate and key for ``secret tls``."""
    base = tmp_path_factory.mktemp("generator-files")
    (base / "f.txt").write_text("filedata\n")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "generator-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (base / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (base / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return base


@pytest.fixture(scope="module")
def namespace(apiserver: RunningApiServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    runner = Kubectl(apiserver, tmp_path_factory.mktemp("ns-cache"))
    assert runner.ok("create", "namespace", NS) == f"namespace/{NS} created\n"
    return NS


def subset(expected: Any, actual: Any, path: str = "") -> None:
    """Every field of ``expected`` is in ``actual`` with the same value (lists compared item by item)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} is missing from {actual!r}"
            subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r} != {expected!r}"
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            subset(want, got, f"{path}[{index}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


DOCKER_CONFIG = {"auths": {"r.example": {"username": "u", "password": "p", "auth": b64("u:p")}}}

# (kubectl create arguments, the "created" line, the resource to get back, fields the stored object has).
GENERATORS = [
    pytest.param(
        ["configmap", "c1", "--from-literal=a=b", "--from-file={files}/f.txt"],
        "configmap/c1 created",
        "configmap/c1",
        {"data": {"a": "b", "f.txt": "filedata\n"}},
        id="configmap",
    ),
    pytest.param(
        ["secret", "generic", "s1", "--from-literal=p=q"],
        "secret/s1 created",
        "secret/s1",
        {"type": "Opaque", "data": {"p": b64("q")}},
        id="secret-generic",
    ),
    pytest.param(
        ["secret", "tls", "t1", "--cert={files}/tls.crt", "--key={files}/tls.key"],
        "secret/t1 created",
        "secret/t1",
        {"type": "kubernetes.io/tls", "data": {"tls.crt": "<tls.crt>", "tls.key": "<tls.key>"}},
        id="secret-tls",
    ),
    pytest.param(
        ["secret", "docker-registry", "d1", "--docker-server=r.example", "--docker-username=u", "--docker-password=p"],
        "secret/d1 created",
        "secret/d1",
        {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "<docker>"}},
        id="secret-docker-registry",
    ),
    pytest.param(
        ["deployment", "dep", "--image=nginx", "--replicas=2", "--port=80"],
        "deployment.apps/dep created",
        "deployment/dep",
        {
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "dep"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "revisionHistoryLimit": 10,
                "template": {
                    "metadata": {"labels": {"app": "dep"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]},
                },
            }
        },
        id="deployment",
    ),
    pytest.param(
        ["service", "clusterip", "sc", "--tcp=80:8080"],
        "service/sc created",
        "service/sc",
        {
            "metadata": {"labels": {"app": "sc"}},
            "spec": {
                "type": "ClusterIP",
                "selector": {"app": "sc"},
                "ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            },
        },
        id="service-clusterip",
    ),
    pytest.param(
        ["service", "nodeport", "sn", "--tcp=80:8080"],
        "service/sn created",
        "service/sn",
        {"spec": {"type": "NodePort", "externalTrafficPolicy": "Cluster"}},
        id="service-nodeport",
    ),
    pytest.param(
        ["service", "loadbalancer", "sl", "--tcp=80:8080"],
        "service/sl created",
        "service/sl",
        {"spec": {"type": "LoadBalancer", "ports": [{"name": "80-8080", "port": 80, "targetPort": 8080}]}},
        id="service-loadbalancer",
    ),
    pytest.param(
        ["service", "externalname", "se", "--external-name=example.com"],
        "service/se created",
        "service/se",
        {"spec": {"type": "ExternalName", "externalName": "example.com"}},
        id="service-externalname",
    ),
    pytest.param(
        ["job", "j1", "--image=busybox", "--", "echo", "hi"],
        "job.batch/j1 created",
        "job/j1",
        {
            "spec": {
                "backoffLimit": 6,
                "completions": 1,
                "parallelism": 1,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "j1", "image": "busybox", "command": ["echo", "hi"]}],
                    }
                },
            }
        },
        id="job",
    ),
    pytest.param(
        ["cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *", "--", "echo", "hi"],
        "cronjob.batch/cj created",
        "cronjob/cj",
        {
            "spec": {
                "schedule": "*/5 * * * *",
                "concurrencyPolicy": "Allow",
                "suspend": False,
                "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}},
            }
        },
        id="cronjob",
    ),
    pytest.param(
        ["role", "r1", "--verb=get,list", "--resource=pods"],
        "role.rbac.authorization.k8s.io/r1 created",
        "role/r1",
        {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
        id="role",
    ),
    pytest.param(
        ["clusterrole", "gen-cr1", "--verb=get", "--resource=nodes"],
        "clusterrole.rbac.authorization.k8s.io/gen-cr1 created",
        "clusterrole/gen-cr1",
        {"rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]},
        id="clusterrole",
    ),
    pytest.param(
        ["rolebinding", "rb1", "--role=r1", "--user=alice"],
        "rolebinding.rbac.authorization.k8s.io/rb1 created",
        "rolebinding/rb1",
        {
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
        },
        id="rolebinding",
    ),
    pytest.param(
        ["clusterrolebinding", "gen-crb1", "--clusterrole=gen-cr1", "--serviceaccount=gen:sa1"],
        "clusterrolebinding.rbac.authorization.k8s.io/gen-crb1 created",
        "clusterrolebinding/gen-crb1",
        {
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "gen-cr1"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa1", "namespace": "gen"}],
        },
        id="clusterrolebinding",
    ),
    pytest.param(
        ["serviceaccount", "sa1"], "serviceaccount/sa1 created", "serviceaccount/sa1", {}, id="serviceaccount"
    ),
    pytest.param(
        ["quota", "q1", "--hard=pods=10,cpu=2"],
        "resourcequota/q1 created",
        "resourcequota/q1",
        {"spec": {"hard": {"pods": "10", "cpu": "2"}}},
        id="quota",
    ),
    pytest.param(
        ["priorityclass", "gen-pc1", "--value=1000", "--description=for tests"],
        "priorityclass.scheduling.k8s.io/gen-pc1 created",
        "priorityclass/gen-pc1",
        {"value": 1000, "description": "for tests", "preemptionPolicy": "PreemptLowerPriority"},
        id="priorityclass",
    ),
    pytest.param(
        ["poddisruptionbudget", "pdb1", "--selector=app=x", "--min-available=1"],
        "poddisruptionbudget.policy/pdb1 created",
        "poddisruptionbudget/pdb1",
        {"spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "x"}}}},
        id="poddisruptionbudget",
    ),
]


@pytest.mark.parametrize(("args", "printed", "resource", "expected"), GENERATORS)
def test_create_generator(
    kubectl: Kubectl,
    namespace: str,
    files: Path,
    args: list[str],
    printed: str,
    resource: str,
    expected: dict[str, Any],
) -> None:
    filled = [arg.replace("{files}", str(files)) for arg in args]
    assert kubectl.ok("-n", namespace, "create", *filled) == printed + "\n"
    stored = json.loads(kubectl.ok("-n", namespace, "get", resource, "-o", "json"))
    data = expected.get("data", {})
    if data.get("tls.crt") == "<tls.crt>":
        data["tls.crt"] = b64((files / "tls.crt").read_bytes())
        data["tls.key"] = b64((files / "tls.key").read_bytes())
    if data.get(".dockerconfigjson") == "<docker>":
        config = json.loads(base64.b64decode(stored["data"][".dockerconfigjson"]))
        assert config == DOCKER_CONFIG
        data.pop(".dockerconfigjson")
    subset(expected, stored)
    assert stored["metadata"]["name"] == resource.split("/")[1]
    assert stored["metadata"]["uid"]


def test_create_namespace(kubectl: Kubectl) -> None:
    assert kubectl.ok("create", "namespace", "gen-made") == "namespace/gen-made created\n"
    stored = json.loads(kubectl.ok("get", "namespace", "gen-made", "-o", "json"))
    assert stored["spec"] == {"finalizers": ["kubernetes"]}
    assert stored["status"]["phase"] == "Active"
    assert stored["metadata"]["labels"] == {"kubernetes.io/metadata.name": "gen-made"}


def test_create_token(kubectl: Kubectl, namespace: str) -> None:
    # Claims and authentication: tests/apiserver/test_serviceaccount_tokens.py.
    kubectl.ok("-n", namespace, "create", "serviceaccount", "tok")
    token = kubectl.ok("-n", namespace, "create", "token", "tok").strip()
    assert token.count(".") == 2 and token.startswith("eyJ")


def test_edit_with_an_editor_script(kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    kubectl.ok("-n", namespace, "create", "configmap", "edited", "--from-literal=a=before")
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i "s/a: before/a: after/" "$1"\n')
    editor.chmod(0o755)
    base = [KUBECTL, "--kubeconfig", str(kubectl.server.kubeconfig), "--cache-dir", str(kubectl.cache_dir)]
    done = subprocess.run(
        [*base, "-n", namespace, "edit", "configmap", "edited"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KUBE_EDITOR": str(editor)},
    )
    assert (done.returncode, done.stdout) == (0, "configmap/edited edited\n"), done.stderr
    assert kubectl.ok("-n", namespace, "get", "configmap", "edited", "-o", "jsonpath={.data.a}") == "after"


REPLICA_SET = """\
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: roll-{revision}
  labels: {{app: roll, pod-template-hash: h{revision}}}
  annotations: {{deployment.kubernetes.io/revision: "{revision}"}}
  ownerReferences:
  - {{apiVersion: apps/v1, kind: Deployment, name: roll, uid: {uid}, controller: true, blockOwnerDeletion: true}}
spec:
  replicas: 0
  selector:
    matchLabels: {{app: roll, pod-template-hash: h{revision}}}
  template:
    metadata:
      labels: {{app: roll, pod-template-hash: h{revision}}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.2{revision}
"""


def test_rollout_history_and_undo_over_owned_replica_sets(kubectl: Kubectl, namespace: str) -> None:
    # There is no deployment controller yet, so the test writes the ReplicaSets it would have made.
    kubectl.ok("-n", namespace, "create", "deployment", "roll", "--image=nginx:1.22")
    assert kubectl.ok("-n", namespace, "rollout", "history", "deployment/roll") == (
        "deployment.apps/roll \nNo rollout history found.\n"
    )
    uid = kubectl.ok("-n", namespace, "get", "deployment", "roll", "-o", "jsonpath={.metadata.uid}")
    for revision in (1, 2):
        kubectl.ok("-n", namespace, "create", "-f", "-", stdin=REPLICA_SET.format(revision=revision, uid=uid))
    history = kubectl.ok("-n", namespace, "rollout", "history", "deployment/roll").splitlines()
    assert history[0] == "deployment.apps/roll "
    assert [line.split() for line in history[1:] if line] == [
        ["REVISION", "CHANGE-CAUSE"],
        ["1", "<none>"],
        ["2", "<none>"],
    ]
    one = kubectl.ok("-n", namespace, "rollout", "history", "deployment/roll", "--revision=1")
    assert "deployment.apps/roll with revision #1\n" in one
    assert "    Image:\tnginx:1.21\n" in one

    # undo sends a JSON patch that replaces /spec/template and /metadata/annotations.
    assert kubectl.ok("-n", namespace, "rollout", "undo", "deployment/roll", "--to-revision=1") == (
        "deployment.apps/roll rolled back\n"
    )
    stored = json.loads(kubectl.ok("-n", namespace, "get", "deployment", "roll", "-o", "json"))
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.21"
    assert stored["spec"]["template"]["metadata"]["labels"] == {"app": "roll"}  # pod-template-hash dropped
    assert kubectl.ok("-n", namespace, "rollout", "undo", "deployment/roll", "--to-revision=1") == (
        "deployment.apps/roll skipped rollback (current template already matches revision 1)\n"
    )
