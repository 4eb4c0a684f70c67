"""Stop ``skiff apiserver`` and start it again on the same data dir.

Every object comes back byte for byte (uid, resourceVersion, timestamps), new
writes continue the revision sequence, and a watch from a resourceVersion
taken before the restart replays the changes made after it, across the
restart.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from apiserver_harness import RunningApiServer, running_apiserver

NS = "restart"
CM = f"/api/v1/namespaces/{NS}/configmaps"
JSON = {"Content-Type": "application/json"}


def running(data_dir: Path, logs: Path) -> AbstractContextManager[RunningApiServer]:
    """One ``skiff apiserver`` on ``data_dir``, logs and kubeconfig in ``logs``."""
    return running_apiserver(logs, data_dir=data_dir)


def send(server: RunningApiServer, method: str, path: str, obj: Any = None, content_type: str = "") -> Any:
    body = json.dumps(obj).encode() if obj is not None else None
    headers = {"Content-Type": content_type or "application/json"} if body is not None else {}
    status, _, answer = server.request(method, path, body, headers)
    assert status in (200, 201), f"{method} {path}: {status} {answer!r}"
    return json.loads(answer)


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"t": "r"}}, "data": data}


def snapshot(server: RunningApiServer) -> dict[str, bytes]:
    """Every object this test made, as the exact bytes a GET answers."""
    paths = [f"/api/v1/namespaces/{NS}"]
    listed = send(server, "GET", f"{CM}?labelSelector=t%3Dr")
    paths += [f"{CM}/{item['metadata']['name']}" for item in listed["items"]]
    paths.append(f"/apis/apps/v1/namespaces/{NS}/deployments/web")
    result = {}
    for path in paths:
        status, _, body = server.request("GET", path)
        assert status == 200, path
        result[path] = body
    return result


def watch_lines(server: RunningApiServer, resource_version: str) -> list[tuple[str, str, str]]:
    path = f"{CM}?watch=1&labelSelector=t%3Dr&resourceVersion={resource_version}&timeoutSeconds=1"
    status, _, body = server.request("GET", path)
    assert status == 200
    events = [json.loads(line) for line in body.decode().splitlines() if line]
    return [(e["type"], e["object"]["metadata"]["name"], e["object"]["metadata"]["resourceVersion"]) for e in events]


def test_objects_and_watch_history_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with running(data_dir, tmp_path / "first") as server:
        send(server, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        for name in ("a", "b", "c"):
            send(server, "POST", CM, configmap(name, v="1"))
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        }
        send(server, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", deployment)
        mark = send(server, "GET", CM)["metadata"]["resourceVersion"]
        # The changes after the mark: a watch from it must replay them, even after the restart.
        after = [
            send(server, "PATCH", f"{CM}/a", {"data": {"v": "2"}}, "application/merge-patch+json"),
            send(server, "POST", CM, configmap("d", v="1")),
            send(server, "DELETE", f"{CM}/b"),
        ]
        expected_events = [
            ("MODIFIED", "a", after[0]["metadata"]["resourceVersion"]),
            ("ADDED", "d", after[1]["metadata"]["resourceVersion"]),
        ]
        before = snapshot(server)
        assert watch_lines(server, mark)[:2] == expected_events
        last_revision = int(send(server, "GET", CM)["metadata"]["resourceVersion"])

    with running(data_dir, tmp_path / "second") as server:
        assert snapshot(server) == before
        replayed = watch_lines(server, mark)
        assert replayed[:2] == expected_events
        assert [(kind, name) for kind, name, _ in replayed[2:]] == [("DELETED", "b")]
        assert int(replayed[2][2]) > int(expected_events[1][2])
        # The restart itself may write (the "kubernetes" Service and Endpoints follow the new port).
        assert int(send(server, "GET", CM)["metadata"]["resourceVersion"]) >= last_revision
        created = send(server, "POST", CM, configmap("e", v="1"))
        assert int(created["metadata"]["resourceVersion"]) > last_revision
        assert send(server, "GET", f"{CM}/e")["metadata"]["uid"] == created["metadata"]["uid"]
