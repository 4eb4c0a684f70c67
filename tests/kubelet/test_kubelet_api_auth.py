"""The kubelet API is authenticated and authorized through the API server, never open.

A real ``skiff apiserver`` started as ``skiff up`` starts it
(``--kubelet-certificate-authority`` = the cluster CA) and real ``skiff
kubelet`` processes running with a node identity of their own
(``system:node:<name>``, so their TokenReviews and SubjectAccessReviews go
through the Node authorizer's NodeRules) and a serving certificate from the
cluster CA, as ``skiff up`` gives its kubelet.  Clients talk straight to the
kubelet port, verifying its certificate.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from apiserver_harness import Kubectl, RunningApiServer, running_apiserver
from cryptography import x509
from cryptography.x509.oid import NameOID
from kubelet_harness import KubeletProcess, client_for, container_status, pod_spec, wait_pod

from skiff.apiserver.pki import KUBELET_CLIENT_NAME, KUBELET_CLIENT_USER, ensure_kubelet_serving_cert, issue_client_cert
from skiff.client import ApiClient, ApiError, is_already_exists
from skiff.client.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, NODES, PODS, SERVICEACCOUNTS

PROXY_ROLE = "kubelet-auth-test:nodes-proxy"
READERS = "kubelet-auth-test:readers"
APISERVER_BINDING = "kubeadm:apiserver-kubelet-client"
#: kubelet API paths that need credentials, served or not (the filter runs before routing).
GUARDED = [
    ("POST", "/exec/default/p/c?command=ls&output=1"),
    ("GET", "/attach/default/p/c?output=1"),
    ("GET", "/portForward/default/p?port=80"),
    ("GET", "/containerLogs/default/p/c"),
    ("GET", "/pods"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
]
#: Node addresses 127.0.1.230 and up (the shared conftest's kubelets use .20 to .219).
NODE_INDEXES = itertools.count(230)


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    """This module's API server verifies kubelets' serving certificates against the cluster CA."""
    base = tmp_path_factory.mktemp("apiserver")
    ca = base / "data" / "pki" / "ca.crt"  # made by the server as it starts
    with running_apiserver(base, "--kubelet-certificate-authority", str(ca)) as server:
        yield server


def node_kubeconfig(server: RunningApiServer, base: Path, node: str) -> Path:
    """A kubeconfig for ``system:node:<node>`` (what TLS bootstrapping gives a kubelet)."""
    cert, key = issue_client_cert(server.pki, base / "node-client", f"system:node:{node}", ["system:nodes"])
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "c", "cluster": {"server": server.url, "certificate-authority": str(server.pki.ca_cert)}}
        ],
        "users": [{"name": "u", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path = base / "node.kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


@contextlib.contextmanager
def node_kubelet(
    server: RunningApiServer, base: Path, index: int, *, ca_signed: bool = True
) -> Iterator[KubeletProcess]:
    name, ip = f"auth-node-{index}", f"127.0.1.{index}"
    base.mkdir(parents=True, exist_ok=True)
    args = ["--kubeconfig", str(node_kubeconfig(server, base, name)), "--labels", ""]
    if ca_signed:
        cert, key = ensure_kubelet_serving_cert(server.pki, base / "serving", name, [ip, "localhost"])
        args += ["--tls-cert-file", str(cert), "--tls-private-key-file", str(key)]
    proc = KubeletProcess(server, base / "kubelet", name, ip, f"127.20.{index}.0/24", *args)
    proc.start()
    try:
        yield proc
    finally:
        code = proc.stop()
        print(proc.logs())  # shown by pytest only when the test fails
        assert code == 0, proc.logs()


@pytest.fixture
def kubelet(apiserver: RunningApiServer, tmp_path: Path) -> Iterator[KubeletProcess]:
    """A node of its own per test (its pods stay behind, bound to a node nobody runs)."""
    with node_kubelet(apiserver, tmp_path, next(NODE_INDEXES)) as proc:
        yield proc


async def kubelet_url(client: ApiClient, node: str) -> str:
    """``https://ip:port`` of the node's kubelet, once it registered."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(ApiError):
            status = (await client.get(NODES, node)).get("status") or {}
            port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
            address = next((a["address"] for a in status.get("addresses") or [] if a["type"] == "InternalIP"), None)
            if port and address:
                return f"https://{address}:{port}"
        await asyncio.sleep(0.2)
    raise AssertionError(f"node {node} never registered")


def tls(server: RunningApiServer, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """Trusts only the cluster CA (the kubelet's certificate is checked, host name included)."""
    ctx = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


async def call(
    url: str, ctx: ssl.SSLContext, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, ssl=ctx, headers=headers or {}) as response,
    ):
        return response.status, await response.text()


async def ensure(client: ApiClient, res: Any, body: dict[str, Any]) -> None:
    """Create ``body`` unless it exists (tests of this module share the API server)."""
    try:
        await client.create(res, body)
    except ApiError as err:
        if not is_already_exists(err):
            raise


async def ensure_proxy_role(client: ApiClient) -> None:
    """A ClusterRole with nodes/proxy (get, create), bound to the group READERS."""
    await ensure(
        client,
        CLUSTERROLES,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": PROXY_ROLE},
            "rules": [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get", "create"]}],
        },
    )
    await bind(client, PROXY_ROLE, {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": READERS})


async def bind(client: ApiClient, name: str, subject: dict[str, str], role: str = PROXY_ROLE) -> None:
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }
    await ensure(client, CLUSTERROLEBINDINGS, body)


async def talker(client: ApiClient, kubelet: KubeletProcess, name: str) -> dict[str, Any]:
    """A running pod on the kubelet's node that printed ``hello`` (its log written)."""
    container = {"name": "c", "image": "busybox", "command": ["sh", "-c", "echo hello; sleep 3600"]}
    await client.create(PODS, pod_spec(name, kubelet.name, [container]))
    pod = await wait_pod(client, name, lambda p: container_status(p).get("ready") is True)
    log = kubelet.root / "pods" / pod["metadata"]["uid"] / "logs" / "c" / "0.log"
    for _ in range(100):
        if log.exists() and log.read_text():
            break
        await asyncio.sleep(0.05)
    return pod


@pytest.fixture
async def admin(apiserver: RunningApiServer) -> AsyncIterator[ApiClient]:
    async with client_for(apiserver) as client:
        yield client


async def test_no_credentials_is_401(apiserver: RunningApiServer, kubelet: KubeletProcess, admin: ApiClient) -> None:
    base = await kubelet_url(admin, kubelet.name)
    bad_token = {"Authorization": "Bearer not-a-token"}
    for method, path in GUARDED:
        assert await call(base + path, tls(apiserver), method) == (401, "Unauthorized"), path
        assert await call(base + path, tls(apiserver), method, bad_token) == (401, "Unauthorized"), path


async def test_plain_http_is_refused(kubelet: KubeletProcess, admin: ApiClient) -> None:
    host, port = (await kubelet_url(admin, kubelet.name)).removeprefix("https://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(4096), 10)
    except ConnectionError:
        answer = b""
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()
    assert not answer.startswith(b"HTTP/"), answer


async def test_certificate_users_need_nodes_proxy(
    apiserver: RunningApiServer, kubelet: KubeletProcess, admin: ApiClient, tmp_path: Path
) -> None:
    base = await kubelet_url(admin, kubelet.name)
    await talker(admin, kubelet, "auth-logs")
    nobody = tls(apiserver, issue_client_cert(apiserver.pki, tmp_path / "nobody", "auth-nobody", ["auth-team"]))
    forbidden = "Forbidden (user=auth-nobody, verb={}, resource=nodes, subresource(s)=[{}])\n"
    for method, path, verb, subresources in [
        ("GET", "/containerLogs/default/auth-logs/c", "get", "proxy"),
        ("POST", "/exec/default/auth-logs/c?command=ls&output=1", "create", "proxy"),
        ("GET", "/healthz", "get", "healthz proxy"),
        ("GET", "/pods", "get", "pods proxy"),
        ("GET", "/metrics/cadvisor", "get", "metrics"),
        ("GET", "/stats/summary", "get", "stats"),
    ]:
        assert await call(base + path, nobody, method) == (403, forbidden.format(verb, subresources)), path

    await ensure_proxy_role(admin)
    reader = tls(apiserver, issue_client_cert(apiserver.pki, tmp_path / "reader", "auth-reader", [READERS]))
    assert await call(base + "/healthz", reader) == (200, "ok")
    assert await call(base + "/containerLogs/default/auth-logs/c", reader) == (200, "hello\n")
    # Past the filter, the route decides: /pods is not served here; nodes/proxy does not cover metrics.
    assert (await call(base + "/pods", reader))[0] == 404
    expected = "Forbidden (user=auth-reader, verb=get, resource=nodes, subresource(s)=[metrics])\n"
    assert await call(base + "/metrics", reader) == (403, expected)


async def test_service_account_tokens_are_reviewed_and_authorized(
    apiserver: RunningApiServer, kubelet: KubeletProcess, admin: ApiClient
) -> None:
    base = await kubelet_url(admin, kubelet.name)
    await ensure_proxy_role(admin)
    tokens = {}
    for account in ("auth-sa-reader", "auth-sa-stranger"):
        await ensure(
            admin,
            SERVICEACCOUNTS,
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": "default"}},
        )
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
        answer = await admin.create(SERVICEACCOUNTS, request, "default", subresource="token", name=account)
        tokens[account] = answer["status"]["token"]
    subject = {"kind": "ServiceAccount", "name": "auth-sa-reader", "namespace": "default"}
    await bind(admin, "kubelet-auth-test:sa-reader", subject)

    anonymous = tls(apiserver)
    reader = {"Authorization": f"Bearer {tokens['auth-sa-reader']}"}
    assert await call(base + "/healthz", anonymous, headers=reader) == (200, "ok")
    # The same token as a WebSocket client sends it (kubectl exec's bearer subprotocol).
    encoded = base64.urlsafe_b64encode(tokens["auth-sa-reader"].encode()).decode().rstrip("=")
    protocol = {"Sec-WebSocket-Protocol": f"v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.{encoded}"}
    assert await call(base + "/healthz", anonymous, headers=protocol) == (200, "ok")
    stranger = {"Authorization": f"Bearer {tokens['auth-sa-stranger']}"}
    expected = (
        "Forbidden (user=system:serviceaccount:default:auth-sa-stranger, verb=get, resource=nodes, "
        "subresource(s)=[healthz proxy])\n"
    )
    assert await call(base + "/healthz", anonymous, headers=stranger) == (403, expected)


async def test_kubectl_logs_and_exec_through_the_apiserver(
    apiserver: RunningApiServer, kubelet: KubeletProcess, admin: ApiClient
) -> None:
    await talker(admin, kubelet, "auth-kubectl")
    kubectl = Kubectl(apiserver, kubelet.base / "kube-cache")
    assert await asyncio.to_thread(kubectl.ok, "logs", "auth-kubectl") == "hello\n"
    assert await asyncio.to_thread(kubectl.ok, "exec", "auth-kubectl", "--", "echo", "in-pod") == "in-pod\n"
    # As kubeadm's: its own certificate, no group; what it may do comes from a binding.
    cert = x509.load_pem_x509_certificate((apiserver.pki.directory / f"{KUBELET_CLIENT_NAME}.crt").read_bytes())
    assert cert.subject.rfc4514_string() == f"CN={KUBELET_CLIENT_USER}"
    assert not cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)


async def test_apiserver_needs_its_binding(
    apiserver: RunningApiServer, kubelet: KubeletProcess, admin: ApiClient
) -> None:
    await talker(admin, kubelet, "auth-unbound")
    binding = await admin.get(CLUSTERROLEBINDINGS, APISERVER_BINDING)
    assert binding["roleRef"]["name"] == "system:kubelet-api-admin"
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KUBELET_CLIENT_USER}
    ]
    await admin.delete(CLUSTERROLEBINDINGS, APISERVER_BINDING)
    try:
        kubectl = Kubectl(apiserver, kubelet.base / "kube-cache")
        code, _, err = await asyncio.to_thread(kubectl.run, "logs", "auth-unbound")
        assert code != 0
        assert f"Forbidden (user={KUBELET_CLIENT_USER}, verb=get, resource=nodes, subresource(s)=[proxy])" in err
    finally:
        body = {k: binding[k] for k in ("apiVersion", "kind", "roleRef", "subjects")}
        body["metadata"] = {"name": APISERVER_BINDING, "labels": binding["metadata"].get("labels") or {}}
        await ensure(admin, CLUSTERROLEBINDINGS, body)


async def test_self_signed_kubelet_is_not_trusted(
    apiserver: RunningApiServer, admin: ApiClient, tmp_path: Path
) -> None:
    with node_kubelet(apiserver, tmp_path, next(NODE_INDEXES), ca_signed=False) as kubelet:
        await talker(admin, kubelet, "auth-untrusted")
        kubectl = Kubectl(apiserver, kubelet.base / "kube-cache")
        code, _, err = await asyncio.to_thread(kubectl.run, "logs", "auth-untrusted")
        assert code != 0 and "certificate verify failed" in err, err
        with contextlib.suppress(ApiError):
            await admin.delete(PODS, "auth-untrusted", "default")
