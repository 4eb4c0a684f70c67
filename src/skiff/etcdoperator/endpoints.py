"""Turn etcd endpoints that name a Service into member URLs the operator can dial.

The operator runs outside pods, so it cannot resolve cluster DNS names such as
``http://example-client:2379``.  An endpoint whose host has the shape of a
Service name — ``svc``, ``svc.ns``, ``svc.ns.svc`` or
``svc.ns.svc.cluster.local`` — and names a Service that exists becomes one URL
per *ready* address of that Service's EndpointSlices (label
``kubernetes.io/service-name``), with the slice port named ``client`` or else
the one equal to the URL's port.  One URL per member, not the Service's
virtual IP, because a backup must pick the member with the highest revision
(coreos/etcd-operator dials every endpoint for the same reason).

Anything else passes through unchanged: IP addresses, ``localhost``, and
hostnames that do not name an existing Service (they may be real DNS names).
The result keeps the input's order, expanded in place, without duplicates.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from skiff.client.errors import ApiError, is_not_found
from skiff.client.resources import ENDPOINTSLICES, SERVICES
from skiff.client.rest import ApiClient

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
CLIENT_PORT_NAME = "client"
CLIENT_PORT = 2379
CLUSTER_DOMAIN = "cluster.local"
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def cluster_client_endpoint(cluster_name: str) -> str:
    """The client Service of an EtcdCluster, as pods would dial it."""
    return f"http://{cluster_name}-client:{CLIENT_PORT}"


def service_of(host: str, namespace: str) -> tuple[str, str] | None:
    """(service, namespace) when ``host`` has the shape of a Service DNS name, else None."""
    host = host.rstrip(".").lower()
    if not host or host == "localhost" or _is_ip(host):
        return None
    labels = host.split(".")
    if len(labels) > 2 and (labels[2] != "svc" or (len(labels) > 3 and ".".join(labels[3:]) != CLUSTER_DOMAIN)):
        return None
    if not all(_DNS_LABEL.match(label) for label in labels[:2]):
        return None
    return labels[0], (labels[1] if len(labels) > 1 else namespace)


async def resolve_endpoints(client: ApiClient, namespace: str, endpoints: list[str]) -> list[str]:
    """Each endpoint, or the member URLs behind it when it names a Service (see the module docstring)."""
    out: list[str] = []
    for endpoint in endpoints:
        for url in await _resolve_one(client, namespace, endpoint):
            if url not in out:
                out.append(url)
    return out


async def _resolve_one(client: ApiClient, namespace: str, endpoint: str) -> list[str]:
    url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    target = service_of(url.hostname or "", namespace)
    if target is None:
        return [endpoint]
    service, ns = target
    try:
        await client.get(SERVICES, service, ns)
    except ApiError as err:
        if is_not_found(err):
            return [endpoint]  # not a Service here: maybe a real DNS name
        raise
    slices = await client.list_all(ENDPOINTSLICES, ns, label_selector=f"{SERVICE_NAME_LABEL}={service}")
    wanted_port = url.port or CLIENT_PORT
    urls = []
    for item in slices.get("items") or []:
        port = _client_port(item, wanted_port)
        if port is None:
            continue
        for address in ready_addresses(item):
            urls.append(f"{url.scheme}://{_host(address)}:{port}")
    return sorted(urls)


def ready_addresses(endpoint_slice: dict[str, Any]) -> list[str]:
    """Addresses of the slice's endpoints whose ``ready`` is not false (unset means ready, per the API)."""
    found: list[str] = []
    for endpoint in endpoint_slice.get("endpoints") or []:
        if (endpoint.get("conditions") or {}).get("ready") is False:
            continue
        found.extend(str(a) for a in endpoint.get("addresses") or [])
    return found


def _client_port(endpoint_slice: dict[str, Any], wanted: int) -> int | None:
    ports = [p for p in endpoint_slice.get("ports") or [] if p.get("port")]
    for port in ports:
        if port.get("name") == CLIENT_PORT_NAME:
            return int(port["port"])
    for port in ports:
        if int(port["port"]) == wanted:
            return wanted
    return int(ports[0]["port"]) if len(ports) == 1 else None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
