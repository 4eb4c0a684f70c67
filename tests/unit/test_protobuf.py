"""Decoding Kubernetes protobuf request bodies: real kubectl bodies, hand-built ones, and malformed bytes.

Bodies from kubectl are captured from the real binary (kubectl 1.32) talking to a
throwaway recording server (kubectl_capture.py); the expected dicts are what Go's
``encoding/json`` writes for the same object, minus ``null``s and the empty
``status`` the decoder skips.  Hand-built bodies cover what kubectl never sends
(leader-election Leases, Evictions, probes, volumes, times) and every malformed
input the decoder must answer with 400 or 415 rather than crash.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubectl_capture import KUBECTL, capture_server, run_kubectl

from skiff.api.protobuf import MAGIC, decode_k8s_protobuf
from skiff.api.protobuf_schema import KINDS, MESSAGES, SPECIAL, _parse_field
from skiff.api.status import ApiError

# --- a test-only protobuf encoder (wire format, not schema) --------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def num(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


def ln(field: int, *parts: bytes | str) -> bytes:
    payload = b"".join(p.encode() if isinstance(p, str) else p for p in parts)
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def entry(field: int, key: str, value: bytes | str) -> bytes:
    return ln(field, ln(1, key), ln(2, value))


def envelope(api_version: str, kind: str, raw: bytes, encoding: str = "", content_type: str = "") -> bytes:
    type_meta = ln(1, ln(1, api_version), ln(2, kind))
    return MAGIC + type_meta + ln(2, raw) + ln(3, encoding) + ln(4, content_type)


def meta(name: str, namespace: str = "") -> bytes:
    """ObjectMeta as gogo writes it: every non-pointer field, zeros included, and an empty creationTimestamp."""
    return ln(1, ln(1, name), ln(2, ""), ln(3, namespace), ln(4, ""), ln(5, ""), ln(6, ""), num(7, 0), ln(8, ""))


def micro(seconds: int, nanos: int) -> bytes:
    return num(1, seconds) + num(2, nanos)


def int_or_string(value: int | str) -> bytes:
    return num(1, 1) + num(2, 0) + ln(3, value) if isinstance(value, str) else num(1, 0) + num(2, value) + ln(3, "")


def decode_error(body: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        decode_k8s_protobuf(body)
    return caught.value


# --- real kubectl bodies -----------------------------------------------------------------

KUBECTL_CASES = [
    pytest.param(
        ["create", "deployment", "web", "--image=nginx:1.25", "--replicas=2", "--port=80"],
        "/apis/apps/v1/namespaces/default/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}], "resources": {}}
                        ]
                    },
                },
                "strategy": {},
            },
        },
        id="deployment",
    ),
    pytest.param(
        ["create", "deployment", "zero", "--image=busybox", "--replicas=0"],
        "/apis/apps/v1/namespaces/default/deployments",
        {"spec.replicas": 0},
        id="deployment-zero-replicas-kept",
    ),
    pytest.param(
        ["create", "namespace", "ns1"],
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}, "spec": {}},
        id="namespace",
    ),
    pytest.param(
        ["create", "configmap", "c1", "--from-literal=a=b", "--from-literal=empty="],
        "/api/v1/namespaces/default/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"a": "b", "empty": ""}},
        id="configmap",
    ),
    pytest.param(
        ["create", "secret", "generic", "s1", "--from-literal=user=admin", "--from-literal=pw=s3cr3t"],
        "/api/v1/namespaces/default/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s1"},
            "data": {"pw": base64.b64encode(b"s3cr3t").decode(), "user": base64.b64encode(b"admin").decode()},
        },
        id="secret-generic",
    ),
    pytest.param(
        [
            "create",
            "secret",
            "docker-registry",
            "reg",
            "--docker-server=r.io",
            "--docker-username=u",
            "--docker-password=p",
        ],
        "/api/v1/namespaces/default/secrets",
        {"type": "kubernetes.io/dockerconfigjson", "metadata": {"name": "reg"}},
        id="secret-docker-registry",
    ),
    pytest.param(
        ["create", "service", "clusterip", "svc1", "--tcp=80:8080"],
        "/api/v1/namespaces/default/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "svc1", "labels": {"app": "svc1"}},
            "spec": {
                "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                "selector": {"app": "svc1"},
                "type": "ClusterIP",
            },
        },
        id="service-clusterip",
    ),
    pytest.param(
        ["create", "service", "nodeport", "svc2", "--tcp=80:http", "--node-port=30080"],
        "/api/v1/namespaces/default/services",
        {"spec.ports": [{"name": "80-http", "protocol": "TCP", "port": 80, "targetPort": "http", "nodePort": 30080}]},
        id="service-nodeport-named-target",
    ),
    pytest.param(
        ["create", "service", "externalname", "svc3", "--external-name=example.com"],
        "/api/v1/namespaces/default/services",
        {"spec.type": "ExternalName", "spec.externalName": "example.com"},
        id="service-externalname",
    ),
    pytest.param(
        ["create", "job", "j1", "--image=busybox", "--", "echo", "hi"],
        "/apis/batch/v1/namespaces/default/jobs",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j1"},
            "spec": {
                "template": {
                    "metadata": {},
                    "spec": {
                        "containers": [{"name": "j1", "image": "busybox", "command": ["echo", "hi"], "resources": {}}],
                        "restartPolicy": "Never",
                    },
                }
            },
        },
        id="job",
    ),
    pytest.param(
        ["create", "cronjob", "cj1", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"],
        "/apis/batch/v1/namespaces/default/cronjobs",
        {
            "spec.schedule": "*/5 * * * *",
            "spec.jobTemplate.metadata": {"name": "cj1"},
            "spec.jobTemplate.spec.template.spec.restartPolicy": "OnFailure",
        },
        id="cronjob",
    ),
    pytest.param(
        ["create", "role", "r1", "--verb=get,list", "--resource=pods,deployments.apps", "--resource-name=x"],
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "r1"},
            "rules": [
                {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["x"]},
                {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["x"]},
            ],
        },
        id="role-empty-string-in-list-kept",
    ),
    pytest.param(
        ["create", "clusterrole", "cr1", "--verb=get", "--non-resource-url=/healthz"],
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]},
        id="clusterrole",
    ),
    pytest.param(
        ["create", "rolebinding", "rb1", "--role=r1", "--user=alice", "--serviceaccount=default:sa1"],
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        {
            "subjects": [
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                {"kind": "ServiceAccount", "name": "sa1", "namespace": "default"},
            ],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r1"},
        },
        id="rolebinding",
    ),
    pytest.param(
        ["create", "clusterrolebinding", "crb1", "--clusterrole=cr1", "--group=devs"],
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "kind": "ClusterRoleBinding",
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr1"},
        },
        id="clusterrolebinding",
    ),
    pytest.param(
        ["create", "serviceaccount", "sa1"],
        "/api/v1/namespaces/default/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa1"}},
        id="serviceaccount",
    ),
    pytest.param(
        ["create", "quota", "q1", "--hard=cpu=2,memory=1Gi,pods=10", "--scopes=BestEffort"],
        "/api/v1/namespaces/default/resourcequotas",
        {"spec": {"hard": {"cpu": "2", "memory": "1Gi", "pods": "10"}, "scopes": ["BestEffort"]}},
        id="quota",
    ),
    pytest.param(
        ["create", "priorityclass", "pc1", "--value=1000", "--description=high", "--global-default=true"],
        "/apis/scheduling.k8s.io/v1/priorityclasses",
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": "pc1"},
            "value": 1000,
            "globalDefault": True,
            "description": "high",
            "preemptionPolicy": "PreemptLowerPriority",
        },
        id="priorityclass",
    ),
    pytest.param(
        ["create", "priorityclass", "pc0", "--value=0"],
        "/apis/scheduling.k8s.io/v1/priorityclasses",
        {"value": 0, "globalDefault": None},
        id="priorityclass-zero-value-kept-false-default-dropped",
    ),
    pytest.param(
        ["create", "poddisruptionbudget", "pdb1", "--selector=app=web", "--min-available=2"],
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        {"spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}},
        id="pdb-int",
    ),
    pytest.param(
        ["create", "poddisruptionbudget", "pdb2", "--selector=app=web", "--max-unavailable=50%"],
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
        {"spec": {"selector": {"matchLabels": {"app": "web"}}, "maxUnavailable": "50%"}},
        id="pdb-percent",
    ),
    pytest.param(
        ["create", "ingress", "ing1", "--rule=foo.com/bar*=svc1:8080,tls=mysecret", "--class=nginx"],
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses",
        {
            "spec": {
                "tls": [{"hosts": ["foo.com"], "secretName": "mysecret"}],
                "rules": [
                    {
                        "host": "foo.com",
                        "http": {
                            "paths": [
                                {
                                    "path": "/bar",
                                    "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
                                    "pathType": "Prefix",
                                }
                            ]
                        },
                    }
                ],
                "ingressClassName": "nginx",
            }
        },
        id="ingress",
    ),
    pytest.param(
        ["create", "token", "sa1", "--duration=1h", "--audience=api"],
        "/api/v1/namespaces/default/serviceaccounts/sa1/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {},
            "spec": {"audiences": ["api"], "expirationSeconds": 3600},
        },
        id="token",
    ),
    pytest.param(
        ["auth", "can-i", "get", "pods"],
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}},
        },
        id="can-i-resource",
    ),
    pytest.param(
        ["auth", "can-i", "list", "deployments.apps", "-n", "kube-system", "--subresource=scale"],
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
            "spec.resourceAttributes": {
                "namespace": "kube-system",
                "verb": "list",
                "group": "apps",
                "resource": "deployments",
                "subresource": "scale",
            }
        },
        id="can-i-subresource",
    ),
    pytest.param(
        ["auth", "can-i", "get", "/healthz"],
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {"spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}},
        id="can-i-non-resource",
    ),
]


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str, bytes]]]:
    """Every KUBECTL_CASES command run once against the recording server: test id → (path, type, body)."""
    assert KUBECTL.exists(), f"{KUBECTL} is not installed (it is part of the machine image)"
    tmp = tmp_path_factory.mktemp("kubectl")
    bodies: dict[str, tuple[str, str, bytes]] = {}
    with capture_server() as server:
        for case in KUBECTL_CASES:
            args = case.values[0]
            assert isinstance(args, list)
            run_kubectl(server, tmp, *args)
            posts = server.take()
            assert len(posts) == 1, f"{case.id}: expected one POST, got {posts}"
            assert case.id is not None
            bodies[str(case.id)] = (posts[0].path, posts[0].content_type, posts[0].body)
    yield bodies


def lookup(obj: dict[str, Any], dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@pytest.mark.parametrize(("args", "path", "expected"), KUBECTL_CASES)
def test_real_kubectl_body(
    request: pytest.FixtureRequest,
    captured: dict[str, tuple[str, str, bytes]],
    args: list[str],
    path: str,
    expected: dict[str, Any],
) -> None:
    case_id = request.node.callspec.id
    got_path, content_type, body = captured[case_id]
    assert got_path == path
    assert content_type == "application/vnd.kubernetes.protobuf"
    decoded = decode_k8s_protobuf(body)
    if "apiVersion" in expected:  # the whole object
        assert decoded == expected
    else:  # dotted paths into it; None means absent
        for dotted, value in expected.items():
            assert lookup(decoded, dotted) == value, dotted


def test_kubectl_runs_against_plain_http(tmp_path: Path) -> None:
    """The harness itself: discovery is enough for kubectl, and nothing but the POST is recorded."""
    assert KUBECTL.exists(), f"{KUBECTL} is not installed (it is part of the machine image)"
    with capture_server() as server:
        proc = run_kubectl(server, tmp_path, "create", "namespace", "n2", "-o", "name")
        assert proc.stdout.strip() == "namespace/captured"
        assert [p.path for p in server.take()] == ["/api/v1/namespaces"]


def test_kubectl_drain_sends_eviction_as_json(tmp_path: Path) -> None:
    """kubectl 1.32's drain POSTs its Eviction as JSON, so only client-go callers send it as protobuf."""
    assert KUBECTL.exists(), f"{KUBECTL} is not installed (it is part of the machine image)"
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-rs", "controller": True}
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": "p1", "namespace": "default", "uid": "u-p1", "ownerReferences": [owner]},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running"},
    }
    with capture_server() as server:
        server.routes["/api/v1/nodes/n1"] = {"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1"}}
        server.routes["/api/v1/pods"] = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [pod]}
        run_kubectl(server, tmp_path, "drain", "n1", "--timeout=30s", "--grace-period=5")
        [post] = server.take()
    assert post.path == "/api/v1/namespaces/default/pods/p1/eviction"
    assert post.content_type == "application/json"


# --- hand-built bodies -------------------------------------------------------------------

LEASE = envelope(
    "coordination.k8s.io/v1",
    "Lease",
    meta("kube-scheduler", "kube-system")
    + ln(
        2,
        ln(1, "node-a_1234"),
        num(2, 15),
        ln(3, micro(1_700_000_000, 123_456_789)),
        ln(4, micro(1_700_000_005, 5_000)),
        num(5, 0),
    ),
)

EVICTION = envelope(
    "policy/v1",
    "Eviction",
    meta("p1", "default") + ln(2, num(1, 0), ln(2, ln(1, "uid-1")), ln(5, "All")),
)

CONTAINER = (
    ln(1, "app")
    + ln(2, "img")
    + ln(6, ln(1, ""), num(2, 0), num(3, 8080), ln(4, "TCP"), ln(5, ""))
    + ln(7, ln(1, "FROM_CM"), ln(2, ""), ln(3, ln(3, ln(1, ln(1, "cm")), ln(2, "k"), num(3, 1))))
    + ln(8, entry(1, "cpu", ln(1, "500m")), entry(2, "memory", b""))
    + ln(9, ln(1, "data"), num(2, 0), ln(3, "/data"), ln(4, ""), ln(6, ""))
    + ln(10, ln(1, ln(2, ln(1, "/healthz"), ln(2, int_or_string("http")), ln(3, ""), ln(4, "HTTP"))), num(2, 3))
    + ln(11, ln(1, ln(3, ln(1, int_or_string(0)), ln(2, ""))), num(4, 5))
    + ln(15, num(4, 0), num(7, 0))
    + num(16, 0)
    + num(17, 0)
    + num(18, 0)
)

POD = envelope(
    "v1",
    "Pod",
    meta("p1", "default")
    + ln(
        2,
        ln(1, ln(1, "data"), ln(2, ln(2, ln(1, "")))),
        ln(1, ln(1, "cfg"), ln(2, ln(19, ln(1, ln(1, "settings")), num(3, 0o644)))),
        ln(2, CONTAINER),
        ln(14, ln(4, varint(1000) + varint(2000)), num(5, 3000)),
        ln(22, ln(1, "k"), ln(2, "Exists"), ln(3, ""), ln(4, "NoExecute"), num(5, 0)),
    ),
)

POD_EXPECTED = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p1", "namespace": "default"},
    "spec": {
        "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}},
        ],
        "containers": [
            {
                "name": "app",
                "image": "img",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": True}}}
                ],
                "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "0"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                    "initialDelaySeconds": 3,
                },
                "readinessProbe": {"tcpSocket": {"port": 0}, "periodSeconds": 5},
                "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": False},
            }
        ],
        "securityContext": {"supplementalGroups": [1000, 2000], "fsGroup": 3000},
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}],
    },
}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            LEASE,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
                "spec": {
                    "holderIdentity": "node-a_1234",
                    "leaseDurationSeconds": 15,
                    "acquireTime": "2023-11-14T22:13:20.123456Z",
                    "renewTime": "2023-11-14T22:13:25.000005Z",
                    "leaseTransitions": 0,
                },
            },
            id="lease-microtime",
        ),
        pytest.param(
            EVICTION,
            {
                "apiVersion": "policy/v1",
                "kind": "Eviction",
                "metadata": {"name": "p1", "namespace": "default"},
                "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "uid-1"}, "dryRun": ["All"]},
            },
            id="eviction",
        ),
        pytest.param(POD, POD_EXPECTED, id="pod-inline-probes-volumes-packed"),
        pytest.param(
            envelope("v1", "Secret", meta("bin") + entry(2, "blob", b"\x00\xff") + entry(2, "none", b"")),
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bin"}, "data": {"blob": "AP8=", "none": ""}},
            id="secret-binary",
        ),
        pytest.param(
            envelope("v1", "ConfigMap", meta("cm") + ln(2, ln(1, "only-key")) + num(4, 0)),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cm"},
                "data": {"only-key": ""},
                "immutable": False,
            },
            id="map-entry-without-value-and-pointer-false",
        ),
        pytest.param(
            envelope(
                "v1",
                "ConfigMap",
                ln(1, ln(1, "cm"), ln(8, num(1, 1_700_000_000), num(2, 999_999_999)), ln(9, num(1, -62135596800))),
            ),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cm", "creationTimestamp": "2023-11-14T22:13:20Z"},
            },
            id="time-seconds-precision-and-go-zero-time-dropped",
        ),
        pytest.param(
            envelope(
                "v1",
                "ConfigMap",
                ln(
                    1,
                    ln(1, "cm"),
                    ln(
                        8,
                        num(
                            1, int((datetime(99, 1, 2, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
                        ),
                    ),
                ),
            ),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cm", "creationTimestamp": "0099-01-02T00:00:00Z"},
            },
            id="time-four-digit-year",
        ),
        pytest.param(
            envelope(
                "v1",
                "ConfigMap",
                meta("cm")
                + num(99, 7)
                + varint(98 << 3 | 5)
                + b"\x01\x02\x03\x04"
                + varint(97 << 3 | 1)
                + b"\x00" * 8
                + ln(96, b"\xff\xfe")
                + ln(1, ln(17, ln(1, "kubectl"))),
            ),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}},
            id="unknown-fields-and-managedfields-skipped",
        ),
        pytest.param(
            envelope("v1", "ConfigMap", ln(1, ln(1, "first"), ln(2, "gen-"), ln(1, "second"), ln(2, ""))),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second"}},
            id="last-value-wins-and-later-zero-unsets",
        ),
        pytest.param(
            envelope("apps/v1", "Deployment", meta("d") + ln(2, num(1, 0), num(5, 0), num(7, 0)) + ln(3, num(1, 4))),
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 0}},
            id="pointer-zero-kept-omitempty-zero-dropped-status-skipped",
        ),
        pytest.param(
            envelope("v1", "Pod", meta("p") + ln(2, ln(2, ln(6, num(3, -1))))),
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"ports": [{"containerPort": -1}]}]},
            },
            id="negative-int32",
        ),
        pytest.param(
            envelope("v1", "ResourceQuota", meta("q") + ln(2, ln(1, ln(1, "pods")))),
            {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"}, "spec": {"hard": {"pods": "0"}}},
            id="quantity-map-entry-without-value",
        ),
        pytest.param(
            envelope(
                "authorization.k8s.io/v1",
                "SubjectAccessReview",
                ln(2, ln(3, "alice"), ln(5, ln(1, "scopes"), ln(2, ln(1, "a"), ln(1, "b")))),
            ),
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {"user": "alice", "extra": {"scopes": ["a", "b"]}},
            },
            id="extra-value-list",
        ),
        pytest.param(
            envelope("authentication.k8s.io/v1", "TokenRequest", ln(2, ln(3, ln(1, "Pod"), ln(3, "p"), ln(4, "u-1")))),
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"boundObjectRef": {"kind": "Pod", "name": "p", "uid": "u-1"}},
            },
            id="bound-object-ref-uid-json-name",
        ),
        pytest.param(
            envelope("v1", "ConfigMap", ln(1, ln(1, "cm")) + ln(1, entry(11, "a", "b"))),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"a": "b"}}},
            id="message-field-twice-merges",
        ),
        pytest.param(
            envelope("v1", "Namespace", b""),
            {"apiVersion": "v1", "kind": "Namespace"},
            id="empty-raw",
        ),
    ],
)
def test_hand_built_body(body: bytes, expected: dict[str, Any]) -> None:
    assert decode_k8s_protobuf(body) == expected


# --- malformed input ---------------------------------------------------------------------

BAD_REQUESTS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"k8s", id="short-magic"),
    pytest.param(b'{"kind":"Pod"}', id="json-body"),
    pytest.param(MAGIC + b"\x0a", id="truncated-length"),
    pytest.param(MAGIC + b"\x0a\x05ab", id="length-past-end"),
    pytest.param(MAGIC + b"\x0b\x0c", id="group-wire-type"),
    pytest.param(MAGIC + b"\x0f", id="wire-type-7"),
    pytest.param(MAGIC + b"\x00\x00", id="field-number-zero"),
    pytest.param(MAGIC + b"\x08" + b"\xff" * 10 + b"\x01", id="varint-over-10-bytes"),
    pytest.param(MAGIC + b"\x08\x80", id="truncated-varint"),
    pytest.param(MAGIC + b"\x79\x01\x02\x03", id="truncated-fixed64"),
    pytest.param(MAGIC + num(1, 5), id="typemeta-wrong-wire-type"),
    pytest.param(MAGIC + ln(1, ln(1, "v1")) + ln(2, meta("x")), id="kind-missing"),
    pytest.param(MAGIC + ln(1, ln(1, "v1"), ln(2, b"\xffPod")), id="kind-not-utf8"),
    pytest.param(envelope("v1", "ConfigMap", num(1, 5)), id="metadata-as-varint"),
    pytest.param(envelope("v1", "ConfigMap", ln(1, ln(1, b"\xc3\x28"))), id="name-not-utf8"),
    pytest.param(envelope("v1", "ConfigMap", ln(1, num(1, 3))), id="string-as-varint"),
    pytest.param(envelope("v1", "Pod", ln(2, ln(2, ln(6, ln(3, "80"))))), id="int-as-bytes"),
    pytest.param(envelope("v1", "ConfigMap", ln(2, num(1, 1))), id="map-key-as-varint"),
    pytest.param(envelope("v1", "ConfigMap", ln(2, ln(1, "k"), num(2, 1))), id="map-value-as-varint"),
    pytest.param(envelope("v1", "ConfigMap", ln(2, ln(1, "k"), ln(2, b"\xff"))), id="map-value-not-utf8"),
    pytest.param(
        envelope("coordination.k8s.io/v1", "Lease", ln(2, ln(3, micro(1, 1_000_000_000)))), id="nanos-out-of-range"
    ),
    pytest.param(
        envelope("coordination.k8s.io/v1", "Lease", ln(2, ln(4, micro(10**15, 0)))), id="seconds-out-of-range"
    ),
    pytest.param(envelope("v1", "ConfigMap", ln(1, ln(8, num(1, -(10**12))))), id="seconds-before-year-1"),
    pytest.param(envelope("policy/v1", "PodDisruptionBudget", ln(2, ln(1, num(1, 2)))), id="int-or-string-type-2"),
    pytest.param(envelope("v1", "Namespace", b"\x0a\x10\x0a"), id="raw-truncated-inside"),
]


@pytest.mark.parametrize("body", BAD_REQUESTS)
def test_malformed_body_is_400(body: bytes) -> None:
    error = decode_error(body)
    assert (error.code, error.reason) == (400, "BadRequest")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(envelope("v1", "Frobnicator", meta("x")), id="unknown-kind"),
        pytest.param(envelope("v1", "Deployment", meta("x")), id="kind-in-wrong-group"),
        pytest.param(envelope("apps/v1beta1", "Deployment", meta("x")), id="unserved-version"),
        pytest.param(envelope("example.com/v1", "Widget", meta("x")), id="custom-resource"),
        pytest.param(envelope("v1", "ConfigMap", meta("x"), encoding="gzip"), id="content-encoding"),
        pytest.param(envelope("v1", "ConfigMap", meta("x"), content_type="application/json"), id="content-type"),
    ],
)
def test_undecodable_kind_or_encoding_is_415(body: bytes) -> None:
    error = decode_error(body)
    assert (error.code, error.reason) == (415, "UnsupportedMediaType")


@pytest.mark.parametrize("body", [pytest.param(POD, id="pod"), pytest.param(LEASE, id="lease")])
def test_any_truncation_or_corruption_is_an_api_error(body: bytes) -> None:
    """Every prefix and every single-byte corruption decodes or raises ApiError; nothing else escapes."""
    variants = [body[:cut] for cut in range(len(body))]
    variants += [body[:i] + bytes([b]) + body[i + 1 :] for i in range(len(body)) for b in (0x00, 0x7F, 0xFF)]
    for variant in variants:
        try:
            decoded = decode_k8s_protobuf(variant)
        except ApiError as error:
            assert error.code in (400, 415)
        else:
            assert isinstance(decoded, dict)


# --- the schema table --------------------------------------------------------------------


def test_every_kind_has_a_message() -> None:
    for (api_version, kind), message in KINDS.items():
        assert message in MESSAGES, f"{api_version} {kind}"
        assert MESSAGES[message][1].name == "metadata"


def test_schema_has_no_cycles() -> None:
    """No message reaches itself, so decoding recursion is bounded by the table, not the input."""
    done: set[str] = set()

    def visit(message: str, stack: tuple[str, ...]) -> None:
        assert message not in stack, " → ".join((*stack, message))
        if message in done or message in SPECIAL:
            return
        for field in MESSAGES[message].values():
            if field.kind in ("message", "inline") or (field.kind == "map" and field.target in MESSAGES):
                visit(field.target, (*stack, message))
        done.add(message)

    for message in MESSAGES:
        visit(message, ())


@pytest.mark.parametrize(
    "entry_text",
    [
        pytest.param("1 spec Nowhere", id="unknown-message"),
        pytest.param("1 labels map[Nowhere]", id="unknown-map-value"),
        pytest.param("1 handler ...Time", id="inline-special"),
        pytest.param("1 spec *ObjectMeta", id="keep-zero-on-message"),
    ],
)
def test_schema_rejects_undefined_types(entry_text: str) -> None:
    with pytest.raises(ValueError):
        _parse_field(entry_text, set(MESSAGES) | SPECIAL)
