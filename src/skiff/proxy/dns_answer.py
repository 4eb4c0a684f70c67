"""Turn one DNS query into one response from a ``DnsTable`` (pure, dnslib messages).

Authoritative for the cluster zone and ``in-addr.arpa`` only.  Anything else is
REFUSED: Skiff never forwards a query off the machine.  A name with no record
of the asked type is NODATA (NOERROR, SOA in authority) when the name exists
and NXDOMAIN otherwise, as CoreDNS answers.  SRV answers carry the targets' A
records in the additional section.  AAAA is always empty (IPv4-only cluster).
"""

from __future__ import annotations

from dataclasses import dataclass

from dnslib import CNAME, NS, OPCODE, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSRecord  # type: ignore[import-untyped]

from skiff.proxy.dns_records import DnsTable, Record

REVERSE_ZONE = "in-addr.arpa"
#: Seconds: positive answers (kubeadm's Corefile sets ``ttl 30``).
DEFAULT_TTL = 30
#: Seconds: negative answers (SOA TTL and minimum), short so a freshly created Service resolves quickly.
DEFAULT_NEGATIVE_TTL = 5


@dataclass(frozen=True)
class AnswerPolicy:
    ttl: int = DEFAULT_TTL
    negative_ttl: int = DEFAULT_NEGATIVE_TTL


def _rr(record: Record, qname: str, ttl: int) -> RR:
    """A dnslib RR owned by ``qname`` (the client's spelling) for one table record."""
    data = record.data
    if record.rtype == "A":
        rdata = A(str(data))
    elif record.rtype == "SRV":
        assert isinstance(data, tuple)
        rdata = SRV(data[0], data[1], data[2], data[3] + ".")
    elif record.rtype == "PTR":
        rdata = PTR(str(data) + ".")
    elif record.rtype == "CNAME":
        rdata = CNAME(str(data) + ".")
    else:
        rdata = TXT(str(data))
    return RR(qname, getattr(QTYPE, record.rtype), rdata=rdata, ttl=ttl)


def _soa(zone: str, policy: AnswerPolicy) -> RR:
    soa = SOA(f"ns.dns.{zone}.", f"hostmaster.{zone}.", (1, 7200, 1800, 86400, policy.negative_ttl))
    return RR(zone + ".", QTYPE.SOA, rdata=soa, ttl=policy.negative_ttl)


def zone_of(name: str, table: DnsTable) -> str | None:
    if name == table.zone or name.endswith("." + table.zone):
        return table.zone
    if name == REVERSE_ZONE or name.endswith("." + REVERSE_ZONE):
        return REVERSE_ZONE
    return None


def answer(request: DNSRecord, table: DnsTable, policy: AnswerPolicy) -> DNSRecord:
    reply = request.reply()
    reply.header.ra = 0
    if request.header.opcode != OPCODE.QUERY or len(request.questions) != 1:
        reply.header.rcode = RCODE.NOTIMP
        return reply
    question = request.q
    qname = str(question.qname)
    name = qname.rstrip(".").lower()
    qtype = QTYPE.get(question.qtype)
    zone = zone_of(name, table)
    if zone is None:
        reply.header.aa = 0
        reply.header.rcode = RCODE.REFUSED
        return reply
    _fill(reply, qname, name, str(qtype), zone, table, policy)
    if not reply.rr:
        if not table.name_exists(name):
            reply.header.rcode = RCODE.NXDOMAIN
        reply.add_auth(_soa(zone, policy))
    return reply


def _fill(
    reply: DNSRecord, qname: str, name: str, qtype: str, zone: str, table: DnsTable, policy: AnswerPolicy
) -> None:
    """Add the answer (and additional) section for one question."""
    alias = table.cname(name)
    if alias is not None and qtype != "CNAME":
        # The target is outside the cluster; we do not resolve it (no forwarding).
        reply.add_answer(_rr(alias, qname, policy.ttl))
        return
    if name == zone and qtype in ("SOA", "NS", "ANY"):
        if qtype in ("SOA", "ANY"):
            reply.add_answer(_soa(zone, policy))
        if qtype in ("NS", "ANY"):
            reply.add_answer(RR(qname, QTYPE.NS, rdata=NS(f"ns.dns.{zone}."), ttl=policy.ttl))
        return
    types = ("A", "SRV", "PTR", "TXT", "CNAME") if qtype == "ANY" else (qtype,)
    for rtype in types:
        for record in table.lookup(name, rtype):
            reply.add_answer(_rr(record, qname, policy.ttl))
            if record.rtype == "SRV":
                _add_srv_target(reply, record, table, policy)


def _add_srv_target(reply: DNSRecord, record: Record, table: DnsTable, policy: AnswerPolicy) -> None:
    assert isinstance(record.data, tuple)
    target = record.data[3]
    known = {(str(rr.rname), str(rr.rdata)) for rr in reply.ar}
    for address in table.lookup(target, "A"):
        if (target + ".", str(address.data)) not in known:
            reply.add_ar(_rr(address, target + ".", policy.ttl))


def udp_payload_limit(request: DNSRecord) -> int:
    """512 bytes, or what the client's EDNS0 OPT record advertises."""
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return max(512, min(int(rr.rclass), 4096))
    return 512


def pack_for_udp(reply: DNSRecord, limit: int) -> bytes:
    """The reply bytes; when too big, an empty reply with TC set so the client retries over TCP."""
    data: bytes = reply.pack()
    if len(data) <= limit:
        return data
    truncated = DNSRecord(header=reply.header, questions=reply.questions)
    truncated.header.tc = 1
    packed: bytes = truncated.pack()
    return packed
