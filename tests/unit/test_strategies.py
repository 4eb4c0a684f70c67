"""Per-kind strategies: defaults, validation causes, create/update preparation, table rows, field values."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.registry import builtin
from skiff.registry.core.pod_spec import image_pull_policy
from skiff.registry.resource import ResourceInfo
from skiff.registry.table_format import build_row

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
CREATED = "2025-01-02T03:00:00Z"  # 4m5s before NOW


def info(resource: str) -> ResourceInfo:
    group, _, plural = resource.rpartition("/")
    row = builtin.find(group, "v1", plural)
    assert row is not None, resource
    return row


def meta(name: str = "x", namespace: str | None = "default", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "creationTimestamp": CREATED, **extra}
    if namespace:
        out["namespace"] = namespace
    return out


def at(obj: Any, dotted: str) -> Any:
    for step in dotted.split("."):
        obj = obj[int(step)] if isinstance(obj, list) else obj.get(step) if isinstance(obj, dict) else None
    return obj


def container(name: str = "web", image: str = "nginx:1.25", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **extra}


def template(labels: dict[str, str] | None = None, restart: str | None = None, **spec: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [container()], **spec}
    if restart:
        pod_spec["restartPolicy"] = restart
    return {"metadata": {"labels": labels if labels is not None else {"app": "web"}}, "spec": pod_spec}


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": meta("p"), "spec": {"containers": [container()], **spec}}


def deployment(**spec: Any) -> dict[str, Any]:
    body = {"selector": {"matchLabels": {"app": "web"}}, "template": template(), **spec}
    return {"metadata": meta("web"), "spec": body}


def job(**spec: Any) -> dict[str, Any]:
    body = {"selector": {"matchLabels": {"app": "web"}}, "template": template(restart="Never"), **spec}
    return {"metadata": meta("j"), "spec": body}


VALID: dict[str, dict[str, Any]] = {
    "pods": pod(),
    "apps/deployments": deployment(),
    "apps/replicasets": deployment(),
    "apps/statefulsets": deployment(serviceName="web"),
    "apps/daemonsets": {"metadata": meta("d"),
                        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}},
    "batch/jobs": job(),
    "batch/cronjobs": {"metadata": meta("c"), "spec": {"schedule": "*/5 * * * *",
                                                       "jobTemplate": {"spec": {
                                                           "template": template(restart="OnFailure")}}}},
    "services": {"metadata": meta("svc"), "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    "configmaps": {"metadata": meta("cm"), "data": {"a.conf": "x", "KEY_1": "y"}},
    "secrets": {"metadata": meta("s"), "stringData": {"password": "hunter2"}},
    "namespaces": {"metadata": meta("team-a", namespace=None)},
    "nodes": {"metadata": meta("node-1", namespace=None), "status": {"capacity": {"cpu": "2"}}},
    "serviceaccounts": {"metadata": meta("sa")},
    "replicationcontrollers": {"metadata": meta("rc"), "spec": {"template": template()}},
    "persistentvolumeclaims": {"metadata": meta("pvc"), "spec": {"accessModes": ["ReadWriteOnce"]}},
    "coordination.k8s.io/leases": {"metadata": meta("l"), "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}},
    "rbac.authorization.k8s.io/rolebindings": {
        "metadata": meta("rb"),
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "alice"},
                     {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}],
    },
    "rbac.authorization.k8s.io/roles": {
        "metadata": meta("r"),
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    },
    "scheduling.k8s.io/priorityclasses": {"metadata": meta("high", namespace=None), "value": 1000},
    "storage.k8s.io/storageclasses": {"metadata": meta("fast", namespace=None), "provisioner": "example.com/p"},
    "policy/poddisruptionbudgets": {"metadata": meta("pdb"), "spec": {"minAvailable": 1,
                                                                       "selector": {"matchLabels": {"app": "web"}}}},
    "discovery.k8s.io/endpointslices": {"metadata": meta("es"), "addressType": "IPv4", "endpoints": []},
    "apiextensions.k8s.io/customresourcedefinitions": {
        "metadata": meta("widgets.example.com", namespace=None),
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]},
    },
}  # fmt: skip


@pytest.mark.parametrize("resource", sorted(VALID), ids=sorted(VALID))
def test_valid_objects_pass(resource: str) -> None:
    row = info(resource)
    obj = copy.deepcopy(VALID[resource])
    row.strategy.prepare_for_create(obj)
    row.strategy.default(obj)
    assert row.strategy.validate(obj) == []
    assert row.strategy.validate_update(copy.deepcopy(obj), obj) == []


@pytest.mark.parametrize(
    ("resource", "obj", "expected"),
    [
        pytest.param("pods", pod(), {
            "spec.restartPolicy": "Always", "spec.dnsPolicy": "ClusterFirst", "spec.schedulerName": "default-scheduler",
            "spec.terminationGracePeriodSeconds": 30, "spec.securityContext": {}, "spec.enableServiceLinks": True,
            "spec.containers.0.imagePullPolicy": "IfNotPresent",
            "spec.containers.0.terminationMessagePath": "/dev/termination-log",
            "spec.containers.0.terminationMessagePolicy": "File", "spec.containers.0.resources": {},
        }, id="pod"),
        pytest.param("pods", pod(containers=[container(ports=[{"containerPort": 80}],
                                                       resources={"limits": {"cpu": "1"}})]), {
            "spec.containers.0.ports.0.protocol": "TCP", "spec.containers.0.resources.requests": {"cpu": "1"},
        }, id="pod-ports-and-requests-from-limits"),
        pytest.param("pods", pod(volumes=[{"name": "v"}, {"name": "c", "configMap": {"name": "cm"}}]), {
            "spec.volumes.0.emptyDir": {}, "spec.volumes.1.configMap.defaultMode": 420,
        }, id="pod-volumes"),
        pytest.param("services", {"metadata": meta("s"), "spec": {"ports": [{"port": 80}]}}, {
            "spec.type": "ClusterIP", "spec.sessionAffinity": "None", "spec.ports.0.protocol": "TCP",
            "spec.ports.0.targetPort": 80, "spec.internalTrafficPolicy": "Cluster",
            "spec.ipFamilyPolicy": "SingleStack", "spec.ipFamilies": ["IPv4"],
        }, id="service"),
        pytest.param("services", {"metadata": meta("s"), "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}, {
            "spec.externalTrafficPolicy": "Cluster", "spec.allocateLoadBalancerNodePorts": True,
        }, id="service-lb"),
        pytest.param("services", {"metadata": meta("s"), "spec": {"type": "ExternalName", "externalName": "a.b"}}, {
            "spec.ipFamilies": None, "spec.internalTrafficPolicy": None,
        }, id="service-externalname"),
        pytest.param("apps/deployments", deployment(), {
            "spec.replicas": 1, "spec.strategy": {"type": "RollingUpdate",
                                                 "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "spec.revisionHistoryLimit": 10, "spec.progressDeadlineSeconds": 600,
            "spec.template.spec.restartPolicy": "Always", "spec.template.spec.enableServiceLinks": None,
        }, id="deployment"),
        pytest.param("apps/deployments", deployment(strategy={"type": "Recreate"}), {
            "spec.strategy": {"type": "Recreate"},
        }, id="deployment-recreate"),
        pytest.param("apps/statefulsets", deployment(volumeClaimTemplates=[{"metadata": {"name": "d"}, "spec": {}}]), {
            "spec.podManagementPolicy": "OrderedReady", "spec.replicas": 1, "spec.revisionHistoryLimit": 10,
            "spec.updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "spec.persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "spec.volumeClaimTemplates.0.spec.volumeMode": "Filesystem",
        }, id="statefulset"),
        pytest.param("apps/daemonsets", deployment(), {
            "spec.updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "spec.revisionHistoryLimit": 10,
        }, id="daemonset"),
        pytest.param("apps/replicasets", deployment(), {"spec.replicas": 1}, id="replicaset"),
        pytest.param("batch/jobs", job(), {
            "spec.completions": 1, "spec.parallelism": 1, "spec.backoffLimit": 6, "spec.completionMode": "NonIndexed",
            "spec.suspend": False, "spec.podReplacementPolicy": "TerminatingOrFailed",
        }, id="job"),
        pytest.param("batch/jobs", job(parallelism=3), {"spec.completions": None, "spec.parallelism": 3},
                     id="job-parallel"),
        pytest.param("batch/cronjobs", VALID["batch/cronjobs"], {
            "spec.concurrencyPolicy": "Allow", "spec.suspend": False, "spec.successfulJobsHistoryLimit": 3,
            "spec.failedJobsHistoryLimit": 1, "spec.jobTemplate.spec.template.spec.dnsPolicy": "ClusterFirst",
            "spec.jobTemplate.spec.backoffLimit": None,
        }, id="cronjob"),
        pytest.param("namespaces", VALID["namespaces"], {
            "metadata.labels": {"kubernetes.io/metadata.name": "team-a"},
        }, id="namespace"),
        pytest.param("secrets", VALID["secrets"], {"type": "Opaque", "data": {"password": "aHVudGVyMg=="},
                                                   "stringData": None}, id="secret"),
        pytest.param("nodes", VALID["nodes"], {"status.allocatable": {"cpu": "2"}}, id="node"),
        pytest.param("persistentvolumes", {"metadata": meta("pv", namespace=None), "spec": {}}, {
            "spec.persistentVolumeReclaimPolicy": "Retain", "spec.volumeMode": "Filesystem",
        }, id="pv"),
        pytest.param("persistentvolumeclaims", VALID["persistentvolumeclaims"], {"spec.volumeMode": "Filesystem"},
                     id="pvc"),
        pytest.param("replicationcontrollers", VALID["replicationcontrollers"], {
            "spec.replicas": 1, "spec.selector": {"app": "web"}, "metadata.labels": {"app": "web"},
        }, id="rc"),
        pytest.param("scheduling.k8s.io/priorityclasses", VALID["scheduling.k8s.io/priorityclasses"], {
            "preemptionPolicy": "PreemptLowerPriority",
        }, id="priorityclass"),
        pytest.param("storage.k8s.io/storageclasses", VALID["storage.k8s.io/storageclasses"], {
            "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
        }, id="storageclass"),
        pytest.param("rbac.authorization.k8s.io/rolebindings", VALID["rbac.authorization.k8s.io/rolebindings"], {
            "roleRef.apiGroup": "rbac.authorization.k8s.io", "subjects.0.apiGroup": "rbac.authorization.k8s.io",
            "subjects.1.apiGroup": "",
        }, id="rolebinding"),
        pytest.param("apiextensions.k8s.io/customresourcedefinitions",
                     VALID["apiextensions.k8s.io/customresourcedefinitions"], {
            "spec.conversion": {"strategy": "None"}, "spec.names.singular": "widget",
            "spec.names.listKind": "WidgetList",
        }, id="crd"),
        pytest.param("admissionregistration.k8s.io/mutatingwebhookconfigurations", {
            "metadata": meta("m", namespace=None),
            "webhooks": [{"name": "a.b.c", "clientConfig": {"service": {"name": "s", "namespace": "n"}},
                          "rules": [{"operations": ["CREATE"]}]}],
        }, {
            "webhooks.0.failurePolicy": "Fail", "webhooks.0.matchPolicy": "Equivalent",
            "webhooks.0.timeoutSeconds": 10, "webhooks.0.reinvocationPolicy": "Never",
            "webhooks.0.rules.0.scope": "*", "webhooks.0.clientConfig.service.port": 443,
        }, id="mutating-webhook"),
    ],
)  # fmt: skip
def test_defaults(resource: str, obj: dict[str, Any], expected: dict[str, Any]) -> None:
    obj = copy.deepcopy(obj)
    info(resource).strategy.default(obj)
    assert {path: at(obj, path) for path in expected} == expected


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        pytest.param("nginx", "Always", id="untagged"),
        pytest.param("nginx:latest", "Always", id="latest"),
        pytest.param("nginx:1.25", "IfNotPresent", id="tagged"),
        pytest.param("registry:5000/app", "Always", id="registry-port-is-not-a-tag"),
        pytest.param("registry:5000/app:v2", "IfNotPresent", id="registry-port-and-tag"),
        pytest.param("app@sha256:abc", "IfNotPresent", id="digest"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def _bad_deployment_selector() -> dict[str, Any]:
    obj = deployment()
    obj["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    return obj


@pytest.mark.parametrize(
    ("resource", "obj", "expected"),
    [
        pytest.param("pods", pod(containers=[]), [("FieldValueRequired", "spec.containers")], id="no-containers"),
        pytest.param("pods", pod(containers=[{"name": "web"}]), [("FieldValueRequired", "spec.containers[0].image")],
                     id="no-image"),
        pytest.param("pods", pod(containers=[container(), container()]),
                     [("FieldValueDuplicate", "spec.containers[1].name")], id="duplicate-container"),
        pytest.param("pods", pod(containers=[container(name="Web_1")]),
                     [("FieldValueInvalid", "spec.containers[0].name")], id="bad-container-name"),
        pytest.param("pods", pod(restartPolicy="Sometimes"), [("FieldValueNotSupported", "spec.restartPolicy")],
                     id="bad-restart-policy"),
        pytest.param("pods", pod(containers=[container(ports=[{"containerPort": 70000}])]),
                     [("FieldValueInvalid", "spec.containers[0].ports[0].containerPort")], id="bad-container-port"),
        pytest.param("apps/deployments", {"metadata": meta("web"), "spec": {"template": template()}},
                     [("FieldValueRequired", "spec.selector")], id="deployment-no-selector"),
        pytest.param("apps/deployments", _bad_deployment_selector(),
                     [("FieldValueInvalid", "spec.template.metadata.labels")], id="deployment-selector-mismatch"),
        pytest.param("apps/deployments", deployment(replicas=-1), [("FieldValueInvalid", "spec.replicas")],
                     id="deployment-negative-replicas"),
        pytest.param("services", {"metadata": meta("1svc"), "spec": {"ports": [{"port": 80}]}},
                     [("FieldValueInvalid", "metadata.name")], id="service-name-dns1035"),
        pytest.param("services", {"metadata": meta("s"), "spec": {"ports": [{"port": 70000}]}},
                     [("FieldValueInvalid", "spec.ports[0].port"), ("FieldValueInvalid", "spec.ports[0].targetPort")],
                     id="service-bad-port"),
        pytest.param("services", {"metadata": meta("s"), "spec": {"ports": [{"port": 80}, {"port": 81}]}},
                     [("FieldValueRequired", "spec.ports[0].name"), ("FieldValueRequired", "spec.ports[1].name")],
                     id="service-multi-port-names"),
        pytest.param("configmaps", {"metadata": meta("cm"), "data": {"a/b": "x"}},
                     [("FieldValueInvalid", "data[a/b]")], id="configmap-bad-key"),
        pytest.param("secrets", {"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": ""}},
                     [("FieldValueRequired", "data[tls.key]")], id="secret-tls-keys"),
        pytest.param("batch/jobs", job(template=template(restart="Always")),
                     [("FieldValueNotSupported", "spec.template.spec.restartPolicy")], id="job-restart-always"),
        pytest.param("batch/cronjobs", {"metadata": meta("c"), "spec": {"jobTemplate": {"spec": {
            "template": template(restart="Never")}}}}, [("FieldValueRequired", "spec.schedule")],
                     id="cronjob-schedule"),
        pytest.param("namespaces", {"metadata": meta("Bad_NS", namespace=None)},
                     [("FieldValueInvalid", "metadata.name")],
                     id="namespace-name-dns-label"),
        pytest.param("rbac.authorization.k8s.io/rolebindings", {"metadata": meta("rb"), "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "Pod", "name": "r"}},
                     [("FieldValueNotSupported", "roleRef.kind")], id="rolebinding-kind"),
        pytest.param("scheduling.k8s.io/priorityclasses",
                     {"metadata": meta("p", namespace=None), "value": 2_000_000_000},
                     [("FieldValueForbidden", "value")], id="priorityclass-too-high"),
        pytest.param("apiextensions.k8s.io/customresourcedefinitions", {
            "metadata": meta("wrong", namespace=None),
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object"}}}]}},
                     [("FieldValueInvalid", "metadata.name")],
                     id="crd-name"),
    ],
)  # fmt: skip
def test_validation_causes(resource: str, obj: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    obj = copy.deepcopy(obj)
    strategy = info(resource).strategy
    strategy.default(obj)
    assert [(c.reason, c.field) for c in strategy.validate(obj)] == expected


def test_cause_messages_read_like_kubernetes() -> None:
    obj = pod(containers=[{"name": "web"}], restartPolicy="Sometimes")
    causes = info("pods").strategy.validate(obj)
    assert [c.message for c in causes] == [
        "Required value",
        'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
    ]


def _updated(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    target: Any = out
    for step in parents:
        target = target[int(step)] if isinstance(target, list) else target.setdefault(step, {})
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return out


TOLERATION = {"key": "k", "operator": "Exists"}


@pytest.mark.parametrize(
    ("resource", "old", "path", "value", "expected"),
    [
        pytest.param("pods", pod(), "spec.containers.0.image", "nginx:2", [], id="pod-image-ok"),
        pytest.param("pods", pod(), "spec.tolerations", [TOLERATION], [], id="pod-add-toleration-ok"),
        pytest.param("pods", pod(tolerations=[TOLERATION]), "spec.tolerations", [], [("FieldValueForbidden",
                     "spec.tolerations")], id="pod-remove-toleration"),
        pytest.param("pods", pod(), "spec.containers.0.name", "other", [("FieldValueForbidden", "spec")],
                     id="pod-spec-immutable"),
        pytest.param("pods", pod(activeDeadlineSeconds=10), "spec.activeDeadlineSeconds", 20,
                     [("FieldValueInvalid", "spec.activeDeadlineSeconds")], id="pod-deadline-raised"),
        pytest.param("apps/deployments", deployment(), "spec.selector", {"matchLabels": {"app": "x"}},
                     [("FieldValueInvalid", "spec.selector")], id="deployment-selector-immutable"),
        pytest.param("apps/deployments", deployment(), "spec.replicas", 5, [], id="deployment-scale-ok"),
        pytest.param("apps/statefulsets", deployment(serviceName="a"), "spec.serviceName", "b",
                     [("FieldValueForbidden", "spec")], id="statefulset-forbidden-field"),
        pytest.param("services", {"metadata": meta("s"), "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}},
                     "spec.clusterIP", "10.0.0.2", [("FieldValueInvalid", "spec.clusterIPs[0]")], id="service-ip"),
        pytest.param("configmaps", {"metadata": meta("c"), "data": {"a": "1"}, "immutable": True}, "data",
                     {"a": "2"}, [("FieldValueForbidden", "data")], id="configmap-immutable"),
        pytest.param("secrets", {"metadata": meta("s"), "type": "Opaque"}, "type", "other",
                     [("FieldValueInvalid", "type")], id="secret-type"),
        pytest.param("rbac.authorization.k8s.io/rolebindings", VALID["rbac.authorization.k8s.io/rolebindings"],
                     "roleRef.name", "other", [("FieldValueInvalid", "roleRef")], id="rolebinding-roleref"),
        pytest.param("batch/jobs", job(), "spec.template.spec.containers.0.image", "x:2",
                     [("FieldValueInvalid", "spec.template")], id="job-template-immutable"),
        pytest.param("batch/jobs", job(suspend=True), "spec.template.spec.containers.0.image", "x:2", [],
                     id="job-suspended-template-ok"),
    ],
)  # fmt: skip
def test_validate_update(
    resource: str, old: dict[str, Any], path: str, value: Any, expected: list[tuple[str, str]]
) -> None:
    strategy = info(resource).strategy
    old = copy.deepcopy(old)
    strategy.default(old)
    new = _updated(old, path, value)
    strategy.default(new)
    assert [(c.reason, c.field) for c in strategy.validate_update(new, old)] == expected


def test_spec_status_split() -> None:
    strategy = info("apps/deployments").strategy
    created = deployment()
    created["status"] = {"replicas": 9}
    strategy.prepare_for_create(created)
    assert created["status"] == {}

    old = deployment()
    old["metadata"].update(labels={"a": "1"}, generation=3)
    old["status"] = {"replicas": 2}
    new = _updated(old, "spec.replicas", 4)
    new["status"] = {"replicas": 100}
    strategy.prepare_for_update(new, old)
    assert new["status"] == {"replicas": 2} and new["spec"]["replicas"] == 4

    status_write = _updated(old, "spec.replicas", 7)
    status_write["status"] = {"replicas": 3}
    status_write["metadata"]["labels"] = {"b": "2"}
    strategy.prepare_for_status_update(status_write, old)
    assert status_write["status"] == {"replicas": 3}
    assert status_write["spec"] == old["spec"]
    assert status_write["metadata"]["labels"] == {"a": "1"} and status_write["metadata"]["generation"] == 3


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        pytest.param({}, "BestEffort", id="best-effort"),
        pytest.param({"requests": {"cpu": "100m"}}, "Burstable", id="burstable"),
        pytest.param({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed", id="guaranteed-from-limits"),
        pytest.param({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1Gi"}},
                     "Guaranteed", id="guaranteed-equal-quantities"),
        pytest.param({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable",
                     id="burstable-lower-request"),
        pytest.param({"requests": {"cpu": "0"}}, "BestEffort", id="zero-is-nothing"),
    ],
)  # fmt: skip
def test_pod_create_status(resources: dict[str, Any], qos: str) -> None:
    obj = pod(containers=[container(resources=resources)])
    obj["status"] = {"phase": "Running"}
    info("pods").strategy.prepare_for_create(obj)
    assert obj["status"] == {"phase": "Pending", "qosClass": qos}


@pytest.mark.parametrize(
    ("resource", "obj", "status"),
    [
        pytest.param("services", VALID["services"], {"loadBalancer": {}}, id="service"),
        pytest.param("namespaces", VALID["namespaces"], {"phase": "Active"}, id="namespace"),
        pytest.param("persistentvolumeclaims", VALID["persistentvolumeclaims"], {"phase": "Pending"}, id="pvc"),
        pytest.param("apps/replicasets", deployment(), {"replicas": 0}, id="replicaset"),
        pytest.param("nodes", VALID["nodes"], {"capacity": {"cpu": "2"}}, id="node-keeps-status"),
    ],
)
def test_create_status(resource: str, obj: dict[str, Any], status: dict[str, Any]) -> None:
    obj = copy.deepcopy(obj)
    info(resource).strategy.prepare_for_create(obj)
    assert obj["status"] == status


def test_namespace_finalizer_rules() -> None:
    strategy = info("namespaces").strategy
    obj = copy.deepcopy(VALID["namespaces"])
    strategy.prepare_for_create(obj)
    assert obj["spec"]["finalizers"] == ["kubernetes"]
    new = copy.deepcopy(obj)
    new["spec"]["finalizers"] = []
    new["status"] = {"phase": "Terminating"}
    strategy.prepare_for_update(new, obj)
    assert new["spec"]["finalizers"] == ["kubernetes"] and new["status"] == {"phase": "Active"}


def test_job_selector_generated_from_uid() -> None:
    obj = {"metadata": meta("j", uid="u-1"), "spec": {"template": template(labels={}, restart="Never")}}
    strategy = info("batch/jobs").strategy
    strategy.prepare_for_create(obj)
    strategy.default(obj)
    assert obj["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    assert obj["spec"]["template"]["metadata"]["labels"] == {
        "controller-uid": "u-1",
        "job-name": "j",
        "batch.kubernetes.io/controller-uid": "u-1",
        "batch.kubernetes.io/job-name": "j",
    }
    assert strategy.validate(obj) == []


def _running_pod() -> dict[str, Any]:
    obj = pod(nodeName="node-1")
    obj["status"] = {
        "phase": "Running",
        "podIPs": [{"ip": "127.0.1.5"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{
            "name": "web", "ready": True, "restartCount": 2, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-01-02T02:59:05Z"}},
        }],
    }  # fmt: skip
    return obj


def _waiting_pod() -> dict[str, Any]:
    obj = pod()
    obj["status"] = {
        "phase": "Running",
        "containerStatuses": [
            {"name": "web", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
        ],
    }
    return obj  # fmt: skip


def _init_pod() -> dict[str, Any]:
    obj = pod(initContainers=[container(name="init")])
    obj["status"] = {
        "phase": "Pending",
        "initContainerStatuses": [{"name": "init", "ready": False, "restartCount": 0, "state": {"running": {}}}],
    }
    return obj  # fmt: skip


def _terminating_pod() -> dict[str, Any]:
    obj = _running_pod()
    obj["metadata"]["deletionTimestamp"] = "2025-01-02T03:04:00Z"
    return obj


def _node() -> dict[str, Any]:
    return {
        "metadata": meta("node-1", namespace=None, labels={"node-role.kubernetes.io/control-plane": ""}),
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.1.1"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0"},
        },
    }


def _event() -> dict[str, Any]:
    return {
        "metadata": meta("web.1"),
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Started", "message": " Started container\n", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2025-01-02T03:00:00Z", "lastTimestamp": "2025-01-02T03:04:00Z", "count": 3,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("resource", "obj", "cells"),
    [
        pytest.param("pods", _running_pod(),
                     ["p", "1/1", "Running", "2 (5m ago)", "4m5s", "127.0.1.5", "node-1", "<none>", "<none>"],
                     id="pod-running"),
        pytest.param("pods", pod(), ["p", "0/1", "", "0", "4m5s", "<none>", "<none>", "<none>", "<none>"],
                     id="pod-bare"),
        pytest.param("pods", _waiting_pod(),
                     ["p", "0/1", "CrashLoopBackOff", "0", "4m5s", "<none>", "<none>", "<none>", "<none>"],
                     id="pod-crashloop"),
        pytest.param("pods", _init_pod(), ["p", "0/1", "Init:0/1", "0", "4m5s", "<none>", "<none>", "<none>", "<none>"],
                     id="pod-init"),
        pytest.param("pods", _terminating_pod(),
                     ["p", "1/1", "Terminating", "2 (5m ago)", "4m5s", "127.0.1.5", "node-1", "<none>", "<none>"],
                     id="pod-terminating"),
        pytest.param("apps/deployments", {**deployment(replicas=3), "status": {"readyReplicas": 1,
                     "updatedReplicas": 2, "availableReplicas": 1}},
                     ["web", "1/3", 2, 1, "4m5s", "web", "nginx:1.25", "app=web"], id="deployment"),
        pytest.param("services", {"metadata": meta("svc"), "spec": {"type": "ClusterIP", "clusterIPs": ["10.0.0.5"],
                     "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web"}}},
                     ["svc", "ClusterIP", "10.0.0.5", "<none>", "80/TCP", "4m5s", "app=web"], id="service"),
        pytest.param("services", {"metadata": meta("svc"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.0.0.5"],
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}, "status": {"loadBalancer": {}}},
                     ["svc", "LoadBalancer", "10.0.0.5", "<pending>", "80:30080/TCP", "4m5s", "<none>"],
                     id="service-lb"),
        pytest.param("namespaces", {"metadata": meta("ns", namespace=None), "status": {"phase": "Active"}},
                     ["ns", "Active", "4m5s"], id="namespace"),
        pytest.param("configmaps", {"metadata": meta("cm"), "data": {"a": "1"}, "binaryData": {"b": ""}},
                     ["cm", 2, "4m5s"], id="configmap"),
        pytest.param("secrets", {"metadata": meta("s"), "type": "Opaque", "data": {"a": ""}},
                     ["s", "Opaque", 1, "4m5s"],
                     id="secret"),
        pytest.param("batch/jobs", {**job(completions=1), "status": {"succeeded": 1, "startTime": CREATED,
                     "completionTime": "2025-01-02T03:00:07Z", "conditions": [{"type": "Complete", "status": "True"}]}},
                     ["j", "Complete", "1/1", "7s", "4m5s", "web", "nginx:1.25", "app=web"], id="job-complete"),
        pytest.param("batch/jobs", {**job(), "status": {"startTime": CREATED}},
                     ["j", "Running", "0/1", "4m5s", "4m5s", "web", "nginx:1.25", "app=web"], id="job-running"),
        pytest.param("batch/cronjobs", {**VALID["batch/cronjobs"], "status": {}},
                     ["c", "*/5 * * * *", "<none>", "<unset>", 0, "<none>", "4m5s", "web", "nginx:1.25", "<none>"],
                     id="cronjob"),
        pytest.param("events", _event(),
                     ["5s", "Normal", "Started", "pod/web", "", "kubelet, node-1", "Started container", "4m5s", 3,
                      "web.1"], id="event"),
        pytest.param("nodes", _node(), ["node-1", "Ready,SchedulingDisabled", "control-plane", "4m5s", "v1.32.0",
                     "127.0.1.1", "<none>", "<unknown>", "<unknown>", "<unknown>"], id="node"),
        pytest.param("storage.k8s.io/storageclasses", {"metadata": meta("fast", namespace=None, annotations={
                     "storageclass.kubernetes.io/is-default-class": "true"}), "provisioner": "p"},
                     ["fast (default)", "p", "Delete", "Immediate", False, "4m5s"], id="storageclass-default"),
        pytest.param("rbac.authorization.k8s.io/rolebindings", VALID["rbac.authorization.k8s.io/rolebindings"],
                     ["rb", "Role/r", "4m5s", "alice", "", "default/sa"], id="rolebinding"),
        pytest.param("coordination.k8s.io/leases", VALID["coordination.k8s.io/leases"], ["l", "me", "4m5s"],
                     id="lease"),
        pytest.param("serviceaccounts", {"metadata": meta("sa"), "secrets": [{"name": "t"}]}, ["sa", 1, "4m5s"],
                     id="serviceaccount"),
        pytest.param("endpoints", {"metadata": meta("e"), "subsets": [{"addresses": [{"ip": f"10.0.0.{i}"}
                     for i in range(5)], "ports": [{"port": 80}]}]},
                     ["e", "10.0.0.0:80,10.0.0.1:80,10.0.0.2:80 + 2 more...", "4m5s"], id="endpoints"),
        pytest.param("scheduling.k8s.io/priorityclasses", {**VALID["scheduling.k8s.io/priorityclasses"],
                     "preemptionPolicy": "Never"}, ["high", 1000, False, "4m5s", "Never"], id="priorityclass"),
        pytest.param("apps/statefulsets", {**deployment(replicas=2), "status": {"readyReplicas": 1}},
                     ["web", "1/2", "4m5s", "web", "nginx:1.25"], id="statefulset"),
        pytest.param("persistentvolumeclaims", {"metadata": meta("pvc"), "spec": {"volumeName": "pv1",
                     "storageClassName": "fast"}, "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                     "capacity": {"storage": "1Gi"}}},
                     ["pvc", "Bound", "pv1", "1Gi", "RWO", "fast", "<unset>", "4m5s", "<unset>"], id="pvc"),
    ],
)  # fmt: skip
def test_table_rows(resource: str, obj: dict[str, Any], cells: list[Any]) -> None:
    assert build_row(info(resource), obj, NOW) == cells


@pytest.mark.parametrize(
    ("resource", "obj", "expected"),
    [
        pytest.param("pods", _running_pod(), {"spec.nodeName": "node-1", "status.phase": "Running",
                     "status.podIP": "127.0.1.5", "spec.hostNetwork": "false", "spec.restartPolicy": ""}, id="pod"),
        pytest.param("secrets", {"type": "kubernetes.io/tls"}, {"type": "kubernetes.io/tls"}, id="secret"),
        pytest.param("nodes", _node(), {"spec.unschedulable": "true"}, id="node"),
        pytest.param("namespaces", {"status": {"phase": "Terminating"}}, {"status.phase": "Terminating"},
                     id="namespace"),
        pytest.param("events", _event(), {"involvedObject.kind": "Pod", "involvedObject.name": "web",
                     "source": "kubelet", "type": "Normal", "reason": "Started"}, id="event"),
        pytest.param("events.k8s.io/events", {"regarding": {"kind": "Pod", "name": "web"},
                     "reportingController": "kubelet"}, {"regarding.kind": "Pod", "regarding.name": "web",
                     "reportingController": "kubelet"}, id="events-v1"),
        pytest.param("apps/replicasets", {"status": {"replicas": 3}}, {"status.replicas": "3"}, id="replicaset"),
        pytest.param("batch/jobs", {"status": {"succeeded": 1}}, {"status.successful": "1"}, id="job"),
    ],
)  # fmt: skip
def test_field_values(resource: str, obj: dict[str, Any], expected: dict[str, str]) -> None:
    strategy = info(resource).strategy
    values = strategy.field_values(obj)
    assert set(values) == set(strategy.field_selectors)
    assert {k: values[k] for k in expected} == expected
