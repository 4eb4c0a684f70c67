"""``skiff store serve``: the embedded store, served over etcd's v3 gRPC API.

Opens the SQLite store at ``DATA_DIR/skiff.db`` and serves it with
:class:`skiff.store.facade.FacadeServer` until SIGTERM or SIGINT, then stops
serving, closes the store and exits 0.  Once listening it prints one line to
stdout naming the bound URL (useful with port 0) and an etcdctl command that
works against it; logs go to stderr.

TLS by default, with client certificates required (etcd's
``--client-cert-auth``): ``--cert-file``/``--key-file``/``--trusted-ca-file``
as etcd's, or, without them, ``DATA_DIR/pki/etcd/`` made on first start
(:func:`skiff.apiserver.pki.ensure_etcd_pki`; ``client.crt``/``client.key``
there are for etcdctl and API servers).  Plaintext only when ``--listen``
says ``http://``, as etcd decides by the scheme of ``--listen-client-urls``.
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
from skiff.store.tls import TlsFiles, parse_listen_url

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
    cert_file: Path | None = None
    key_file: Path | None = None
    trusted_ca_file: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServeConfig:
        return cls(
            data_dir=Path(args.data_dir),
            listen=args.listen,
            name=args.name,
            advertise_peer_url=args.advertise_peer_url,
            initial_cluster_token=args.initial_cluster_token,
            compaction_interval_s=args.compaction_interval,
            cert_file=Path(args.cert_file) if args.cert_file else None,
            key_file=Path(args.key_file) if args.key_file else None,
            trusted_ca_file=Path(args.trusted_ca_file) if args.trusted_ca_file else None,
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
    parser.add_argument(
        "--listen",
        default="https://127.0.0.1:2379",
        help="URL to serve on: https://HOST:PORT (or HOST:PORT) serves TLS and requires client certificates; "
        "http://HOST:PORT serves plaintext to anyone; port 0 picks one (default https://127.0.0.1:2379)",
    )
    parser.add_argument(
        "--cert-file", default=None, help="serving certificate, as etcd's (default DATA_DIR/pki/etcd/server.crt)"
    )
    parser.add_argument("--key-file", default=None, help="key of --cert-file (default DATA_DIR/pki/etcd/server.key)")
    parser.add_argument(
        "--trusted-ca-file",
        default=None,
        help="CA that client certificates must chain to, as etcd's (default DATA_DIR/pki/etcd/ca.crt)",
    )
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


def serving_tls(config: ServeConfig) -> TlsFiles | None:
    """The files to serve TLS with, made in ``DATA_DIR/pki/etcd`` unless given; None for ``http://``.

    Blocking (may make keys).  ValueError: TLS files with ``http://``, or only some of the three.
    """
    from skiff.apiserver.pki import ensure_etcd_pki

    url = parse_listen_url(config.listen)
    ca, cert, key = config.trusted_ca_file, config.cert_file, config.key_file
    if not url.tls:
        if ca or cert or key:
            raise ValueError(f"--listen {config.listen} is plaintext: drop the TLS files, or listen on https://")
        return None
    if ca and cert and key:
        return TlsFiles(ca, cert, key)
    if ca or cert or key:
        raise ValueError("--cert-file, --key-file and --trusted-ca-file go together")
    host = url.address.rpartition(":")[0].strip("[]")
    pki = ensure_etcd_pki(config.data_dir, [host] if host not in ("0.0.0.0", "::", "") else [])
    return TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key)


def etcdctl_command(url: str, tls: TlsFiles | None, data_dir: Path) -> str:
    """An etcdctl command line for ``url``: with the client pair of ``DATA_DIR/pki/etcd`` when that is the CA."""
    from skiff.apiserver.pki import EtcdPki

    if tls is None:
        return f"etcdctl --endpoints {url}"
    pki = EtcdPki(data_dir / "pki" / "etcd")
    own = tls.ca_file == pki.ca_cert
    cert, key = (pki.client_cert, pki.client_key) if own else ("CLIENT.crt", "CLIENT.key")
    return f"etcdctl --cacert {tls.ca_file} --cert {cert} --key {key} --endpoints {url}"


def warn_plaintext(name: str, address: str) -> None:
    print(
        f"{name}: WARNING: serving the store in plaintext without client authentication on {address}: "
        "whoever can connect can read and write everything",
        file=sys.stderr,
        flush=True,
    )


async def serve(config: ServeConfig) -> int:
    from skiff.store.facade import FacadeServer
    from skiff.store.sqlite import SqliteStore

    await asyncio.to_thread(config.data_dir.mkdir, parents=True, exist_ok=True)
    try:
        tls = await asyncio.to_thread(serving_tls, config)
    except ValueError as exc:
        print(f"skiff store serve: {exc}", file=sys.stderr)
        return 2
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
        server = FacadeServer(
            store, config.name, config.advertise_peer_url, cluster_token=config.initial_cluster_token, tls=tls
        )
        try:
            await server.start(config.listen)
        except (OSError, RuntimeError, ValueError) as exc:
            print(f"skiff store serve: cannot listen on {config.listen}: {exc}", file=sys.stderr)
            return 1
        if tls is None:
            warn_plaintext("skiff store serve", server.address)
        print(
            f"skiff store serving etcd v3 API on {server.url} (data: {config.data_dir}); "
            f"try: {etcdctl_command(server.url, tls, config.data_dir)} put greeting hello",
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
