"""Cluster DNS records from Services and EndpointSlices (pure, incremental).

Implements the Kubernetes DNS-Based Service Discovery spec
(github.com/kubernetes/dns, docs/specification.md) the way CoreDNS's
``kubernetes`` plugin serves it, with ``pods insecure``:

- ClusterIP Service: ``A <svc>.<ns>.svc.<zone>`` → cluster IP; for each named
  port ``SRV _<port>._<proto>.<svc>.<ns>.svc.<zone>`` → the service name; a
  ``PTR`` for the cluster IP.
- Headless Service: ``A <svc>.<ns>.svc.<zone>`` → every ready endpoint address;
  ``A <host>.<svc>.<ns>.svc.<zone>`` per ready endpoint, where host is the
  endpoint's ``hostname`` (a pod's ``spec.hostname`` when its ``subdomain`` names
  the Service: StatefulSet stable names) or else its address with dashes; SRV
  per port and endpoint pointing at those names; PTR for the endpoint addresses.
- ExternalName Service: ``CNAME`` to ``spec.externalName``.
- Pods: ``A <a-b-c-d>.<ns>.pod.<zone>`` → a.b.c.d for any well-formed address
  (``pods insecure``, kubeadm's default Corefile).
- ``dns-version.<zone>`` TXT: the spec's schema version.

The table is updated one Service at a time (``set_service``), so a change costs
the size of that Service, not of the cluster.  Names are stored lower-case.
``name_exists`` also knows empty non-terminals (``<ns>.svc.<zone>``,
``_tcp.<svc>...``) so the server answers NODATA, not NXDOMAIN, for them.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from skiff.proxy.endpoints import Obj, cluster_ips, service_key, slice_endpoints

SCHEMA_VERSION = "1.1.0"


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record: ``rtype`` is A, SRV, PTR, CNAME or TXT; ``data`` its text form.

    A: "1.2.3.4"; SRV: (priority, weight, port, target); PTR/CNAME: target name; TXT: the text.
    """

    name: str
    rtype: str
    data: str | tuple[int, int, int, str]


def reverse_name(ip: str) -> str:
    return ".".join(reversed(ip.split("."))) + ".in-addr.arpa"


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


def _srv_weight(count: int) -> int:
    return max(1, 100 // max(1, count))


def service_records(service: Obj, slices: Iterable[Obj], zone: str) -> list[Record]:
    """All records one Service contributes (none for a Service without a name)."""
    namespace, name = service_key(service)
    if not name:
        return []
    spec = service.get("spec") or {}
    fqdn = f"{name}.{namespace}.svc.{zone}".lower()
    if spec.get("type") == "ExternalName":
        target = str(spec.get("externalName") or "").rstrip(".").lower()
        return [Record(fqdn, "CNAME", target)] if target else []
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict) and isinstance(p.get("port"), int)]
    if spec.get("clusterIP") == "None":
        return _headless_records(fqdn, ports, list(slices))
    records: list[Record] = []
    for ip in cluster_ips(service):
        records.append(Record(fqdn, "A", ip))
        records.append(Record(reverse_name(ip), "PTR", fqdn))
    named = [p for p in ports if p.get("name")]
    for port in named:
        srv = (0, 100, int(port["port"]), fqdn)
        records.append(Record(f"_{port['name']}._{str(port.get('protocol') or 'TCP').lower()}.{fqdn}", "SRV", srv))
        records.append(Record(fqdn, "SRV", srv))
    return records


def _headless_records(fqdn: str, ports: list[Obj], slices: list[Obj]) -> list[Record]:
    """Per-endpoint records of a headless Service: only ready endpoints are published."""
    hosts: dict[str, str] = {}  # ip -> host label
    for endpoint in slice_endpoints(_any_port(slices), "", "TCP"):
        if endpoint.ready:
            hosts.setdefault(endpoint.ip, endpoint.hostname or dashed(endpoint.ip))
    records: list[Record] = []
    for ip, host in sorted(hosts.items()):
        host_fqdn = f"{host}.{fqdn}".lower()
        records.append(Record(fqdn, "A", ip))
        records.append(Record(host_fqdn, "A", ip))
        if host != dashed(ip):
            records.append(Record(f"{dashed(ip)}.{fqdn}", "A", ip))
        records.append(Record(reverse_name(ip), "PTR", host_fqdn))
    for port in ports:
        if not port.get("name"):
            continue
        protocol = str(port.get("protocol") or "TCP")
        endpoints = [e for e in slice_endpoints(slices, str(port["name"]), protocol) if e.ready]
        weight = _srv_weight(len(endpoints))
        owner = f"_{port['name']}._{protocol.lower()}.{fqdn}"
        for endpoint in endpoints:
            target = f"{hosts.get(endpoint.ip, dashed(endpoint.ip))}.{fqdn}".lower()
            records.append(Record(owner, "SRV", (0, weight, endpoint.port, target)))
            records.append(Record(fqdn, "SRV", (0, weight, endpoint.port, target)))
    return records


def _any_port(slices: list[Obj]) -> list[Obj]:
    """Slices rewritten to one synthetic port, so addresses are listed even for port-less slices."""
    return [{**s, "ports": [{"name": "", "protocol": "TCP", "port": 0}]} for s in slices]


def _ancestors(name: str, zone: str) -> list[str]:
    """``name`` and its parents down to (and including) ``zone``."""
    out = [name]
    while name != zone and "." in name:
        name = name.split(".", 1)[1]
        out.append(name)
        if not name.endswith(zone):
            break
    return out


class DnsTable:
    """The live record set, indexed by name, updated per Service."""

    def __init__(self, zone: str) -> None:
        self.zone = zone.strip(".").lower()
        self._by_service: dict[tuple[str, str], list[Record]] = {}
        self._by_name: dict[str, list[Record]] = {}
        self._names: Counter[str] = Counter()
        self._add([Record(f"dns-version.{self.zone}", "TXT", SCHEMA_VERSION)])

    def set_service(self, key: tuple[str, str], records: list[Record]) -> None:
        """Replace the records contributed by Service ``key`` (an empty list removes them)."""
        self._remove(self._by_service.pop(key, []))
        if records:
            self._by_service[key] = records
            self._add(records)

    def _add(self, records: list[Record]) -> None:
        for record in records:
            self._by_name.setdefault(record.name, []).append(record)
            self._names.update(_ancestors(record.name, self._zone_of(record.name)))

    def _remove(self, records: list[Record]) -> None:
        for record in records:
            bucket = self._by_name.get(record.name, [])
            if record in bucket:
                bucket.remove(record)
            if not bucket:
                self._by_name.pop(record.name, None)
            self._names.subtract(_ancestors(record.name, self._zone_of(record.name)))
        for name in [n for n, count in self._names.items() if count <= 0]:
            del self._names[name]

    def _zone_of(self, name: str) -> str:
        return "in-addr.arpa" if name.endswith("in-addr.arpa") else self.zone

    def lookup(self, name: str, rtype: str) -> list[Record]:
        """Records of one name and type; pod names are synthesised."""
        name = name.rstrip(".").lower()
        if rtype == "A" and name not in self._by_name:
            pod_ip = self.pod_address(name)
            return [Record(name, "A", pod_ip)] if pod_ip else []
        return [r for r in self._by_name.get(name, []) if r.rtype == rtype]

    def cname(self, name: str) -> Record | None:
        records = self._by_name.get(name.rstrip(".").lower(), [])
        return next((r for r in records if r.rtype == "CNAME"), None)

    def name_exists(self, name: str) -> bool:
        """True for names with records, their parents inside a zone, and well-formed pod names."""
        name = name.rstrip(".").lower()
        return name in self._names or name in (self.zone, "in-addr.arpa") or self.pod_address(name) is not None

    def pod_address(self, name: str) -> str | None:
        """``a-b-c-d.<ns>.pod.<zone>`` → "a.b.c.d" (any namespace: ``pods insecure``)."""
        suffix = f".pod.{self.zone}"
        if not name.endswith(suffix):
            return None
        labels = name[: -len(suffix)].split(".")
        if len(labels) != 2:
            return None
        try:
            return str(ipaddress.IPv4Address(labels[0].replace("-", ".")))
        except ValueError:
            return None
