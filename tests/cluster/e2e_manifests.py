"""Manifests and small probes shared by the end-to-end cluster tests."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def web_deployment(name: str, replicas: int = 1, *, version: str = "v1", port: int = 8080) -> dict[str, Any]:
    """Python's http.server on the pod's own address, with a readiness probe, serving a version file."""
    script = (
        f"mkdir -p /tmp/{name}-$(POD_IP) && cd /tmp/{name}-$(POD_IP) && echo {version} > version && "
        f"exec python3 -m http.server {port} --bind $(POD_IP)"
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "web",
                            "image": "python:3",
                            "command": ["sh", "-c", script],
                            "env": [POD_IP_ENV],
                            "ports": [{"containerPort": port, "name": "http"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/version", "port": port},
                                "periodSeconds": 1,
                                "initialDelaySeconds": 0,
                            },
                        }
                    ],
                },
            },
        },
    }


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, ""
    except (OSError, urllib.error.URLError) as err:
        return 0, str(err)


def tcp_open(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def as_json(text: str) -> Any:
    return json.loads(text)
