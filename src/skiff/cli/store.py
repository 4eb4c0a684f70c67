"""``skiff store serve``: the embedded store, served over etcd's v3 gRPC API.

Opens the SQLite store at ``DATA_DIR/skiff.db`` and serves it with
:class:`skiff.store.facade.FacadeServer` until SIGTERM or SIGINT, then stops
serving, closes the store and exits 0.  Once listening it prints one line to
stdout naming the bound address (useful with port 0); logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.store.compactor import DEFAULT_INTERVAL_S, compact_periodically
from skiff.store.facade_member import DEFAULT_CLUSTER_TOKEN

#: The store's file inside --data-dir.
DB_FILE = "skiff.db"


@dataclass(frozen=True)
class ServeConfig:
    data_dir: Path
    listen: str
    name: str
    advertise_peer_url: str
    initial_cluster_token: str
    compaction_interval_s: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServeConfig:
        return cls(
            data_dir=Path(args.data_dir),
            listen=args.listen,
            name=args.name,
            advertise_peer_url=args.advertise_peer_url,
            initial_cluster_token=args.initial_cluster_token,
            compaction_interval_s=args.compaction_interval,
        )


def register(subparsers: Any) -> None:
    store = subparsers.add_parser("store", help="the embedded store (etcd v3 semantics)")
    store_sub = store.add_subparsers(dest="store_command", metavar="STORE_COMMAND", required=True)
    serve_parser = store_sub.add_parser(
        "serve",
        help="serve the embedded store over etcd's v3 gRPC API (for etcdctl and etcd clients)",
        description="Serve DATA_DIR/skiff.db over etcd's v3 gRPC API as a single-member etcd 3.5 cluster.",
    )
    add_serve_flags(serve_parser, data_dir_default=None)
    serve_parser.set_defaults(func=run)


def add_serve_flags(parser: argparse.ArgumentParser, data_dir_default: str | None) -> None:
    """The flags of ServeConfig, shared by ``store serve`` and ``up``."""
    if data_dir_default is None:
        parser.add_argument("--data-dir", required=True, help="directory of the store (created if missing)")
    else:
        parser.add_argument(
            "--data-dir", default=data_dir_default, help=f"store directory (default {data_dir_default})"
        )
    parser.add_argument("--listen", default="127.0.0.1:2379", help="host:port to serve on; port 0 picks one")
    parser.add_argument("--name", default="default", help="member name, as etcd's --name (default: default)")
    parser.add_argument(
        "--advertise-peer-url",
        default="http://localhost:2380",
        help="peer URL the member id is derived from, as etcd's --initial-advertise-peer-urls",
    )
    parser.add_argument(
        "--initial-cluster-token",
        default=DEFAULT_CLUSTER_TOKEN,
        help=f"cluster token the ids are derived from, as etcd's (default: {DEFAULT_CLUSTER_TOKEN})",
    )
    parser.add_argument(
        "--compaction-interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help="seconds between automatic compactions, keeping one interval of history as kube-apiserver's "
        f"--etcd-compaction-interval does; 0 disables (default {DEFAULT_INTERVAL_S:g})",
    )


async def run(args: argparse.Namespace) -> int:
    return await serve(ServeConfig.from_args(args))


async def serve(config: ServeConfig) -> int:
    from skiff.store.facade import FacadeServer
    from skiff.store.sqlite import SqliteStore

    await asyncio.to_thread(config.data_dir.mkdir, parents=True, exist_ok=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    store = await SqliteStore.open(config.data_dir / DB_FILE)
    compactor = (
        asyncio.create_task(compact_periodically(store, config.compaction_interval_s))
        if config.compaction_interval_s > 0
        else None
    )
    try:
        server = FacadeServer(store, config.name, config.advertise_peer_url, cluster_token=config.initial_cluster_token)
        try:
            await server.start(config.listen)
        except (OSError, RuntimeError) as exc:
            print(f"skiff store serve: cannot listen on {config.listen}: {exc}", file=sys.stderr)
            return 1
        print(
            f"skiff store serving etcd v3 API on {server.address} (data: {config.data_dir}); "
            f"try: etcdctl --endpoints {server.address} put greeting hello",
            flush=True,
        )
        try:
            await stopping.wait()
        finally:
            await server.stop()
    finally:
        if compactor is not None:
            compactor.cancel()
            await asyncio.gather(compactor, return_exceptions=True)
        await store.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0
