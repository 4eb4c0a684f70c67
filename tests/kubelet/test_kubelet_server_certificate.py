"""The kubelet's serving certificate from the cluster CA: what it asks for, when it asks, how it switches.

Pure pieces (SANs from the node's addresses, the request, when a stored
certificate is kept) are table-driven; ``initial`` reads files a test
writes; the switch runs a real KubeletServer on loopback and checks, as an
API server with ``--kubelet-certificate-authority`` would, which certificate
a new TLS connection gets before and after ``use_certificate``.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pod_subresources_fake_kubelet import FakeRuntime

from skiff.api import certificate_requests as csrs
from skiff.controllers.csrsigning import Authority, sign
from skiff.kubelet import tls_bootstrap as tb
from skiff.kubelet.server import KubeletServer
from skiff.kubelet.server_certificate import ServerCertificate, satisfies, serving_hosts

UTC = datetime.UTC
NOW = datetime.datetime.now(UTC)
DAY = datetime.timedelta(days=1)
KEY = ec.generate_private_key(ec.SECP256R1())
HOSTS = ["n1", "127.0.1.2"]


def authority() -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW - 30 * DAY).not_valid_after(NOW + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return Authority(cert, key)


CA = authority()


def issued(
    start: datetime.datetime = NOW, life: datetime.timedelta = 10 * DAY, hosts: list[str] = HOSTS, node: str = "n1"
) -> bytes:
    """What the signer issues for the kubelet's request, valid from ``start`` (plus the 5 minutes' backdate)."""
    request = x509.load_pem_x509_csr(tb.make_request(KEY, node, hosts))
    return sign(CA, request, tb.usages_for(KEY, tb.SERVING), life, start)


@pytest.mark.parametrize(
    ("addresses", "hosts"),
    [
        pytest.param([("InternalIP", "127.0.1.2"), ("Hostname", "n1")], ["n1", "127.0.1.2"], id="skiff-node"),
        pytest.param([("Hostname", "127.0.1.9")], ["127.0.1.9"], id="hostname-that-is-an-ip"),
        pytest.param(
            [("ExternalDNS", "b.example"), ("InternalDNS", "a.example"), ("ExternalIP", "::1"), ("InternalIP", "::1")],
            ["a.example", "b.example", "::1"],
            id="dns-sorted-ips-deduplicated",
        ),
        pytest.param([("InternalIP", "not-an-ip"), ("Hostname", "")], [], id="unusable"),
    ],
)
def test_serving_hosts(addresses: list[tuple[str, str]], hosts: list[str]) -> None:
    assert serving_hosts([{"type": kind, "address": value} for kind, value in addresses]) == hosts


def test_hosts_are_the_nodes_status_addresses(tmp_path: Path) -> None:
    assert ServerCertificate.for_node(tmp_path, "n1", "127.0.1.2").hosts == HOSTS


def test_request_is_a_kubelet_serving_request(tmp_path: Path) -> None:
    usages = tb.usages_for(KEY, tb.SERVING)
    assert usages == ["digital signature", "server auth"]
    assert tb.usages_for(rsa.generate_private_key(65537, 2048), tb.SERVING) == [*usages, "key encipherment"]
    subject = csrs.subject_of(csrs.parse_request(tb.make_request(KEY, "n1", HOSTS)))
    assert (subject.common_name, subject.organizations) == ("system:node:n1", ("system:nodes",))
    assert (subject.dns_names, subject.ip_addresses) == (("n1",), ("127.0.1.2",))
    assert csrs.kubelet_serving_problem(subject, usages) is None
    body = tb.request_body(None, tb.make_request(KEY, "n1", HOSTS), usages, tb.SERVING)
    assert body["metadata"] == {"generateName": "csr-"}
    assert body["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
    paths = tb.Paths(tmp_path, tb.SERVING)
    assert (paths.current.name, paths.tmp_key.name) == ("kubelet-server-current.pem", "kubelet-server.key.tmp")


@pytest.mark.parametrize(
    ("pem", "kept"),
    [
        pytest.param(None, False, id="missing"),
        pytest.param(issued(), True, id="fresh"),
        pytest.param(issued(NOW - 7 * DAY), True, id="under-80-percent"),
        pytest.param(issued(NOW - 9 * DAY), False, id="past-80-percent"),
        pytest.param(issued(NOW - 20 * DAY), False, id="expired"),
        pytest.param(issued(hosts=["n1", "127.0.1.3"]), False, id="another-ip"),
        pytest.param(issued(hosts=["n1"]), False, id="fewer-names"),
        pytest.param(issued(node="n2"), False, id="another-node"),
    ],
)
def test_satisfies(pem: bytes | None, kept: bool) -> None:
    assert satisfies(pem, "n1", HOSTS, NOW.timestamp()) is kept


@pytest.mark.parametrize(
    ("pem", "serves_stored", "asks"),
    [
        pytest.param(None, False, True, id="none-stored"),
        pytest.param(issued(), True, False, id="fresh-reused"),
        pytest.param(issued(NOW - 9 * DAY), True, True, id="due-served-meanwhile"),
        pytest.param(issued(NOW - 20 * DAY), False, True, id="expired-not-served"),
    ],
)
async def test_initial(tmp_path: Path, pem: bytes | None, serves_stored: bool, asks: bool) -> None:
    rotation = ServerCertificate.for_node(tmp_path, "n1", "127.0.1.2")
    if pem is not None:
        tb.store_certificate(rotation.paths, pem, KEY)
    fallback = (tmp_path / "tls.crt", tmp_path / "tls.key")
    serve, due = await rotation.initial(fallback)
    assert serve == (rotation.files if serves_stored else fallback) and due is asks


async def _peer(port: int, verify: bool) -> x509.Certificate:
    """The certificate a new connection gets; with ``verify``, checked against the CA for 127.0.0.1."""
    if verify:
        ctx = ssl.create_default_context(cadata=CA.certificate.public_bytes(serialization.Encoding.PEM).decode())
    else:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    return x509.load_der_x509_certificate(der)


async def test_server_switches_to_the_issued_certificate(tmp_path: Path) -> None:
    server = KubeletServer(FakeRuntime(tmp_path / "pods"), "127.0.0.1", 0, tmp_path / "pki")
    await server.start()
    try:
        first = await _peer(server.port, verify=False)
        assert first.issuer == first.subject  # self-signed meanwhile
        with pytest.raises(ssl.SSLCertVerificationError):
            await _peer(server.port, verify=True)
        rotation = ServerCertificate(tmp_path, "n1", ["n1", "127.0.0.1"])
        tb.store_certificate(rotation.paths, issued(hosts=rotation.hosts), KEY)
        server.use_certificate(*rotation.files)
        served: Any = await _peer(server.port, verify=True)
        served.verify_directly_issued_by(CA.certificate)
        assert served.subject.rfc4514_string() == "CN=system:node:n1,O=system:nodes"
    finally:
        await server.stop()
