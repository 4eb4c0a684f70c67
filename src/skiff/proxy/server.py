"""``ProxyServer``: the whole ``skiff proxy`` process minus flag parsing.

Wires one API client and two shared informers (Services, EndpointSlices) to
the service proxy, the cluster DNS table and server, the load-balancer
controller (optional: one allocator per cluster is enough), and a small HTTP
server with ``/healthz`` (the process is up), ``/readyz`` (informers synced,
first proxy sync done, DNS listening) and ``/metrics``.  ``start`` returns once
everything listens; ``stop`` closes every listener and connection.

All proxies of a cluster on one machine share the loopback network, so run one
``skiff proxy`` per machine and cluster; it serves NodePorts on every address
in ``node_ips``, or, when none are given, on the loopback InternalIP of every
Node in the cluster (followed through a Node informer), so one proxy serves a
whole single-machine cluster of several kubelets.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web

from skiff.client import ApiClient, ClientConfig
from skiff.client.clock import RealClock
from skiff.client.cluster_defaults import CLUSTER_DNS, CLUSTER_DOMAIN, LOAD_BALANCER_CIDR
from skiff.client.controller import ControllerContext
from skiff.client.informer import InformerFactory, meta_key
from skiff.client.resources import ENDPOINTSLICES, NODES, SERVICES
from skiff.proxy.balancer import Balancer
from skiff.proxy.dns_answer import DEFAULT_NEGATIVE_TTL, DEFAULT_TTL, AnswerPolicy
from skiff.proxy.dns_records import DnsTable
from skiff.proxy.dns_server import DnsServer, parse_address
from skiff.proxy.dns_sync import DnsSync
from skiff.proxy.endpoints import Obj
from skiff.proxy.lb_allocator import LoadBalancerAllocator
from skiff.proxy.listeners import is_loopback
from skiff.proxy.loadbalancer import LoadBalancerController
from skiff.proxy.proxier import ServiceProxy
from skiff.proxy.udp_relay import DEFAULT_IDLE_TIMEOUT_S

log = logging.getLogger(__name__)

DEFAULT_HEALTHZ_PORT = 10256


@dataclass(frozen=True)
class ProxyConfig:
    client: ClientConfig
    node_ips: tuple[str, ...] = ()
    node_name: str = ""
    cluster_dns: str = CLUSTER_DNS
    cluster_domain: str = CLUSTER_DOMAIN
    load_balancer_range: str = LOAD_BALANCER_CIDR
    allocate_load_balancers: bool = True
    dns_enabled: bool = True
    dns_ttl: int = DEFAULT_TTL
    dns_negative_ttl: int = DEFAULT_NEGATIVE_TTL
    healthz_bind_address: str = "127.0.0.1"
    healthz_port: int | None = DEFAULT_HEALTHZ_PORT
    udp_idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S


def node_addresses(node: Obj) -> list[str]:
    """A Node's loopback InternalIP addresses: where its NodePorts are served."""
    addresses = (node.get("status") or {}).get("addresses") or []
    return [
        str(a["address"])
        for a in addresses
        if isinstance(a, dict) and a.get("type") == "InternalIP" and is_loopback(str(a.get("address") or ""))
    ]


class ProxyServer:
    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.client = ApiClient(config.client, user_agent="skiff-proxy")
        self.informers = InformerFactory(self.client)
        services = self.informers.informer(SERVICES)
        slices = self.informers.informer(ENDPOINTSLICES)
        self.balancer = Balancer(RealClock())
        nodes = {ip: config.node_name if len(config.node_ips) == 1 else "" for ip in config.node_ips}
        self.proxy = ServiceProxy(services, slices, self.balancer, nodes, config.node_name, config.udp_idle_timeout_s)
        self.dns_table = DnsTable(config.cluster_domain)
        self.dns_sync = DnsSync(services, slices, self.dns_table)
        self.dns: DnsServer | None = None
        if config.dns_enabled:
            host, port = parse_address(config.cluster_dns)
            policy = AnswerPolicy(config.dns_ttl, config.dns_negative_ttl)
            self.dns = DnsServer(self.dns_table, host, port, policy)
        if not config.node_ips:
            self._follow_nodes()
        self.lb: LoadBalancerController | None = None
        if config.allocate_load_balancers:
            allocator = LoadBalancerAllocator(config.load_balancer_range)
            self.lb = LoadBalancerController(ControllerContext(self.client, self.informers), services, allocator)
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.healthz_address: tuple[str, int] | None = None

    def _follow_nodes(self) -> None:
        nodes = self.informers.informer(NODES)

        def refresh(*_: Obj) -> None:
            found = {ip: meta_key(node) for node in nodes.list() for ip in node_addresses(node)}
            self.proxy.set_nodes(dict(sorted(found.items())))

        nodes.add_handler(refresh, refresh, refresh)

    async def start(self) -> None:
        if self.dns is not None:
            await self.dns.start()
        await self._start_health()
        await self.informers.start()
        self.proxy.start()
        if self.lb is not None:
            self._tasks.append(asyncio.create_task(self._run_lb(self.lb), name="load-balancer"))

    async def _run_lb(self, lb: LoadBalancerController) -> None:
        await self.informers.wait_synced()
        lb.rebuild()
        await lb.run(workers=1)

    async def stop(self) -> None:
        if self.lb is not None:
            self.lb.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.proxy.stop()
        await self.informers.stop()
        if self.dns is not None:
            await self.dns.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.client.close()

    def ready(self) -> str | None:
        """None when ready, else what is still missing."""
        if not self.proxy.synced.is_set():
            return "service proxy has not synced yet"
        return None

    async def _start_health(self) -> None:
        if self.config.healthz_port is None:
            return
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.healthz_bind_address, self.config.healthz_port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.healthz_address = (str(host), int(port))

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, _request: web.Request) -> web.Response:
        problem = self.ready()
        if problem is None:
            return web.Response(text="ok")
        return web.Response(status=503, text=problem + "\n")

    async def _metrics(self, _request: web.Request) -> web.Response:
        lines = [
            "# HELP skiff_proxy_listeners Listeners open for Service ports.",
            "# TYPE skiff_proxy_listeners gauge",
            f"skiff_proxy_listeners {len(self.proxy.listeners)}",
            "# HELP skiff_proxy_dns_queries_total DNS queries answered.",
            "# TYPE skiff_proxy_dns_queries_total counter",
            f"skiff_proxy_dns_queries_total {self.dns.queries if self.dns else 0}",
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
