"""CertificateSigningRequests against a real ``skiff apiserver``: kubectl, the three endpoints, the CSR controllers.

kubectl creates requests as a user would (``kubectl apply -f`` with a request
made by ``cryptography``), approves and denies them (``kubectl certificate``,
a PUT of ``/approval``) and lists them.  Bad requests are refused 422 with
upstream's causes.  The approving and signing controllers run in the test's
loop against the server; the signed certificate verifies against the
cluster CA.  The cleaner runs on a FakeClock.  A kubelet's TLS bootstrap
with a bootstrap token ends with a certificate the server accepts as
``system:node:<name>``, reused on restart and renewed by the node itself
when it nears expiry.
"""

# The harness's fixtures are imported by name, so their parameters shadow the imports.
# ruff: noqa: F811

from __future__ import annotations

import base64
import datetime
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from apiserver_harness import Kubectl, RunningApiServer, apiserver, kubectl  # noqa: F401
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

sys.path.insert(0, str(Path(__file__).parent.parent / "controllers"))

from cm_harness import eventually, running_manager

from skiff.apiserver.bootstrap_tokens import NAMESPACE, token_secret
from skiff.cli.token import ensure_bootstrap_rbac
from skiff.client import ApiClient, ApiError, ClientConfig
from skiff.client.clock import FakeClock
from skiff.client.resources import CERTIFICATESIGNINGREQUESTS, SECRETS
from skiff.client.timefmt import rfc3339
from skiff.controllers.csrsigning import Authority, sign
from skiff.kubelet.tls_bootstrap import Paths, ensure_client_certificate, make_request, store_certificate

KUBELET_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
KEY = ec.generate_private_key(ec.SECP256R1())


def request_pem(cn: str, orgs: tuple[str, ...] = ()) -> bytes:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    name = x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(KEY, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def manifest(
    name: str,
    pem: bytes | None = None,
    signer: str = KUBELET_SIGNER,
    usages: tuple[str, ...] = ("digital signature", "client auth"),
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "request": base64.b64encode(pem or request_pem("system:node:n1", ("system:nodes",))).decode(),
        "signerName": signer,
        "usages": list(usages),
        **extra,
    }
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {k: v for k, v in spec.items() if v is not None}}  # fmt: skip


def call(server: RunningApiServer, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    status, _, raw = server.request(method, path, data, {"Content-Type": "application/json"})
    return status, json.loads(raw) if raw else {}


def create(kubectl: Kubectl, obj: dict[str, Any]) -> None:
    kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump(obj))


def get(server: RunningApiServer, name: str) -> dict[str, Any]:
    status, obj = call(server, "GET", f"{PATH}/{name}")
    assert status == 200, obj
    return obj


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def certificate_pem(not_after: datetime.datetime) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
        .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(not_after)
        .sign(KEY, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


# -- the API ------------------------------------------------------------------------------------------


def test_kubectl_apply_records_the_requester(apiserver: RunningApiServer, kubectl: Kubectl) -> None:
    create(kubectl, manifest("apply-1", username="mallory", groups=["system:masters"], expirationSeconds=3600))
    obj = get(apiserver, "apply-1")
    assert obj["spec"]["username"] == "kubernetes-admin"
    assert obj["spec"]["groups"] == ["system:masters", "system:authenticated"]
    assert obj["status"] == {}
    assert "generation" not in obj["metadata"]
    # A main-resource update cannot change the spec: it is carried over.
    obj["spec"]["usages"] = ["server auth"]
    status, updated = call(apiserver, "PUT", f"{PATH}/apply-1", obj)
    assert status == 200 and updated["spec"]["usages"] == ["digital signature", "client auth"]


def test_kubectl_get_columns(kubectl: Kubectl) -> None:
    create(kubectl, manifest("table-1", expirationSeconds=7200))
    create(kubectl, manifest("table-2", signer="example.com/custom"))
    table = rows(kubectl.ok("get", "csr", "table-1", "table-2"))
    assert table[0] == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert [table[1][0], *table[1][2:]] == ["table-1", KUBELET_SIGNER, "kubernetes-admin", "120m", "Pending"]
    assert [table[2][0], *table[2][2:]] == ["table-2", "example.com/custom", "kubernetes-admin", "<none>", "Pending"]
    selected = rows(kubectl.ok("get", "csr", "--field-selector", "spec.signerName=example.com/custom"))
    assert [r[0] for r in selected[1:]] == ["table-2"]


def _tampered() -> str:
    der = bytearray(x509.load_pem_x509_csr(request_pem("someone")).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    pem = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(bytes(der))
        + b"-----END CERTIFICATE REQUEST-----\n"
    )
    return base64.b64encode(pem).decode()


@pytest.mark.parametrize(
    ("changes", "field", "reason", "message"),
    [
        pytest.param({"request": base64.b64encode(certificate_pem(datetime.datetime(2100, 1, 1))).decode()},
                     "spec.request", "FieldValueInvalid", "PEM block type must be CERTIFICATE REQUEST", id="bad-pem"),
        pytest.param({"request": _tampered()}, "spec.request", "FieldValueInvalid", "x509: ECDSA verification failure",
                     id="bad-signature"),
        pytest.param({"signerName": None}, "spec.signerName", "FieldValueRequired", "Required value", id="no-signer"),
        pytest.param({"signerName": "nodomain/x"}, "spec.signerName", "FieldValueInvalid",
                     "should be a domain with at least two segments separated by dots", id="bad-signer"),
        pytest.param({"expirationSeconds": 599}, "spec.expirationSeconds", "FieldValueInvalid",
                     "may not specify a duration less than 600 seconds (10 minutes)", id="599s"),
        pytest.param({"usages": ["client auth", "client auth"]}, "spec.usages[1]", "FieldValueDuplicate",
                     'Duplicate value: "client auth"', id="duplicate-usage"),
        pytest.param({"usages": ["flying"]}, "spec.usages[0]", "FieldValueNotSupported", 'Unsupported value: "flying"',
                     id="unknown-usage"),
        pytest.param({"usages": []}, "spec.usages", "FieldValueRequired", "Required value", id="no-usages"),
    ],
)  # fmt: skip
def test_bad_requests_are_invalid(
    apiserver: RunningApiServer, changes: dict[str, Any], field: str, reason: str, message: str
) -> None:
    body = manifest(f"bad-{uuid.uuid4().hex[:6]}")
    body["spec"] = {k: v for k, v in {**body["spec"], **changes}.items() if v is not None}
    status, answer = call(apiserver, "POST", PATH, body)
    assert status == 422, answer
    assert answer["reason"] == "Invalid"
    causes = answer["details"]["causes"]
    assert [(c["field"], c["reason"]) for c in causes] == [(field, reason)]
    assert message in causes[0]["message"]


def test_system_masters_client_certificates_are_forbidden(apiserver: RunningApiServer) -> None:
    body = manifest("masters", request_pem("me", ("system:masters",)), CLIENT_SIGNER, ("client auth",))
    status, answer = call(apiserver, "POST", PATH, body)
    assert status == 403, answer
    assert (
        "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
        in (answer["message"])
    )


def test_kubectl_certificate_approve_and_deny(apiserver: RunningApiServer, kubectl: Kubectl) -> None:
    create(kubectl, manifest("approve-1"))
    create(kubectl, manifest("deny-1"))
    assert kubectl.ok("certificate", "approve", "approve-1").strip() == (
        "certificatesigningrequest.certificates.k8s.io/approve-1 approved"
    )
    assert kubectl.ok("certificate", "deny", "deny-1").strip() == (
        "certificatesigningrequest.certificates.k8s.io/deny-1 denied"
    )
    (approved,) = get(apiserver, "approve-1")["status"]["conditions"]
    assert (approved["type"], approved["status"], approved["reason"]) == ("Approved", "True", "KubectlApprove")
    assert approved["lastUpdateTime"] and approved["lastTransitionTime"]
    (denied,) = get(apiserver, "deny-1")["status"]["conditions"]
    assert (denied["type"], denied["reason"]) == ("Denied", "KubectlDeny")
    table = {r[0]: r[-1] for r in rows(kubectl.ok("get", "csr", "approve-1", "deny-1"))[1:]}
    assert table == {"approve-1": "Approved", "deny-1": "Denied"}
    code, _, err = kubectl.run("certificate", "deny", "approve-1")
    assert code != 0 and "is already Approved" in err


def test_approval_rules(apiserver: RunningApiServer, kubectl: Kubectl) -> None:
    create(kubectl, manifest("rules-1"))
    kubectl.ok("certificate", "approve", "rules-1")
    obj = get(apiserver, "rules-1")
    # An Approved condition cannot be removed ...
    removed = {**obj, "status": {"conditions": []}}
    status, answer = call(apiserver, "PUT", f"{PATH}/rules-1/approval", removed)
    assert status == 422
    assert [c["message"] for c in answer["details"]["causes"]] == [
        'Forbidden: updates may not remove a condition of type "Approved"'
    ]
    # ... nor joined by Denied ...
    both = {**obj, "status": {"conditions": [*obj["status"]["conditions"], {"type": "Denied", "status": "True"}]}}
    status, answer = call(apiserver, "PUT", f"{PATH}/rules-1/approval", both)
    assert status == 422 and "mutually exclusive" in answer["details"]["causes"][0]["message"]
    # ... and approval goes through /approval only: the main resource and /status refuse to add it.
    create(kubectl, manifest("rules-2"))
    pending = get(apiserver, "rules-2")
    approving = {**pending, "status": {"conditions": [{"type": "Approved", "status": "True", "reason": "Me"}]}}
    status, answer = call(apiserver, "PUT", f"{PATH}/rules-2/status", approving)
    assert status == 422 and 'may not add a condition of type "Approved"' in answer["details"]["causes"][0]["message"]
    status, kept = call(apiserver, "PUT", f"{PATH}/rules-2", approving)
    assert status == 200 and kept["status"] == {}  # status is ignored on the main resource


def test_status_certificate(apiserver: RunningApiServer, kubectl: Kubectl) -> None:
    create(kubectl, manifest("cert-1"))
    kubectl.ok("certificate", "approve", "cert-1")
    obj = get(apiserver, "cert-1")
    garbage = {**obj, "status": {**obj["status"], "certificate": base64.b64encode(b"not a cert").decode()}}
    status, answer = call(apiserver, "PUT", f"{PATH}/cert-1/status", garbage)
    assert status == 422 and answer["details"]["causes"][0]["field"] == "status.certificate"
    pem = certificate_pem(datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC))
    issued = {**obj, "status": {**obj["status"], "certificate": base64.b64encode(pem).decode()}}
    status, answer = call(apiserver, "PUT", f"{PATH}/cert-1/status", issued)
    assert status == 200, answer
    assert [c["type"] for c in answer["status"]["conditions"]] == ["Approved"]
    assert rows(kubectl.ok("get", "csr", "cert-1"))[1][-1] == "Approved,Issued"
    other = certificate_pem(datetime.datetime(2101, 1, 1, tzinfo=datetime.UTC))
    again = {**answer, "status": {**answer["status"], "certificate": base64.b64encode(other).decode()}}
    status, answer = call(apiserver, "PUT", f"{PATH}/cert-1/status", again)
    assert status == 422
    assert answer["details"]["causes"][0]["message"] == "Forbidden: updates may not modify existing certificate content"


# -- the controllers ----------------------------------------------------------------------------------


def _options(server: RunningApiServer, duration_s: float = 2 * 86400) -> dict[str, Any]:
    return {
        "cluster-signing-cert-file": str(server.pki.ca_cert),
        "cluster-signing-key-file": str(server.pki.ca_key),
        "cluster-signing-duration": duration_s,
    }


def _issued(client: ApiClient, name: str) -> Any:
    async def probe() -> x509.Certificate | None:
        obj = await client.get(CERTIFICATESIGNINGREQUESTS, name)
        pem = (obj.get("status") or {}).get("certificate")
        return x509.load_pem_x509_certificate(base64.b64decode(pem)) if pem else None

    return probe


async def test_controllers_approve_and_sign(apiserver: RunningApiServer, kubectl: Kubectl) -> None:
    ca = x509.load_pem_x509_certificate(apiserver.pki.ca_cert.read_bytes())
    async with running_manager(apiserver.kubeconfig, ["csrapproving", "csrsigning"], options=_options(apiserver)) as (
        client,
        _,
    ):
        # A kubelet client request: approved by the controller (nodeclient SAR), signed for its lifetime.
        create(kubectl, manifest("sign-kubelet", expirationSeconds=3600))
        cert = await eventually(_issued(client, "sign-kubelet"), "sign-kubelet issued")
        cert.verify_directly_issued_by(ca)
        assert cert.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(hours=1, minutes=5)
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.CLIENT_AUTH
        ]
        (approved,) = (await client.get(CERTIFICATESIGNINGREQUESTS, "sign-kubelet"))["status"]["conditions"]
        assert (approved["reason"], approved["message"]) == (
            "AutoApproved",
            "Auto approving kubelet client certificate after SubjectAccessReview.",
        )
        # A user's client certificate: approved by hand, capped by --cluster-signing-duration.
        create(kubectl, manifest("sign-user", request_pem("jane", ("team",)), CLIENT_SIGNER, ("client auth",)))
        kubectl.ok("certificate", "approve", "sign-user")
        cert = await eventually(_issued(client, "sign-user"), "sign-user issued")
        cert.verify_directly_issued_by(ca)
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=2)
        # A kubelet-client request with another subject is accepted by the API, never auto-approved,
        # and fails at the signer once approved by hand, as upstream.
        create(kubectl, manifest("sign-wrong", request_pem("system:node:n1", ("evil",))))
        kubectl.ok("certificate", "approve", "sign-wrong")

        async def failed() -> dict[str, Any] | None:
            obj = await client.get(CERTIFICATESIGNINGREQUESTS, "sign-wrong")
            return next((c for c in obj["status"]["conditions"] if c["type"] == "Failed"), None)

        condition = await eventually(failed, "sign-wrong failed")
        assert (condition["reason"], condition["message"]) == (
            "SignerValidationFailure",
            "subject organization is not system:nodes",
        )
        assert rows(kubectl.ok("get", "csr", "sign-wrong"))[1][-1] == "Approved,Failed"
        # Other signers are left alone.
        create(kubectl, manifest("sign-custom", signer="example.com/custom"))
        kubectl.ok("certificate", "approve", "sign-custom")
        create(kubectl, manifest("sign-marker", request_pem("marker", ("team",)), CLIENT_SIGNER, ("client auth",)))
        kubectl.ok("certificate", "approve", "sign-marker")
        await eventually(_issued(client, "sign-marker"), "sign-marker issued")
        assert "certificate" not in (await client.get(CERTIFICATESIGNINGREQUESTS, "sign-custom"))["status"]


async def _whoami(kubeconfig: Path) -> dict[str, Any]:
    node = ApiClient(ClientConfig.from_kubeconfig(kubeconfig))
    try:
        _, _, body = await node.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body=b'{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}',
            headers={"Content-Type": "application/json"},
        )
    finally:
        await node.close()
    info: dict[str, Any] = json.loads(body)["status"]["userInfo"]
    return info


async def _requests_of(client: ApiClient, username: str) -> list[dict[str, Any]]:
    listed = await client.list(CERTIFICATESIGNINGREQUESTS)
    return [c for c in listed["items"] if c["spec"].get("username") == username]


async def test_kubelet_tls_bootstrap(apiserver: RunningApiServer, tmp_path: Path) -> None:
    token = "csrtst.0123456789abcdef"
    admin = ApiClient(ClientConfig.from_kubeconfig(apiserver.kubeconfig))
    try:
        await admin.create(SECRETS, token_secret(token, expiration=rfc3339(time.time() + 3600)), NAMESPACE)
        await ensure_bootstrap_rbac(admin)  # what skiff up does: bootstrappers may post CSRs and be auto-approved
    finally:
        await admin.close()
    bootstrap = ClientConfig(server=apiserver.url, ca_file=str(apiserver.pki.ca_cert), token=token)
    root = tmp_path / "kubelet"
    paths = Paths(root)
    async with running_manager(apiserver.kubeconfig, ["csrapproving", "csrsigning"], options=_options(apiserver)) as (
        client,
        _,
    ):
        # First start: the token buys a certificate through an auto-approved CSR.
        kubeconfig = await ensure_client_certificate(root, "boot-node", bootstrap, timeout_s=60)
        (first,) = await _requests_of(client, "system:bootstrap:csrtst")
        assert first["metadata"]["name"].startswith("node-csr-")
        assert [(c["type"], c["message"]) for c in first["status"]["conditions"]] == [
            ("Approved", "Auto approving kubelet client certificate after SubjectAccessReview.")
        ]
        assert kubeconfig == paths.kubeconfig and kubeconfig.stat().st_mode & 0o777 == 0o600
        assert paths.current.stat().st_mode & 0o777 == 0o600
        users = yaml.safe_load(kubeconfig.read_text())["users"]
        pem = str(paths.current)
        assert users == [{"name": "default-auth", "user": {"client-certificate": pem, "client-key": pem}}]
        info = await _whoami(kubeconfig)
        assert info["username"] == "system:node:boot-node" and "system:nodes" in info["groups"]
        # A restart reuses the certificate: no new request, the same file.
        before = paths.current.read_bytes()
        await ensure_client_certificate(root, "boot-node", bootstrap, timeout_s=5)
        assert paths.current.read_bytes() == before
        assert len(await _requests_of(client, "system:bootstrap:csrtst")) == 1
        # A certificate past 80% of its life is renewed by the node itself (selfnodeclient), not the token.
        key = ec.generate_private_key(ec.SECP256R1())
        authority = Authority.load(apiserver.pki.ca_cert, apiserver.pki.ca_key)
        old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=50)
        request = x509.load_pem_x509_csr(make_request(key, "boot-node"))
        due = sign(authority, request, ["digital signature", "client auth"], datetime.timedelta(hours=1), old)
        store_certificate(paths, due, key)
        await ensure_client_certificate(root, "boot-node", bootstrap, timeout_s=60)
        (renewal,) = await _requests_of(client, "system:node:boot-node")
        assert renewal["status"]["conditions"][0]["message"] == (
            "Auto approving self kubelet client certificate after SubjectAccessReview."
        )
        renewed = x509.load_pem_x509_certificate(paths.current.read_bytes())
        assert renewed.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=1)
        assert (await _whoami(kubeconfig))["username"] == "system:node:boot-node"


async def test_cleaner_removes_old_requests(apiserver: RunningApiServer, kubectl: Kubectl) -> None:
    create(kubectl, manifest("gc-pending"))
    create(kubectl, manifest("gc-denied"))
    kubectl.ok("certificate", "deny", "gc-denied")
    create(kubectl, manifest("gc-issued"))
    kubectl.ok("certificate", "approve", "gc-issued")
    obj = get(apiserver, "gc-issued")
    pem = certificate_pem(datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30))
    obj["status"]["certificate"] = base64.b64encode(pem).decode()
    assert call(apiserver, "PUT", f"{PATH}/gc-issued/status", obj)[0] == 200
    clock = FakeClock(time.time())
    start = clock.now()

    async def exists(client: ApiClient, name: str) -> bool:
        try:
            await client.get(CERTIFICATESIGNINGREQUESTS, name)
        except ApiError as err:
            if err.code == 404:
                return False
            raise
        return True

    async with running_manager(apiserver.kubeconfig, ["csrcleaner"], clock=clock) as (client, _):
        # The clock moves ten minutes per look: an hour after their decision, denied and issued requests go ...
        async def decided_gone() -> bool:
            clock.advance(600)
            return not (await exists(client, "gc-denied") or await exists(client, "gc-issued"))

        await eventually(decided_gone, "denied and issued requests cleaned")
        assert 3600 < clock.now() - start < 24 * 3600
        assert await exists(client, "gc-pending")

        # ... and a pending one after a day.
        async def pending_gone() -> bool:
            clock.advance(3600)
            return not await exists(client, "gc-pending")

        await eventually(pending_gone, "pending request cleaned")
        assert clock.now() - start > 24 * 3600
