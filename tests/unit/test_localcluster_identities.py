"""The component identities ``skiff up`` writes: certificates kept, reissued when due or renamed; 0600 files."""

from __future__ import annotations

import base64
import datetime
import stat
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from skiff.apiserver.pki import ensure_client_cert, ensure_pki
from skiff.localcluster.identities import kubeconfig_path, write_kubeconfigs

SERVER = "https://127.0.0.1:6443"


def subject(cert_pem: bytes) -> tuple[str, list[str]]:
    name = x509.load_pem_x509_certificate(cert_pem).subject
    orgs = sorted(str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value), orgs


def kubeconfig_subject(path: Path) -> tuple[str, list[str]]:
    user = yaml.safe_load(path.read_text())["users"][0]["user"]
    return subject(base64.b64decode(user["client-certificate-data"]))


def test_every_component_gets_its_own_user_and_a_private_kubeconfig(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    written = write_kubeconfigs(tmp_path, SERVER, pki, "node-a")
    assert {name: kubeconfig_subject(path) for name, path in written.items()} == {
        "controller-manager": ("system:kube-controller-manager", []),
        "scheduler": ("system:kube-scheduler", []),
        "kubelet": ("system:node:node-a", ["system:nodes"]),
        "proxy": ("system:kube-proxy", []),
        "etcd-operator": ("system:skiff-etcd-operator", []),
    }
    for name, path in written.items():
        assert path == kubeconfig_path(tmp_path, name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE((pki.directory / f"{name}.key").stat().st_mode) == 0o600
        assert yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"] == SERVER


def test_certificates_are_kept_across_starts_and_the_url_follows_the_server(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    write_kubeconfigs(tmp_path, SERVER, pki, "node-a")
    before = (pki.directory / "scheduler.crt").read_bytes()
    write_kubeconfigs(tmp_path, "https://127.0.0.1:7443", pki, "node-a")
    assert (pki.directory / "scheduler.crt").read_bytes() == before
    config = yaml.safe_load(kubeconfig_path(tmp_path, "scheduler").read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:7443"


def test_a_new_node_name_reissues_the_kubelets_certificate(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    write_kubeconfigs(tmp_path, SERVER, pki, "node-a")
    write_kubeconfigs(tmp_path, SERVER, pki, "node-b")
    assert kubeconfig_subject(kubeconfig_path(tmp_path, "kubelet")) == ("system:node:node-b", ["system:nodes"])


def test_a_certificate_due_for_renewal_is_reissued(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path)
    cert, _ = ensure_client_cert(pki, pki.directory / "proxy", "system:kube-proxy")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:kube-proxy")])
    now = datetime.datetime.now(datetime.UTC)
    expiring = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(hours=1))  # within the renewal day
        .sign(key, hashes.SHA256())
    )
    due = expiring.public_bytes(serialization.Encoding.PEM)
    cert.write_bytes(due)
    ensure_client_cert(pki, pki.directory / "proxy", "system:kube-proxy")
    assert cert.read_bytes() != due
    assert subject(cert.read_bytes()) == ("system:kube-proxy", [])
