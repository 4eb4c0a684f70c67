"""PodSecurity and ResourceQuota admission against a real ``skiff apiserver``, driven by real kubectl 1.32.

Messages and warnings are asserted verbatim as kube-apiserver prints them.
No quota controller runs here: each test writes the quota's first status
(``hard`` and a zero ``used``) itself, as the controller would, and from
then on admission alone keeps ``status.used``.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from apiserver_harness import Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401

LABEL = "pod-security.kubernetes.io/"
RESTRICTED_SC = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
POD_RESTRICTED = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}


def pod(name: str, namespace: str, container_sc: dict[str, Any], pod_sc: dict[str, Any] | None = None) -> str:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox", "securityContext": container_sc}]}
    if pod_sc:
        spec["securityContext"] = pod_sc
    return json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )


def warnings(stderr: str) -> list[str]:
    return [line.removeprefix("Warning: ") for line in stderr.splitlines() if line.startswith("Warning: ")]


RESTRICTED_DETAIL = (
    'privileged (container "c" must not set securityContext.privileged=true), '
    'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" '
    'or "Localhost")'
)


def test_enforce_restricted_refuses_a_privileged_pod_and_admits_a_compliant_one(kubectl: Kubectl) -> None:
    kubectl.ok("create", "namespace", "ps-enforce")
    kubectl.ok("label", "namespace", "ps-enforce", f"{LABEL}enforce=restricted")
    code, _, err = kubectl.run("create", "-f", "-", stdin=pod("priv", "ps-enforce", {"privileged": True}))
    assert code == 1
    assert err.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "priv" is forbidden: '
        f'violates PodSecurity "restricted:latest": {RESTRICTED_DETAIL}'
    )
    code, out, err = kubectl.run("create", "-f", "-", stdin=pod("ok", "ps-enforce", RESTRICTED_SC, POD_RESTRICTED))
    assert code == 0, err
    assert out.strip() == "pod/ok created" and warnings(err) == []


def test_warn_prints_a_warning_and_a_stricter_enforce_names_existing_pods(kubectl: Kubectl) -> None:
    kubectl.ok("create", "namespace", "ps-warn")
    kubectl.ok("label", "namespace", "ps-warn", f"{LABEL}warn=baseline")
    code, out, err = kubectl.run("create", "-f", "-", stdin=pod("priv", "ps-warn", {"privileged": True}))
    assert code == 0, err
    assert out.strip() == "pod/priv created"
    assert warnings(err) == [
        'would violate PodSecurity "baseline:latest": privileged (container "c" must not set '
        "securityContext.privileged=true)"
    ]
    code, _, err = kubectl.run("label", "namespace", "ps-warn", f"{LABEL}enforce=baseline")
    assert code == 0, err
    assert warnings(err) == [
        'existing pods in namespace "ps-warn" violate the new PodSecurity enforce level "baseline:latest"',
        "priv: privileged",
    ]
    code, _, err = kubectl.run("label", "namespace", "ps-warn", f"{LABEL}audit=strict")
    assert code == 1
    assert err.strip() == (
        'The Namespace "ps-warn" is invalid: metadata.labels[pod-security.kubernetes.io/audit]: '
        'Invalid value: "strict": must be one of privileged, baseline, restricted'
    )


def test_a_deployment_with_a_violating_template_is_created_with_a_warning(kubectl: Kubectl) -> None:
    kubectl.ok("create", "namespace", "ps-deploy")
    kubectl.ok("label", "namespace", "ps-deploy", f"{LABEL}enforce=restricted", f"{LABEL}warn=restricted")
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ps-deploy"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
            },
        },
    }
    code, out, err = kubectl.run("create", "-f", "-", stdin=json.dumps(deployment))
    assert code == 0, err
    assert out.strip() == "deployment.apps/web created"
    assert warnings(err) == [f'would violate PodSecurity "restricted:latest": {RESTRICTED_DETAIL}']


def quota(kubectl: Kubectl, namespace: str, name: str, hard: dict[str, str]) -> None:
    """A ResourceQuota and the first status the quota controller would write."""
    kubectl.ok("create", "namespace", namespace)
    hard_flag = ",".join(f"{k}={v}" for k, v in hard.items())
    kubectl.ok("create", "quota", name, f"--hard={hard_flag}", "-n", namespace)
    stored = json.loads(kubectl.ok("get", "quota", name, "-n", namespace, "-o", "json"))
    stored["status"] = {"hard": hard, "used": dict.fromkeys(hard, "0")}
    path = f"/api/v1/namespaces/{namespace}/resourcequotas/{name}/status"
    kubectl.ok("replace", "--raw", path, "-f", "-", stdin=json.dumps(stored))


def used(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str]:
    return json.loads(kubectl.ok("get", "quota", name, "-n", namespace, "-o", "json"))["status"]["used"]  # type: ignore[no-any-return]


def test_the_third_pod_exceeds_a_quota_of_two(kubectl: Kubectl) -> None:
    quota(kubectl, "rq-two", "pods", {"pods": "2"})
    kubectl.ok("run", "q-1", "--image=busybox", "-n", "rq-two")
    kubectl.ok("run", "q-2", "--image=busybox", "-n", "rq-two")
    code, _, err = kubectl.run("run", "q-3", "--image=busybox", "-n", "rq-two")
    assert code == 1
    assert err.strip() == (
        'Error from server (Forbidden): pods "q-3" is forbidden: '
        "exceeded quota: pods, requested: pods=1, used: pods=2, limited: pods=2"
    )
    assert used(kubectl, "rq-two", "pods") == {"pods": "2"}


def test_concurrent_creates_stop_exactly_at_the_quota(kubectl: Kubectl, apiserver: RunningApiServer) -> None:
    quota(kubectl, "rq-race", "pods", {"pods": "5"})

    def create(i: int) -> int:
        body = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"r-{i}"},
                           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}).encode()  # fmt: skip
        status, _, _ = apiserver.request(
            "POST", "/api/v1/namespaces/rq-race/pods", body, {"Content-Type": "application/json"}
        )
        return status

    with ThreadPoolExecutor(max_workers=10) as pool:
        codes = sorted(pool.map(create, range(10)))
    assert codes == [201] * 5 + [403] * 5
    assert len(kubectl.ok("get", "pods", "-n", "rq-race", "-o", "name").split()) == 5
    assert used(kubectl, "rq-race", "pods") == {"pods": "5"}


def test_a_cpu_quota_requires_cpu_requests(kubectl: Kubectl) -> None:
    quota(kubectl, "rq-cpu", "compute", {"requests.cpu": "1"})
    code, _, err = kubectl.run("run", "nocpu", "--image=busybox", "-n", "rq-cpu")
    assert code == 1
    assert err.strip() == (
        'Error from server (Forbidden): pods "nocpu" is forbidden: '
        "failed quota: compute: must specify requests.cpu for: nocpu"
    )
    overrides = {"spec": {"containers": [{"name": "withcpu", "image": "busybox",
                                          "resources": {"requests": {"cpu": "250m"}}}]}}  # fmt: skip
    kubectl.ok("run", "withcpu", "--image=busybox", "-n", "rq-cpu", "--overrides", json.dumps(overrides))
    assert used(kubectl, "rq-cpu", "compute") == {"requests.cpu": "250m"}
