"""A kubelet's serving certificate through a real ``skiff apiserver`` and the CSR controllers.

The node gets its client certificate with a bootstrap token (TLS
bootstrapping), registers its Node as itself, then asks for a serving
certificate (skiff.kubelet.server_certificate): csrapproving approves it
(Skiff's rule: the node's own loopback address and name), csrsigning signs
it with the cluster CA, and the kubelet reuses it at its next start without
asking again.  Requests that break a rule, posted before the good one, are
still pending once the good one is approved.  With
``auto-approve-kubelet-serving`` off the request waits for ``kubectl
certificate approve``, as upstream.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import base64
import sys
import time
from pathlib import Path
from typing import Any

from apiserver_harness import Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

sys.path.insert(0, str(Path(__file__).parent.parent / "controllers"))

from cm_harness import eventually, running_manager

from skiff.apiserver.bootstrap_tokens import NAMESPACE, token_secret
from skiff.cli.token import ensure_bootstrap_rbac
from skiff.client import ApiClient, ClientConfig
from skiff.client.resources import CERTIFICATESIGNINGREQUESTS, SECRETS
from skiff.client.timefmt import rfc3339
from skiff.controllers.csrapproving import SERVING_MESSAGE
from skiff.kubelet import tls_bootstrap as tb
from skiff.kubelet.node import NodeAgent, NodeConfig
from skiff.kubelet.server_certificate import ServerCertificate

NODE_IP = "127.0.9.9"


def _options(server: RunningApiServer, **extra: Any) -> dict[str, Any]:
    return {"cluster-signing-cert-file": str(server.pki.ca_cert), "cluster-signing-key-file": str(server.pki.ca_key),
            **extra}  # fmt: skip


async def _node_client(server: RunningApiServer, root: Path, node: str, token: str) -> ApiClient:
    """TLS bootstrapping with a fresh bootstrap token; the client acts as system:node:<node>."""
    admin = ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig))
    try:
        await admin.create(SECRETS, token_secret(token, expiration=rfc3339(time.time() + 3600)), NAMESPACE)
        await ensure_bootstrap_rbac(admin)
    finally:
        await admin.close()
    bootstrap = ClientConfig(server=server.url, ca_file=str(server.pki.ca_cert), token=token)
    kubeconfig = await tb.ensure_client_certificate(root, node, bootstrap, timeout_s=60)
    client = ApiClient(ClientConfig.from_kubeconfig(kubeconfig), user_agent="serving-test")
    await NodeAgent(client, NodeConfig(node, NODE_IP, 10250)).register()
    return client


async def _post_as(client: ApiClient, pem: bytes, usages: list[str]) -> str:
    body = tb.request_body(None, pem, usages, tb.SERVING)
    return str((await client.create(CERTIFICATESIGNINGREQUESTS, body))["metadata"]["name"])


async def _requests(client: ApiClient, username: str) -> list[dict[str, Any]]:
    items = (await client.list(CERTIFICATESIGNINGREQUESTS))["items"]
    return [c for c in items if c["spec"].get("username") == username and c["spec"]["signerName"].endswith("serving")]


async def test_node_gets_a_serving_certificate(apiserver: RunningApiServer, kubectl: Kubectl, tmp_path: Path) -> None:
    root = tmp_path / "kubelet"
    ca = x509.load_pem_x509_certificate(apiserver.pki.ca_cert.read_bytes())
    async with running_manager(apiserver.kubeconfig, ["csrapproving", "csrsigning"], options=_options(apiserver)) as (
        admin,
        _,
    ):
        node = await _node_client(apiserver, root, "serve-node", "srvtst.0123456789abcdef")
        try:
            # Rule breakers first: as the node, a non-loopback IP and a foreign name; as the admin, for the node.
            key = ec.generate_private_key(ec.SECP256R1())
            usages = tb.usages_for(key, tb.SERVING)
            pending = [
                await _post_as(node, tb.make_request(key, "serve-node", ["serve-node", "10.1.2.3"]), usages),
                await _post_as(node, tb.make_request(key, "serve-node", ["serve-node", "kubernetes"]), usages),
                await _post_as(admin, tb.make_request(key, "serve-node", ["serve-node", NODE_IP]), usages),
            ]
            rotation = ServerCertificate.for_node(root, "serve-node", NODE_IP)
            assert await rotation.initial(None) == (None, True)
            assert await rotation.obtain(node, timeout_s=60) == rotation.files
        finally:
            await node.close()
        pem = rotation.paths.current
        assert pem.stat().st_mode & 0o777 == 0o600
        cert = x509.load_pem_x509_certificate(pem.read_bytes())
        cert.verify_directly_issued_by(ca)
        assert cert.subject.rfc4514_string() == "CN=system:node:serve-node,O=system:nodes"
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["serve-node"]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [NODE_IP]
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.SERVER_AUTH
        ]
        good = [c for c in await _requests(admin, "system:node:serve-node") if c["metadata"]["name"] not in pending]
        assert len(good) == 1 and good[0]["metadata"]["name"].startswith("csr-")
        assert [(c["type"], c["reason"], c["message"]) for c in good[0]["status"]["conditions"]] == [
            ("Approved", "AutoApproved", SERVING_MESSAGE)
        ]
        for name in pending:
            assert not (await admin.get(CERTIFICATESIGNINGREQUESTS, name))["status"].get("conditions"), name
        assert {row.split()[0]: row.split()[-1] for row in kubectl.ok("get", "csr", *pending).splitlines()[1:]} == {
            name: "Pending" for name in pending
        }
        # The next start keeps it: nothing to ask for.
        before = pem.read_bytes()
        assert await ServerCertificate.for_node(root, "serve-node", NODE_IP).initial(None) == (rotation.files, False)
        assert pem.read_bytes() == before


async def test_without_auto_approval_an_administrator_approves(
    apiserver: RunningApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    root = tmp_path / "kubelet"
    options = _options(apiserver, **{"auto-approve-kubelet-serving": False})
    async with running_manager(apiserver.kubeconfig, ["csrapproving", "csrsigning"], options=options) as (admin, _):
        node = await _node_client(apiserver, root, "manual-node", "mantst.0123456789abcdef")
        try:
            rotation = ServerCertificate.for_node(root, "manual-node", NODE_IP)
            task = asyncio.create_task(rotation.obtain(node, timeout_s=60))

            async def posted() -> list[dict[str, Any]]:
                return await _requests(admin, "system:node:manual-node")

            (request,) = await eventually(posted, "the serving request")
            assert not request["status"].get("conditions")
            kubectl.ok("certificate", "approve", request["metadata"]["name"])
            assert await task == rotation.files
        finally:
            await node.close()
        stored = await admin.get(CERTIFICATESIGNINGREQUESTS, request["metadata"]["name"])
        assert [c["reason"] for c in stored["status"]["conditions"]] == ["KubectlApprove"]
        issued = x509.load_pem_x509_certificate(base64.b64decode(stored["status"]["certificate"]))
        assert issued == x509.load_pem_x509_certificate(rotation.paths.current.read_bytes())
