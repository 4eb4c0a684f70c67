"""Every component of ``skiff up`` runs as itself with least privilege, as kubeadm sets Kubernetes up.

* each component's kubeconfig (``DATA_DIR/<component>.kubeconfig``, 0600) holds a client certificate
  from the cluster CA naming its own user and groups, never ``system:masters``;
* the controllers write as their ServiceAccounts (``--use-service-account-credentials``): in the
  audit log (``DATA_DIR/logs/audit.log``, Metadata level) the pods of a Deployment are created by
  ``system:serviceaccount:kube-system:replicaset-controller``, its ReplicaSet by the
  deployment-controller, the binding by ``system:kube-scheduler``, the Node's status by the node;
* the scheduler's rights are upstream's: ``kubectl auth can-i --as system:kube-scheduler`` says no
  to creating pods and yes to creating ``pods/binding``;
* the kubelet may not label its Node control-plane (NodeRestriction): ``skiff up`` does;
* no component request was refused (no 401/403 in the audit log for anyone but the test's admin);
* every TCP port a component listens on refuses plaintext and answers nothing to the unauthenticated.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import socket
import ssl
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_harness import RunningCluster, cluster, descendants
from cryptography import x509
from cryptography.x509.oid import NameOID
from e2e_manifests import web_deployment

__all__ = ["cluster"]

NAMESPACE = "identities"
ADMIN = "kubernetes-admin"


def client_subject(kubeconfig: dict[str, Any]) -> tuple[str, list[str]]:
    user = kubeconfig["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = sorted(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return str(common[0].value), orgs


def audit_events(c: RunningCluster) -> list[dict[str, Any]]:
    lines = (c.data_dir / "logs" / "audit.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def users_of(events: list[dict[str, Any]], verb: str, resource: str, subresource: str = "") -> set[str]:
    """Who made the successful ``verb`` requests on ``resource[/subresource]`` in the test's namespace."""
    found = set()
    for event in events:
        ref = event.get("objectRef") or {}
        code = (event.get("responseStatus") or {}).get("code", 0)
        if (
            event["verb"] == verb
            and ref.get("resource") == resource
            and ref.get("subresource", "") == subresource
            and ref.get("namespace") == NAMESPACE
            and 200 <= code < 300
        ):
            found.add(event["user"]["username"])
    return found


@pytest.mark.parametrize(
    ("component", "user", "groups"),
    [
        pytest.param("controller-manager", "system:kube-controller-manager", [], id="controller-manager"),
        pytest.param("scheduler", "system:kube-scheduler", [], id="scheduler"),
        pytest.param("kubelet", "system:node:skiff-e2e", ["system:nodes"], id="kubelet"),
        pytest.param("proxy", "system:kube-proxy", [], id="proxy"),
        pytest.param("etcd-operator", "system:skiff-etcd-operator", [], id="etcd-operator"),
    ],
)
def test_each_component_has_its_own_client_certificate(
    cluster: RunningCluster, component: str, user: str, groups: list[str]
) -> None:
    path = cluster.data_dir / f"{component}.kubeconfig"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    assert client_subject(config) == (user, groups)
    assert (
        config["clusters"][0]["cluster"]["server"]
        == yaml.safe_load(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    )
    key = (cluster.data_dir / "pki" / f"{component}.key").stat()
    assert stat.S_IMODE(key.st_mode) == 0o600


def test_controllers_write_as_their_service_accounts(cluster: RunningCluster) -> None:
    cluster.ok("create", "namespace", NAMESPACE)
    cluster.ok("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(web_deployment("who", replicas=2)))
    cluster.ok("rollout", "status", "-n", NAMESPACE, "deployment/who", "--timeout=90s", timeout=120)

    def written() -> dict[str, set[str]] | None:
        events = audit_events(cluster)
        seen = {
            "replicasets": users_of(events, "create", "replicasets"),
            "pods": users_of(events, "create", "pods"),
            "binding": users_of(events, "create", "pods", "binding"),
            "deployment status": users_of(events, "update", "deployments", "status"),
        }
        return seen if all(seen.values()) else None

    seen = cluster.wait_for("the audit log to show the writes", written, timeout=30)
    assert seen == {
        "replicasets": {"system:serviceaccount:kube-system:deployment-controller"},
        "pods": {"system:serviceaccount:kube-system:replicaset-controller"},
        "binding": {"system:kube-scheduler"},
        "deployment status": {"system:serviceaccount:kube-system:deployment-controller"},
    }
    node_writers = {
        e["user"]["username"]
        for e in audit_events(cluster)
        if (e.get("objectRef") or {}).get("resource") == "nodes"
        and (e.get("objectRef") or {}).get("subresource") == "status"
        and e["verb"] in ("patch", "update")
    }
    assert node_writers == {"system:node:skiff-e2e"}
    accounts = json.loads(cluster.ok("get", "serviceaccounts", "-n", "kube-system", "-o", "json"))["items"]
    names = {a["metadata"]["name"] for a in accounts}
    assert {"deployment-controller", "replicaset-controller", "generic-garbage-collector"} <= names


@pytest.mark.parametrize(
    ("verb", "resource", "answer"),
    [
        pytest.param("create", ["pods"], "no", id="no-pods"),
        pytest.param("create", ["pods", "--subresource", "binding"], "yes", id="bindings"),
        pytest.param("update", ["pods", "--subresource", "status"], "yes", id="pod-status"),
        pytest.param("create", ["persistentvolumes"], "no", id="no-volumes"),
    ],
)
def test_scheduler_has_upstreams_rights_only(
    cluster: RunningCluster, verb: str, resource: list[str], answer: str
) -> None:
    """``pods/binding`` is ``pods --subresource binding`` to kubectl (``pods/NAME`` names a pod)."""
    code, out, err = cluster.kubectl("auth", "can-i", "--as", "system:kube-scheduler", verb, *resource)
    assert out.strip() == answer, (code, out, err)


def test_the_node_is_labelled_control_plane_by_skiff_up(cluster: RunningCluster) -> None:
    labels = json.loads(cluster.ok("get", "node", cluster.node_name, "-o", "json"))["metadata"]["labels"]
    assert labels["node-role.kubernetes.io/control-plane"] == ""
    patches = [
        e["user"]["username"]
        for e in audit_events(cluster)
        if (e.get("objectRef") or {}).get("resource") == "nodes"
        and not (e.get("objectRef") or {}).get("subresource")
        and e["verb"] == "patch"
        and (e.get("responseStatus") or {}).get("code") == 200
    ]
    assert ADMIN in patches  # the mark-control-plane step


def test_no_component_request_was_refused(cluster: RunningCluster) -> None:
    refused = sorted(
        {
            (e["user"].get("username", ""), e["verb"], e["requestURI"].split("?")[0], e["responseStatus"]["code"])
            for e in audit_events(cluster)
            if (e.get("responseStatus") or {}).get("code") in (401, 403) and e["user"].get("username") != ADMIN
        }
    )
    assert refused == []


# -- every listening port of every component: no plaintext, nothing for the unauthenticated -----------------

PROXY_HEALTHZ_PORT = 10256  # kube-proxy's default: plain HTTP health for load balancers, as upstream serves it
DATA_PATHS = ("/api/v1/secrets", "/pods", "/metrics", "/v1/snapshots/guess", "/")


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    pid: int
    component: str


def _component_of(pid: int) -> str | None:
    """``proxy``, ``kubelet``… for a Skiff process (``skiff.cli.main <component>``); None for a pod's process."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    if "skiff.cli.main" not in argv:
        return None
    index = argv.index("skiff.cli.main") + 1
    return argv[index] if index < len(argv) else None


def _socket_owners(pids: set[int]) -> dict[str, int]:
    owners: dict[str, int] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    found = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
                    if found:
                        owners[found.group(1)] = pid
    return owners


def _tcp_listeners(table: str, family: int) -> Iterator[tuple[str, int, str]]:
    """(address, port, socket inode) of each LISTEN socket in /proc/net/tcp or tcp6."""
    for line in Path(table).read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] != "0A":
            continue
        hex_address, hex_port = fields[1].split(":")
        raw = bytes.fromhex(hex_address)
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is host order
        address = str(ipaddress.ip_address(socket.inet_ntop(family, raw)))
        yield address, int(hex_port, 16), fields[9]


def component_listeners(c: RunningCluster) -> list[Listener]:
    """Every TCP socket listening in ``skiff up`` or one of its components (not in the pods they run)."""
    pids = {c.proc.pid} | {pid for pid, _ in descendants(c.proc.pid)}
    components = {pid: name for pid in pids if (name := _component_of(pid))}
    owners = _socket_owners(set(components))
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for address, port, inode in _tcp_listeners(table, family):
            if inode in owners:
                mapped = ipaddress.ip_address(address)
                if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped:
                    address = str(mapped.ipv4_mapped)
                found.append(Listener(address, port, owners[inode], components[owners[inode]]))
    return found


def _read_all(conn: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(OSError):  # a reset or a TLS alert ends the answer like a close does
        while chunk := conn.recv(65536):
            data += chunk
    return data


def plaintext_answer(listener: Listener, path: str) -> bytes:
    with socket.create_connection((listener.address, listener.port), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
        return _read_all(conn)


def anonymous_tls_status(listener: Listener, path: str) -> int | None:
    """The HTTP status a TLS client with no credentials gets for ``path``; None when no HTTP answer comes."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only what the server answers matters here, not who it is
    try:
        with (
            socket.create_connection((listener.address, listener.port), timeout=10) as raw,
            context.wrap_socket(raw) as conn,
        ):
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
            answer = _read_all(conn)
    except OSError:  # the handshake was refused (e.g. a client certificate is required)
        return None
    status = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return int(status.group(1)) if status else None


def test_every_component_port_refuses_plaintext_and_the_unauthenticated(cluster: RunningCluster) -> None:
    """Found from /proc, so a listener added later is checked too.

    The exceptions, each as upstream has it: kube-proxy's health port (plain HTTP: health and two counts), Service
    addresses (they carry what their backends speak: DNS on 53, the API server's TLS on 443), and the etcd
    operator's ``/healthz`` and ``/metrics`` (TLS, no credentials, as etcd-operator's and etcd's own).
    """
    listeners = component_listeners(cluster)
    by_component = {listener.component for listener in listeners}
    assert {"up", "kubelet", "proxy", "etcd-operator"} <= by_component, listeners
    service_net = ipaddress.ip_network(cluster.addresses.service_cidr)
    checked = []
    for listener in listeners:
        in_services = ipaddress.ip_address(listener.address) in service_net
        if (listener.address, listener.port) == (cluster.addresses.cluster_dns, 53):
            continue  # the cluster DNS Service: DNS, not HTTP (plaintext DNS, as CoreDNS serves it)
        if listener.component == "proxy" and listener.port == PROXY_HEALTHZ_PORT and not in_services:
            assert plaintext_answer(listener, "/healthz").startswith(b"HTTP/1.1 200 ")
            metrics = plaintext_answer(listener, "/metrics").split(b"\r\n\r\n", 1)[1].decode()
            samples = {line.split()[0] for line in metrics.splitlines() if line and not line.startswith("#")}
            assert samples == {"skiff_proxy_listeners", "skiff_proxy_dns_queries_total"}  # two counts, no names
            for path in set(DATA_PATHS) - {"/metrics"}:
                assert plaintext_answer(listener, path).startswith(b"HTTP/1.1 404 "), (listener, path)
            checked.append(listener)
            continue
        for path in DATA_PATHS:
            answer = plaintext_answer(listener, path)
            assert not answer.startswith(b"HTTP/"), f"{listener} answers plaintext {path}: {answer[:120]!r}"
            status = anonymous_tls_status(listener, path)
            if listener.component == "etcd-operator" and path == "/metrics":
                assert status == 200
                continue
            assert status in (None, 401, 403, 404), f"{listener}: anonymous TLS GET {path} got {status}"
        checked.append(listener)
    print("listeners checked:", sorted((x.component, x.address, x.port) for x in checked))
    assert {x.component for x in checked} >= {"up", "kubelet", "etcd-operator", "proxy"}
