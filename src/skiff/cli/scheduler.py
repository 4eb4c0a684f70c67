"""``skiff scheduler``: binds pending pods to nodes, leader-elected like kube-scheduler.

Reads the cluster through --kubeconfig (default $KUBECONFIG or ~/.kube/config).
With --leader-elect (the default) it schedules only while holding the Lease
kube-system/kube-scheduler, so several replicas can run.  SIGTERM or SIGINT
stops it (releasing the Lease); exit 0 then, 1 when the kubeconfig is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
import uuid
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

LEASE_NAME = "kube-scheduler"
STOP_GRACE_S = 5.0


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class SchedulerFlags:
    kubeconfig: str | None
    leader_elect: bool
    scheduler_name: str
    percentage_of_nodes_to_score: int
    bind_address: str
    port: int | None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> SchedulerFlags:
        return cls(
            args.kubeconfig,
            args.leader_elect,
            args.scheduler_name,
            args.percentage_of_nodes_to_score,
            args.bind_address,
            args.port,
        )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "scheduler", help="assign pending pods to nodes", description="Assign pending pods to nodes (kube-scheduler)."
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
    parser.add_argument(
        "--leader-elect",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        help="schedule only while holding the Lease kube-system/kube-scheduler (default true)",
    )
    parser.add_argument(
        "--scheduler-name", default="default-scheduler", help="pods' spec.schedulerName to serve (default-scheduler)"
    )
    parser.add_argument(
        "--percentage-of-nodes-to-score",
        type=int,
        default=0,
        help="share of nodes to find feasible before scoring; 0 = adaptive, as kube-scheduler (default 0)",
    )
    parser.add_argument("--bind-address", default="127.0.0.1", help="address for --port (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help="serve /healthz, /readyz and /metrics on this HTTP port (0: any; off)"
    )
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    from skiff.client import ApiClient, ClientConfig, ConfigError
    from skiff.client.leader import LeaderElector
    from skiff.scheduler.scheduler import DEFAULT_BIND_CONCURRENCY, Scheduler

    flags = SchedulerFlags.from_args(args)
    try:
        config = ClientConfig.from_kubeconfig(flags.kubeconfig)
    except (ConfigError, OSError) as err:
        print(f"skiff scheduler: {err}", file=sys.stderr)
        return 1
    leading: list[Scheduler] = []
    # Room for every binding in flight plus the two informer watches and the event writes.
    connections = DEFAULT_BIND_CONCURRENCY + 16
    async with ApiClient(config, user_agent="skiff-scheduler", max_connections=connections) as client:

        async def lead() -> None:
            scheduler = Scheduler(
                client,
                scheduler_name=flags.scheduler_name,
                percentage_of_nodes_to_score=flags.percentage_of_nodes_to_score,
            )
            leading.append(scheduler)
            try:
                await scheduler.run()
            finally:
                leading.remove(scheduler)

        runner = await _serve_health(flags, lambda: leading[0] if leading else None)

        identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        elector = LeaderElector(client, name=LEASE_NAME, identity=identity) if flags.leader_elect else None
        main = asyncio.create_task(elector.run(lead) if elector else lead())
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        print(f"skiff scheduler {flags.scheduler_name} running against {config.server}", flush=True)
        stop_wait = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({main, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            stop_wait.cancel()
            if elector is not None:
                elector.stop()  # releases the Lease so a standby takes over at once
                await asyncio.wait({main}, timeout=STOP_GRACE_S)
            if not main.done():
                main.cancel()
            await asyncio.gather(main, return_exceptions=True)
            if runner is not None:
                await runner.cleanup()
        if main.done() and not main.cancelled() and main.exception() is not None:
            log.error("scheduler failed: %s", main.exception())
            return 1
        return 0


async def _serve_health(flags: SchedulerFlags, current: Any) -> Any:
    """Start the health/metrics endpoint when --port is given; returns its runner (None when off)."""
    if flags.port is None:
        return None
    from aiohttp import web

    from skiff.scheduler.health import health_app

    runner = web.AppRunner(health_app(current))
    await runner.setup()
    await web.TCPSite(runner, flags.bind_address, flags.port).start()
    host, port = runner.addresses[0][:2]
    print(f"skiff scheduler serving health on http://{host}:{port}", flush=True)
    return runner
