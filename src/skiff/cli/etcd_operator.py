"""``skiff etcd-operator``: run the etcd operator (EtcdCluster, EtcdBackup, EtcdRestore) against an API server.

Leader-elected (Lease ``etcd-operator`` in kube-system) so several copies can
run.  ``--port`` serves the snapshot files restoring seeds fetch, /healthz and
/metrics on ``--listen-address`` (pods must reach it; loopback here).  Prints
``etcd-operator: serving on URL`` and, once CRDs are established and the
controllers' caches synced, ``etcd-operator: ready``.  SIGTERM/SIGINT → exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

from skiff.cli.controller_manager import _bool, _duration


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "etcd-operator",
        help="create, resize, heal, upgrade, back up and restore etcd clusters",
        description="The etcd operator: EtcdCluster, EtcdBackup and EtcdRestore (etcd.database.coreos.com/v1beta2).",
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--leader-elect", type=_bool, nargs="?", const=True, default=True)
    parser.add_argument("--leader-elect-resource-namespace", default="kube-system")
    parser.add_argument("--backup-dir", type=Path, default=None, help="root of Local backups (default STATE/backups)")
    parser.add_argument("--state-dir", type=Path, default=None, help="staging area (default ./etcd-operator)")
    parser.add_argument("--listen-address", default="127.0.0.1", help="address of the snapshot/metrics server")
    parser.add_argument("--port", type=int, default=0, help="port of the snapshot/metrics server (0: any)")
    parser.add_argument("--reconcile-interval", type=_duration, default=5.0, help="resync period (default 5s)")
    parser.add_argument(
        "--quorum-loss-grace", type=_duration, default=30.0, help="wait before rebuilding a cluster that lost quorum"
    )
    parser.add_argument("--create-crd", type=_bool, nargs="?", const=True, default=True)
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    from skiff.client import ApiClient, ClientConfig, ConfigError
    from skiff.etcdoperator.operator import EtcdOperator, OperatorConfig

    try:
        config = ClientConfig.from_kubeconfig(args.kubeconfig)
    except (ConfigError, OSError) as err:
        print(f"skiff etcd-operator: {err}", file=sys.stderr)
        return 1
    state_dir = (args.state_dir or Path.cwd() / "etcd-operator").resolve()
    operator_config = OperatorConfig(
        backup_dir=(args.backup_dir or state_dir / "backups").resolve(),
        state_dir=state_dir,
        listen_address=args.listen_address,
        port=args.port,
        reconcile_interval_s=args.reconcile_interval,
        quorum_loss_grace_s=args.quorum_loss_grace,
        create_crd=args.create_crd,
        lease_namespace=args.leader_elect_resource_namespace,
    )
    async with ApiClient(config, user_agent="skiff-etcd-operator") as client:
        operator = EtcdOperator(client, operator_config)
        url = await operator.start_server()
        print(f"etcd-operator: serving on {url}", flush=True)
        main = asyncio.create_task(operator.run(leader_elect=args.leader_elect))
        announce = asyncio.create_task(_announce_ready(operator))
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        stop_wait = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({main, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            stop_wait.cancel()
            announce.cancel()
            await operator.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(main), timeout=15)
            if not main.done():
                main.cancel()
            await asyncio.gather(main, announce, return_exceptions=True)
            await operator.close()
        if main.done() and not main.cancelled() and main.exception() is not None:
            print(f"skiff etcd-operator: {main.exception()}", file=sys.stderr)
            return 1
        return 0


async def _announce_ready(operator: Any) -> None:
    await operator.manager.synced.wait()
    print("etcd-operator: ready", flush=True)
