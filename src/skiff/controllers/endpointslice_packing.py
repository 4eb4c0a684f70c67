"""Desired EndpointSlices of a Service and the writes that get there: pure functions.

Upstream (pkg/controller/endpointslice, staging endpointslice/reconciler.go):

* every pod that ShouldPodBeInEndpoints (terminating ones included) becomes
  one endpoint: its IPv4 address, conditions ``serving`` (Ready, or the
  service publishes not-ready addresses), ``terminating`` (deletionTimestamp)
  and ``ready`` (serving and not terminating, or publishNotReadyAddresses),
  ``nodeName``, ``zone`` (the node's topology.kubernetes.io/zone label),
  ``targetRef`` and ``hostname``;
* endpoints are grouped by the port set they resolve to (named ports can
  differ between pods) and each group is packed into slices of at most
  ``max_per_slice`` endpoints (default 100);
* reconciling keeps endpoints in the slice that already holds them, fills
  existing slices before creating new ones, deletes slices left empty or
  whose port set is gone, and keeps one empty "placeholder" slice when the
  service has no endpoints at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skiff.controllers.endpoints_pods import (
    find_port,
    is_headless,
    is_pod_ready,
    is_terminating,
    pod_hostname,
    should_pod_be_in_endpoints,
    target_ref,
)
from skiff.controllers.endpoints_subsets import HEADLESS_LABEL, ipv4_address

Obj = dict[str, Any]
PortKey = tuple[tuple[str, int, str], ...]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100


@dataclass
class SlicePlan:
    """The writes that bring a service's slices to the desired state."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def pod_endpoint(pod: Mapping[str, Any], service: Mapping[str, Any], zones: Mapping[str, str]) -> Obj | None:
    ip = ipv4_address(pod)
    if ip is None:
        return None
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    serving = publish or is_pod_ready(pod)
    terminating = is_terminating(pod)
    endpoint: Obj = {
        "addresses": [ip],
        "conditions": {
            "ready": publish or (serving and not terminating),
            "serving": serving,
            "terminating": terminating,
        },
    }
    hostname = pod_hostname(pod, service)
    if hostname:
        endpoint["hostname"] = hostname
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        endpoint["nodeName"] = node
        if zones.get(node):
            endpoint["zone"] = zones[node]
    endpoint["targetRef"] = target_ref(pod)
    return endpoint


def slice_ports(pod: Mapping[str, Any], service: Mapping[str, Any]) -> list[Obj] | None:
    """The slice ports this pod serves; None when it serves none (headless without ports: [])."""
    service_ports = (service.get("spec") or {}).get("ports") or []
    if not service_ports:
        return [] if is_headless(service) else None
    ports = []
    for service_port in service_ports:
        number = find_port(pod, service_port)
        if number is None:
            continue
        port: Obj = {
            "name": service_port.get("name", ""),
            "port": number,
            "protocol": service_port.get("protocol", "TCP"),
        }
        if service_port.get("appProtocol"):
            port["appProtocol"] = service_port["appProtocol"]
        ports.append(port)
    return sorted(ports, key=port_sort_key) or None


def port_sort_key(port: Mapping[str, Any]) -> tuple[str, int, str]:
    return (str(port.get("name") or ""), int(port.get("port") or 0), str(port.get("protocol") or "TCP"))


def port_key(ports: Iterable[Mapping[str, Any]]) -> PortKey:
    return tuple(sorted(port_sort_key(p) for p in ports))


def endpoint_id(endpoint: Mapping[str, Any]) -> str:
    uid = (endpoint.get("targetRef") or {}).get("uid")
    return str(uid) if uid else ",".join(endpoint.get("addresses") or [])


def desired_endpoints(
    service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], zones: Mapping[str, str]
) -> dict[PortKey, tuple[list[Obj], dict[str, Obj]]]:
    """Endpoints grouped by port set: key → (ports, endpoints by id)."""
    groups: dict[PortKey, tuple[list[Obj], dict[str, Obj]]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        endpoint = pod_endpoint(pod, service, zones)
        ports = slice_ports(pod, service)
        if endpoint is None or ports is None:
            continue
        groups.setdefault(port_key(ports), (ports, {}))[1][endpoint_id(endpoint)] = endpoint
    return groups


def slice_labels(service: Mapping[str, Any]) -> dict[str, str]:
    meta = service.get("metadata") or {}
    labels = {k: str(v) for k, v in (meta.get("labels") or {}).items()}
    labels.pop(HEADLESS_LABEL, None)
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = str(meta.get("name", ""))
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def new_slice(service: Mapping[str, Any], owner_ref: Mapping[str, Any], ports: list[Obj], endpoints: list[Obj]) -> Obj:
    meta = service.get("metadata") or {}
    name = str(meta.get("name", ""))
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "generateName": f"{name[:62]}-",
            "namespace": meta.get("namespace"),
            "labels": slice_labels(service),
            "ownerReferences": [dict(owner_ref)],
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": ports,
    }


def _with(existing: Mapping[str, Any], service: Mapping[str, Any], endpoints: list[Obj]) -> Obj:
    updated = dict(existing)
    updated["metadata"] = dict(existing.get("metadata") or {}, labels=slice_labels(service))
    updated["endpoints"] = endpoints
    return updated


def _changed(existing: Mapping[str, Any], service: Mapping[str, Any], endpoints: list[Obj]) -> bool:
    labels = (existing.get("metadata") or {}).get("labels") or {}
    return (existing.get("endpoints") or []) != endpoints or dict(labels) != slice_labels(service)


def reconcile(
    service: Mapping[str, Any],
    owner_ref: Mapping[str, Any],
    existing: Sequence[Mapping[str, Any]],
    desired: dict[PortKey, tuple[list[Obj], dict[str, Obj]]],
    max_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
) -> SlicePlan:
    """The creates, updates and deletes that turn ``existing`` slices into ``desired``."""
    plan = SlicePlan()
    existing = sorted(existing, key=lambda s: str((s.get("metadata") or {}).get("name", "")))
    if not desired:
        return _placeholder_plan(service, owner_ref, existing)
    for key, (ports, wanted) in sorted(desired.items()):
        remaining = dict(wanted)
        kept: list[tuple[Mapping[str, Any], list[Obj]]] = []
        for slice_ in existing:
            if port_key(slice_.get("ports") or []) != key:
                continue
            endpoints = []
            for endpoint in slice_.get("endpoints") or []:
                wanted_endpoint = remaining.pop(endpoint_id(endpoint), None)
                if wanted_endpoint is not None:
                    endpoints.append(wanted_endpoint)
            kept.append((slice_, endpoints))
        kept.sort(key=lambda pair: -len(pair[1]))
        new = list(remaining.values())
        for slice_, endpoints in kept:
            room = max_per_slice - len(endpoints)
            if room > 0 and new:
                endpoints.extend(new[:room])
                new = new[room:]
            if not endpoints:
                plan.delete.append(str(slice_["metadata"]["name"]))
            elif _changed(slice_, service, endpoints):
                plan.update.append(_with(slice_, service, endpoints))
        for start in range(0, len(new), max_per_slice):
            plan.create.append(new_slice(service, owner_ref, ports, new[start : start + max_per_slice]))
    for slice_ in existing:
        if port_key(slice_.get("ports") or []) not in desired:
            plan.delete.append(str(slice_["metadata"]["name"]))
    return plan


def _placeholder_plan(
    service: Mapping[str, Any], owner_ref: Mapping[str, Any], existing: Sequence[Mapping[str, Any]]
) -> SlicePlan:
    """No endpoints: keep exactly one empty slice (upstream's placeholder), delete the rest."""
    plan = SlicePlan()
    if not existing:
        plan.create.append(new_slice(service, owner_ref, [], []))
        return plan
    keep, *others = existing
    if _changed(keep, service, []) or keep.get("ports"):
        updated = _with(keep, service, [])
        updated["ports"] = []
        plan.update.append(updated)
    plan.delete.extend(str(s["metadata"]["name"]) for s in others)
    return plan
