"""Admission webhooks against a real ``skiff apiserver`` and real HTTPS webhook servers.

The webhook server is aiohttp, run by this test on a loop of its own (in a
thread), serving TLS with a certificate from a CA made here with
``cryptography``; configurations carry that CA as their caBundle.  Each test
has its own namespace, and its configurations select only that namespace
(``kubernetes.io/metadata.name``), so tests never see each other's webhooks.
A configuration counts once a list of configurations has answered: lists are
consistent reads, so the server's watch cache — where the webhook plugins
read configurations — has it by then.  Errors are asserted verbatim as real
kubectl 1.32 prints them.

The kopf test runs kopf's admission example as a real operator process
(``kopf_admission_operator.py``): kopf serves the webhooks and manages
their configurations itself.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from apiserver_harness import Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, config
from kubernetes.client.rest import ApiException

GROUP = "admissionregistration.k8s.io"
KOPF_OPERATOR = Path(__file__).with_name("kopf_admission_operator.py")
STOP_DEADLINE_S = 30.0


# -- certificates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca_pem: bytes
    cert: Path
    key: Path

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca_pem).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certs(
    directory: Path, dns_names: list[str], ca_name: str = "webhook-test-ca", *, loopback_ip: bool = True
) -> Certs:
    """A CA and a serving certificate it signed, for ``dns_names`` (and 127.0.0.1 unless told not to)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))] if loopback_ip else []
    sans += [x509.DNSName(name) for name in dns_names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("webhook"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certs(ca.public_bytes(serialization.Encoding.PEM), cert_path, key_path)


# -- the webhook server ------------------------------------------------------------------------------

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def _patch(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}


async def deny_forbidden_names(request: dict[str, Any]) -> dict[str, Any]:
    name = request["object"]["metadata"]["name"]
    if name.startswith("forbidden-"):
        return {
            "allowed": False,
            "status": {"code": 403, "reason": "Forbidden", "message": f"configmaps named {name} are not allowed here"},
        }
    return {"allowed": True}


async def add_label(request: dict[str, Any]) -> dict[str, Any]:
    ops: list[dict[str, Any]] = []
    if not request["object"]["metadata"].get("labels"):
        ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
    ops.append({"op": "add", "path": "/metadata/labels/mutated-by", "value": "skiff-test"})
    return {**_patch(*ops), "warnings": ["the mutated-by label was added"]}


async def require_label(request: dict[str, Any]) -> dict[str, Any]:
    labels = request["object"]["metadata"].get("labels") or {}
    if labels.get("mutated-by") == "skiff-test":
        return {"allowed": True}
    return {"allowed": False, "status": {"message": "the object was not mutated first"}}


async def allow(request: dict[str, Any]) -> dict[str, Any]:
    return {"allowed": True}


async def slow(request: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(5)
    return {"allowed": True}


HANDLERS: dict[str, Handler] = {
    "/deny": deny_forbidden_names,
    "/mutate": add_label,
    "/require-mutated": require_label,
    "/allow": allow,
    "/slow": slow,
}


@dataclass
class WebhookServer:
    """An HTTPS AdmissionReview server on 127.0.0.1 (its own loop, in a thread); records what it was sent."""

    certs: Certs
    port: int = 0
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def requests(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [request for p, request in self.received if p == path]

    async def _serve(self, request: web.Request) -> web.Response:
        review = await request.json()
        with self._lock:
            self.received.append((request.path, review["request"]))
        answer = await HANDLERS[request.path](review["request"])
        body = {
            "apiVersion": review["apiVersion"],
            "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], **answer},
        }
        return web.json_response(body)

    @contextlib.contextmanager
    def running(self) -> Iterator[WebhookServer]:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="webhook-server", daemon=True)
        thread.start()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certs.cert, self.certs.key)
        app = web.Application()
        app.router.add_post("/{path:.*}", self._serve)
        runner = web.AppRunner(app, shutdown_timeout=1, handler_cancellation=True)
        sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]

        async def start() -> None:
            await runner.setup()
            await web.SockSite(runner, sock, ssl_context=context).start()

        asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(_stop(runner), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


async def _stop(runner: web.AppRunner) -> None:
    await runner.cleanup()
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("webhook-certs"), [])


@pytest.fixture(scope="module")
def webhooks(certs: Certs) -> Iterator[WebhookServer]:
    with WebhookServer(certs).running() as server:
        yield server


# -- configurations -------------------------------------------------------------------------------


def webhook(name: str, url: str, namespace: str, certs: Certs, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "clientConfig": {"url": url, "caBundle": certs.ca_bundle},
        "rules": [
            {"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}
        ],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    base.update(fields)
    return base


@dataclass
class Setup:
    kubectl: Kubectl
    namespace: str
    configurations: list[tuple[str, str]] = field(default_factory=list)

    def configure(self, kind: str, name: str, *hooks: dict[str, Any]) -> None:
        obj = {"apiVersion": f"{GROUP}/v1", "kind": kind, "metadata": {"name": name}, "webhooks": list(hooks)}
        self.kubectl.ok("create", "-f", "-", stdin=json.dumps(obj))
        self.configurations.append((kind.lower(), name))
        # A consistent list: the watch cache (which the webhook plugins read) has caught up once it answers.
        self.kubectl.ok("get", f"{kind.lower()}s.{GROUP}")

    def configmap(self, name: str, *args: str, labels: dict[str, str] | None = None) -> tuple[int, str, str]:
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "data": {"k": "v"},
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels or {}},
        }
        return self.kubectl.run("create", "-f", "-", *args, stdin=json.dumps(obj))

    def labels(self, name: str) -> dict[str, str]:
        out = self.kubectl.ok("get", "configmap", name, "-n", self.namespace, "-o", "json")
        return dict(json.loads(out)["metadata"].get("labels") or {})


@pytest.fixture
def setup(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[Setup]:
    namespace = "wh-" + request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")
    kubectl.ok("create", "namespace", namespace)
    made = Setup(kubectl, namespace)
    try:
        yield made
    finally:
        for kind, name in made.configurations:
            kubectl.ok("delete", f"{kind}.{GROUP}", name, "--ignore-not-found")
        kubectl.ok("delete", "namespace", namespace, "--wait=false")


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


# -- tests --------------------------------------------------------------------------------------------


def test_a_denial_reaches_kubectl_and_the_python_client_verbatim(
    setup: Setup, webhooks: WebhookServer, certs: Certs, apiserver: RunningApiServer
) -> None:
    url = f"https://127.0.0.1:{webhooks.port}/deny"
    setup.configure(
        "ValidatingWebhookConfiguration", "deny-names", webhook("deny.skiff.test", url, setup.namespace, certs)
    )
    code, _, err = setup.configmap("forbidden-one")
    assert code == 1
    assert err == (
        'Error from server (Forbidden): error when creating "STDIN": admission webhook "deny.skiff.test" denied '
        "the request: configmaps named forbidden-one are not allowed here\n"
    )
    code, _, err = setup.configmap("allowed-one")
    assert code == 0, err

    api_client = config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        core = client.CoreV1Api(api_client)
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="forbidden-two"))
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_config_map(setup.namespace, body)
    finally:
        api_client.close()
    assert caught.value.status == 403
    status = json.loads(caught.value.body)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'admission webhook "deny.skiff.test" denied the request: configmaps named forbidden-two are not allowed here'
    )
    request = webhooks.requests("/deny")[-1]
    assert request["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert (request["namespace"], request["name"], request["operation"]) == (setup.namespace, "forbidden-two", "CREATE")
    assert request["userInfo"]["username"] == "kubernetes-admin"


def test_a_mutating_patch_is_applied_and_validating_webhooks_see_its_result(
    setup: Setup, webhooks: WebhookServer, certs: Certs
) -> None:
    base = f"https://127.0.0.1:{webhooks.port}"
    setup.configure(
        "MutatingWebhookConfiguration",
        "add-label",
        webhook("mutate.skiff.test", f"{base}/mutate", setup.namespace, certs),
    )
    setup.configure(
        "ValidatingWebhookConfiguration",
        "require-label",
        webhook("require.skiff.test", f"{base}/require-mutated", setup.namespace, certs),
    )
    code, _, err = setup.configmap("mutated")
    assert code == 0, err
    assert err == "Warning: the mutated-by label was added\n"  # the answer's warnings become Warning headers
    assert setup.labels("mutated") == {"mutated-by": "skiff-test"}
    seen = [r for r in webhooks.requests("/require-mutated") if r["name"] == "mutated"]
    assert seen and seen[-1]["object"]["metadata"]["labels"] == {"mutated-by": "skiff-test"}
    # An update that drops the label gets it back (the mutating webhook runs on UPDATE too).
    setup.kubectl.ok("label", "configmap", "mutated", "-n", setup.namespace, "mutated-by-")
    assert setup.labels("mutated") == {"mutated-by": "skiff-test"}


def test_namespace_and_object_selectors_choose_the_requests(
    setup: Setup, webhooks: WebhookServer, certs: Certs, kubectl: Kubectl
) -> None:
    url = f"https://127.0.0.1:{webhooks.port}/deny"
    other = f"{setup.namespace}-other"
    kubectl.ok("create", "namespace", other)
    try:
        setup.configure(
            "ValidatingWebhookConfiguration",
            "deny-guarded",
            webhook(
                "guarded.skiff.test",
                url,
                setup.namespace,
                certs,
                objectSelector={"matchExpressions": [{"key": "guarded", "operator": "Exists"}]},
            ),
        )
        code, _, err = setup.configmap("forbidden-guarded", labels={"guarded": "yes"})
        assert code == 1 and 'admission webhook "guarded.skiff.test" denied the request' in err
        code, _, err = setup.configmap("forbidden-unguarded")  # objectSelector: not sent
        assert code == 0, err
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "forbidden-elsewhere", "namespace": other, "labels": {"guarded": "yes"}},
        }
        code, _, err = kubectl.run("create", "-f", "-", stdin=json.dumps(obj))  # namespaceSelector: not sent
        assert code == 0, err
        assert {r["name"] for r in webhooks.requests("/deny")} >= {"forbidden-guarded"}
        assert not {r["name"] for r in webhooks.requests("/deny")} & {"forbidden-unguarded", "forbidden-elsewhere"}
    finally:
        kubectl.ok("delete", "namespace", other, "--wait=false")


def test_failure_policy_fail_refuses_and_ignore_proceeds_when_the_webhook_is_down(setup: Setup, certs: Certs) -> None:
    port = _closed_port()
    url = f"https://127.0.0.1:{port}/gone"
    setup.configure(
        "ValidatingWebhookConfiguration",
        "down-webhooks",
        webhook("down-ignore.skiff.test", url, setup.namespace, certs, failurePolicy="Ignore"),
        webhook(
            "down-fail.skiff.test", url, setup.namespace, certs, objectSelector={"matchLabels": {"policy": "fail"}}
        ),
    )
    code, _, err = setup.configmap("ignored")
    assert code == 0, err
    code, _, err = setup.configmap("failed", labels={"policy": "fail"})
    assert code == 1
    assert err == (
        'Error from server (InternalError): error when creating "STDIN": Internal error occurred: failed calling '
        f'webhook "down-fail.skiff.test": failed to call webhook: Post "{url}?timeout=10s": dial tcp '
        f"127.0.0.1:{port}: connect: connection refused\n"
    )


def test_a_webhook_that_answers_too_late_times_out(setup: Setup, webhooks: WebhookServer, certs: Certs) -> None:
    url = f"https://127.0.0.1:{webhooks.port}/slow"
    setup.configure(
        "ValidatingWebhookConfiguration",
        "slow-webhook",
        webhook("slow.skiff.test", url, setup.namespace, certs, timeoutSeconds=1),
    )
    started = time.monotonic()
    code, _, err = setup.configmap("late")
    assert time.monotonic() - started < 4.5  # the webhook would take 5s
    assert code == 1
    assert err == (
        'Error from server (InternalError): error when creating "STDIN": Internal error occurred: failed calling '
        f'webhook "slow.skiff.test": failed to call webhook: Post "{url}?timeout=1s": context deadline exceeded\n'
    )


def test_an_untrusted_certificate_is_refused(setup: Setup, webhooks: WebhookServer, tmp_path: Path) -> None:
    stranger = make_certs(tmp_path / "other-ca", [], ca_name="stranger-ca")
    url = f"https://127.0.0.1:{webhooks.port}/allow"
    setup.configure(
        "ValidatingWebhookConfiguration", "wrong-ca", webhook("wrong-ca.skiff.test", url, setup.namespace, stranger)
    )
    code, _, err = setup.configmap("untrusted")
    assert code == 1
    assert err.endswith(
        f'failed calling webhook "wrong-ca.skiff.test": failed to call webhook: Post "{url}?timeout=10s": '
        "tls: failed to verify certificate: x509: certificate signed by unknown authority\n"
    )


def test_dry_run_requests_reach_webhooks_without_side_effects_and_store_nothing(
    setup: Setup, webhooks: WebhookServer, certs: Certs, kubectl: Kubectl
) -> None:
    url = f"https://127.0.0.1:{webhooks.port}/mutate"
    setup.configure(
        "MutatingWebhookConfiguration",
        "dry-run-mutate",
        webhook("dry.skiff.test", url, setup.namespace, certs, sideEffects="NoneOnDryRun"),
    )
    code, out, err = setup.configmap("dry", "--dry-run=server", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["metadata"]["labels"] == {"mutated-by": "skiff-test"}
    request = [r for r in webhooks.requests("/mutate") if r["name"] == "dry"][-1]
    assert request["dryRun"] is True
    assert request["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"]}
    code, _, err = kubectl.run("get", "configmap", "dry", "-n", setup.namespace)
    assert code == 1 and "NotFound" in err
    # sideEffects Unknown/Some (which dry runs refuse: tests/unit/test_webhook_admission.py) cannot be stored in v1.
    bad = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "unknown-se"},
        "webhooks": [webhook("unknown.skiff.test", url, setup.namespace, certs, sideEffects="Unknown")],
    }
    code, _, err = kubectl.run("create", "-f", "-", stdin=json.dumps(bad))
    assert code == 1 and 'webhooks[0].sideEffects: Unsupported value: "Unknown"' in err


def test_a_service_reference_is_dialled_through_its_endpoints_and_verified_by_name(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    # The serving certificate names only hooks.wh-service.svc (no IP); both Services are selector-less, their
    # Endpoints lead to the webhook server on 127.0.0.1.
    namespace = "wh-service"
    svc_certs = make_certs(tmp_path / "svc-certs", [f"hooks.{namespace}.svc"], loopback_ip=False)
    kubectl.ok("create", "namespace", namespace)
    setup = Setup(kubectl, namespace)
    try:
        with WebhookServer(svc_certs).running() as server:
            items: list[dict[str, Any]] = []
            for name in ("hooks", "misnamed"):
                meta = {"name": name, "namespace": namespace}
                items.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": meta,
                        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": server.port}]},
                    }
                )
                items.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Endpoints",
                        "metadata": meta,
                        "subsets": [
                            {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": server.port}]}
                        ],
                    }
                )
            kubectl.ok("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
            hooks = []
            for hook_name, service, selector in (
                ("svc.skiff.test", "hooks", "DoesNotExist"),
                ("misnamed.skiff.test", "misnamed", "Exists"),
            ):
                hook = webhook(
                    hook_name,
                    "",
                    namespace,
                    svc_certs,
                    objectSelector={"matchExpressions": [{"key": "misnamed", "operator": selector}]},
                )
                hook["clientConfig"] = {
                    "service": {"namespace": namespace, "name": service, "path": "/deny"},
                    "caBundle": svc_certs.ca_bundle,
                }
                hooks.append(hook)
            setup.configure("ValidatingWebhookConfiguration", "service-webhooks", *hooks)
            code, _, err = setup.configmap("forbidden-via-service")
            assert code == 1
            assert err.endswith(
                'admission webhook "svc.skiff.test" denied the request: configmaps named forbidden-via-service '
                "are not allowed here\n"
            )
            code, _, err = setup.configmap("allowed-via-service")
            assert code == 0, err
            assert {r["name"] for r in server.requests("/deny")} == {"forbidden-via-service", "allowed-via-service"}
            code, _, err = setup.configmap("wrong-name", labels={"misnamed": "yes"})
            assert code == 1
            assert err.endswith(
                'failed calling webhook "misnamed.skiff.test": failed to call webhook: Post '
                f'"https://misnamed.{namespace}.svc:443/deny?timeout=10s": tls: failed to verify certificate: '
                f"x509: certificate is not valid for misnamed.{namespace}.svc\n"
            )
    finally:
        for kind, name in setup.configurations:
            kubectl.ok("delete", f"{kind}.{GROUP}", name, "--ignore-not-found")
        kubectl.ok("delete", "namespace", namespace, "--wait=false")


# -- kopf ------------------------------------------------------------------------------------------------

KOPF_NS = "wh-kopf"
KOPF_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: kopfexamples.kopf.dev
spec:
  scope: Namespaced
  group: kopf.dev
  names: {kind: KopfExample, plural: kopfexamples, singular: kopfexample}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""


def _example(name: str, field_value: str) -> str:
    return json.dumps(
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfExample",
            "metadata": {"name": name, "namespace": KOPF_NS},
            "spec": {"field": field_value},
        }
    )


def test_kopfs_admission_example_refuses_and_mutates(
    kubectl: Kubectl, apiserver: RunningApiServer, tmp_path: Path
) -> None:
    kubectl.ok("apply", "-f", "-", stdin=KOPF_CRD)
    kubectl.ok("wait", "--for", "condition=established", "--timeout=30s", "crd/kopfexamples.kopf.dev")
    kubectl.ok("create", "namespace", KOPF_NS)
    kopf_certs = make_certs(tmp_path / "kopf-certs", [])
    log = tmp_path / "kopf.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(apiserver.kubeconfig),
        "KOPF_WEBHOOK_PORT": str(_closed_port()),
        "KOPF_WEBHOOK_CERT": str(kopf_certs.cert),
        "KOPF_WEBHOOK_KEY": str(kopf_certs.key),
        "KOPF_WEBHOOK_CA": str(kopf_certs.cert.with_name("ca.crt")),
    }
    cmd = [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", KOPF_NS, "--verbose", str(KOPF_OPERATOR)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        _wait_for_managed_configurations(kubectl, proc, log)
        code, _, err = kubectl.run("create", "-f", "-", stdin=_example("refused", "wrong"))
        assert code == 1, log.read_text()
        assert err == (
            'Error from server: error when creating "STDIN": admission webhook "validate1.auto.kopf.dev" denied '
            "the request: Meh! I don't like it. Change the field.\n"
        ), log.read_text()
        kubectl.ok("create", "-f", "-", stdin=_example("mutated", "right"))
        obj = json.loads(kubectl.ok("get", "-n", KOPF_NS, "kopfexample", "mutated", "-o", "json"))
        assert obj["spec"] == {"field": "right", "injected": 123}

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_DEADLINE_S) == 0, log.read_text()
        assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            print(f"--- kopf log ---\n{log.read_text()}", file=sys.stderr)
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            kubectl.ok("delete", f"{kind}.{GROUP}", "auto.kopf.dev", "--ignore-not-found")


def _wait_for_managed_configurations(kubectl: Kubectl, proc: subprocess.Popen[bytes], log: Path) -> None:
    """kopf serves first, then writes both configurations with their webhooks: poll (a list) until they are in."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        out = kubectl.ok(
            "get", f"validatingwebhookconfigurations.{GROUP},mutatingwebhookconfigurations.{GROUP}", "-o", "json"
        )
        hooks = {
            h["name"]
            for item in json.loads(out)["items"]
            if item["metadata"]["name"] == "auto.kopf.dev"
            for h in item.get("webhooks") or []
        }
        if {"validate1.auto.kopf.dev", "mutate1.auto.kopf.dev"} <= hooks:
            return
        time.sleep(0.2)
    raise AssertionError(f"kopf did not configure its webhooks\n{log.read_text()}")
