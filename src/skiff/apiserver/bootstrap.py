"""What kube-apiserver sets up around its registries: admission wiring and the bootstrap objects.

* ``ServedReader`` lets admission plugins read other resources through the
  served registries (never the Store directly, so they see what clients see).
* ``make_registry`` builds each row's registry: the namespace registry for
  namespaces, the allocation hooks for services, the CSR registry (its
  approval and status endpoints) for CertificateSigningRequests, the
  admission chain for all.
* ``bootstrap`` is upstream's bootstrap controller and scheduling post-start
  hook, run once the watch caches are ready: the namespaces default,
  kube-system, kube-public and kube-node-lease; the system PriorityClasses;
  the ``kubernetes`` Service in default (the range's first address, port 443
  to the API server's port) with its Endpoints and EndpointSlice naming this
  API server's address.  Existing objects are kept; the kubernetes Service's
  ports and endpoints are brought up to date (the port can change between
  runs).  Several API servers starting at once are fine: AlreadyExists is
  success.  With several API servers running, the last to start owns the
  endpoints (upstream's lease reconciler is not implemented).
* ``repair_periodically`` runs the service-allocation repair pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from skiff.api.status import ApiError, not_found
from skiff.apiserver.served import Served, ServedResources
from skiff.registry.admission import AdmissionChain
from skiff.registry.certificates.certificatesigningrequest_storage import CertificateSigningRequestRegistry
from skiff.registry.core.namespace_storage import NamespaceRegistry
from skiff.registry.core.service_allocation import ServiceAllocations
from skiff.registry.generic import GenericRegistry
from skiff.registry.listing import ListQuery
from skiff.registry.managed_fields import WriteManager, managing
from skiff.registry.request_user import CURRENT_USER
from skiff.registry.resource import Obj, ResourceInfo
from skiff.registry.scheduling.priorityclass import SYSTEM_CLASSES
from skiff.registry.watch_cache import WatchCache
from skiff.store.errors import StoreError
from skiff.store.protocol import Store

log = logging.getLogger(__name__)

#: Namespaces created at start (upstream's system namespaces).
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
KUBERNETES_SERVICE = "kubernetes"
#: How often the allocation repair pass runs (upstream's repair loop interval is 3 minutes).
REPAIR_INTERVAL_S = 180.0
SYSTEM_CLASS_DESCRIPTIONS = {
    "system-node-critical": "Used for system critical pods that must not be moved from their current node.",
    "system-cluster-critical": "Used for system critical pods that must run in the cluster, but can be moved "
    "to another node if necessary.",
}


class ServedReader:
    """``ObjectReader`` over the served registries, and the quota plugin's status writer (``QuotaStatusWriter``)."""

    def __init__(self, served: ServedResources) -> None:
        self.served = served

    def _find(self, group: str, plural: str) -> Served | None:
        return self.served.find_any_version(group, plural)

    async def get(self, group: str, plural: str, namespace: str, name: str, *, fresh: bool = True) -> Obj | None:
        served = self._find(group, plural)
        if served is None:
            return None
        if not fresh and isinstance(served.registry, GenericRegistry):
            cached = served.registry.cached_get(namespace or None, name)
            if cached is not None:
                return cached
        try:
            return await served.registry.get(namespace or None, name)
        except ApiError as err:
            if err.code == 404:
                return None
            raise

    async def list(self, group: str, plural: str, namespace: str, *, fresh: bool = True) -> list[Obj]:
        served = self._find(group, plural)
        if served is None:
            return []
        if not fresh and isinstance(served.registry, GenericRegistry):
            cached = served.registry.cached_list(namespace or None)
            if cached is not None:
                return cached
        result = await served.registry.list(namespace or None, ListQuery())
        return list(result.get("items") or [])

    async def update_status(self, group: str, plural: str, namespace: str, obj: Obj) -> Obj:
        """A status subresource write; the object's resourceVersion must be current (409 otherwise)."""
        name = str((obj.get("metadata") or {}).get("name") or "")
        served = self._find(group, plural)
        if served is None:
            raise not_found(plural, group, name)
        # The API server's own write, as upstream's loopback client makes it: not the requesting
        # user's, and managed by "kube-apiserver" (the loopback client's user agent).
        user = CURRENT_USER.set(None)
        try:
            with managing(WriteManager("kube-apiserver", subresource="status")):
                written, _ = await served.registry.update(namespace or None, name, obj, subresource="status")
        finally:
            CURRENT_USER.reset(user)
        return written


def make_registry(
    store: Store, info: ResourceInfo, cache: WatchCache, admission: AdmissionChain, services: ServiceAllocations
) -> GenericRegistry:
    if info.group == "" and info.plural == "namespaces":
        return NamespaceRegistry(store, info, cache, admission=admission)
    if info.group == "" and info.plural == "services":
        return GenericRegistry(store, info, cache, admission=admission, hooks=services)
    if info.group == "certificates.k8s.io" and info.plural == "certificatesigningrequests":
        return CertificateSigningRequestRegistry(store, info, cache, admission=admission)
    return GenericRegistry(store, info, cache, admission=admission)


def advertise_address(bind_address: str) -> str:
    """The address the kubernetes endpoints name: the bind address, loopback for a wildcard."""
    if bind_address in ("0.0.0.0", "", "::"):
        return "127.0.0.1"
    return bind_address


def _registry(served: ServedResources, group: str, plural: str) -> Any:
    found = served.find_any_version(group, plural)
    return found.registry if found is not None else None


async def _ensure(served: ServedResources, group: str, plural: str, namespace: str | None, obj: Obj) -> Obj | None:
    """Create ``obj`` unless it exists; the stored object either way (None when the resource is not served)."""
    registry = _registry(served, group, plural)
    if registry is None:
        return None
    name = obj["metadata"]["name"]
    try:
        return await registry.get(namespace, name)  # type: ignore[no-any-return]
    except ApiError as err:
        if err.code != 404:
            raise
    try:
        return await registry.create(namespace, obj)  # type: ignore[no-any-return]
    except ApiError as err:
        if err.code != 409:
            raise
        return await registry.get(namespace, name)  # type: ignore[no-any-return]


def system_objects() -> Iterator[tuple[str, str, str | None, Obj]]:
    for name in SYSTEM_NAMESPACES:
        yield "", "namespaces", None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    for name, value in SYSTEM_CLASSES.items():
        yield (
            "scheduling.k8s.io",
            "priorityclasses",
            None,
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": name},
                "value": value,
                "description": SYSTEM_CLASS_DESCRIPTIONS[name],
            },
        )


def kubernetes_service(cluster_ip: str, port: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": KUBERNETES_SERVICE,
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            "sessionAffinity": "None",
        },
    }


def kubernetes_endpoints(address: str, port: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": KUBERNETES_SERVICE,
            "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{"addresses": [{"ip": address}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    }


def kubernetes_endpoint_slice(address: str, port: int) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": KUBERNETES_SERVICE,
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": KUBERNETES_SERVICE},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


async def bootstrap(served: ServedResources, services: ServiceAllocations, address: str, port: int) -> None:
    for group, plural, namespace, obj in system_objects():
        await _ensure(served, group, plural, namespace, obj)
    try:
        service = await _ensure(served, "", "services", "default", kubernetes_service(services.ip_range.first(), port))
    except ApiError as err:  # e.g. the address is taken by another service: serve anyway, as upstream does
        log.error("cannot create the kubernetes service: %s", err.message)
        service = None
    if service is not None:
        await _reconcile_ports(served, service, port)
    await _replace(served, "", "endpoints", kubernetes_endpoints(address, port), ("subsets",))
    await _replace(
        served, "discovery.k8s.io", "endpointslices", kubernetes_endpoint_slice(address, port), ("endpoints", "ports")
    )


async def _reconcile_ports(served: ServedResources, service: Obj, port: int) -> None:
    """The kubernetes Service forwards 443 to this API server's port (upstream updates it when it differs)."""
    ports = (service.get("spec") or {}).get("ports") or []
    if len(ports) == 1 and ports[0].get("targetPort") == port and ports[0].get("port") == 443:
        return

    def mutate(current: Obj | None) -> Obj:
        assert current is not None
        current["spec"]["ports"] = kubernetes_service("", port)["spec"]["ports"]
        return current

    await _registry(served, "", "services").patch("default", KUBERNETES_SERVICE, mutate)


async def _replace(served: ServedResources, group: str, plural: str, wanted: Obj, fields: tuple[str, ...]) -> None:
    current = await _ensure(served, group, plural, "default", wanted)
    if current is None or all(current.get(f) == wanted.get(f) for f in fields):
        return

    def mutate(obj: Obj | None) -> Obj:
        assert obj is not None
        for f in fields:
            obj[f] = wanted[f]
        return obj

    await _registry(served, group, plural).patch("default", KUBERNETES_SERVICE, mutate)


async def repair_once(served: ServedResources, services: ServiceAllocations) -> None:
    registry = _registry(served, "", "services")
    if registry is None:
        return
    listed = await registry.list(None, ListQuery())
    await services.repair(listed.get("items") or [])


async def repair_periodically(
    served: ServedResources, services: ServiceAllocations, interval_s: float = REPAIR_INTERVAL_S
) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await repair_once(served, services)
        except (ApiError, StoreError, OSError) as err:
            log.warning("service allocation repair failed: %s", err)
