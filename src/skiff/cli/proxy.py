"""``skiff proxy``: Service virtual IPs, NodePorts, LoadBalancers and cluster DNS.

Flags follow kube-proxy where it has them (``--kubeconfig``, ``--healthz-port``)
and the kubelet's DNS flags for the DNS side (``--cluster-dns``,
``--cluster-domain``).  Once listening it prints one line per served address
to stdout (DNS, health); logs go to stderr.  Runs until SIGTERM/SIGINT, then
closes every listener and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import dataclass
from typing import Any

from skiff.client.cluster_defaults import CLUSTER_DNS, CLUSTER_DOMAIN, LOAD_BALANCER_CIDR


@dataclass(frozen=True)
class ProxyFlags:
    kubeconfig: str | None
    node_name: str
    node_ips: tuple[str, ...]
    cluster_dns: str
    cluster_domain: str
    load_balancer_range: str
    allocate_load_balancers: bool
    dns: bool
    healthz_bind_address: str
    healthz_port: int | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ProxyFlags:
        from skiff.proxy.dns_server import parse_address

        host, port = parse_address(args.cluster_dns)
        if args.dns_port is not None:
            port = args.dns_port
        node_ips = tuple(ip.strip() for text in args.node_ip or [] for ip in text.split(",") if ip.strip())
        return cls(
            kubeconfig=args.kubeconfig,
            node_name=args.node_name or "",
            node_ips=node_ips,
            cluster_dns=f"{host}:{port}",
            cluster_domain=args.cluster_domain.strip("."),
            load_balancer_range=args.load_balancer_range,
            allocate_load_balancers=args.allocate_load_balancers,
            dns=args.dns,
            healthz_bind_address=args.healthz_bind_address,
            healthz_port=None if args.healthz_port is not None and args.healthz_port < 0 else args.healthz_port,
        )


def register(subparsers: Any) -> None:
    from skiff.proxy.server import DEFAULT_HEALTHZ_PORT

    parser = subparsers.add_parser(
        "proxy",
        help="serve Service addresses (ClusterIP, NodePort, LoadBalancer) and cluster DNS",
        description="Userspace service proxy and cluster DNS server, driven by the API server.",
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig to reach the API server (default $KUBECONFIG)")
    parser.add_argument(
        "--node-name",
        default=None,
        help="the node this proxy runs for: its endpoints serve traffic-policy-Local Services (default: none)",
    )
    parser.add_argument(
        "--node-ip",
        action="append",
        default=None,
        help="address to serve NodePorts on; repeat or comma-separate for several "
        "(default: the InternalIP of every Node, so one proxy serves all nodes on this machine)",
    )
    parser.add_argument(
        "--cluster-dns", default=CLUSTER_DNS, help=f"DNS server address[:port] (default {CLUSTER_DNS}, port 53)"
    )
    parser.add_argument("--dns-port", type=int, default=None, help="override the DNS port (0: any free port)")
    parser.add_argument("--no-dns", dest="dns", action="store_false", help="do not serve cluster DNS")
    parser.add_argument(
        "--cluster-domain", default=CLUSTER_DOMAIN, help=f"the cluster's DNS domain (default {CLUSTER_DOMAIN})"
    )
    parser.add_argument(
        "--load-balancer-range",
        default=LOAD_BALANCER_CIDR,
        help=f"pool for type=LoadBalancer addresses, inside 127.0.0.0/8 (default {LOAD_BALANCER_CIDR})",
    )
    parser.add_argument(
        "--allocate-load-balancers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="allocate LoadBalancer addresses and write Service status (one proxy per cluster should; default on)",
    )
    parser.add_argument("--healthz-bind-address", default="127.0.0.1", help="address for --healthz-port")
    parser.add_argument(
        "--healthz-port",
        type=int,
        default=DEFAULT_HEALTHZ_PORT,
        help=f"HTTP port for /healthz, /readyz, /metrics (0: any; -1: off; default {DEFAULT_HEALTHZ_PORT})",
    )
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    from skiff.client import ClientConfig, ConfigError
    from skiff.proxy.server import ProxyConfig, ProxyServer

    flags = ProxyFlags.from_args(args)
    try:
        client_config = await asyncio.to_thread(ClientConfig.from_kubeconfig, flags.kubeconfig)
        config = ProxyConfig(
            client=client_config,
            node_ips=flags.node_ips,
            node_name=flags.node_name,
            cluster_dns=flags.cluster_dns,
            cluster_domain=flags.cluster_domain,
            load_balancer_range=flags.load_balancer_range,
            allocate_load_balancers=flags.allocate_load_balancers,
            dns_enabled=flags.dns,
            healthz_bind_address=flags.healthz_bind_address,
            healthz_port=flags.healthz_port,
        )
        server = ProxyServer(config)
    except (ConfigError, OSError, ValueError) as err:
        print(f"skiff proxy: {err}", file=sys.stderr)
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        try:
            await server.start()
        except OSError as err:
            print(f"skiff proxy: cannot start: {err}", file=sys.stderr)
            await server.stop()
            return 1
        if server.dns is not None:
            host, port = server.dns.address
            print(f"skiff proxy serving cluster DNS on {host}:{port} (domain {flags.cluster_domain})", flush=True)
        if server.healthz_address is not None:
            host, port = server.healthz_address
            print(f"skiff proxy serving health on http://{host}:{port}", flush=True)
        await stopping.wait()
        await server.stop()
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
