"""The service proxy: keeps listeners and endpoint choices in line with Services and EndpointSlices.

Informer handlers only mark Services dirty and wake one sync task, so a burst
of changes is applied in one pass (kube-proxy's ``syncProxyRules`` batching).
A pass refreshes the ``Balancer`` for each dirty Service's ports, ends UDP
sessions whose endpoint left, then opens, closes and re-targets listeners to
match ``desired_listeners``.  A listener that cannot bind (the port is taken)
is retried every ``RETRY_S`` until it binds or is no longer wanted.
"""

from __future__ import annotations

import asyncio
import logging

from skiff.client.informer import Informer
from skiff.proxy.balancer import Balancer
from skiff.proxy.endpoints import (
    Obj,
    ServicePortName,
    affinity_timeout,
    service_ports,
    slice_service_key,
    target_endpoints,
)
from skiff.proxy.listeners import ListenerKey, diff_listeners, service_listeners
from skiff.proxy.tcp_relay import TcpListener
from skiff.proxy.udp_relay import DEFAULT_IDLE_TIMEOUT_S, UdpListener

log = logging.getLogger(__name__)

RETRY_S = 5.0
SLICE_INDEX = "service"

Listener = TcpListener | UdpListener


def slice_index(endpoint_slice: Obj) -> list[str]:
    """Index EndpointSlices by their Service's ``namespace/name``."""
    key = slice_service_key(endpoint_slice)
    return [f"{key[0]}/{key[1]}"] if key else []


def _service_key_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


class ServiceProxy:
    def __init__(
        self,
        services: Informer,
        slices: Informer,
        balancer: Balancer,
        nodes: dict[str, str],
        local_node: str = "",
        udp_idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        self._services = services
        self._slices = slices
        self.balancer = balancer
        self._nodes = nodes
        self._local_node = local_node
        self._udp_idle_timeout_s = udp_idle_timeout_s
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._ports: dict[str, set[ServicePortName]] = {}
        self._wanted: dict[str, dict[ListenerKey, ServicePortName]] = {}
        self.listeners: dict[ListenerKey, Listener] = {}
        self._task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()
        slices.add_index(SLICE_INDEX, slice_index)
        services.add_handler(self._on_service, lambda _old, new: self._on_service(new), self._on_service)
        slices.add_handler(self._on_slice, self._on_slice_update, self._on_slice)

    def _on_service(self, service: Obj) -> None:
        self.mark_dirty(_service_key_of(service))

    def _on_slice(self, endpoint_slice: Obj) -> None:
        for key in slice_index(endpoint_slice):
            self.mark_dirty(key)

    def _on_slice_update(self, old: Obj, new: Obj) -> None:
        self._on_slice(old)
        self._on_slice(new)

    def set_nodes(self, nodes: dict[str, str]) -> None:
        """Serve NodePorts on these node IPs (→ node names) from now on; every Service is re-synced."""
        if nodes != self._nodes:
            self._nodes = nodes
            for key in self._services.keys():
                self.mark_dirty(key)

    def mark_dirty(self, key: str) -> None:
        self._dirty.add(key)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="service-proxy")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.gather(*(listener.stop() for listener in self.listeners.values()), return_exceptions=True)
        self.listeners.clear()

    async def _run(self) -> None:
        await self._services.wait_synced()
        await self._slices.wait_synced()
        for key in self._services.keys():
            self.mark_dirty(key)
        while True:
            await self._wake.wait()
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            await self.sync(dirty)
            self.synced.set()

    async def sync(self, dirty: set[str]) -> None:
        for key in sorted(dirty):
            self._sync_service(key)
        await self._sync_listeners()

    def _sync_service(self, key: str) -> None:
        service = self._services.get(key)
        old_ports = self._ports.pop(key, set())
        self._wanted.pop(key, None)
        if service is None:
            for name in old_ports:
                self.balancer.remove(name)
            return
        slices = self._slices.by_index(SLICE_INDEX, key)
        affinity = affinity_timeout(service)
        wanted = service_listeners(service, self._nodes, self._local_node)
        ports = {name for name, _ in service_ports(service)} | set(wanted.values())
        for name in ports:
            self.balancer.update(name, target_endpoints(name, slices), affinity)
        for name in old_ports - ports:
            self.balancer.remove(name)
        self._ports[key] = ports
        self._wanted[key] = wanted
        for listener in self.listeners.values():
            if isinstance(listener, UdpListener) and listener.target in ports:
                listener.prune(set(self.balancer.endpoints(listener.target)))

    def desired(self) -> dict[ListenerKey, ServicePortName]:
        out: dict[ListenerKey, ServicePortName] = {}
        for key in sorted(self._wanted):
            for listener_key, name in self._wanted[key].items():
                out.setdefault(listener_key, name)
        return out

    async def _sync_listeners(self) -> None:
        current = {key: listener.target for key, listener in self.listeners.items()}
        diff = diff_listeners(current, self.desired())
        for key in diff.stop:
            log.info("closing %s", key)
            await self.listeners.pop(key).stop()
        for key, name in diff.retarget.items():
            self.listeners[key].target = name
        failed = False
        for key, name in sorted(diff.start.items()):
            listener: Listener
            if key.protocol == "UDP":
                listener = UdpListener(key, name, self.balancer, self._udp_idle_timeout_s)
            else:
                listener = TcpListener(key, name, self.balancer)
            try:
                await listener.start()
            except OSError as err:
                log.warning("cannot listen on %s for %s: %s; retrying in %.0fs", key, name, err, RETRY_S)
                await listener.stop()
                failed = True
                continue
            log.info("listening on %s for %s", key, name)
            self.listeners[key] = listener
        if failed:
            asyncio.get_running_loop().call_later(RETRY_S, self._wake.set)
