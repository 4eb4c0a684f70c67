"""A throwaway API server that records what real kubectl POSTs, for the protobuf decoder's tests.

It answers just enough of the API for kubectl's create generators to reach their
POST: ``/version``, legacy discovery (``/api``, ``/apis``, one APIResourceList
per group version), canned objects from ``routes`` for GET and PATCH (what
``kubectl drain`` reads and cordons), and 404 for everything else (OpenAPI
included, which kubectl tolerates for ``create``).  A POST is recorded (path, Content-Type, body) and
answered ``201`` with a JSON object naming the resource, so kubectl's ``-o
name`` printing succeeds.  Plain HTTP on 127.0.0.1, port 0: kubectl sends no
credentials over http and needs none.

The server runs in a daemon thread of the test process; ``run_kubectl`` starts
kubectl as a child process with a throwaway kubeconfig and cache dir and waits
for it, so no process outlives a call.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

KUBECTL = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.32")

# (group, version, plural, singular, kind, namespaced)
RESOURCES: tuple[tuple[str, str, str, str, str, bool], ...] = (
    ("", "v1", "namespaces", "namespace", "Namespace", False),
    ("", "v1", "configmaps", "configmap", "ConfigMap", True),
    ("", "v1", "secrets", "secret", "Secret", True),
    ("", "v1", "services", "service", "Service", True),
    ("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True),
    ("", "v1", "serviceaccounts/token", "", "TokenRequest", True),
    ("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", True),
    ("", "v1", "pods", "pod", "Pod", True),
    ("", "v1", "pods/eviction", "", "Eviction", True),
    ("", "v1", "nodes", "node", "Node", False),
    ("apps", "v1", "deployments", "deployment", "Deployment", True),
    ("batch", "v1", "jobs", "job", "Job", True),
    ("batch", "v1", "cronjobs", "cronjob", "CronJob", True),
    ("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", False),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", False),
    ("scheduling.k8s.io", "v1", "priorityclasses", "priorityclass", "PriorityClass", False),
    ("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", True),
    ("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", True),
    (
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        False,
    ),
    ("coordination.k8s.io", "v1", "leases", "lease", "Lease", True),
)

VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Captured:
    path: str
    content_type: str
    body: bytes


@dataclass
class CaptureServer:
    port: int = 0
    posts: list[Captured] = field(default_factory=list)
    routes: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra GET/PATCH answers by path
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> list[Captured]:
        with self.lock:
            out, self.posts = self.posts, []
        return out


def _group_versions() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for group, version, plural, singular, kind, namespaced in RESOURCES:
        gv = f"{group}/{version}" if group else version
        resource = {"name": plural, "singularName": singular, "namespaced": namespaced, "kind": kind, "verbs": VERBS}
        if plural == "pods/eviction":  # kubectl drain looks for exactly this to pick the Eviction version
            resource.update(group="policy", version="v1", verbs=["create"])
        out.setdefault(gv, []).append(resource)
    return out


def _discovery() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {
        "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0"},
        "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    }
    groups = []
    for gv, resources in _group_versions().items():
        path = f"/apis/{gv}" if "/" in gv else f"/api/{gv}"
        docs[path] = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
        if "/" in gv:
            group, version = gv.split("/")
            pref = {"groupVersion": gv, "version": version}
            groups.append({"name": group, "versions": [pref], "preferredVersion": pref})
    docs["/apis"] = {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    return docs


def _handler(server: CaptureServer) -> type[BaseHTTPRequestHandler]:
    docs = _discovery()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, code: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in docs or path in server.routes:
                self._reply(200, docs.get(path) or server.routes[path])
            else:
                self._reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})

        def do_PATCH(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            path = self.path.split("?", 1)[0]
            if path in server.routes:
                self._reply(200, server.routes[path])
            else:
                self._reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            with server.lock:
                server.posts.append(Captured(path, self.headers.get("Content-Type", ""), body))
            self._reply(201, _echo(path))

    return Handler


def _echo(path: str) -> dict[str, Any]:
    """A reply kubectl can print with ``-o name``: the kind and a name for the POSTed path."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last == "token":
        status = {"token": "t", "expirationTimestamp": "2030-01-01T00:00:00Z"}
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "status": status}
    if last == "eviction":
        return {"kind": "Status", "apiVersion": "v1", "status": "Success"}
    for group, version, plural, _, kind, _ in RESOURCES:
        if last in (plural, plural.rpartition("/")[2]):
            api_version = f"{group}/{version}" if group else version
            if kind == "SelfSubjectAccessReview":
                return {"kind": kind, "apiVersion": api_version, "status": {"allowed": True}}
            return {"kind": kind, "apiVersion": api_version, "metadata": {"name": "captured"}}
    return {"kind": "Status", "apiVersion": "v1", "status": "Success"}


@contextmanager
def capture_server() -> Iterator[CaptureServer]:
    server = CaptureServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def run_kubectl(server: CaptureServer, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run kubectl against the capture server; raises with kubectl's stderr if it failed."""
    kubeconfig = tmp / "kubeconfig"
    if not kubeconfig.exists():
        kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    cmd = [
        str(KUBECTL),
        "--kubeconfig",
        str(kubeconfig),
        "--cache-dir",
        str(tmp / "cache"),
        "--server",
        f"http://127.0.0.1:{server.port}",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc
