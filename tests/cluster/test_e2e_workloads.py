"""Workloads really run: Deployments behind Services, rollouts, Jobs, CronJobs, StatefulSets, volumes.

One ``skiff up`` cluster for the module (every component a real process);
requests go to ClusterIPs through the real proxy; kubectl is the real one.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

from cluster_harness import RunningCluster, cluster
from e2e_manifests import http_get, web_deployment

__all__ = ["cluster"]


def ready_replicas(c: RunningCluster, name: str) -> int:
    out = c.ok("get", "deployment", name, "-o", "jsonpath={.status.readyReplicas}")
    return int(out or 0)


def pods_of(c: RunningCluster, selector: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = json.loads(c.ok("get", "pods", "-l", selector, "-o", "json"))["items"]
    return items


def service_ip(c: RunningCluster, name: str) -> str:
    return c.ok("get", "service", name, "-o", "jsonpath={.spec.clusterIP}")


def test_create_deployment_expose_and_scale(cluster: RunningCluster) -> None:
    c = cluster
    c.ok(
        "create",
        "deployment",
        "web",
        "--image=python:3",
        "--",
        "python3",
        "-m",
        "http.server",
        "8080",
        "--bind",
        "$(POD_IP)",
    )
    c.ok("expose", "deployment", "web", "--port", "80", "--target-port", "8080")
    ip = service_ip(c, "web")
    assert ip.startswith(c.addresses.service_cidr.rsplit(".", 2)[0])
    c.wait_for("web answering through its ClusterIP", lambda: http_get(f"http://{ip}/")[0] == 200)
    c.ok("scale", "deployment", "web", "--replicas", "5")
    c.wait_for("5 ready replicas", lambda: ready_replicas(c, "web") == 5)
    ips = {p["status"]["podIP"] for p in pods_of(c, "app=web")}  # type: ignore[index]
    assert len(ips) == 5, ips
    c.ok("scale", "deployment", "web", "--replicas", "2")
    c.wait_for("2 pods left", lambda: len(pods_of(c, "app=web")) == 2)
    assert ready_replicas(c, "web") == 2
    assert http_get(f"http://{ip}/")[0] == 200


def test_rolling_update_serves_every_request_and_rolls_back(cluster: RunningCluster) -> None:
    c = cluster
    manifest = web_deployment("roll", 2, version="v1")
    spec = manifest["spec"]["template"]["spec"]
    spec["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "2"]}}}
    c.ok("apply", "-f", "-", stdin=json.dumps(manifest))
    c.ok("expose", "deployment", "roll", "--port", "80", "--target-port", "8080")
    ip = service_ip(c, "roll")
    c.wait_for("roll ready", lambda: ready_replicas(c, "roll") == 2 and http_get(f"http://{ip}/version")[0] == 200)
    answers: Counter[str] = Counter()
    stop = threading.Event()

    def hammer() -> None:
        deadline = time.monotonic() + 180  # bounded even if the rollout never finishes
        while not stop.is_set() and time.monotonic() < deadline:
            code, body = http_get(f"http://{ip}/version", timeout=10)
            answers[body.strip() if code == 200 else f"failure {code} {body}"] += 1
            time.sleep(0.02)

    loop = threading.Thread(target=hammer)
    loop.start()
    try:
        v2 = web_deployment("roll", 2, version="v2")["spec"]["template"]["spec"]["containers"][0]["command"]
        patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/command", "value": v2}]
        c.ok("patch", "deployment", "roll", "--type", "json", "-p", json.dumps(patch))
        c.ok("rollout", "status", "deployment/roll", "--timeout", "150s", timeout=170)
        time.sleep(1)
    finally:
        stop.set()
        loop.join()
    failures = {k: v for k, v in answers.items() if k.startswith("failure")}
    assert not failures, f"requests failed during the rollout: {failures} (all: {answers})"
    assert answers["v1"] > 0 and answers["v2"] > 0, answers
    history = c.ok("rollout", "history", "deployment/roll")
    assert "1" in history and "2" in history
    c.ok("rollout", "undo", "deployment/roll")
    c.ok("rollout", "status", "deployment/roll", "--timeout", "150s", timeout=170)
    c.wait_for("v1 served again", lambda: http_get(f"http://{ip}/version")[1].strip() == "v1")
    revision = c.ok(
        "get", "deployment", "roll", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
    )
    assert revision == "3"


def test_job_completes_and_its_logs_are_readable(cluster: RunningCluster) -> None:
    c = cluster
    c.ok("create", "job", "sum", "--image=python:3", "--", "python3", "-c", "print(sum(range(10)))")
    c.wait_for("job complete", lambda: c.ok("get", "job", "sum", "-o", "jsonpath={.status.succeeded}") == "1")
    conditions = json.loads(c.ok("get", "job", "sum", "-o", "jsonpath={.status.conditions}"))
    assert any(x["type"] == "Complete" and x["status"] == "True" for x in conditions)
    assert c.ok("logs", "job/sum").strip() == "45"


def test_cronjob_fires(cluster: RunningCluster) -> None:
    c = cluster
    c.ok("create", "cronjob", "tick", "--image=busybox", "--schedule=*/1 * * * *", "--", "echo", "tick")

    def fired_and_done() -> bool:
        jobs = json.loads(c.ok("get", "jobs", "-o", "json"))["items"]
        owned = [j for j in jobs if any(o["name"] == "tick" for o in j["metadata"].get("ownerReferences", []))]
        return any((j.get("status") or {}).get("succeeded") == 1 for j in owned)

    c.wait_for("a job of the cronjob to succeed", fired_and_done, timeout=150)
    assert c.ok("get", "cronjob", "tick", "-o", "jsonpath={.status.lastScheduleTime}")


def test_statefulset_scales_in_order_with_stable_dns_names(cluster: RunningCluster) -> None:
    c = cluster
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 8080}]},
    }
    pod = web_deployment("db")["spec"]["template"]
    pod["metadata"]["labels"] = {"app": "db"}
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "replicas": 3, "selector": {"matchLabels": {"app": "db"}}, "template": pod},
    }
    c.ok("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [service, sts]}))
    c.wait_for(
        "3 ready", lambda: c.ok("get", "sts", "db", "-o", "jsonpath={.status.readyReplicas}") == "3", timeout=120
    )
    pods = {p["metadata"]["name"]: p for p in pods_of(c, "app=db")}  # type: ignore[index]
    assert sorted(pods) == ["db-0", "db-1", "db-2"]

    def ready_at(name: str) -> str:
        conds = pods[name]["status"]["conditions"]  # type: ignore[index]
        return next(x["lastTransitionTime"] for x in conds if x["type"] == "Ready")

    for earlier, later in (("db-0", "db-1"), ("db-1", "db-2")):
        assert ready_at(earlier) <= pods[later]["metadata"]["creationTimestamp"]  # type: ignore[index]
    lookup = "import socket; print(socket.gethostbyname('db-0.db.default.svc.cluster.local'))"
    resolved = c.ok("exec", "db-2", "--", "python3", "-c", lookup).strip()
    assert resolved == pods["db-0"]["status"]["podIP"]  # type: ignore[index]
    c.ok("scale", "sts", "db", "--replicas", "1")
    c.wait_for("scaled down to db-0", lambda: sorted(p["metadata"]["name"] for p in pods_of(c, "app=db")) == ["db-0"])  # type: ignore[index]


def test_configmap_and_secret_volumes_and_cluster_dns(cluster: RunningCluster) -> None:
    c = cluster
    c.ok("create", "configmap", "greeting", "--from-literal=text=hello")
    c.ok("create", "secret", "generic", "password", "--from-literal=value=s3cret")
    c.ok("create", "service", "clusterip", "named", "--tcp=80:8080")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "reader"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sh", "-c", "cat /srv/skiff-e2e/cfg/text /srv/skiff-e2e/sec/value; echo; sleep 3600"],
                    "volumeMounts": [
                        {"name": "cfg", "mountPath": "/srv/skiff-e2e/cfg"},
                        {"name": "sec", "mountPath": "/srv/skiff-e2e/sec"},
                    ],
                }
            ],
            "volumes": [
                {"name": "cfg", "configMap": {"name": "greeting"}},
                {"name": "sec", "secret": {"secretName": "password"}},
            ],
        },
    }
    c.ok("apply", "-f", "-", stdin=json.dumps(pod))
    c.wait_for("volumes read", lambda: "hellos3cret" in c.kubectl("logs", "reader")[1])
    c.ok("patch", "configmap", "greeting", "-p", '{"data":{"text":"updated"}}')
    c.wait_for(
        "configmap update in the mounted file",
        lambda: c.kubectl("exec", "reader", "--", "cat", "/srv/skiff-e2e/cfg/text")[1].strip() == "updated",
        timeout=120,
    )
    ip = service_ip(c, "named")
    lookup = "import socket; print(socket.gethostbyname('named'))"
    pyreader = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "resolver"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python:3", "command": ["python3", "-c", lookup]}],
        },
    }
    c.ok("apply", "-f", "-", stdin=json.dumps(pyreader))
    c.wait_for("resolver done", lambda: c.ok("get", "pod", "resolver", "-o", "jsonpath={.status.phase}") == "Succeeded")
    assert c.ok("logs", "resolver").strip() == ip
