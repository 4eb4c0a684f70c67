"""The desired core/v1 Endpoints of a Service: a pure function of the Service and its pods.

Upstream (pkg/controller/endpoint): each selected pod that should be in the
endpoints gives one address per pod (its IPv4 address) with ``nodeName`` and
a ``targetRef``; ready pods (or every pod when ``publishNotReadyAddresses``)
go to ``addresses``, others to ``notReadyAddresses``; each service port is
resolved against the pod (named targetPorts through the containers' ports; a
pod that lacks the port contributes nothing for it).  Subsets are then
repacked: addresses with the same port set share one subset.  Everything is
sorted so an unchanged world gives an identical object (no spurious writes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from skiff.controllers.endpoints_pods import (
    find_port,
    is_headless,
    is_pod_ready,
    pod_hostname,
    pod_ips,
    should_pod_be_in_endpoints,
    target_ref,
)

Obj = dict[str, Any]

HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
#: Endpoints objects hold at most this many addresses (upstream maxCapacity); EndpointSlices scale past it.
MAX_ADDRESSES = 1000


def ipv4_address(pod: Mapping[str, Any]) -> str | None:
    for ip in pod_ips(pod):
        if ":" not in ip:
            return ip
    return None


def endpoint_address(pod: Mapping[str, Any], service: Mapping[str, Any]) -> Obj | None:
    ip = ipv4_address(pod)
    if ip is None:
        return None
    address: Obj = {"ip": ip}
    hostname = pod_hostname(pod, service)
    if hostname:
        address["hostname"] = hostname
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        address["nodeName"] = node
    address["targetRef"] = target_ref(pod)
    return address


def endpoint_port(service_port: Mapping[str, Any], number: int) -> Obj:
    port: Obj = {"port": number, "protocol": service_port.get("protocol", "TCP")}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def pod_ports(pod: Mapping[str, Any], service: Mapping[str, Any]) -> list[Obj] | None:
    """The endpoint ports this pod serves for ``service``; None when it serves none of them.

    A headless service without ports still lists its pods' addresses, with no ports.
    """
    service_ports = (service.get("spec") or {}).get("ports") or []
    if not service_ports:
        return [] if is_headless(service) else None
    ports = []
    for service_port in service_ports:
        number = find_port(pod, service_port)
        if number is not None:
            ports.append(endpoint_port(service_port, number))
    return ports or None


def _port_key(port: Mapping[str, Any]) -> tuple[str, int, str]:
    return (str(port.get("name", "")), int(port.get("port", 0)), str(port.get("protocol", "")))


def _address_key(address: Mapping[str, Any]) -> tuple[str, str]:
    return (str(address.get("ip", "")), str((address.get("targetRef") or {}).get("uid", "")))


def compute_subsets(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The repacked, sorted subsets for ``service`` given its selected ``pods``."""
    tolerate_unready = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=tolerate_unready):
            continue
        address = endpoint_address(pod, service)
        ports = pod_ports(pod, service)
        if address is None or ports is None:
            continue
        ports.sort(key=_port_key)
        key = tuple(_port_key(p) for p in ports)
        ready, not_ready, _ = groups.setdefault(key, ([], [], ports))
        (ready if tolerate_unready or is_pod_ready(pod) else not_ready).append(address)
    subsets = []
    for key in sorted(groups):
        ready, not_ready, ports = groups[key]
        subset: Obj = {}
        if ready:
            subset["addresses"] = sorted(ready, key=_address_key)
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=_address_key)
        if ports:
            subset["ports"] = ports
        subsets.append(subset)
    return subsets


def endpoints_labels(service: Mapping[str, Any]) -> dict[str, str]:
    """The service's labels, plus the headless marker when it has no cluster IP."""
    labels = {k: str(v) for k, v in ((service.get("metadata") or {}).get("labels") or {}).items()}
    labels.pop(HEADLESS_LABEL, None)
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    return labels


def needs_update(current: Mapping[str, Any], subsets: list[Obj], labels: Mapping[str, str]) -> bool:
    """Whether the stored Endpoints differ from the desired ones (the trigger-time annotation is ignored)."""
    current_labels = (current.get("metadata") or {}).get("labels") or {}
    return (current.get("subsets") or []) != subsets or dict(current_labels) != dict(labels)


def truncate_subsets(subsets: list[Obj], limit: int = MAX_ADDRESSES) -> tuple[list[Obj], bool]:
    """At most ``limit`` addresses, ready ones kept first (upstream truncates and annotates "truncated")."""
    total = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets)
    if total <= limit:
        return subsets, False
    room = limit
    kept = [dict(s) for s in subsets]
    for field in ("addresses", "notReadyAddresses"):
        for subset in kept:
            if field in subset:
                subset[field] = subset[field][:room]
                room -= len(subset[field])
                if not subset[field]:
                    del subset[field]
    return [s for s in kept if s.get("addresses") or s.get("notReadyAddresses")], True
