"""``skiff proxy`` against a real ``skiff apiserver``: real listeners, real backends, real DNS queries.

One apiserver and one proxy per module; each test makes its own Service and
EndpointSlice (by hand: no controller-manager here) pointing at backend
processes on loopback addresses, then talks to the Service's addresses.
"""

from __future__ import annotations

import random
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from apiserver_harness import RunningApiServer, running_apiserver
from dnslib import QTYPE, RCODE, DNSRecord  # type: ignore[import-untyped]
from proxy_harness import Api, RunningProxy, backends, random_net, running_proxy, wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    service_range = random_net(random.randint(230, 239)) + ".0/24"
    with running_apiserver(tmp_path_factory.mktemp("proxy-api"), "--service-cluster-ip-range", service_range) as s:
        yield s


@pytest.fixture(scope="module")
def proxy(server: RunningApiServer, api: Api, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProxy]:
    """The proxy is not told its node IP: it serves NodePorts on the Nodes' InternalIPs (one Node here)."""
    node_ip = random_net(random.randint(200, 209)) + ".1"
    lb_range = random_net(random.randint(210, 219)) + ".0/24"
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "proxy-node"},
        "status": {"addresses": [{"type": "InternalIP", "address": node_ip}, {"type": "Hostname", "address": "x"}]},
    }
    api.call("POST", "/api/v1/nodes", node)
    base = tmp_path_factory.mktemp("proxy")
    with running_proxy(server, base, node_ip, lb_range, pass_node_ip=False) as running:
        wait_for(lambda: get(*running.healthz, path="/readyz")[0] == 200, "proxy ready")
        yield running


@pytest.fixture(scope="module")
def api(server: RunningApiServer) -> Api:
    return Api(server)


@pytest.fixture
def backend_net() -> str:
    return random_net(random.randint(100, 149))


def get(host: str, port: int, source: str | None = None, path: str = "/") -> tuple[int, str]:
    """One HTTP/1.0 GET over a raw socket (closed on every path; http.client leaks its file on resets)."""
    with socket.create_connection((host, port), timeout=5, source_address=(source, 0) if source else None) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: service\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head:
        raise ConnectionResetError("closed without a response")
    return int(head.split(b" ", 2)[1]), body.decode()


def answers(host: str, port: int, source: str | None = None, count: int = 8) -> list[str]:
    out = []
    for _ in range(count):
        status, body = get(host, port, source)
        assert status == 200
        out.append(body)
    return out


def ready_ep(ip: str, ready: bool = True, **extra: Any) -> dict[str, Any]:
    return {"addresses": [ip], "conditions": {"ready": ready, "serving": ready, "terminating": False}, **extra}


HTTP_PORTS = [{"name": "http", "port": 8080, "protocol": "TCP"}]
HTTP_SPEC = {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}


def test_cluster_ip_balances_and_follows_readiness(api: Api, proxy: RunningProxy, backend_net: str) -> None:
    a, b = f"{backend_net}.1", f"{backend_net}.2"
    with backends("http", [("a", a, 8080), ("b", b, 8080)]):
        vip = api.create_service("web", HTTP_SPEC)["spec"]["clusterIP"]
        api.put_slice("web", HTTP_PORTS, [ready_ep(a)])
        wait_for(lambda: get(vip, 80) == (200, "a"), "request through the cluster IP")

        api.put_slice("web", HTTP_PORTS, [ready_ep(a), ready_ep(b)])
        wait_for(lambda: set(answers(vip, 80)) == {"a", "b"}, "both backends answering")

        api.put_slice("web", HTTP_PORTS, [ready_ep(a, ready=False), ready_ep(b)])
        wait_for(lambda: set(answers(vip, 80)) == {"b"}, "only the ready backend answering")

        api.put_slice("web", HTTP_PORTS, [ready_ep(a, ready=False), ready_ep(b, ready=False)])

        def rejected() -> bool:
            """Accepted, then reset before a byte is exchanged (raw socket: http.client leaks one here)."""
            with socket.create_connection((vip, 80), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                try:
                    return sock.recv(1024) == b""
                except ConnectionResetError:
                    return True

        wait_for(rejected, "connections rejected without ready endpoints")


def test_udp_echo_through_service(api: Api, proxy: RunningProxy, backend_net: str) -> None:
    ip = f"{backend_net}.3"
    with backends("udp", [("u", ip, 5353)]):
        spec = {"ports": [{"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}]}
        vip = api.create_service("echo", spec)["spec"]["clusterIP"]
        api.put_slice("echo", [{"name": "dns", "port": 5353, "protocol": "UDP"}], [ready_ep(ip)])

        def echo() -> bytes:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(1)
                sock.sendto(b"hello", (vip, 53))
                data, addr = sock.recvfrom(1024)
                assert addr == (vip, 53)  # the reply comes from the service address
                return data

        assert wait_for(echo, "UDP echo") == b"u:hello"


def test_node_port(api: Api, proxy: RunningProxy, backend_net: str) -> None:
    ip = f"{backend_net}.4"
    with backends("http", [("np", ip, 8080)]):
        spec = {"type": "NodePort", **HTTP_SPEC}
        node_port = api.create_service("np", spec)["spec"]["ports"][0]["nodePort"]
        api.put_slice("np", HTTP_PORTS, [ready_ep(ip)])
        wait_for(lambda: get(proxy.node_ip, node_port) == (200, "np"), "request through the node port")


def test_external_traffic_policy_local_uses_the_nodes_own_endpoints(
    api: Api, proxy: RunningProxy, backend_net: str
) -> None:
    here, there = f"{backend_net}.12", f"{backend_net}.13"
    with backends("http", [("here", here, 8080), ("there", there, 8080)]):
        spec = {"type": "NodePort", "externalTrafficPolicy": "Local", **HTTP_SPEC}
        created = api.create_service("local", spec)
        vip, node_port = created["spec"]["clusterIP"], created["spec"]["ports"][0]["nodePort"]
        api.put_slice(
            "local",
            HTTP_PORTS,
            [ready_ep(here, nodeName="proxy-node"), ready_ep(there, nodeName="another-node")],
        )
        wait_for(lambda: set(answers(vip, 80)) == {"here", "there"}, "cluster IP balancing over both nodes")
        assert set(answers(proxy.node_ip, node_port)) == {"here"}


def test_load_balancer_gets_an_address_and_serves(api: Api, proxy: RunningProxy, backend_net: str) -> None:
    ip = f"{backend_net}.5"
    with backends("http", [("lb", ip, 8080)]):
        api.create_service("lb", {"type": "LoadBalancer", **HTTP_SPEC})
        api.put_slice("lb", HTTP_PORTS, [ready_ep(ip)])

        def ingress() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = api.get_service("lb")["status"]["loadBalancer"].get("ingress") or []
            return found

        entries = wait_for(ingress, "status.loadBalancer.ingress")
        assert len(entries) == 1
        assert entries[0]["ipMode"] == "VIP"
        assert entries[0]["ip"].startswith(proxy.lb_range.rsplit(".", 1)[0] + ".")
        wait_for(lambda: get(entries[0]["ip"], 80) == (200, "lb"), "request through the load-balancer address")

        api.create_service("lb2", {"type": "LoadBalancer", **HTTP_SPEC})
        second = wait_for(lambda: api.get_service("lb2")["status"]["loadBalancer"].get("ingress"), "second address")
        assert second[0]["ip"] != entries[0]["ip"]


def test_session_affinity_pins_a_client(api: Api, proxy: RunningProxy, backend_net: str) -> None:
    a, b = f"{backend_net}.6", f"{backend_net}.7"
    with backends("http", [("a", a, 8080), ("b", b, 8080)]):
        vip = api.create_service("sticky", {"sessionAffinity": "ClientIP", **HTTP_SPEC})["spec"]["clusterIP"]
        api.put_slice("sticky", HTTP_PORTS, [ready_ep(a), ready_ep(b)])
        wait_for(lambda: get(vip, 80)[0] == 200, "sticky service serving")
        seen = set()
        for client in ("127.0.9.1", "127.0.9.2", "127.0.9.3", "127.0.9.4"):
            replies = set(answers(vip, 80, source=client, count=6))
            assert len(replies) == 1, f"{client} was sent to {replies}"
            seen |= replies
        assert seen == {"a", "b"}  # different clients still spread over both backends


def query(proxy: RunningProxy, name: str, qtype: str, tcp: bool = False) -> DNSRecord:
    raw = DNSRecord.question(name, qtype).send(proxy.dns[0], proxy.dns[1], tcp=tcp, timeout=5)
    return DNSRecord.parse(raw)


def test_cluster_dns(api: Api, proxy: RunningProxy, backend_net: str) -> None:
    vip = api.create_service("named", HTTP_SPEC)["spec"]["clusterIP"]
    api.create_service("db", {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]})
    db0, db1 = f"{backend_net}.10", f"{backend_net}.11"
    api.put_slice(
        "db",
        [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        [ready_ep(db0, hostname="db-0"), ready_ep(db1, hostname="db-1")],
    )

    def a_records(name: str, tcp: bool = False) -> list[str]:
        return sorted(str(rr.rdata) for rr in query(proxy, name, "A", tcp).rr)

    assert wait_for(lambda: a_records("named.default.svc.cluster.local"), "service A record") == [vip]
    assert a_records("named.default.svc.cluster.local", tcp=True) == [vip]
    assert wait_for(lambda: a_records("db.default.svc.cluster.local"), "headless A") == [db0, db1]
    assert a_records("db-1.db.default.svc.cluster.local") == [db1]

    srv = query(proxy, "_http._tcp.named.default.svc.cluster.local", "SRV")
    assert [str(rr.rdata) for rr in srv.rr] == ["0 100 80 named.default.svc.cluster.local."]
    assert [str(rr.rdata) for rr in srv.ar] == [vip]
    headless_srv = sorted(str(rr.rdata) for rr in query(proxy, "_pg._tcp.db.default.svc.cluster.local", "SRV").rr)
    assert headless_srv == [
        "0 50 5432 db-0.db.default.svc.cluster.local.",
        "0 50 5432 db-1.db.default.svc.cluster.local.",
    ]

    reverse = ".".join(reversed(vip.split("."))) + ".in-addr.arpa"
    assert [str(rr.rdata) for rr in query(proxy, reverse, "PTR").rr] == ["named.default.svc.cluster.local."]

    missing = query(proxy, "nothing.default.svc.cluster.local", "A")
    assert missing.header.rcode == RCODE.NXDOMAIN
    assert [QTYPE[rr.rtype] for rr in missing.auth] == ["SOA"]
    assert query(proxy, "named.default.svc.cluster.local", "AAAA").header.rcode == RCODE.NOERROR
    assert query(proxy, "example.com", "A").header.rcode == RCODE.REFUSED

    api.delete("/api/v1/namespaces/default/services/named")
    wait_for(
        lambda: query(proxy, "named.default.svc.cluster.local", "A").header.rcode == RCODE.NXDOMAIN,
        "deleted service gone from DNS",
    )


def test_listeners_follow_port_changes_and_deletion(api: Api, proxy: RunningProxy, backend_net: str) -> None:
    ip = f"{backend_net}.8"

    def refused(port: int) -> bool:
        try:
            socket.create_connection((vip, port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    with backends("http", [("gone", ip, 8080)]):
        vip = api.create_service("gone", HTTP_SPEC)["spec"]["clusterIP"]
        api.put_slice("gone", HTTP_PORTS, [ready_ep(ip)])
        wait_for(lambda: get(vip, 80) == (200, "gone"), "service serving")

        api.patch_service("gone", {"spec": {"ports": [{"name": "http", "port": 81, "targetPort": 8080}]}})
        wait_for(lambda: get(vip, 81) == (200, "gone"), "serving on the new port")
        wait_for(lambda: refused(80), "old port closed")

        api.delete("/api/v1/namespaces/default/services/gone")
        wait_for(lambda: refused(81), "listener closed")


def test_kubernetes_service_reaches_the_apiserver(api: Api, proxy: RunningProxy, server: RunningApiServer) -> None:
    """The default/kubernetes Service (made by the apiserver) proxies TLS to the API server itself."""
    vip = api.get_service("kubernetes")["spec"]["clusterIP"]
    context = ssl.create_default_context(cafile=str(server.pki.ca_cert))
    context.check_hostname = False  # the serving cert names the API server's own address

    def readyz() -> bytes:
        with socket.create_connection((vip, 443), timeout=5) as raw, context.wrap_socket(raw) as tls:
            tls.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
            chunks = []
            while chunk := tls.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    assert wait_for(readyz, "TLS through the kubernetes Service").startswith(b"HTTP/1.0 200 OK")
