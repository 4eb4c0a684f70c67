"""``skiff apiserver``: the Kubernetes API over a Store.

Serves until SIGTERM or SIGINT, then stops listening, ends open watches,
closes the store and exits 0.  Once listening it prints one line to stdout
naming the bound address (``--secure-port 0`` picks a free port), and another
for the plain port when ``--insecure-port`` is given; logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.store.compactor import DEFAULT_INTERVAL_S
from skiff.store.errors import StoreError


@dataclass(frozen=True)
class ApiServerFlags:
    store: str
    data_dir: Path
    bind_address: str
    secure_port: int
    insecure_port: int | None
    token_auth_file: Path | None
    compaction_interval_s: float
    service_cluster_ip_range: str
    service_node_port_range: str
    encryption_provider_config: Path | None
    audit_policy_file: Path | None = None
    audit_log_path: str | None = None
    audit_log_maxsize: float = 100
    audit_log_maxbackup: int = 5
    authorization_modes: tuple[str, ...] = ("Node", "RBAC")
    kubelet_certificate_authority: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ApiServerFlags:
        return cls(
            store=args.store or f"sqlite://{Path(args.data_dir) / 'skiff.db'}",
            data_dir=Path(args.data_dir),
            bind_address=args.bind_address,
            secure_port=args.secure_port,
            insecure_port=args.insecure_port,
            token_auth_file=Path(args.token_auth_file) if args.token_auth_file else None,
            compaction_interval_s=args.etcd_compaction_interval,
            service_cluster_ip_range=args.service_cluster_ip_range,
            service_node_port_range=args.service_node_port_range,
            encryption_provider_config=Path(args.encryption_provider_config)
            if args.encryption_provider_config
            else None,
            audit_policy_file=Path(args.audit_policy_file) if args.audit_policy_file else None,
            audit_log_path=args.audit_log_path,
            audit_log_maxsize=args.audit_log_maxsize,
            audit_log_maxbackup=args.audit_log_maxbackup,
            authorization_modes=args.authorization_mode,
            kubelet_certificate_authority=Path(args.kubelet_certificate_authority)
            if args.kubelet_certificate_authority
            else None,
        )


def authorization_modes(text: str) -> tuple[str, ...]:
    """``--authorization-mode``: a comma-separated list of AlwaysAllow, Node, RBAC (argparse type)."""
    from skiff.apiserver.server import AUTHORIZATION_MODES

    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in AUTHORIZATION_MODES]
    if unknown or not modes or len(set(modes)) != len(modes):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give each of {', '.join(AUTHORIZATION_MODES)} at most once, comma-separated"
        )
    return modes


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "apiserver",
        help="serve the Kubernetes API over a store",
        description="Serve the Kubernetes API (HTTPS, certificates made in --data-dir) over a store.",
    )
    parser.add_argument("--data-dir", required=True, help="directory for certificates (and the default store)")
    add_apiserver_flags(parser)
    parser.add_argument(
        "--service-account-issuer",
        default="https://kubernetes.default.svc.cluster.local",
        help="the iss (and default audience) of ServiceAccount tokens "
        "(default https://kubernetes.default.svc.cluster.local)",
    )
    parser.add_argument(
        "--service-account-signing-key-file",
        type=Path,
        default=None,
        help="private key (EC P-256 or RSA, PEM) that signs ServiceAccount tokens (default DATA_DIR/pki/sa.key)",
    )
    parser.add_argument(
        "--service-account-key-file",
        type=Path,
        action="append",
        default=[],
        help="PEM public keys, certificates or private keys that ServiceAccount tokens may also be signed with "
        "(repeatable; e.g. the previous sa.pub while rotating keys); the signing key always verifies",
    )
    parser.add_argument(
        "--store",
        default=None,
        help="sqlite://PATH, https://HOST:PORT[,HOST:PORT...] (etcd over TLS: see --etcd-cafile) or "
        "etcd://HOST:PORT[,...] (etcd in plaintext) (default: sqlite://DATA_DIR/skiff.db)",
    )
    for flag, what in (
        ("--etcd-cafile", "CA that the etcd servers' certificates must chain to (default: the system's)"),
        ("--etcd-certfile", "client certificate to present to etcd (client-cert-auth)"),
        ("--etcd-keyfile", "key of --etcd-certfile"),
    ):
        parser.add_argument(flag, type=Path, default=None, help=f"{what}; for an https:// --store, as kube-apiserver's")
    parser.set_defaults(func=run)


def add_apiserver_flags(parser: argparse.ArgumentParser, secure_port_flag: str = "--secure-port") -> None:
    """Flags shared by ``apiserver`` and ``up`` (``up`` calls the port ``--api-port``)."""
    from skiff.apiserver.server import DEFAULT_AUTHORIZATION_MODES, DEFAULT_SECURE_PORT
    from skiff.registry.allocators import DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR

    parser.add_argument("--bind-address", default="127.0.0.1", help="address to serve HTTPS on (default 127.0.0.1)")
    parser.add_argument(
        secure_port_flag,
        dest="secure_port",
        type=int,
        default=DEFAULT_SECURE_PORT,
        help=f"HTTPS port; 0 picks a free one (default {DEFAULT_SECURE_PORT})",
    )
    parser.add_argument(
        "--insecure-port",
        type=int,
        default=None,
        help="also serve plain HTTP on 127.0.0.1:PORT without authentication, for local experiments (default off)",
    )
    parser.add_argument(
        "--token-auth-file", default=None, help='static bearer tokens, CSV lines: token,user,uid,"group1,group2"'
    )
    parser.add_argument(
        "--authorization-mode",
        type=authorization_modes,
        default=DEFAULT_AUTHORIZATION_MODES,
        help="authorizers asked in order (default Node,RBAC; AlwaysAllow lets every authenticated user do anything)",
    )
    parser.add_argument(
        "--etcd-compaction-interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help=f"seconds between store compactions, as kube-apiserver's; 0 disables (default {DEFAULT_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--service-cluster-ip-range",
        default=DEFAULT_SERVICE_CIDR,
        help=f"IPv4 CIDR inside 127.0.0.0/8 for Services' cluster IPs (default {DEFAULT_SERVICE_CIDR})",
    )
    parser.add_argument(
        "--service-node-port-range",
        default=DEFAULT_NODE_PORT_RANGE,
        help=f"port range for NodePort Services, LOW-HIGH inclusive (default {DEFAULT_NODE_PORT_RANGE})",
    )
    parser.add_argument(
        "--encryption-provider-config",
        default=None,
        help="EncryptionConfiguration file: which resources are encrypted at rest, and how "
        "(apiserver default: none; up default: DATA_DIR/pki/encryption-config.yaml, made on first start)",
    )
    parser.add_argument(
        "--kubelet-certificate-authority",
        default=None,
        help="CA file that kubelets' serving certificates must chain to (apiserver default: none, kubelets are "
        "dialed without verification; up default: DATA_DIR/pki/ca.crt, which signs its kubelet's certificate)",
    )
    add_audit_flags(parser)


def add_audit_flags(parser: argparse.ArgumentParser) -> None:
    """kube-apiserver's audit log flags (``apiserver.audit``)."""
    parser.add_argument(
        "--audit-policy-file",
        default=None,
        help="audit.k8s.io/v1 Policy: which requests are audited, at which level "
        "(apiserver default: none, no auditing; up default: DATA_DIR/audit-policy.yaml, made on first start)",
    )
    parser.add_argument(
        "--audit-log-path",
        default=None,
        help="file the audit events go to, one JSON line each; '-' is stdout (default DATA_DIR/logs/audit.log)",
    )
    parser.add_argument(
        "--audit-log-maxsize",
        type=float,
        default=100,
        help="MiB an audit log file may reach before it is rotated (default 100)",
    )
    parser.add_argument(
        "--audit-log-maxbackup",
        type=int,
        default=5,
        help="rotated audit log files to keep; 0 keeps them all (default 5)",
    )


async def run(args: argparse.Namespace) -> int:
    from skiff.apiserver.server import ApiServer, ApiServerConfig

    flags = ApiServerFlags.from_args(args)
    config = ApiServerConfig(
        store_url=flags.store,
        data_dir=flags.data_dir,
        bind_address=flags.bind_address,
        secure_port=flags.secure_port,
        insecure_port=flags.insecure_port,
        token_auth_file=flags.token_auth_file,
        compaction_interval_s=flags.compaction_interval_s,
        service_cluster_ip_range=flags.service_cluster_ip_range,
        service_node_port_range=flags.service_node_port_range,
        encryption_provider_config=flags.encryption_provider_config,
        audit_policy_file=flags.audit_policy_file,
        audit_log_path=flags.audit_log_path,
        audit_log_maxsize=flags.audit_log_maxsize,
        audit_log_maxbackup=flags.audit_log_maxbackup,
        authorization_modes=flags.authorization_modes,
        service_account_issuer=args.service_account_issuer,
        service_account_signing_key_file=args.service_account_signing_key_file,
        service_account_key_files=tuple(args.service_account_key_file),
        etcd_cafile=args.etcd_cafile,
        etcd_certfile=args.etcd_certfile,
        etcd_keyfile=args.etcd_keyfile,
        kubelet_certificate_authority=flags.kubelet_certificate_authority,
    )
    return await serve_until_signalled(ApiServer(config), "skiff apiserver")


async def serve_until_signalled(server: Any, name: str, on_started: Any = None) -> int:
    """Start ``server``, announce it, wait for SIGTERM/SIGINT, stop it; 0 on a clean stop."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        try:
            await server.start()
        except (OSError, ValueError, StoreError) as err:  # StoreError: e.g. etcd unreachable or refusing our cert
            print(f"{name}: cannot start: {err}", file=sys.stderr)
            await server.stop()
            return 1
        print(f"{name} serving the Kubernetes API on {server.url} (data: {server.config.data_dir})", flush=True)
        if server.insecure_address is not None:
            host, port = server.insecure_address
            print(f"{name} serving plain HTTP without authentication on http://{host}:{port}", flush=True)
        if on_started is not None:
            await on_started(server)
        await stopping.wait()
        await server.stop()
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
