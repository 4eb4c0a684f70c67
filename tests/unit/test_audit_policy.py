"""Audit policy matching (upstream policy/checker.go), event shape, levels, and the rotating writer."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from skiff.apiserver.audit import (
    DEFAULT_POLICY,
    AuditLogWriter,
    AuditRecord,
    Level,
    PolicyError,
    RequestAttributes,
    build_event,
    parse_policy,
)
from skiff.apiserver.auth import UserInfo
from skiff.apiserver.request_info import RequestInfo, parse_resource_path

ALICE = UserInfo("alice", uid="7", groups=("devs", "system:authenticated"))
NODE = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))

POLICY = parse_policy(
    """
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/version"]
  - level: None
    userGroups: [system:nodes]
    verbs: [get, update]
    resources: [{group: coordination.k8s.io, resources: [leases]}]
  - level: RequestResponse
    resources: [{group: "", resources: [configmaps]}]
    omitStages: [ResponseStarted]
  - level: Request
    resources: [{group: "", resources: ["pods/log", "*/status"]}]
  - level: Metadata
    resources: [{group: apps, resources: ["deployments/*"]}]
  - level: Request
    namespaces: [kube-system]
  - level: Metadata
    resources: [{group: "", resources: [secrets], resourceNames: [special]}]
  - level: None
    users: [bob]
  - level: Request
    nonResourceURLs: ["/api*"]
  - level: Metadata
    verbs: [delete]
"""
)


def attrs(user: UserInfo | None, method: str, path: str, watch: str | None = None) -> RequestAttributes:
    info = parse_resource_path(method, path, watch)
    verb = info.verb if info is not None else method.lower()
    return RequestAttributes(user, verb, path, info)


@pytest.mark.parametrize(
    ("request_attrs", "level"),
    [
        pytest.param(attrs(ALICE, "GET", "/healthz"), "None", id="healthz"),
        pytest.param(attrs(ALICE, "GET", "/healthz/etcd"), "None", id="healthz-prefix"),
        pytest.param(attrs(ALICE, "GET", "/version"), "None", id="version"),
        pytest.param(
            attrs(NODE, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"),
            "None",
            id="node-lease-update",
        ),
        pytest.param(
            attrs(NODE, "DELETE", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"),
            "Metadata",
            id="node-lease-delete-falls-through",
        ),
        pytest.param(
            attrs(ALICE, "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"),
            "None",
            id="lease-by-non-node-no-rule",
        ),
        pytest.param(attrs(ALICE, "POST", "/api/v1/namespaces/default/configmaps"), "RequestResponse", id="cm"),
        pytest.param(attrs(ALICE, "GET", "/api/v1/namespaces/default/pods/p/log"), "Request", id="pods-log"),
        pytest.param(attrs(ALICE, "GET", "/api/v1/namespaces/default/pods/p"), "None", id="pod-no-rule"),
        pytest.param(attrs(ALICE, "PUT", "/api/v1/nodes/n1/status"), "Request", id="star-status"),
        pytest.param(
            attrs(ALICE, "PUT", "/apis/apps/v1/namespaces/default/deployments/d/scale"), "Metadata", id="deploy-star"
        ),
        # upstream: "deployments/*" also matches the resource itself
        pytest.param(
            attrs(ALICE, "GET", "/apis/apps/v1/namespaces/default/deployments/d"), "Metadata", id="deploy-bare"
        ),
        pytest.param(attrs(ALICE, "GET", "/api/v1/namespaces/kube-system/secrets/x"), "Request", id="namespace"),
        pytest.param(attrs(ALICE, "GET", "/api/v1/namespaces/default/secrets/special"), "Metadata", id="name"),
        pytest.param(attrs(ALICE, "GET", "/api/v1/namespaces/default/secrets/other"), "None", id="other-name"),
        pytest.param(attrs(UserInfo("bob"), "DELETE", "/api/v1/namespaces/default/pods/p"), "None", id="user"),
        pytest.param(attrs(ALICE, "DELETE", "/api/v1/namespaces/default/pods/p"), "Metadata", id="verb"),
        pytest.param(attrs(ALICE, "GET", "/api"), "Request", id="non-resource-prefix"),
        pytest.param(attrs(ALICE, "GET", "/apis/apps/v1"), "Request", id="discovery-is-non-resource"),
        pytest.param(attrs(None, "GET", "/metrics"), "None", id="unauthenticated-no-match"),
    ],
)
def test_first_matching_rule_gives_the_level(request_attrs: RequestAttributes, level: Level) -> None:
    assert POLICY.evaluate(request_attrs)[0] == level


def test_omit_stages_are_the_policys_plus_the_rules() -> None:
    _, omit = POLICY.evaluate(attrs(ALICE, "GET", "/api/v1/namespaces/default/configmaps"))
    assert omit == {"RequestReceived", "ResponseStarted"}
    _, omit = POLICY.evaluate(attrs(ALICE, "DELETE", "/api/v1/namespaces/default/pods/p"))
    assert omit == {"RequestReceived"}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("kind: Policy\napiVersion: audit.k8s.io/v1beta1\nrules: [{level: None}]", id="version"),
        pytest.param("kind: Policy\napiVersion: audit.k8s.io/v1\nrules: [{level: Everything}]", id="level"),
        pytest.param("kind: Policy\napiVersion: audit.k8s.io/v1\nrules: []", id="no-rules"),
        pytest.param(
            "kind: Policy\napiVersion: audit.k8s.io/v1\nrules: [{level: None, omitStages: [Later]}]", id="stage"
        ),
        pytest.param("kind: Policy\napiVersion: audit.k8s.io/v1\nrules: [{level: None, verbs: get}]", id="not-a-list"),
        pytest.param(
            "kind: Policy\napiVersion: audit.k8s.io/v1\nrules: [{level: None, namespaces: [a], nonResourceURLs: [/x]}]",
            id="exclusive",
        ),
        pytest.param(":\n- [", id="not-yaml"),
    ],
)
def test_bad_policies_are_refused(text: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(text)


def test_default_policy_skips_health_and_keeps_metadata() -> None:
    policy = parse_policy(DEFAULT_POLICY)
    assert policy.evaluate(attrs(ALICE, "GET", "/readyz"))[0] == "None"
    assert policy.evaluate(attrs(ALICE, "GET", "/api/v1/namespaces/default/secrets/s")) == (
        "Metadata",
        {"RequestReceived"},
    )


RECEIVED = datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC)
DONE = RECEIVED + datetime.timedelta(milliseconds=5)


def record(info: RequestInfo | None = None) -> AuditRecord:
    info = info or RequestInfo("create", "apps", "v1", "deployments", namespace="ns", name="", subresource="")
    return AuditRecord(
        audit_id="0b6c2c1e-1111-4222-8333-444455556666",
        method="POST",
        request_uri="/apis/apps/v1/namespaces/ns/deployments?fieldManager=kubectl",
        verb=info.verb,
        path="/apis/apps/v1/namespaces/ns/deployments",
        info=info,
        source_ips=("127.0.0.1",),
        user_agent="kubectl/v1.32.0",
        received=RECEIVED,
        user=ALICE,
        annotations={"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    )


def test_event_has_kube_apiservers_shape() -> None:
    event = build_event(record(), "Metadata", "ResponseComplete", DONE, code=201)
    assert event == {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "0b6c2c1e-1111-4222-8333-444455556666",
        "stage": "ResponseComplete",
        "requestURI": "/apis/apps/v1/namespaces/ns/deployments?fieldManager=kubectl",
        "verb": "create",
        "user": {"username": "alice", "uid": "7", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["127.0.0.1"],
        "userAgent": "kubectl/v1.32.0",
        "objectRef": {"resource": "deployments", "namespace": "ns", "apiGroup": "apps", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestReceivedTimestamp": "2026-01-02T03:04:05.123456Z",
        "stageTimestamp": "2026-01-02T03:04:05.128456Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    }


def test_error_status_and_subresource_object_ref() -> None:
    info = RequestInfo("get", "", "v1", "pods", namespace="default", name="p", subresource="log")
    status = {"kind": "Status", "status": "Failure", "message": 'pods "p" not found', "reason": "NotFound"}
    event = build_event(record(info), "Metadata", "ResponseComplete", DONE, code=404, status=status)
    assert event["objectRef"] == {
        "resource": "pods",
        "namespace": "default",
        "name": "p",
        "apiVersion": "v1",
        "subresource": "log",
    }
    assert event["responseStatus"] == {
        "metadata": {},
        "status": "Failure",
        "message": 'pods "p" not found',
        "reason": "NotFound",
        "code": 404,
    }


@pytest.mark.parametrize(
    ("level", "has_request", "has_response"),
    [
        pytest.param("Metadata", False, False, id="metadata"),
        pytest.param("Request", True, False, id="request"),
        pytest.param("RequestResponse", True, True, id="request-response"),
    ],
)
def test_levels_decide_which_objects_are_logged(level: Level, has_request: bool, has_response: bool) -> None:
    body = {"kind": "Deployment", "metadata": {"name": "d"}}
    event = build_event(record(), level, "ResponseComplete", DONE, code=201, request_object=body, response_object=body)
    assert ("requestObject" in event) == has_request
    assert ("responseObject" in event) == has_response


def test_non_object_bodies_are_not_logged() -> None:
    event = build_event(record(), "RequestResponse", "ResponseComplete", DONE, code=200, request_object=None)
    assert "requestObject" not in event and "responseObject" not in event


def test_unauthenticated_user_is_empty_and_non_resource_has_no_object_ref() -> None:
    rec = record()
    rec.user, rec.info, rec.verb = None, None, "get"
    event = build_event(rec, "Metadata", "ResponseComplete", DONE, code=401)
    assert event["user"] == {}
    assert "objectRef" not in event


def test_writer_rotates_and_keeps_max_backups(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "audit.log"
    writer = AuditLogWriter(str(path), max_size_mib=2048 / (1024 * 1024), max_backups=3)
    event = build_event(record(), "Metadata", "ResponseComplete", DONE, code=201)
    for _ in range(100):
        writer.write(event)
    writer.close()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["audit.log", "audit.log.1", "audit.log.2", "audit.log.3"]
    for name in files:
        text = (path.parent / name).read_text()
        assert len(text.encode()) <= 2048
        for line in text.splitlines():
            assert json.loads(line)["auditID"] == event["auditID"]
    writer.write(event)  # after close: ignored, no error


def test_writer_drops_rather_than_blocks_when_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("skiff.apiserver.audit.QUEUE_LIMIT", 1)
    writer = AuditLogWriter(str(tmp_path / "audit.log"))
    writer._listener.stop()  # nobody drains the queue now
    event = build_event(record(), "Metadata", "ResponseComplete", DONE, code=201)
    writer.write(event)
    writer.write(event)
    assert writer.dropped >= 1
    writer._handler.close()
