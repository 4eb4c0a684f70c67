"""The load-balancer controller: gives each type=LoadBalancer Service an address from the pool.

Plays the cloud provider's service controller (or MetalLB): a Service of type
LoadBalancer without a ``loadBalancerClass`` gets one address from
``--load-balancer-range``, written to ``status.loadBalancer.ingress`` as
``[{ip, ipMode: VIP}]`` through the status subresource; the proxies then
listen there.  A Service that stops being a LoadBalancer (or is deleted) gives
its address back, and a status address from our pool is cleared.

Before any allocation, ``rebuild`` claims every address already in Services'
status (oldest Service first wins a duplicate), so restarts keep addresses.
Status writes carry the resourceVersion read from the informer, so when
several proxies allocate at once only one write lands; the others get a
conflict, retry, and adopt the address they then see.  ``spec.loadBalancerIP``
(deprecated upstream, still honoured by many implementations) is used when it
is in the pool and free.
"""

from __future__ import annotations

import copy
import logging

from skiff.client.controller import Controller, ControllerContext
from skiff.client.informer import Informer, meta_key
from skiff.client.resources import SERVICES
from skiff.proxy.endpoints import Obj
from skiff.proxy.lb_allocator import LoadBalancerAllocator
from skiff.proxy.listeners import ingress_ips

log = logging.getLogger(__name__)


def wants_address(service: Obj) -> bool:
    spec = service.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def _creation(service: Obj) -> tuple[str, str]:
    meta = service.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), meta_key(service)


class LoadBalancerController(Controller):
    name = "load-balancer"

    def __init__(self, context: ControllerContext, services: Informer, allocator: LoadBalancerAllocator) -> None:
        super().__init__(context)
        self._services = services
        self.allocator = allocator
        services.add_handler(self._changed, lambda old, new: self._changed(new), self._changed)

    def _changed(self, service: Obj) -> None:
        if self._services.has_synced():
            self.enqueue_obj(service)

    def rebuild(self) -> None:
        """Claim the addresses already written to Services' status; queue every Service."""
        for service in sorted(self._services.list(), key=_creation):
            key = meta_key(service)
            if wants_address(service):
                for ip in ingress_ips(service):
                    if self.allocator.contains(ip) and not self.allocator.claim(key, ip):
                        log.warning("%s: address %s already belongs to %s", key, ip, self.allocator.owner(ip))
            self.enqueue(key)

    async def sync(self, key: str) -> None:
        service = self._services.get(key)
        if service is None:
            self.allocator.release(key)
            return
        ours = [ip for ip in ingress_ips(service) if self.allocator.contains(ip)]
        if not wants_address(service):
            self.allocator.release(key)
            if ours:
                await self._write_ingress(service, [])
            return
        if ours and self.allocator.claim(key, ours[0]):
            if len(ours) > 1:
                await self._write_ingress(service, [ours[0]])
            return
        ip = self._requested(service, key) or self.allocator.allocate(key)
        log.info("%s: load-balancer address %s", key, ip)
        try:
            await self._write_ingress(service, [ip])
        except Exception:
            self.allocator.release(key)
            raise

    def _requested(self, service: Obj, key: str) -> str | None:
        wanted = str((service.get("spec") or {}).get("loadBalancerIP") or "")
        if wanted and self.allocator.contains(wanted) and self.allocator.claim(key, wanted):
            return wanted
        return None

    async def _write_ingress(self, service: Obj, ips: list[str]) -> None:
        body = copy.deepcopy(service)
        status = body.setdefault("status", {})
        others = [i for i in (status.get("loadBalancer") or {}).get("ingress") or [] if not self._is_ours(i)]
        ingress = others + [{"ip": ip, "ipMode": "VIP"} for ip in ips]
        status["loadBalancer"] = {"ingress": ingress} if ingress else {}
        await self.client.update_status(SERVICES, body)

    def _is_ours(self, item: Obj) -> bool:
        return isinstance(item, dict) and self.allocator.contains(str(item.get("ip") or ""))
