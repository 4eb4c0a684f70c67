"""``skiff sim nodes --count N``: run N hollow (simulated) nodes in this process until SIGTERM/SIGINT.

The nodes register, renew their Leases and mark pods bound to them Running
without starting processes (skiff.kubelet.hollow).  Prints one line once all
nodes are registered.  With --delete-on-exit the Nodes and Leases are removed
when stopping; otherwise they stay and go NotReady like a stopped kubelet's.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sim", help="simulate cluster members (hollow nodes)", description=__doc__)
    sim = parser.add_subparsers(dest="sim_command", metavar="WHAT", required=True)
    nodes = sim.add_parser("nodes", help="run N hollow nodes (kwok-style) in one process")
    nodes.add_argument("--count", type=int, required=True, help="number of nodes")
    nodes.add_argument("--name-prefix", default="hollow-", help="names are PREFIX0, PREFIX1, ... (default hollow-)")
    nodes.add_argument("--first-index", type=int, default=0, help="number of the first node (default 0)")
    nodes.add_argument("--kubeconfig", default=None, help="kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
    nodes.add_argument("--cpu", default="32", help="CPU capacity per node (default 32)")
    nodes.add_argument("--memory", default="256Gi", help="memory capacity per node (default 256Gi)")
    nodes.add_argument("--pods", default="110", help="pod capacity per node (default 110)")
    nodes.add_argument("--labels", default="", help="extra node labels, k=v[,k=v...]")
    nodes.add_argument("--lease-interval", type=float, default=10.0, help="seconds between Lease renewals (default 10)")
    nodes.add_argument(
        "--no-pod-status", action="store_true", help="do not mark bound pods Running (register and renew only)"
    )
    nodes.add_argument("--delete-on-exit", action="store_true", help="delete the Nodes and Leases when stopping")
    parser.set_defaults(func=run)


def _labels(text: str) -> dict[str, str]:
    labels = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        labels[key.strip()] = value.strip()
    return labels


async def run(args: argparse.Namespace) -> int:
    from skiff.client import ApiClient, ClientConfig, ConfigError
    from skiff.kubelet.hollow import HollowConfig, HollowNodes

    if args.count < 1:
        print("skiff sim nodes: --count must be at least 1", file=sys.stderr)
        return 2
    try:
        config = ClientConfig.from_kubeconfig(args.kubeconfig)
    except (ConfigError, OSError) as err:
        print(f"skiff sim nodes: {err}", file=sys.stderr)
        return 1
    hollow_config = HollowConfig(
        cpu=args.cpu,
        memory=args.memory,
        pods=args.pods,
        labels=_labels(args.labels),
        lease_interval_s=args.lease_interval,
        run_pods=not args.no_pod_status,
    )
    loop = asyncio.get_running_loop()
    async with ApiClient(config, user_agent="skiff-hollow-nodes") as client:
        nodes = HollowNodes(client, args.count, args.name_prefix, hollow_config, first_index=args.first_index)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, nodes.stop)
        try:
            runner = asyncio.create_task(nodes.run())
            registered = asyncio.create_task(nodes.registered.wait())
            await asyncio.wait({runner, registered}, return_when=asyncio.FIRST_COMPLETED)
            registered.cancel()
            if nodes.registered.is_set():
                print(f"skiff sim: {args.count} hollow nodes registered ({args.name_prefix}*)", flush=True)
            await runner
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if args.delete_on_exit:
            await nodes.delete_nodes()
    return 0
