"""Services (core/v1): defaults, port validation, immutable cluster IPs, the kubectl table.

Follows pkg/apis/core/v1/defaults.go SetDefaults_Service and
pkg/registry/core/service/strategy.go.  Allocation of cluster IPs and node
ports is not a strategy's job (it needs shared state); the allocator fills
``clusterIP``/``clusterIPs`` and ``nodePort``.  What this module does decide:
a new Service has ``status: {loadBalancer: {}}``, is single-stack IPv4 unless
it is an ExternalName, and may not change its cluster IP once set.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from skiff.api import field_errors as fe
from skiff.api import name_rules
from skiff.api.status import Cause
from skiff.registry.core.pod_spec import PROTOCOLS, valid_port_number
from skiff.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, Obj
from skiff.registry.strategies import NameRule, SpecStatusStrategy
from skiff.registry.table_format import format_labels

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
DEFAULT_CLIENT_IP_TIMEOUT = 10800
MAX_PORT_NAME_LENGTH = 15


class ServiceStrategy(SpecStatusStrategy):
    name_rule: NameRule = staticmethod(name_rules.name_is_dns1035_label)
    tracks_generation = False
    allow_create_on_update = True
    columns = (
        NAME_COLUMN,
        Column("Type", description="type determines how the Service is exposed."),
        Column("Cluster-IP", description="clusterIP is the IP address of the service."),
        Column("External-IP", description="externalIPs is a list of IP addresses for which nodes in the cluster "
               "will also accept traffic for this service."),
        Column("Port(s)", description="The list of ports that are exposed by this service."),
        AGE_COLUMN,
        Column("Selector", priority=1, description="Route service traffic to pods with label keys and values "
               "matching this selector."),
    )  # fmt: skip

    def initial_status(self, obj: Obj) -> Obj:
        return {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        new_spec, old_spec = new.get("spec"), old.get("spec")
        if isinstance(new_spec, dict) and isinstance(old_spec, dict):
            drop_type_dependent_fields(new_spec, old_spec)
            patch_allocated_values(new_spec, old_spec)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        kind = spec["type"]
        if spec["sessionAffinity"] == "ClientIP":
            config = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
            config.setdefault("timeoutSeconds", DEFAULT_CLIENT_IP_TIMEOUT)
        for port in spec.get("ports") or []:
            if not isinstance(port, dict):
                continue
            port.setdefault("protocol", "TCP")
            if port.get("targetPort") in (None, 0, "") and port.get("port") is not None:
                port["targetPort"] = port["port"]
        if kind in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if kind == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if kind != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
            # Single-stack IPv4: what the service REST fills for a one-family cluster.
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("ipFamilies", ["IPv4"])
            if spec.get("clusterIP") and not spec.get("clusterIPs"):
                spec["clusterIPs"] = [spec["clusterIP"]]

    def validate_spec(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [fe.required("spec")]
        causes: list[Cause] = []
        kind = spec.get("type", "ClusterIP")
        if kind not in SERVICE_TYPES:
            causes.append(fe.not_supported("spec.type", kind, SERVICE_TYPES))
        affinity = spec.get("sessionAffinity")
        if affinity is not None and affinity not in SESSION_AFFINITIES:
            causes.append(fe.not_supported("spec.sessionAffinity", affinity, SESSION_AFFINITIES))
        ports = spec.get("ports") or []
        if kind == "ExternalName":
            if not spec.get("externalName"):
                causes.append(fe.required("spec.externalName"))
        elif not ports and spec.get("clusterIP") != "None":
            causes.append(fe.required("spec.ports"))
        names: set[str] = set()
        for i, port in enumerate(ports):
            causes += _validate_port(port, f"spec.ports[{i}]", len(ports) > 1, names, kind)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
        causes: list[Cause] = []
        old_ip = old_spec.get("clusterIP")
        # ValidateServiceUpdate: the cluster IP may not change, except when leaving or entering ExternalName.
        if old_ip and new_spec.get("type") != "ExternalName" and old_spec.get("type") != "ExternalName":
            if new_spec.get("clusterIP") != old_ip:
                causes.append(fe.invalid("spec.clusterIPs[0]", new_spec.get("clusterIP"), "may not change once set"))
        return causes

    def row(self, obj: Obj, now: datetime) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        return [
            spec.get("type") or "",
            cluster_ips[0] if cluster_ips else "<none>",
            external_ip(spec, status),
            port_string(spec.get("ports") or []) or "<none>",
            format_labels(spec.get("selector")),
        ]


def _needs_cluster_ip(spec: Obj) -> bool:
    return bool(spec.get("type", "ClusterIP") != "ExternalName")


def _needs_node_ports(spec: Obj) -> bool:
    kind = spec.get("type", "ClusterIP")
    return bool(
        kind == "NodePort" or (kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False)
    )


def _node_ports(spec: Obj) -> list[Any]:
    return [p.get("nodePort") for p in spec.get("ports") or [] if isinstance(p, dict)]


def drop_type_dependent_fields(new: Obj, old: Obj) -> None:
    """dropTypeDependentFields: a type change drops allocated values the user left untouched."""
    if _needs_cluster_ip(old) and not _needs_cluster_ip(new):
        if new.get("clusterIP") == old.get("clusterIP") and new.get("clusterIPs") == old.get("clusterIPs"):
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                new.pop(key, None)
    if _needs_node_ports(old) and not _needs_node_ports(new) and _node_ports(new) == _node_ports(old):
        for port in new.get("ports") or []:
            if isinstance(port, dict):
                port.pop("nodePort", None)


def patch_allocated_values(new: Obj, old: Obj) -> None:
    """patchAllocatedValues: an update that omits allocated values keeps the stored ones.

    ``kubectl replace`` and ``apply`` send services without clusterIP or node
    ports; upstream copies them from the stored object (node ports matched by
    port name, never one another port of the new object already uses).
    """
    if _needs_cluster_ip(old) and _needs_cluster_ip(new):
        if not new.get("clusterIP") and old.get("clusterIP"):
            new["clusterIP"] = old["clusterIP"]
        if not new.get("clusterIPs") and old.get("clusterIPs"):
            new["clusterIPs"] = list(old["clusterIPs"])
    if _needs_node_ports(old) and _needs_node_ports(new):
        used = {n for n in _node_ports(new) if n} & {n for n in _node_ports(old) if n}
        by_name = {p.get("name", ""): p.get("nodePort") for p in old.get("ports") or [] if isinstance(p, dict)}
        for port in new.get("ports") or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                previous = by_name.get(port.get("name", ""))
                if previous and previous not in used:
                    port["nodePort"] = previous


def _validate_port(port: Any, path: str, named: bool, names: set[str], kind: str) -> list[Cause]:
    if not isinstance(port, dict):
        return [fe.required(path)]
    causes: list[Cause] = []
    name = port.get("name") or ""
    if named and not name:
        causes.append(fe.required(f"{path}.name"))
    if name:
        causes += [fe.invalid(f"{path}.name", name, msg) for msg in name_rules.is_dns1123_label(name)]
        if name in names:
            causes.append(fe.duplicate(f"{path}.name", name))
        names.add(name)
    number = port.get("port")
    if not valid_port_number(number):
        causes.append(fe.invalid(f"{path}.port", number, "must be between 1 and 65535, inclusive"))
    protocol = port.get("protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        causes.append(fe.not_supported(f"{path}.protocol", protocol, PROTOCOLS))
    target = port.get("targetPort")
    if isinstance(target, int) and not isinstance(target, bool) and target != 0 and not valid_port_number(target):
        causes.append(fe.invalid(f"{path}.targetPort", target, "must be between 1 and 65535, inclusive"))
    elif isinstance(target, str) and target:
        causes += [fe.invalid(f"{path}.targetPort", target, msg) for msg in is_valid_port_name(target)]
    node_port = port.get("nodePort")
    if node_port not in (None, 0):
        if kind not in ("NodePort", "LoadBalancer"):
            causes.append(fe.forbidden(f"{path}.nodePort", "may not be used when `type` is 'ClusterIP'"))
        elif not valid_port_number(node_port):
            causes.append(fe.invalid(f"{path}.nodePort", node_port, "must be between 1 and 65535, inclusive"))
    return causes


def external_ip(spec: Obj, status: Obj) -> str:
    """getServiceExternalIP (wide form: load-balancer addresses are not clipped)."""
    kind = spec.get("type")
    external = [str(ip) for ip in spec.get("externalIPs") or []]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        lb = sorted({str(i.get("ip") or i.get("hostname")) for i in ingress if i.get("ip") or i.get("hostname")})
        if external:
            return ",".join(lb + external)
        return ",".join(lb) if lb else "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName") or "")
    return "<unknown>"


def port_string(ports: list[Any]) -> str:
    """makePortString: "80/TCP", or "80:30080/TCP" with a node port."""
    pieces = []
    for port in ports:
        if not isinstance(port, dict):
            continue
        protocol = port.get("protocol") or ""
        if port.get("nodePort"):
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            pieces.append(f"{port.get('port')}/{protocol}")
    return ",".join(pieces)


def is_valid_port_name(name: str) -> list[str]:
    """IsValidPortName: an IANA_SVC_NAME (what a named targetPort must be)."""
    errors: list[str] = []
    if len(name) > MAX_PORT_NAME_LENGTH:
        errors.append(name_rules.max_len_error(MAX_PORT_NAME_LENGTH))
    if not re.fullmatch("[-a-z0-9]+", name):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        errors.append("must contain at least one letter (a-z)")
    if "--" in name:
        errors.append("must not contain consecutive hyphens (-)")
    if name.startswith("-") or name.endswith("-"):
        errors.append("must not begin or end with a hyphen (-)")
    return errors
