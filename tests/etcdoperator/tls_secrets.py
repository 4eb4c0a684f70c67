"""Certificates for an EtcdCluster's static TLS, named as upstream's TLS guide names them, made with ``cryptography``.

One CA signs everything (upstream allows one CA per secret; one is enough to test).
The server certificate names ``*.<cluster>.<ns>.svc`` and ``<cluster>-client.<ns>.svc``; the peer
certificate ``*.<cluster>.<ns>.svc.cluster.local``; both also carry the IP SAN 127.0.0.1, because
etcd 3.4/3.5 check a client certificate's SANs against the address it connects from, and pods on
one machine connect from 127.0.0.1.  The operator's client certificate has no SANs (so nothing to check).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pair:
    cert: bytes
    key: bytes


@dataclass(frozen=True)
class ClusterCerts:
    ca: bytes
    server: Pair
    peer: Pair
    operator: Pair

    def secrets(self) -> dict[str, dict[str, bytes]]:
        """Secret name -> {file name: PEM}, upstream's file names."""
        return {
            "etcd-peer-tls": {"peer.crt": self.peer.cert, "peer.key": self.peer.key, "peer-ca.crt": self.ca},
            "etcd-server-tls": {
                "server.crt": self.server.cert,
                "server.key": self.server.key,
                "server-ca.crt": self.ca,
            },
            "etcd-operator-tls": {
                "etcd-client.crt": self.operator.cert,
                "etcd-client.key": self.operator.key,
                "etcd-client-ca.crt": self.ca,
            },
        }


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, common_name: str, dns: list[str], server: bool
) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = _builder(_name(common_name), ca_name, key.public_key())
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if dns:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Pair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_cluster_certs(cluster: str, namespace: str) -> ClusterCerts:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("etcd test CA")
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    svc = f"{cluster}.{namespace}.svc"
    server = _leaf(ca_key, ca_name, "etcd server", [f"*.{svc}", f"{cluster}-client.{namespace}.svc", "localhost"], True)
    peer = _leaf(ca_key, ca_name, "etcd peer", [f"*.{svc}", f"*.{svc}.cluster.local"], True)
    operator = _leaf(ca_key, ca_name, "etcd operator", [], False)
    return ClusterCerts(ca.public_bytes(serialization.Encoding.PEM), server, peer, operator)
