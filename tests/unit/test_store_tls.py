"""TLS on store connections, the pure parts: listen URLs, store URLs, and the store's own PKI.

Behaviour over real connections (etcdctl, real etcd, kubectl) is in
tests/facade/test_facade_tls.py, tests/apiserver/test_etcd_store.py and
tests/apiserver/test_up.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from skiff.apiserver.pki import ensure_etcd_pki, ensure_pki
from skiff.store.open import open_store
from skiff.store.tls import ListenUrl, parse_listen_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("https://127.0.0.1:2379", ListenUrl("127.0.0.1:2379", tls=True), id="https"),
        pytest.param("127.0.0.1:0", ListenUrl("127.0.0.1:0", tls=True), id="bare-means-tls"),
        pytest.param("http://127.0.0.1:2379/", ListenUrl("127.0.0.1:2379", tls=False), id="http-is-plaintext"),
        pytest.param("https://[::1]:2379", ListenUrl("[::1]:2379", tls=True), id="ipv6"),
    ],
)
def test_listen_urls(text: str, expected: ListenUrl) -> None:
    assert parse_listen_url(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", "unix:///tmp/s", "https://host:port", ":2379", "grpc://h:1"])
def test_bad_listen_urls(text: str) -> None:
    with pytest.raises(ValueError, match="expected https://HOST:PORT"):
        parse_listen_url(text)


@pytest.mark.parametrize(
    ("url", "files", "message"),
    [
        pytest.param("etcd://127.0.0.1:1", True, "is plaintext but TLS files were given", id="tls-files-plaintext"),
        pytest.param("http://127.0.0.1:1", True, "is plaintext but TLS files were given", id="tls-files-http"),
        pytest.param("https://127.0.0.1:1,http://127.0.0.1:2", False, "must use TLS, or none", id="mixed"),
        pytest.param("etcd://127.0.0.1:1,https://127.0.0.1:2", False, "must use TLS, or none", id="mixed-plain-first"),
        pytest.param("https://", False, "no etcd endpoints", id="no-endpoints"),
        pytest.param("mysql://x", False, "unknown store URL", id="unknown-scheme"),
    ],
)
async def test_store_urls_refused_before_connecting(tmp_path: Path, url: str, files: bool, message: str) -> None:
    ca = tmp_path / "ca.crt" if files else None
    with pytest.raises(ValueError, match=message):
        await open_store(url, ca_file=ca)


def _usages(path: Path) -> set[x509.ObjectIdentifier]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_etcd_pki_has_its_own_ca_and_is_kept(tmp_path: Path) -> None:
    pki = ensure_etcd_pki(tmp_path, ["127.0.5.1"])
    cluster = ensure_pki(tmp_path)
    assert pki.directory == tmp_path / "pki" / "etcd"
    # Not the cluster CA: certificates it signs (kubelets' through CSRs) must not open the store.
    assert pki.ca_cert.read_bytes() != cluster.ca_cert.read_bytes()
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    assert server.issuer == x509.load_pem_x509_certificate(pki.ca_cert.read_bytes()).subject
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1", "127.0.5.1"}
    assert _usages(pki.server_cert) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _usages(pki.client_cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert pki.ca_key.stat().st_mode & 0o777 == pki.client_key.stat().st_mode & 0o777 == 0o600

    files = (pki.ca_cert, pki.server_cert, pki.client_cert)
    before = [f.read_bytes() for f in files]
    ensure_etcd_pki(tmp_path, ["127.0.5.1"])
    assert [f.read_bytes() for f in files] == before
    ensure_etcd_pki(tmp_path, ["127.0.5.2"])  # a new listen address: only the serving cert is re-issued
    assert [f.read_bytes() == b for f, b in zip(files, before, strict=True)] == [True, False, True]
