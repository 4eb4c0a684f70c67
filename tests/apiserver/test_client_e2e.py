"""The official ``kubernetes`` Python client (v37): equivalents of its own ``e2e_test`` suites.

The upstream suites (kubernetes-client/python ``kubernetes/e2e_test``:
test_apps, test_batch, test_client, test_watch, test_utils) run against a real
cluster.  These are their API-level equivalents against ``skiff apiserver``.
There is no kubelet yet, so pods stay Pending: the upstream "loop until phase
!= Pending" step is left out.  Each test uses its own object names in the
module's namespace.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from apiserver_harness import RunningApiServer, apiserver  # noqa: F401
from kubernetes import client, config, utils, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.informer import SharedInformer

NS = "py-e2e"
EVENT_DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def api_client(apiserver: RunningApiServer) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        yield api
    finally:
        api.close()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


def deployment_body(name: str, replicas: int = 3) -> dict[str, Any]:
    """The manifest test_apps.test_create_deployment uses (as a dict, as upstream does)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.15.4", "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def not_found(call: Any, *args: Any) -> None:
    with pytest.raises(ApiException) as caught:
        call(*args)
    assert caught.value.status == 404


def test_apps_deployment_create_read_patch_delete(apps: client.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment(NS, deployment_body("py-deploy"))
    assert created.metadata.generation == 1
    read = apps.read_namespaced_deployment("py-deploy", NS)
    assert read.spec.replicas == 3
    assert read.spec.strategy.type == "RollingUpdate"  # defaulted on the server
    # A dict body is a strategic merge patch: the container list merges by name.
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.16"}]}}}}
    patched = apps.patch_namespaced_deployment("py-deploy", NS, patch)
    assert [(c.name, c.image) for c in patched.spec.template.spec.containers] == [("nginx", "nginx:1.16")]
    assert patched.metadata.generation == 2
    scale = apps.read_namespaced_deployment_scale("py-deploy", NS)
    assert (scale.kind, scale.spec.replicas) == ("Scale", 3)
    scaled = apps.patch_namespaced_deployment_scale("py-deploy", NS, {"spec": {"replicas": 1}})
    assert scaled.spec.replicas == 1
    assert apps.read_namespaced_deployment("py-deploy", NS).spec.replicas == 1
    # The v37 client types delete answers as plain objects: here the Status upstream's store answers with.
    status = apps.delete_namespaced_deployment("py-deploy", NS, body=client.V1DeleteOptions())
    assert (status["kind"], status["status"]) == ("Status", "Success")
    assert status["details"] == {
        "name": "py-deploy",
        "group": "apps",
        "kind": "deployments",
        "uid": created.metadata.uid,
    }
    not_found(apps.read_namespaced_deployment, "py-deploy", NS)


def test_batch_job_create_read_delete(api_client: client.ApiClient) -> None:
    batch = client.BatchV1Api(api_client)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "py-job"},
        "spec": {
            "template": {
                "metadata": {"name": "pi"},
                "spec": {
                    "containers": [{"name": "pi", "image": "perl", "command": ["perl", "-Mbignum=bpi", "-e", "print"]}],
                    "restartPolicy": "Never",
                },
            }
        },
    }
    created = batch.create_namespaced_job(NS, job)
    assert created.spec.backoff_limit == 6
    # The server adds the selector and the controller-uid labels, as upstream's job strategy does.
    uid = created.metadata.uid
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert created.spec.template.metadata.labels["batch.kubernetes.io/job-name"] == "py-job"
    assert batch.read_namespaced_job("py-job", NS).metadata.uid == uid
    batch.delete_namespaced_job("py-job", NS, propagation_policy="Background")
    not_found(batch.read_namespaced_job, "py-job", NS)


def test_pod_create_read_list_delete(core: client.CoreV1Api) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "py-busybox", "labels": {"suite": "py-pod"}},
        "spec": {"containers": [{"image": "busybox", "name": "sleep", "args": ["/bin/sh", "-c", "sleep 3600"]}]},
    }
    created = core.create_namespaced_pod(NS, pod)
    # No kubelet yet: the pod stays Pending (upstream loops until it is not).
    assert created.status.phase == "Pending"
    assert created.spec.restart_policy == "Always"
    assert created.spec.containers[0].termination_message_path == "/dev/termination-log"
    everywhere = core.list_pod_for_all_namespaces(label_selector="suite=py-pod")
    assert [(p.metadata.namespace, p.metadata.name) for p in everywhere.items] == [(NS, "py-busybox")]
    deleted = core.delete_namespaced_pod("py-busybox", NS, body=client.V1DeleteOptions())
    # An unscheduled pod is deleted at once, and the pod store answers with the object (ReturnDeletedObject).
    assert (deleted.kind, deleted.metadata.name) == ("Pod", "py-busybox")
    not_found(core.read_namespaced_pod, "py-busybox", NS)


def test_service_create_read_patch_delete(core: client.CoreV1Api) -> None:
    service = {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "py-frontend", "labels": {"name": "frontend"}},
        "spec": {"ports": [{"name": "port", "port": 80, "targetPort": 80}], "selector": {"name": "frontend"}},
    }
    created = core.create_namespaced_service(NS, service)
    assert created.status  # upstream's test asserts the defaulted status: {loadBalancer: {}}
    assert created.spec.type == "ClusterIP"
    patched = core.patch_namespaced_service(
        "py-frontend", NS, {"spec": {"ports": [{"name": "new", "port": 8080, "protocol": "TCP", "targetPort": 8080}]}}
    )
    # Service ports merge by port number: the new port is added before the old one.
    assert [(p.name, p.port) for p in patched.spec.ports] == [("new", 8080), ("port", 80)]
    core.delete_namespaced_service("py-frontend", NS)
    not_found(core.read_namespaced_service, "py-frontend", NS)


def test_configmap_and_secret_crud(core: client.CoreV1Api) -> None:
    configmap = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "py-test-configmap", "labels": {"e2e-tests": "true"}},
        "data": {
            "config.json": '{"command":"/usr/bin/mysqld_safe"}',
            "frontend.cnf": "[mysqld]\nbind-address = 10.0.0.3\n",
        },
    }
    core.create_namespaced_config_map(NS, configmap)
    read = core.read_namespaced_config_map("py-test-configmap", NS)
    assert read.data["config.json"] == '{"command":"/usr/bin/mysqld_safe"}'
    patched = core.patch_namespaced_config_map("py-test-configmap", NS, {"data": {"config.json": "{}"}})
    assert patched.data["config.json"] == "{}"
    core.delete_namespaced_config_map("py-test-configmap", NS)
    assert core.list_namespaced_config_map(NS, label_selector="e2e-tests=true").items == []

    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="py-secret"), string_data={"password": "s3cret"})
    created = core.create_namespaced_secret(NS, secret)
    assert created.data == {"password": "czNjcmV0"}  # stringData folded into data
    assert created.string_data is None
    assert created.type == "Opaque"
    core.delete_namespaced_secret("py-secret", NS)
    not_found(core.read_namespaced_secret, "py-secret", NS)


def test_namespace_create_read_delete(core: client.CoreV1Api) -> None:
    created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py-ns-crud")))
    assert created.status.phase == "Active"
    assert core.read_namespace("py-ns-crud").spec.finalizers == ["kubernetes"]
    assert "py-ns-crud" in [ns.metadata.name for ns in core.list_namespace().items]
    deleted = core.delete_namespace("py-ns-crud")
    # Deletion waits for the "kubernetes" finalizer (the namespace controller); the phase says so.
    assert (deleted["kind"], deleted["status"]["phase"]) == ("Namespace", "Terminating")
    read = core.read_namespace("py-ns-crud")
    assert read.metadata.deletion_timestamp is not None


def test_list_nodes_is_empty(core: client.CoreV1Api) -> None:
    assert core.list_node().items == []


def test_watch_with_resource_version_and_timeout(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-watched", labels={"suite": "py-watch"}))
    )
    core.patch_namespaced_config_map("py-watched", NS, {"data": {"a": "1"}})
    core.delete_namespaced_config_map("py-watched", NS)
    # From the creation's resourceVersion: the events after it, then the stream ends at timeoutSeconds.
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        NS,
        label_selector="suite=py-watch",
        resource_version=created.metadata.resource_version,
        timeout_seconds=1,
    )
    events = [(event["type"], event["object"].metadata.name, event["object"].data) for event in stream]
    assert events == [("MODIFIED", "py-watched", {"a": "1"}), ("DELETED", "py-watched", {"a": "1"})]


def test_informer_lists_then_watches(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-inf-1", labels={"suite": "py-inf"}))
    )
    seen: list[tuple[str, str]] = []
    got_delete = threading.Event()

    def on(kind: str) -> Any:
        def handler(obj: Any) -> None:
            seen.append((kind, obj.metadata.name))
            if kind == "DELETED":
                got_delete.set()

        return handler

    informer = SharedInformer(core.list_namespaced_config_map, namespace=NS, label_selector="suite=py-inf")
    for kind in ("ADDED", "MODIFIED", "DELETED"):
        informer.add_event_handler(kind, on(kind))
    informer.start()
    try:
        # The informer lists first: wait until the listed object is in its cache before changing anything.
        deadline = threading.Event()
        for _ in range(int(EVENT_DEADLINE_S * 10)):
            if informer.cache.list_keys():
                break
            deadline.wait(0.1)
        assert informer.cache.list_keys() == [f"{NS}/py-inf-1"]
        core.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-inf-2", labels={"suite": "py-inf"}))
        )
        core.patch_namespaced_config_map("py-inf-2", NS, {"data": {"x": "y"}})
        core.delete_namespaced_config_map("py-inf-1", NS)
        assert got_delete.wait(EVENT_DEADLINE_S), seen
    finally:
        informer.stop()
    assert seen == [("ADDED", "py-inf-1"), ("ADDED", "py-inf-2"), ("MODIFIED", "py-inf-2"), ("DELETED", "py-inf-1")]
    assert informer.cache.list_keys() == [f"{NS}/py-inf-2"]


MULTI_DOC = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: py-triple-nginx
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.15.4
---
apiVersion: v1
kind: Service
metadata:
  name: py-mock-2
spec:
  ports:
  - port: 99
    protocol: TCP
    targetPort: 9949
  selector:
    app: nginx
"""


def test_create_from_yaml_multi_doc_and_already_exists_bytes(
    api_client: client.ApiClient, tmp_path: Any, core: client.CoreV1Api
) -> None:
    manifest = tmp_path / "multi.yaml"
    manifest.write_text(MULTI_DOC)
    created = utils.create_from_yaml(api_client, str(manifest), namespace=NS)
    assert [[obj.kind for obj in group] for group in created] == [["Deployment"], ["Service"]]
    assert core.read_namespaced_service("py-mock-2", NS).spec.ports[0].target_port == 9949

    with pytest.raises(utils.FailToCreateError) as caught:
        utils.create_from_yaml(api_client, str(manifest), namespace=NS)
    # The error carries the raw Status bodies, byte for byte (compat doc P0.6).
    assert str(caught.value) == (
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"deployments.apps \\"py-triple-nginx\\" already exists","reason":"AlreadyExists",'
        '"details":{"name":"py-triple-nginx","group":"apps","kind":"deployments"},"code":409}\n'
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        '"message":"services \\"py-mock-2\\" already exists","reason":"AlreadyExists",'
        '"details":{"name":"py-mock-2","kind":"services"},"code":409}\n'
    )


def test_server_side_apply_creates_then_updates(api_client: client.ApiClient, apiserver: RunningApiServer) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "py-ssa", "namespace": NS},
        "data": {"k": "1"},
    }
    created = utils.create_from_dict(api_client, body, namespace=NS, apply=True)
    assert created[0].to_dict()["data"] == {"k": "1"}  # a dynamic ResourceInstance
    configmaps = DynamicClient(api_client).resources.get(api_version="v1", kind="ConfigMap")
    # Applying again with a change: the same object, updated.
    updated = configmaps.server_side_apply(body={**body, "data": {"k": "2"}}, field_manager="python-client")
    assert updated.to_dict()["data"] == {"k": "2"}
    assert updated.metadata.uid == created[0].metadata.uid
    # The raw request, to see the status codes: 201 for a create-on-apply, 200 after.
    raw = json.dumps({**body, "metadata": {"name": "py-ssa-raw", "namespace": NS}}).encode()
    path = f"/api/v1/namespaces/{NS}/configmaps/py-ssa-raw?fieldManager=raw"
    headers = {"Content-Type": "application/apply-patch+yaml"}
    assert apiserver.request("PATCH", path, raw, headers)[0] == 201
    assert apiserver.request("PATCH", path, raw, headers)[0] == 200
