"""The kubelet's serving certificate from the cluster CA: ``--rotate-server-certificates``.

Upstream: pkg/kubelet/certificate (NewKubeletServerCertificateManager) on
client-go's util/certificate manager, turned on by ``serverTLSBootstrap``
(``--rotate-server-certificates``).  Upstream leaves it off by default; Skiff
turns it on for a kubelet that joins with a bootstrap token (skiff.cli.kubelet),
so that an API server verifying kubelets (``--kubelet-certificate-authority``)
reaches the joined node's logs, exec and port-forward.

* What is asked for: CN=system:node:<node>, O=system:nodes; the SANs
  upstream's addressesToHostnamesAndIPs takes from the node's status addresses
  (InternalIP, ExternalIP, and a Hostname that is an IP → IP SANs; Hostname,
  InternalDNS, ExternalDNS → DNS SANs; deduplicated, DNS names then IPs, each
  sorted), here the node IP and the node name (skiff.kubelet.node
  ``node_addresses``); usages digital signature and server auth (key
  encipherment too for an RSA key); signer ``kubernetes.io/kubelet-serving``.
  It is posted as the node itself, with the client certificate the kubelet
  runs with, under a generated ``csr-`` name.  The pieces are
  skiff.kubelet.tls_bootstrap's, given its ``SERVING`` kind.
* ``ROOT/pki/kubelet-server-current.pem`` (certificate then key, 0600) holds
  the result, as upstream's file store names it.
* At start (``initial``): a stored certificate that is valid is served.  It
  is kept without a request while less than 80% of its lifetime has passed
  and it is for exactly this subject and these SANs (upstream rotates when
  the template changes); otherwise one request is made in the background
  (``obtain``) and the kubelet does not wait for it.  Until it is issued the
  kubelet serves what it has: the stored certificate while valid, else
  ``--tls-cert-file``, else its self-signed one (skiff.kubelet.serving_cert).
  Upstream serves nothing meanwhile (TLS handshakes fail: "no serving
  certificate available for the kubelet").  The fallback changes nothing for
  an API server that verifies kubelets, which refuses it just the same, and
  keeps the API up for clients that do not verify.  Not waiting is needed
  here: the Node is registered once the server is up (its port goes into the
  Node), and the approver checks the SANs against the Node's addresses.
* The wait lasts up to an hour (``WAIT_S``), as the client certificate's.
  Denied, Failed, timed out or an API error → a warning; the kubelet goes on
  serving what it has and asks again at its next start.  Issued → the file
  is written and the server switches to it for new connections, without a
  restart (``KubeletServer.use_certificate``).  A running kubelet does not
  rotate it again, as for the client certificate.

Upstream never approves these requests by itself: an administrator does
(``kubectl certificate approve``).  Skiff's csrapproving controller approves
a node's own request for its own loopback addresses and names
(skiff.controllers.csrapproving).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509

from skiff.api import certificate_requests as csrs
from skiff.api.certificates import normal_host
from skiff.client import ApiClient, ApiError
from skiff.kubelet.node import node_addresses
from skiff.kubelet.tls_bootstrap import (
    SERVING,
    WAIT_S,
    BootstrapError,
    Paths,
    is_valid,
    needs_certificate,
    obtain_certificate,
    read_optional,
    subject_for,
)

log = logging.getLogger(__name__)

IP_TYPES = ("InternalIP", "ExternalIP")
DNS_TYPES = ("InternalDNS", "ExternalDNS")
Files = tuple[Path, Path]


def serving_hosts(addresses: Sequence[Mapping[str, Any]]) -> list[str]:
    """addressesToHostnamesAndIPs: the SANs for a node's status addresses, DNS names then IPs, each sorted."""
    names: set[str] = set()
    ips: set[str] = set()
    for address in addresses:
        kind, value = address.get("type"), str(address.get("address") or "")
        if not value:
            continue
        try:
            ip: str | None = str(ipaddress.ip_address(value))
        except ValueError:
            ip = None
        if ip and (kind == "Hostname" or kind in IP_TYPES):
            ips.add(ip)
        elif kind == "Hostname" or kind in DNS_TYPES:
            names.add(value)
    return sorted(names) + sorted(ips)


def names_of(cert: x509.Certificate) -> set[str]:
    """The certificate's DNS and IP SANs, IPs in canonical text."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(san.get_values_for_type(x509.DNSName)) | {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


def satisfies(pem: bytes | None, node_name: str, hosts: Sequence[str], now: float) -> bool:
    """Kept without a request: before 80% of its lifetime, for this node's subject and exactly ``hosts``."""
    if needs_certificate(pem, now):
        return False
    cert = csrs.first_certificate(pem or b"")
    return (
        cert is not None
        and cert.subject == subject_for(node_name)
        and names_of(cert) == {normal_host(h) for h in hosts}
    )


class ServerCertificate:
    """One node's CA-signed serving certificate in ``ROOT/pki`` (see the module docstring)."""

    def __init__(self, root: Path, node_name: str, hosts: Sequence[str]) -> None:
        self.paths = Paths(root, SERVING)
        self.node_name = node_name
        self.hosts = list(hosts)

    @classmethod
    def for_node(cls, root: Path, node_name: str, node_ip: str) -> ServerCertificate:
        return cls(root, node_name, serving_hosts(node_addresses(node_ip, node_name)))

    @property
    def files(self) -> Files:
        return self.paths.current, self.paths.current

    async def initial(self, fallback: Files | None) -> tuple[Files | None, bool]:
        """What to serve at start (the stored certificate while valid, else ``fallback``) and whether to ask."""
        pem = await asyncio.to_thread(read_optional, self.paths.current)
        now = time.time()
        serve = self.files if is_valid(pem, now) else fallback
        return serve, not satisfies(pem, self.node_name, self.hosts, now)

    async def obtain(self, client: ApiClient, timeout_s: float = WAIT_S) -> Files | None:
        """One request as the node (``client``): the stored files once issued, None (logged) when none came."""
        try:
            await obtain_certificate(client, self.paths, self.node_name, timeout_s, self.hosts)
        except (BootstrapError, ApiError, OSError, aiohttp.ClientError) as err:  # OSError: TimeoutError too
            log.warning("kubelet: no serving certificate from the cluster CA (%s); serving the current one", err)
            return None
        return self.files
