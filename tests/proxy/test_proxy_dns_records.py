"""Cluster DNS: the record table and the answers built from it (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from dnslib import QTYPE, RCODE, DNSRecord  # type: ignore[import-untyped]

from skiff.proxy.dns_answer import AnswerPolicy, answer, pack_for_udp
from skiff.proxy.dns_records import DnsTable, Record, service_records

ZONE = "cluster.local"


def svc(name: str, cluster_ip: str, ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "prod", "name": name},
        "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": ports, **spec},
    }


def slice_of(service: str, endpoints: list[dict[str, Any]], port: int = 5432) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "prod", "name": f"{service}-1", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": port, "protocol": "TCP"}],
        "endpoints": endpoints,
    }


WEB = svc("web", "127.254.0.10", [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "UDP"}])
DB = svc("db", "None", [{"name": "pg", "port": 5432, "protocol": "TCP"}])
DB_SLICE = slice_of(
    "db",
    [
        {"addresses": ["127.16.0.5"], "hostname": "db-0", "conditions": {"ready": True}},
        {"addresses": ["127.16.0.6"], "conditions": {"ready": True}},
        {"addresses": ["127.16.0.7"], "hostname": "db-2", "conditions": {"ready": False}},
    ],
)


@pytest.fixture
def table() -> DnsTable:
    table = DnsTable(ZONE)
    table.set_service(("prod", "web"), service_records(WEB, [], ZONE))
    table.set_service(("prod", "db"), service_records(DB, [DB_SLICE], ZONE))
    ext = svc("ext", "", [], type="ExternalName", externalName="example.com")
    table.set_service(("prod", "ext"), service_records(ext, [], ZONE))
    return table


def ask(table: DnsTable, name: str, qtype: str) -> DNSRecord:
    request = DNSRecord.question(name, qtype)
    return DNSRecord.parse(answer(DNSRecord.parse(request.pack()), table, AnswerPolicy()).pack())


def rdata(reply: DNSRecord, section: str = "rr") -> list[str]:
    return sorted(str(rr.rdata) for rr in getattr(reply, section))


def test_cluster_ip_service_records() -> None:
    records = service_records(WEB, [], ZONE)
    assert Record("web.prod.svc.cluster.local", "A", "127.254.0.10") in records
    assert Record("10.0.254.127.in-addr.arpa", "PTR", "web.prod.svc.cluster.local") in records
    assert Record("_http._tcp.web.prod.svc.cluster.local", "SRV", (0, 100, 80, "web.prod.svc.cluster.local")) in records
    assert not [r for r in records if r.name.startswith("_._udp")]  # unnamed ports get no SRV name


@pytest.mark.parametrize(
    ("name", "qtype", "rcode", "answers"),
    [
        pytest.param("web.prod.svc.cluster.local", "A", RCODE.NOERROR, ["127.254.0.10"], id="clusterip-A"),
        pytest.param("WEB.Prod.svc.cluster.local.", "A", RCODE.NOERROR, ["127.254.0.10"], id="case-insensitive"),
        pytest.param("web.prod.svc.cluster.local", "AAAA", RCODE.NOERROR, [], id="AAAA-empty"),
        pytest.param(
            "_http._tcp.web.prod.svc.cluster.local",
            "SRV",
            RCODE.NOERROR,
            ["0 100 80 web.prod.svc.cluster.local."],
            id="clusterip-SRV",
        ),
        pytest.param("db.prod.svc.cluster.local", "A", RCODE.NOERROR, ["127.16.0.5", "127.16.0.6"], id="headless-A"),
        pytest.param("db-0.db.prod.svc.cluster.local", "A", RCODE.NOERROR, ["127.16.0.5"], id="hostname-A"),
        pytest.param("127-16-0-6.db.prod.svc.cluster.local", "A", RCODE.NOERROR, ["127.16.0.6"], id="dashed-A"),
        pytest.param("db-2.db.prod.svc.cluster.local", "A", RCODE.NXDOMAIN, [], id="not-ready-hidden"),
        pytest.param(
            "_pg._tcp.db.prod.svc.cluster.local",
            "SRV",
            RCODE.NOERROR,
            ["0 50 5432 127-16-0-6.db.prod.svc.cluster.local.", "0 50 5432 db-0.db.prod.svc.cluster.local."],
            id="headless-SRV",
        ),
        pytest.param("10.0.254.127.in-addr.arpa", "PTR", RCODE.NOERROR, ["web.prod.svc.cluster.local."], id="svc-PTR"),
        pytest.param(
            "5.0.16.127.in-addr.arpa", "PTR", RCODE.NOERROR, ["db-0.db.prod.svc.cluster.local."], id="endpoint-PTR"
        ),
        pytest.param("9.9.9.127.in-addr.arpa", "PTR", RCODE.NXDOMAIN, [], id="unknown-PTR"),
        pytest.param("127-16-0-9.prod.pod.cluster.local", "A", RCODE.NOERROR, ["127.16.0.9"], id="pod-A"),
        pytest.param("127-16-0-999.prod.pod.cluster.local", "A", RCODE.NXDOMAIN, [], id="bad-pod-name"),
        pytest.param("nope.prod.svc.cluster.local", "A", RCODE.NXDOMAIN, [], id="NXDOMAIN"),
        pytest.param("prod.svc.cluster.local", "A", RCODE.NOERROR, [], id="empty-non-terminal"),
        pytest.param("ext.prod.svc.cluster.local", "A", RCODE.NOERROR, ["example.com."], id="ExternalName-CNAME"),
        pytest.param("dns-version.cluster.local", "TXT", RCODE.NOERROR, ['"1.1.0"'], id="schema-version"),
        pytest.param("example.com", "A", RCODE.REFUSED, [], id="outside-refused"),
    ],
)
def test_answers(table: DnsTable, name: str, qtype: str, rcode: int, answers: list[str]) -> None:
    reply = ask(table, name, qtype)
    assert reply.header.rcode == rcode
    assert rdata(reply) == answers
    if rcode != RCODE.REFUSED:
        assert reply.header.aa == 1
        assert all(rr.ttl == 30 for rr in reply.rr)
    if rcode == RCODE.NXDOMAIN or (rcode == RCODE.NOERROR and not answers):
        assert [QTYPE[rr.rtype] for rr in reply.auth] == ["SOA"]
        assert reply.auth[0].ttl == 5


def test_srv_answers_carry_target_addresses(table: DnsTable) -> None:
    reply = ask(table, "_pg._tcp.db.prod.svc.cluster.local", "SRV")
    assert rdata(reply, "ar") == ["127.16.0.5", "127.16.0.6"]


def test_zone_apex_soa(table: DnsTable) -> None:
    reply = ask(table, "cluster.local", "SOA")
    assert [QTYPE[rr.rtype] for rr in reply.rr] == ["SOA"]


def test_removing_a_service_removes_its_names(table: DnsTable) -> None:
    table.set_service(("prod", "db"), [])
    assert ask(table, "db-0.db.prod.svc.cluster.local", "A").header.rcode == RCODE.NXDOMAIN
    assert ask(table, "prod.svc.cluster.local", "A").header.rcode == RCODE.NOERROR  # web is still there
    table.set_service(("prod", "web"), [])
    table.set_service(("prod", "ext"), [])
    assert ask(table, "prod.svc.cluster.local", "A").header.rcode == RCODE.NXDOMAIN


def test_headless_update_replaces_addresses(table: DnsTable) -> None:
    moved = slice_of("db", [{"addresses": ["127.16.0.8"], "hostname": "db-0", "conditions": {"ready": True}}])
    table.set_service(("prod", "db"), service_records(DB, [moved], ZONE))
    assert rdata(ask(table, "db-0.db.prod.svc.cluster.local", "A")) == ["127.16.0.8"]
    assert ask(table, "5.0.16.127.in-addr.arpa", "PTR").header.rcode == RCODE.NXDOMAIN


def test_oversized_udp_reply_is_truncated() -> None:
    table = DnsTable(ZONE)
    many = [{"addresses": [f"127.16.1.{i}"], "conditions": {"ready": True}} for i in range(1, 80)]
    table.set_service(("prod", "db"), service_records(DB, [slice_of("db", many)], ZONE))
    request = DNSRecord.question("db.prod.svc.cluster.local", "A")
    reply = answer(request, table, AnswerPolicy())
    assert len(reply.rr) == 79
    truncated = DNSRecord.parse(pack_for_udp(reply, 512))
    assert truncated.header.tc == 1
    assert truncated.rr == []
