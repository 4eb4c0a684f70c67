"""Which backends a Service port has: pure functions over Service and EndpointSlice dicts.

A service port is named by ``ServicePortName`` (namespace, service, port name,
protocol), the unit kube-proxy balances over.  Endpoints come from every
EndpointSlice labelled ``kubernetes.io/service-name`` for the Service; a slice
port matches a Service port by name and protocol, as in kube-proxy's
``EndpointSliceCache``.  Readiness follows upstream's ``CategorizeEndpoints``
for the Cluster traffic policy: ready endpoints when there are any, otherwise
the ones that are serving and terminating (so connections keep working while a
rollout's last old pod drains), otherwise none.  A missing condition means
ready/serving (the API's documented default), a missing ``terminating`` false.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PROTOCOLS = ("TCP", "UDP")


@dataclass(frozen=True, slots=True, order=True)
class ServicePortName:
    """A service port; with ``node`` set, only that node's endpoints (traffic policy Local)."""

    namespace: str
    name: str
    port: str
    protocol: str
    node: str = ""

    def __str__(self) -> str:
        suffix = f":{self.port}" if self.port else ""
        local = f"@{self.node}" if self.node else ""
        return f"{self.namespace}/{self.name}{suffix}/{self.protocol}{local}"


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """One backend address: where a proxied connection is relayed to."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    hostname: str = ""
    node_name: str = ""


def service_key(service: Obj) -> tuple[str, str]:
    meta = service.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def slice_service_key(endpoint_slice: Obj) -> tuple[str, str] | None:
    """The (namespace, service) a slice belongs to, or None when it is unlabelled."""
    meta = endpoint_slice.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not name:
        return None
    return str(meta.get("namespace") or "default"), str(name)


def is_headless(service: Obj) -> bool:
    spec = service.get("spec") or {}
    return spec.get("clusterIP") == "None" or spec.get("type") == "ExternalName"


def cluster_ips(service: Obj) -> list[str]:
    """The IPv4 cluster IPs of a proxied Service (none for headless and ExternalName)."""
    if is_headless(service):
        return []
    spec = service.get("spec") or {}
    ips = [str(ip) for ip in spec.get("clusterIPs") or [] if ip and ip != "None"]
    if not ips and spec.get("clusterIP"):
        ips = [str(spec["clusterIP"])]
    return [ip for ip in ips if ":" not in ip]


def service_ports(service: Obj) -> list[tuple[ServicePortName, Obj]]:
    """Each proxied port of a Service with its spec entry; SCTP and malformed ports are left out."""
    namespace, name = service_key(service)
    out = []
    for port in (service.get("spec") or {}).get("ports") or []:
        if not isinstance(port, dict) or not isinstance(port.get("port"), int):
            continue
        protocol = str(port.get("protocol") or "TCP")
        if protocol not in PROTOCOLS:
            continue
        out.append((ServicePortName(namespace, name, str(port.get("name") or ""), protocol), port))
    return out


def _condition(conditions: Obj, name: str, default: bool) -> bool:
    value = conditions.get(name)
    return default if value is None else bool(value)


def slice_endpoints(slices: Iterable[Obj], port_name: str, protocol: str) -> list[Endpoint]:
    """All IPv4 endpoints of ``slices`` for one named port, deduplicated by address, sorted."""
    found: dict[tuple[str, int], Endpoint] = {}
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") != "IPv4":
            continue
        number = None
        for port in endpoint_slice.get("ports") or []:
            if (port.get("name") or "") == port_name and (port.get("protocol") or "TCP") == protocol:
                number = port.get("port")
                break
        if not isinstance(number, int):
            continue
        for item in endpoint_slice.get("endpoints") or []:
            conditions = item.get("conditions") or {}
            ready = _condition(conditions, "ready", True)
            serving = _condition(conditions, "serving", ready)
            terminating = _condition(conditions, "terminating", False)
            for address in item.get("addresses") or []:
                key = (str(address), number)
                candidate = Endpoint(
                    str(address),
                    number,
                    ready,
                    serving,
                    terminating,
                    str(item.get("hostname") or ""),
                    str(item.get("nodeName") or ""),
                )
                # A duplicate across slices (mid-update) counts as ready if either copy is.
                if key not in found or (candidate.ready and not found[key].ready):
                    found[key] = candidate
    return sorted(found.values())


def usable_endpoints(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """Ready endpoints, else serving-and-terminating ones (upstream's terminating fallback)."""
    endpoints = list(endpoints)
    ready = [e for e in endpoints if e.ready]
    if ready:
        return ready
    return [e for e in endpoints if e.serving and e.terminating]


def target_endpoints(target: ServicePortName, slices: Iterable[Obj]) -> list[Endpoint]:
    """The endpoints a listener for ``target`` balances over: usable ones, on ``target.node`` if set.

    Traffic policy Local (upstream ``CategorizeEndpoints``): only the node's own
    endpoints, with the same ready-else-terminating fallback among them; none
    on the node means the traffic is dropped, never sent elsewhere.
    """
    endpoints = slice_endpoints(slices, target.port, target.protocol)
    if target.node:
        endpoints = [e for e in endpoints if e.node_name == target.node]
    return usable_endpoints(endpoints)


def affinity_timeout(service: Obj) -> float | None:
    """Seconds a client IP stays pinned for sessionAffinity ClientIP, None without affinity."""
    spec = service.get("spec") or {}
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
    timeout = config.get("timeoutSeconds")
    return float(timeout) if isinstance(timeout, int) and timeout > 0 else 10800.0
