"""``skiff apiserver --audit-policy-file``: the events a real server writes for kubectl and raw requests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver_harness import TOKEN, Kubectl, RunningApiServer, bind_cluster_admin, running_apiserver

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
  - level: RequestResponse
    resources: [{group: "", resources: [configmaps]}]
  - level: Metadata
"""


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningApiServer, Path]]:
    base = tmp_path_factory.mktemp("audit")
    policy = base / "policy.yaml"
    policy.write_text(POLICY)
    tokens = base / "tokens.csv"
    tokens.write_text(f'{TOKEN},token-user,42,"team-a"\n')
    log_path = base / "audit" / "audit.log"
    args = ("--token-auth-file", str(tokens), "--audit-policy-file", str(policy), "--audit-log-path", str(log_path))
    with running_apiserver(base, *args) as server:
        bind_cluster_admin(server, "token-user")
        yield server, log_path


def events(
    log_path: Path, want: int = 1, where: Callable[[dict[str, Any]], bool] | None = None, **match: Any
) -> list[dict[str, Any]]:
    """Events whose top-level fields equal ``match`` (and that ``where`` accepts), waiting (briefly) for the
    writer thread."""
    deadline = time.monotonic() + 5
    while True:
        lines = log_path.read_text().splitlines() if log_path.exists() else []
        found = [
            e
            for e in map(json.loads, lines)
            if all(e.get(k) == v for k, v in match.items()) and (where is None or where(e))
        ]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_kubectl_create_configmap_is_logged_with_both_objects(
    audited: tuple[RunningApiServer, Path], tmp_path: Path
) -> None:
    server, log_path = audited
    Kubectl(server, tmp_path / "cache").ok("create", "configmap", "audited-cm", "--from-literal=k=v")
    created = events(
        log_path,
        verb="create",
        where=lambda e: e.get("objectRef", {}).get("resource") == "configmaps" and e["responseStatus"]["code"] == 201,
    )
    assert len(created) == 1, created
    event = created[0]
    assert event["kind"] == "Event" and event["apiVersion"] == "audit.k8s.io/v1"
    assert event["level"] == "RequestResponse" and event["stage"] == "ResponseComplete"
    assert event["user"]["username"] == "kubernetes-admin"
    assert "system:masters" in event["user"]["groups"]
    assert event["objectRef"] == {"resource": "configmaps", "namespace": "default", "apiVersion": "v1"}
    assert event["requestObject"]["metadata"]["name"] == "audited-cm"
    assert event["responseObject"]["data"] == {"k": "v"}
    assert event["userAgent"].startswith("kubectl")
    assert event["sourceIPs"]
    assert event["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert event["stageTimestamp"] >= event["requestReceivedTimestamp"]


def test_missing_pod_is_a_metadata_event_with_the_status(
    audited: tuple[RunningApiServer, Path], tmp_path: Path
) -> None:
    server, log_path = audited
    code, _, _ = Kubectl(server, tmp_path / "cache").run("get", "pod", "no-such-pod")
    assert code != 0
    [event] = [e for e in events(log_path, verb="get") if e.get("objectRef", {}).get("name") == "no-such-pod"]
    assert event["level"] == "Metadata"
    assert event["objectRef"] == {"resource": "pods", "namespace": "default", "name": "no-such-pod", "apiVersion": "v1"}
    assert event["responseStatus"]["code"] == 404
    assert event["responseStatus"]["reason"] == "NotFound"
    assert "requestObject" not in event and "responseObject" not in event


def test_audit_id_header_names_the_event_and_user_is_the_token_user(audited: tuple[RunningApiServer, Path]) -> None:
    server, log_path = audited
    status, headers, _ = server.request(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "by-token"}}).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        client_cert=False,
    )
    assert status == 201
    audit_id = headers["Audit-Id"]
    [event] = events(log_path, auditID=audit_id)
    assert event["user"] == {"username": "token-user", "uid": "42", "groups": ["team-a", "system:authenticated"]}
    assert event["verb"] == "create"
    assert event["requestURI"] == "/api/v1/namespaces/default/configmaps"


def test_unauthenticated_and_non_resource_requests(audited: tuple[RunningApiServer, Path]) -> None:
    server, log_path = audited
    status, headers, _ = server.request("GET", "/api", client_cert=False)
    assert status == 403
    [event] = events(log_path, auditID=headers["Audit-Id"])
    assert event["user"] == {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
    assert event["verb"] == "get" and "objectRef" not in event
    assert event["responseStatus"]["code"] == 403
    assert event["annotations"]["authorization.k8s.io/decision"] == "forbid"


def test_health_checks_are_not_logged(audited: tuple[RunningApiServer, Path]) -> None:
    server, log_path = audited
    status, headers, _ = server.request("GET", "/healthz")
    assert status == 200 and headers["Audit-Id"]
    server.request("GET", "/version")  # a later event, so the writer has passed /healthz
    assert events(log_path, requestURI="/version")
    assert not events(log_path, want=0, auditID=headers["Audit-Id"])
    assert not [e for e in events(log_path, want=0) if e["requestURI"].startswith(("/healthz", "/readyz"))]
    assert not events(log_path, want=0, stage="RequestReceived")


def test_pod_security_annotates_the_event(audited: tuple[RunningApiServer, Path], tmp_path: Path) -> None:
    server, log_path = audited
    kubectl = Kubectl(server, tmp_path / "cache")
    kubectl.ok("create", "namespace", "audited-ps")
    labels = ("pod-security.kubernetes.io/enforce=baseline", "pod-security.kubernetes.io/audit=restricted")
    kubectl.ok("label", "namespace", "audited-ps", *labels)
    kubectl.ok("run", "audited-pod", "--image=busybox", "-n", "audited-ps")
    deadline = time.monotonic() + 5
    while True:
        created = [
            e
            for e in events(log_path, verb="create")
            if e.get("objectRef", {}).get("namespace") == "audited-ps" and e["objectRef"]["resource"] == "pods"
        ]
        if created or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    [event] = created
    annotations = event["annotations"]
    assert annotations["pod-security.kubernetes.io/enforce-policy"] == "baseline:latest"
    assert annotations["pod-security.kubernetes.io/audit-violations"] == (
        'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "audited-pod" must set securityContext.allowPrivilegeEscalation=false), '
        'unrestricted capabilities (container "audited-pod" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "audited-pod" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "audited-pod" must set securityContext.seccompProfile.type to '
        '"RuntimeDefault" or "Localhost")'
    )


def test_rotation_keeps_maxbackup_files(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    log_path = tmp_path / "audit.log"
    args = (
        "--audit-policy-file",
        str(policy),
        "--audit-log-path",
        str(log_path),
        "--audit-log-maxsize",
        str(4096 / (1024 * 1024)),
        "--audit-log-maxbackup",
        "2",
    )
    with running_apiserver(tmp_path / "srv", *args) as server:
        for _ in range(40):
            assert server.request("GET", "/api/v1/namespaces/default/configmaps")[0] == 200
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("audit.log"))
    assert names == ["audit.log", "audit.log.1", "audit.log.2"]
    assert all((tmp_path / n).stat().st_size <= 4096 for n in names)
