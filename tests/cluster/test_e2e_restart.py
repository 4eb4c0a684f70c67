"""Stopping ``skiff up`` stops everything; starting it again on the same data dir resumes the cluster."""

from __future__ import annotations

import json
from pathlib import Path

from cluster_harness import running_cluster
from e2e_manifests import http_get, web_deployment


def test_restart_keeps_objects_and_brings_pods_back(tmp_path: Path) -> None:
    base = tmp_path / "c"
    with running_cluster(base) as c:
        c.ok("apply", "-f", "-", stdin=json.dumps(web_deployment("keep", 2)))
        c.ok("expose", "deployment", "keep", "--port", "80", "--target-port", "8080")
        c.wait_for("keep ready", lambda: c.ok("get", "deploy", "keep", "-o", "jsonpath={.status.readyReplicas}") == "2")
        before = json.loads(c.ok("get", "pods", "-l", "app=keep", "-o", "json"))["items"]
        ip = c.ok("get", "svc", "keep", "-o", "jsonpath={.spec.clusterIP}")
    # running_cluster asserted a clean exit and that no process (pods included) outlived it
    with running_cluster(base) as c:
        after = json.loads(c.ok("get", "pods", "-l", "app=keep", "-o", "json"))["items"]
        assert {p["metadata"]["uid"] for p in after} == {p["metadata"]["uid"] for p in before}
        assert c.ok("get", "svc", "keep", "-o", "jsonpath={.spec.clusterIP}") == ip
        c.wait_for("pods running again", lambda: http_get(f"http://{ip}/version")[0] == 200, timeout=120)
        c.wait_for("keep ready", lambda: c.ok("get", "deploy", "keep", "-o", "jsonpath={.status.readyReplicas}") == "2")
