"""Skiff's auto-approval of kubelet serving requests: only a node's own request for its own loopback names.

Each case is a request and the Node it names; ``serving_refusal`` either
approves (None) or says why the request stays pending for an administrator.
The requests are the kubelet's own (skiff.kubelet.tls_bootstrap with the
SERVING kind), altered one rule at a time.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from skiff.api import certificate_requests as csrs
from skiff.controllers import csrapproving
from skiff.kubelet import tls_bootstrap as tb

KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(65537, 2048)
NODE = "n1"
USAGES = ["digital signature", "server auth"]


def node(*addresses: tuple[str, str], name: str = NODE) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"addresses": [{"type": kind, "address": value} for kind, value in addresses]},
    }


NODE_OBJ = node(("InternalIP", "127.0.1.2"), ("Hostname", NODE))


def pem(
    hosts: tuple[str, ...] = ("n1", "127.0.1.2"),
    cn: str = "system:node:n1",
    orgs: tuple[str, ...] = ("system:nodes",),
    extra: tuple[x509.GeneralName, ...] = (),
    key: Any = KEY,
) -> bytes:
    """The kubelet's request, or one with another subject or extra SANs."""
    if cn == "system:node:n1" and orgs == ("system:nodes",) and not extra:
        return tb.make_request(key, NODE, hosts)
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    names: list[x509.GeneralName] = [
        *(x509.IPAddress(ipaddress.ip_address(h)) if h[0].isdigit() or ":" in h else x509.DNSName(h) for h in hosts),
        *extra,
    ]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def csr(
    request: bytes | None = None,
    username: str = "system:node:n1",
    groups: tuple[str, ...] = ("system:nodes", "system:authenticated"),
    usages: list[str] = USAGES,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "csr-x"},
        "spec": {
            "request": base64.b64encode(request or pem()).decode(),
            "signerName": csrs.KUBELET_SERVING,
            "usages": usages,
            "username": username,
            "groups": list(groups),
        },
    }


def refusal(obj: dict[str, Any], node_obj: dict[str, Any] | None = NODE_OBJ) -> str | None:
    request = csrs.parse_request(csrs.decode_base64(obj["spec"]["request"]))
    return csrapproving.serving_refusal(obj, csrs.subject_of(request), node_obj)


@pytest.mark.parametrize(
    ("obj", "node_obj"),
    [
        pytest.param(csr(), NODE_OBJ, id="own-ip-and-name"),
        pytest.param(csr(pem(("127.0.1.2",))), NODE_OBJ, id="ip-only"),
        pytest.param(csr(pem(("n1",))), NODE_OBJ, id="name-only"),
        pytest.param(
            csr(pem(("n1", "n1.local", "::1"))),
            node(("InternalIP", "::1"), ("Hostname", "n1.local")),
            id="hostname-address-and-ipv6-loopback",
        ),
        pytest.param(
            csr(pem(("n1", "127.0.1.2"), key=RSA_KEY), usages=["digital signature", "key encipherment", "server auth"]),
            NODE_OBJ,
            id="rsa-with-key-encipherment",
        ),
    ],
)
def test_approved(obj: dict[str, Any], node_obj: dict[str, Any]) -> None:
    assert refusal(obj, node_obj) is None


@pytest.mark.parametrize(
    ("obj", "node_obj", "why"),
    [
        pytest.param(
            csr(pem(("n1", "10.0.0.5"))),
            node(("InternalIP", "10.0.0.5"), ("Hostname", NODE)),
            "IP address 10.0.0.5 is not a loopback address",
            id="non-loopback-ip-even-if-the-node-lists-it",
        ),
        pytest.param(
            csr(pem(("n1", "127.0.1.3"))),
            NODE_OBJ,
            "IP address 127.0.1.3 is not one of node 'n1''s addresses",
            id="another-loopback-ip",
        ),
        pytest.param(
            csr(pem(("n1", "kubernetes.default.svc"))),
            NODE_OBJ,
            "DNS name 'kubernetes.default.svc' is neither node 'n1''s name nor one of its Hostname addresses",
            id="foreign-dns-name",
        ),
        pytest.param(
            csr(pem(("n2",))),
            node(("InternalIP", "127.0.1.2"), ("Hostname", NODE), ("InternalDNS", "n2")),
            "DNS name 'n2' is neither",
            id="dns-name-of-another-address-type",
        ),
        pytest.param(
            csr(username="system:node:n2"),
            NODE_OBJ,
            "requester 'system:node:n2' is not the subject 'system:node:n1'",
            id="another-node-asks",
        ),
        pytest.param(
            csr(username="kubernetes-admin", groups=("system:masters",)),
            NODE_OBJ,
            "requester 'kubernetes-admin' is not a node",
            id="admin-asks",
        ),
        pytest.param(
            csr(username="system:bootstrap:abcdef", groups=("system:bootstrappers",)),
            NODE_OBJ,
            "requester 'system:bootstrap:abcdef' is not a node",
            id="bootstrap-token-asks",
        ),
        pytest.param(
            csr(groups=("system:authenticated",)),
            NODE_OBJ,
            "requester is not in group system:nodes",
            id="not-in-system-nodes",
        ),
        pytest.param(
            csr(usages=["digital signature", "server auth", "client auth"]),
            NODE_OBJ,
            "usages did not match [digital signature key encipherment server auth]",
            id="client-auth-too",
        ),
        pytest.param(
            csr(pem(orgs=("system:nodes", "system:masters"))),
            NODE_OBJ,
            "subject organization is not system:nodes",
            id="extra-organization",
        ),
        pytest.param(
            csr(pem(extra=(x509.RFC822Name("n1@example.com"),))),
            NODE_OBJ,
            "Email subjectAltNames are not allowed",
            id="email-san",
        ),
        pytest.param(
            csr(pem(extra=(x509.UniformResourceIdentifier("spiffe://n1"),))),
            NODE_OBJ,
            "URI subjectAltNames are not allowed",
            id="uri-san",
        ),
        pytest.param(csr(pem(())), NODE_OBJ, "DNS or IP subjectAltName is required", id="no-san"),
        pytest.param(csr(), None, "node 'n1' not found", id="no-node-yet"),
    ],
)
def test_left_pending(obj: dict[str, Any], node_obj: dict[str, Any] | None, why: str) -> None:
    reason = refusal(obj, node_obj)
    assert reason is not None and reason.startswith(why), reason


@pytest.mark.parametrize(
    ("value", "enabled"),
    [
        pytest.param(True, True, id="flag-true"),
        pytest.param(False, False, id="flag-false"),
        pytest.param("false", False, id="option-text-false"),
        pytest.param("true", True, id="option-text-true"),
    ],
)
def test_option(value: Any, enabled: bool) -> None:
    assert csrapproving.is_enabled(value) is enabled


def test_approval_condition_names_the_rule() -> None:
    out = csrapproving.approved(csr(), csrapproving.SERVING_MESSAGE)
    assert out["status"]["conditions"] == [
        {
            "type": "Approved",
            "status": "True",
            "reason": "AutoApproved",
            "message": "Auto approving kubelet serving certificate for the node's own loopback addresses and names.",
        }
    ]
