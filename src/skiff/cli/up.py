"""``skiff up``: one command, a working local Skiff on the embedded store.

Starts, in one process, on ``DATA_DIR/skiff.db``:

* the Kubernetes API server (HTTPS on 127.0.0.1:``--api-port``, certificates
  made in ``DATA_DIR/pki``), with periodic store compaction;
* the store's etcd v3 gRPC API on ``--listen`` (as ``skiff store serve``), for
  etcdctl and etcd clients;

then writes a kubeconfig for the admin user: to ``--kubeconfig FILE`` when
given, otherwise merged into ``$KUBECONFIG`` / ``~/.kube/config`` as context
``skiff`` (made current), as kind does — and says which on stdout.  Runs
until SIGTERM or SIGINT and exits 0 after a clean stop.  Controllers,
scheduler and kubelet join here in later releases.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from skiff.cli.apiserver import add_apiserver_flags
from skiff.cli.store import DB_FILE, ServeConfig, add_serve_flags


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/skiff``, as other local-cluster tools keep state per user."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "skiff"


def register(subparsers: Any) -> None:
    up = subparsers.add_parser(
        "up",
        help="run a local Skiff on the embedded store: API server, etcd v3 API, kubeconfig",
        description="Run a local Skiff on the embedded store: the Kubernetes API server and the store's "
        "etcd v3 API, and write a kubeconfig for kubectl.",
    )
    add_serve_flags(up, data_dir_default=str(default_data_dir()))
    add_apiserver_flags(up, secure_port_flag="--api-port")
    up.add_argument(
        "--kubeconfig",
        default=None,
        help="write the kubeconfig to this file (default: merge context 'skiff' into $KUBECONFIG or ~/.kube/config)",
    )
    up.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    from skiff.apiserver import kubeconfig
    from skiff.apiserver.server import ApiServer, ApiServerConfig
    from skiff.store.facade import FacadeServer
    from skiff.store.sqlite import SqliteStore

    store_config = ServeConfig.from_args(args)
    data_dir = store_config.data_dir
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    store = await SqliteStore.open(data_dir / DB_FILE)
    facade = FacadeServer(
        store, store_config.name, store_config.advertise_peer_url, cluster_token=store_config.initial_cluster_token
    )
    api = ApiServer(
        ApiServerConfig(
            store_url=f"sqlite://{data_dir / DB_FILE}",
            data_dir=data_dir,
            bind_address=args.bind_address,
            secure_port=args.secure_port,
            insecure_port=args.insecure_port,
            token_auth_file=Path(args.token_auth_file) if args.token_auth_file else None,
            # One compactor per store: the API server's (the facade runs none here).
            compaction_interval_s=store_config.compaction_interval_s,
            service_cluster_ip_range=args.service_cluster_ip_range,
            service_node_port_range=args.service_node_port_range,
        ),
        store=store,
    )
    try:
        try:
            await facade.start(store_config.listen)
            await api.start()
        except (OSError, RuntimeError, ValueError) as err:
            print(f"skiff up: cannot start: {err}", file=sys.stderr)
            return 1
        assert api.pki is not None
        target = Path(args.kubeconfig) if args.kubeconfig else kubeconfig.default_path()
        config = kubeconfig.build(api.url, api.pki)
        await asyncio.to_thread(kubeconfig.write, target, config, merge_existing=args.kubeconfig is None)
        how = "written to" if args.kubeconfig else "merged into"
        print(f"skiff up: Kubernetes API on {api.url} (data: {data_dir})", flush=True)
        print(f"skiff up: etcd v3 API on {facade.address}", flush=True)
        print(
            f"skiff up: kubeconfig {how} {target} (context {kubeconfig.DEFAULT_NAME}); "
            f"try: kubectl --kubeconfig {target} get namespaces",
            flush=True,
        )
        await stopping.wait()
        return 0
    finally:
        await api.stop()
        await facade.stop()
        await store.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
