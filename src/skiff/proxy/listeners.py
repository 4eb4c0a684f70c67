"""The desired set of proxy listeners, computed from Services alone (pure).

Each proxied Service port gets a listener on every address that should reach
it: its cluster IPs on ``port``, each node IP on ``nodePort`` (NodePort and
LoadBalancer Services), the load-balancer ingress IPs on ``port`` and any
``externalIPs`` on ``port``.  Only loopback (127.0.0.0/8) addresses are used;
anything else is skipped, since Skiff never sends traffic off the machine.
Headless and ExternalName Services get no listener.  The result maps a
``ListenerKey`` (address, port, protocol) to the service port it serves
(narrowed to one node's endpoints under traffic policy Local); when
two Services claim one key the first in (namespace, name) order wins, as the
apiserver's allocators normally prevent it anyway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from skiff.proxy.endpoints import Obj, ServicePortName, cluster_ips, service_key, service_ports

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True, slots=True, order=True)
class ListenerKey:
    ip: str
    port: int
    protocol: str

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}/{self.protocol}"


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in LOOPBACK
    except ValueError:
        return False


def ingress_ips(service: Obj) -> list[str]:
    """The load-balancer addresses written to ``status.loadBalancer.ingress``."""
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(item["ip"]) for item in ingress if isinstance(item, dict) and item.get("ip")]


def _local(name: ServicePortName, policy: object, node: str) -> ServicePortName:
    """``name`` narrowed to ``node``'s endpoints when the traffic policy is Local and the node is known."""
    return replace(name, node=node) if policy == "Local" and node else name


def service_listeners(
    service: Obj, nodes: Mapping[str, str], local_node: str = ""
) -> dict[ListenerKey, ServicePortName]:
    """Every listener one Service needs.

    ``nodes`` maps each node IP served here to its node name ("" if unknown);
    ``local_node`` is the node this proxy runs for, when it runs for one.
    ``externalTrafficPolicy: Local`` narrows a NodePort listener to its node's
    endpoints and the external/load-balancer listeners to ``local_node``'s;
    ``internalTrafficPolicy: Local`` narrows the cluster-IP listeners to
    ``local_node``'s.  Without a known node name the policy acts as Cluster.
    """
    spec = service.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    vips = cluster_ips(service)
    if not vips:
        return {}
    front_ips = list(spec.get("externalIPs") or [])
    if kind == "LoadBalancer":
        front_ips += ingress_ips(service)
    internal, external = spec.get("internalTrafficPolicy"), spec.get("externalTrafficPolicy")
    out: dict[ListenerKey, ServicePortName] = {}
    for name, port in service_ports(service):
        number = int(port["port"])
        for ip in vips:
            if is_loopback(ip):
                out.setdefault(ListenerKey(ip, number, name.protocol), _local(name, internal, local_node))
        for ip in front_ips:
            if is_loopback(str(ip)):
                out.setdefault(ListenerKey(str(ip), number, name.protocol), _local(name, external, local_node))
        node_port = port.get("nodePort")
        if kind in ("NodePort", "LoadBalancer") and isinstance(node_port, int) and node_port > 0:
            for node_ip, node_name in nodes.items():
                out.setdefault(ListenerKey(node_ip, node_port, name.protocol), _local(name, external, node_name))
    return out


def desired_listeners(
    services: Iterable[Obj], nodes: Mapping[str, str], local_node: str = ""
) -> dict[ListenerKey, ServicePortName]:
    """The listeners of all Services; a key claimed twice goes to the first Service by name."""
    out: dict[ListenerKey, ServicePortName] = {}
    for service in sorted(services, key=service_key):
        for key, name in service_listeners(service, nodes, local_node).items():
            out.setdefault(key, name)
    return out


@dataclass(frozen=True, slots=True)
class ListenerDiff:
    start: dict[ListenerKey, ServicePortName]
    stop: list[ListenerKey]
    retarget: dict[ListenerKey, ServicePortName]


def diff_listeners(
    current: dict[ListenerKey, ServicePortName], desired: dict[ListenerKey, ServicePortName]
) -> ListenerDiff:
    """What to open, close and point elsewhere to go from ``current`` to ``desired``."""
    start = {k: v for k, v in desired.items() if k not in current}
    stop = sorted(k for k in current if k not in desired)
    retarget = {k: v for k, v in desired.items() if k in current and current[k] != v}
    return ListenerDiff(start, stop, retarget)
