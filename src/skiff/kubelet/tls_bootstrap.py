"""Kubelet TLS bootstrapping: trade a bootstrap token for the node's own client certificate.

Upstream: pkg/kubelet/certificate/bootstrap (LoadClientCert) and client-go's
util/certificate/csr (RequestCertificate, WaitForCertificate).  For a kubelet
started with ``--server`` and ``--token``:

* ``ROOT/pki/kubelet-client-current.pem`` holds the node's certificate and
  key (mode 0600).  While it is valid and less than 80% of its lifetime has
  passed it is used as it is (upstream rotates at a jittered 70-90%);
* otherwise a certificate is requested: the ECDSA P-256 key in
  ``ROOT/pki/kubelet-client.key.tmp`` (made when missing, kept until the
  request succeeds, so a restarted kubelet asks again for the same request)
  signs a CSR for O=system:nodes, CN=system:node:<node>, usages digital
  signature and client auth (key encipherment only for RSA keys), signer
  ``kubernetes.io/kube-apiserver-client-kubelet``.  The CSR is named
  ``node-csr-<digest of public key, subject and usages>``: a second attempt
  finds its first one (AlreadyExists → the stored request, if it is ours);
* the request is made with the current certificate while it is still valid
  (a node renewing itself: the approver's ``selfnodeclient`` path; if that
  does not succeed within a minute the kubelet goes on with the certificate
  it has), else with the bootstrap token (``nodeclient``).  Renewal happens
  at start only: a running kubelet does not rotate its certificate;
* the kubelet then watches the request for up to an hour: Approved and
  issued → the certificate and key are written, the temporary key removed;
  Denied or Failed → ``BootstrapError``;
* ``ROOT/kubelet.kubeconfig`` (0600) names the server, the CA and the
  certificate file as client certificate and key: the token is not in it.

The same pieces, given ``SERVING`` instead of ``CLIENT`` (a ``Kind``: file
names, signer, extended key usage), ask for the kubelet's serving
certificate (``skiff.kubelet.server_certificate``): ``kubelet-server-*``
files, signer ``kubernetes.io/kubelet-serving``, usage server auth, the
node's addresses as SANs, and a ``csr-`` generated name as upstream's
certificate manager gives it (only the bootstrap request has a digested
name).

Blocking work (files, key generation) goes through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from skiff.api import certificate_requests as csrs
from skiff.api.certificates import subject_alt_names, write_atomic
from skiff.client import ApiClient, ApiError, ClientConfig, is_already_exists, is_not_found
from skiff.client.resources import CERTIFICATESIGNINGREQUESTS

log = logging.getLogger(__name__)

PKI_DIR = "pki"
KUBECONFIG = "kubelet.kubeconfig"
#: How long to wait for the certificate (upstream's 3600 s).
WAIT_S = 3600.0
#: Renew once this fraction of the certificate's lifetime has passed.
RENEW_AT = 0.8
#: How long a renewal at start may hold the kubelet up while its current certificate still works.
RENEW_WAIT_S = 60.0
RETRY_S = 2.0

ClientKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class BootstrapError(Exception):
    """The certificate cannot be had: denied, failed, timed out, or a foreign request under our name."""


@dataclass(frozen=True)
class Kind:
    """Which of the kubelet's certificates: its files' prefix (upstream's pairNamePrefix), signer and usage."""

    pair: str
    signer_name: str
    usage: str


CLIENT = Kind("kubelet-client", csrs.KUBE_APISERVER_CLIENT_KUBELET, "client auth")
SERVING = Kind("kubelet-server", csrs.KUBELET_SERVING, "server auth")


@dataclass(frozen=True)
class Paths:
    root: Path
    kind: Kind = CLIENT

    @property
    def current(self) -> Path:
        return self.root / PKI_DIR / f"{self.kind.pair}-current.pem"

    @property
    def tmp_key(self) -> Path:
        return self.root / PKI_DIR / f"{self.kind.pair}.key.tmp"

    @property
    def kubeconfig(self) -> Path:
        return self.root / KUBECONFIG


# -- pure pieces ----------------------------------------------------------------------------------


def is_valid(pem: bytes | None, now: float) -> bool:
    """A certificate that has not expired."""
    cert = csrs.first_certificate(pem) if pem else None
    return cert is not None and cert.not_valid_before_utc.timestamp() <= now < cert.not_valid_after_utc.timestamp()


def needs_certificate(pem: bytes | None, now: float) -> bool:
    """Missing, unreadable, expired, or past RENEW_AT of its lifetime."""
    cert = csrs.first_certificate(pem) if pem else None
    if cert is None or not is_valid(pem, now):
        return True
    start, end = cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
    return now >= start + (end - start) * RENEW_AT


def usages_for(key: ClientKey, kind: Kind = CLIENT) -> list[str]:
    """Digital signature and the kind's usage; key encipherment only with an RSA key (DefaultKubelet*GetUsages)."""
    usages = ["digital signature", kind.usage]
    if isinstance(key, rsa.RSAPrivateKey):
        usages.append("key encipherment")
    return usages


def subject_for(node_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, csrs.NODES_GROUP),
            x509.NameAttribute(NameOID.COMMON_NAME, csrs.NODE_USER_PREFIX + node_name),
        ]
    )


def csr_name(key: ClientKey, node_name: str, usages: list[str]) -> str:
    """digestedName: ``node-csr-`` + base64url(SHA-512/256 of public key, CN, O and usages, '|'-delimited)."""
    digest = hashlib.new("sha512_256")

    def write(data: bytes) -> None:
        digest.update(base64.urlsafe_b64encode(data).rstrip(b"="))
        digest.update(b"|")

    write(key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    write((csrs.NODE_USER_PREFIX + node_name).encode())
    write(csrs.NODES_GROUP.encode())
    for usage in usages:
        write(usage.encode())
    return "node-csr-" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def make_request(key: ClientKey, node_name: str, hosts: Sequence[str] = ()) -> bytes:
    """The PEM CERTIFICATE REQUEST (certutil.MakeCSR): ``hosts`` as DNS and IP SANs, none for a client."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject_for(node_name))
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(subject_alt_names(hosts)), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def request_body(name: str | None, pem: bytes, usages: list[str], kind: Kind = CLIENT) -> dict[str, Any]:
    """The CSR object: named ``name``, or ``csr-`` plus a generated suffix (client-go's RequestCertificate)."""
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name} if name else {"generateName": "csr-"},
        "spec": {"request": base64.b64encode(pem).decode(), "signerName": kind.signer_name, "usages": usages},
    }


def is_ours(stored: dict[str, Any], key: ClientKey, node_name: str, usages: list[str]) -> bool:
    """ensureCompatible: the stored request asks the same signer, for the same subject, key and usages."""
    spec = csrs.spec_of(stored)
    try:
        request = csrs.parse_request(csrs.decode_base64(spec.get("request")))
    except csrs.RequestError:
        return False
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return (
        spec.get("signerName") == csrs.KUBE_APISERVER_CLIENT_KUBELET
        and sorted(spec.get("usages") or []) == sorted(usages)
        and request.subject == subject_for(node_name)
        and request.public_key().public_bytes(*der) == key.public_key().public_bytes(*der)
    )


def issued(csr: dict[str, Any]) -> bytes | None:
    """The certificate once issued; raises BootstrapError for a Denied or Failed request."""
    for condition in csrs.conditions_of(csr):
        kind = condition.get("type")
        if kind in (csrs.DENIED, csrs.FAILED):
            verb = "is denied" if kind == csrs.DENIED else "failed"
            raise BootstrapError(
                f"certificate signing request {verb}, reason: {condition.get('reason', '')}, "
                f"message: {condition.get('message', '')}"
            )
    if csrs.is_approved(csr) and csrs.is_issued(csr):
        return csrs.certificate_of(csr)
    return None


def kubeconfig_document(server: str, ca_file: str | None, pem: Path) -> dict[str, Any]:
    """writeKubeconfigFromBootstrapping: the server and CA, the certificate file as credentials."""
    cluster: dict[str, Any] = {"server": server}
    if ca_file:
        cluster["certificate-authority"] = str(Path(ca_file).resolve())
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": cluster}],
        "users": [{"name": "default-auth", "user": {"client-certificate": str(pem), "client-key": str(pem)}}],
        "contexts": [
            {
                "name": "default-context",
                "context": {"cluster": "default-cluster", "user": "default-auth", "namespace": "default"},
            }
        ],
        "current-context": "default-context",
    }


# -- files ----------------------------------------------------------------------------------------


def read_optional(path: Path) -> bytes | None:
    """The file's bytes, None when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def load_or_make_key(path: Path) -> ClientKey:
    """keyutil.LoadOrGenerateKeyFile: the key in ``path``, or a new ECDSA P-256 key written there (0600)."""
    data = read_optional(path)
    if data:
        key = serialization.load_pem_private_key(data, password=None)
        if isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            return key
        log.warning("kubelet: %s holds an unsupported key; making a new one", path)
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_atomic(path, pem, 0o600)
    return key


def store_certificate(paths: Paths, cert_pem: bytes, key: ClientKey) -> None:
    """Certificate then key in one 0600 file, atomically; the temporary key is dropped."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    paths.current.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(paths.current, cert_pem.rstrip(b"\n") + b"\n" + key_pem, 0o600)
    paths.tmp_key.unlink(missing_ok=True)


def write_kubeconfig(paths: Paths, server: str, ca_file: str | None) -> Path:
    text = yaml.safe_dump(kubeconfig_document(server, ca_file, paths.current.resolve()))
    paths.root.mkdir(parents=True, exist_ok=True)
    write_atomic(paths.kubeconfig, text.encode(), 0o600)
    return paths.kubeconfig


# -- the exchange ---------------------------------------------------------------------------------


async def ensure_client_certificate(
    root: Path, node_name: str, bootstrap: ClientConfig, *, timeout_s: float = WAIT_S
) -> Path:
    """The kubelet's kubeconfig (``ROOT/kubelet.kubeconfig``), requesting a certificate first if needed."""
    paths = Paths(root)
    current = await asyncio.to_thread(read_optional, paths.current)
    now = time.time()
    if needs_certificate(current, now):
        if is_valid(current, now):
            await _renew(paths, node_name, bootstrap, min(timeout_s, RENEW_WAIT_S))
        elif not bootstrap.token:
            raise BootstrapError(f"{paths.current} is missing or expired and no bootstrap token was given")
        else:
            await _obtain(paths, node_name, bootstrap, timeout_s)
    return await asyncio.to_thread(write_kubeconfig, paths, bootstrap.server, bootstrap.ca_file)


async def _renew(paths: Paths, node_name: str, bootstrap: ClientConfig, timeout_s: float) -> None:
    """Renewal by the node itself, with its current certificate; while it fails, that certificate still serves."""
    own = ClientConfig(
        server=bootstrap.server, ca_file=bootstrap.ca_file, cert_file=str(paths.current), key_file=str(paths.current)
    )
    try:
        await _obtain(paths, node_name, own, timeout_s)
    except (BootstrapError, ApiError, OSError, aiohttp.ClientError) as err:
        log.warning("kubelet: renewing the client certificate failed (%s); keeping the current one", err)


async def _obtain(paths: Paths, node_name: str, credentials: ClientConfig, timeout_s: float) -> None:
    """Request a certificate with ``credentials`` and store it (TimeoutError after ``timeout_s``)."""
    async with ApiClient(credentials, user_agent="skiff-kubelet-bootstrap") as client:
        await obtain_certificate(client, paths, node_name, timeout_s)


async def obtain_certificate(
    client: ApiClient, paths: Paths, node_name: str, timeout_s: float, hosts: Sequence[str] = ()
) -> None:
    """Request a certificate of ``paths.kind`` through ``client`` and store it (TimeoutError after ``timeout_s``)."""
    key = await asyncio.to_thread(load_or_make_key, paths.tmp_key)
    cert = await asyncio.wait_for(request_certificate(client, key, node_name, paths.kind, hosts), timeout_s)
    await asyncio.to_thread(store_certificate, paths, cert, key)
    log.info("kubelet: %s certificate for system:node:%s written to %s", paths.kind.usage, node_name, paths.current)


async def request_certificate(
    client: ApiClient, key: ClientKey, node_name: str, kind: Kind = CLIENT, hosts: Sequence[str] = ()
) -> bytes:
    """RequestCertificate + WaitForCertificate: create (or find) our CSR, then wait for its certificate."""
    usages = usages_for(key, kind)
    name = csr_name(key, node_name, usages) if kind == CLIENT else None
    body = request_body(name, await asyncio.to_thread(make_request, key, node_name, hosts), usages, kind)
    stored = await _create_or_find(client, body, key, node_name, usages)
    name = str(stored["metadata"]["name"])
    log.info("kubelet: waiting for certificate signing request %s to be approved and issued", name)
    return await _wait_for_certificate(client, name, str(stored["metadata"].get("uid", "")), stored)


async def _create_or_find(
    client: ApiClient, body: dict[str, Any], key: ClientKey, node_name: str, usages: list[str]
) -> dict[str, Any]:
    name = body["metadata"].get("name")
    while True:
        try:
            return await client.create(CERTIFICATESIGNINGREQUESTS, body)
        except ApiError as err:
            if not (is_already_exists(err) and name):  # a generated name is never found again
                raise
        except (aiohttp.ClientError, OSError) as err:  # the API server is not up yet: upstream waits too
            log.info("kubelet: cannot reach the API server (%s); retrying", err)
            await asyncio.sleep(RETRY_S)
            continue
        try:
            stored = await client.get(CERTIFICATESIGNINGREQUESTS, name)
        except ApiError as err:
            if is_not_found(err):
                continue  # deleted in between: create it again
            raise
        if not is_ours(stored, key, node_name, usages):
            raise BootstrapError(f"retrieved csr {name!r} is not compatible with this kubelet's request")
        return stored


async def _wait_for_certificate(client: ApiClient, name: str, uid: str, csr: dict[str, Any]) -> bytes:
    """Follow the request until it is issued (BootstrapError once denied, failed, deleted or replaced)."""
    while True:
        if uid and csr["metadata"].get("uid") != uid:
            raise BootstrapError(f"certificate signing request {name} was replaced by another one")
        cert = issued(csr)
        if cert:
            return cert
        try:
            csr = await _next_state(client, name, csr)
        except (aiohttp.ClientError, OSError) as err:
            log.info("kubelet: watch of %s broke (%s); retrying", name, err)
            await asyncio.sleep(RETRY_S)


async def _next_state(client: ApiClient, name: str, csr: dict[str, Any]) -> dict[str, Any]:
    """The request's next state: the first change a watch from its version reports, else a fresh read."""
    version = str(csr["metadata"].get("resourceVersion") or "")
    try:
        async for event in client.watch(
            CERTIFICATESIGNINGREQUESTS, field_selector=f"metadata.name={name}", resource_version=version,
            timeout_seconds=300,
        ):  # fmt: skip
            if event.type == "DELETED":
                raise BootstrapError(f"certificate signing request {name} was deleted")
            if event.type in ("ADDED", "MODIFIED"):
                return event.object
    except ApiError as err:
        if err.code != 410:
            raise
    try:
        return await client.get(CERTIFICATESIGNINGREQUESTS, name)
    except ApiError as err:
        if is_not_found(err):
            raise BootstrapError(f"certificate signing request {name} was deleted") from None
        raise
