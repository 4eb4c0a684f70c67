"""``skiff up``: one command, a whole local cluster on the embedded store.

In this process: the store (``DATA_DIR/skiff.db``), the Kubernetes API server
(HTTPS, certificates in ``DATA_DIR/pki``) and the store's etcd v3 API (TLS,
client certificates required, both from its own CA in ``DATA_DIR/pki/etcd``
whose ``client.crt``/``client.key`` are etcdctl's; the "etcd v3 API" line
prints the command; plaintext only with ``--listen http://...``).  As
supervised child processes, each in its own process group and restarted with
back-off if it dies (logs in ``DATA_DIR/logs``): controller-manager,
scheduler, a kubelet for this machine (control-plane labels) and the proxy
with cluster DNS.

Addresses: the default data dir uses the documented defaults; any other data
dir gets its own 127.N.0.0/16 (skiff.localcluster.addresses), so clusters run
side by side; every range and port is still a flag.  A kubeconfig is written
to ``--kubeconfig FILE`` or merged into ``$KUBECONFIG``/``~/.kube/config`` as
context ``skiff`` (as kind does), with a copy in ``DATA_DIR/admin.kubeconfig``.
The components do not use it: each has an identity of its own, as kubeadm
sets them up (``DATA_DIR/<component>.kubeconfig``, skiff.localcluster.identities),
and the controllers act as their ServiceAccounts; once this machine's node has
registered, ``skiff up`` labels it control-plane.  A bootstrap token for extra nodes is kept
in ``DATA_DIR/join-token`` (renewed when it nears expiry) and printed in a
"join another node: skiff kubelet ..." line; as with kubeadm, the token's
group may post a CSR that the controller-manager approves and signs, so the
joining kubelet ends up with a client certificate of its own.  The kubelet
APIs are locked down as kubeadm does it: this machine's kubelet serves a
certificate from the cluster CA (``DATA_DIR/pki/kubelet-serving.crt``), which
the API server checks (``--kubelet-certificate-authority`` defaults to the
cluster CA here); a joined kubelet asks for one with a kubelet-serving CSR,
which the controller-manager approves for the node's own loopback addresses
and name (a Skiff rule: upstream leaves it to an administrator) and signs.
Requests are audited at
Metadata level (health checks excepted) to ``DATA_DIR/logs/audit.log`` under
``DATA_DIR/audit-policy.yaml``, written on first start, then the user's to
edit.  Secrets are encrypted at rest under
``DATA_DIR/pki/encryption-config.yaml`` (aescbc with a key made on first
start; ``--encryption-provider-config`` to use another).  Progress goes to
stdout, one line per step, ending with one "ready" line.  SIGINT/SIGTERM
stop everything (the kubelet stops its pods) and exit 0; running again on the
same data dir resumes the cluster and restarts its pods.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from skiff.cli.apiserver import add_apiserver_flags
from skiff.cli.store import DB_FILE, ServeConfig, add_serve_flags, etcdctl_command, serving_tls, warn_plaintext
from skiff.localcluster.paths import default_data_dir

READY_TIMEOUT_S = 120.0


def default_node_name() -> str:
    """The host name, made a valid DNS-1123 label (kubeadm names the node after the host)."""
    name = re.sub(r"[^a-z0-9-]", "-", socket.gethostname().lower()).strip("-")[:63]
    return name or "skiff-node"


def register(subparsers: Any) -> None:
    up = subparsers.add_parser(
        "up",
        help="run a local cluster: store, API server, controllers, scheduler, kubelet, proxy and DNS",
        description="Run a whole local Skiff cluster on the embedded store and write a kubeconfig for kubectl.",
    )
    add_serve_flags(up, data_dir_default=str(default_data_dir()))
    add_apiserver_flags(up, secure_port_flag="--api-port")
    up.add_argument(
        "--kubeconfig",
        default=None,
        help="write the kubeconfig to this file (default: merge context 'skiff' into $KUBECONFIG or ~/.kube/config)",
    )
    up.add_argument("--node-name", default=default_node_name(), help="name of this machine's node (default: host name)")
    up.add_argument("--node-ip", default=None, help="this node's address (default 127.0.1.1, or the data dir's plan)")
    up.add_argument("--cluster-cidr", default=None, help="pod addresses; one /24 per node (default 127.16.0.0/12)")
    up.add_argument("--cluster-dns", default=None, help="address of cluster DNS (default 127.253.0.10)")
    up.add_argument("--load-balancer-range", default=None, help="LoadBalancer ingress pool (default 127.252.0.0/16)")
    up.add_argument("--no-kubelet", action="store_true", help="run no node on this machine (control plane only)")
    up.add_argument("--no-proxy", action="store_true", help="run no service proxy and no cluster DNS")
    up.add_argument("--no-etcd-operator", action="store_true", help="run no etcd operator")
    # Defaults that depend on the data dir's address plan are filled in by ``plan_addresses``.
    up.set_defaults(func=run, bind_address=None, service_cluster_ip_range=None, listen=None)


def plan_addresses(args: argparse.Namespace) -> Any:
    """Blocking (reads or writes the data dir's slot file): call through a thread."""
    from dataclasses import replace

    from skiff.localcluster.addresses import choose_slot, plan

    base = plan(choose_slot(Path(args.data_dir), default_data_dir()))
    return replace(
        base,
        api_address=args.bind_address or base.api_address,
        node_ip=args.node_ip or base.node_ip,
        service_cidr=args.service_cluster_ip_range or base.service_cidr,
        cluster_cidr=args.cluster_cidr or base.cluster_cidr,
        cluster_dns=args.cluster_dns or base.cluster_dns,
        load_balancer_cidr=args.load_balancer_range or base.load_balancer_cidr,
    )


async def join_token(admin_kubeconfig: Path, data_dir: Path) -> str | None:
    """The bootstrap token in ``DATA_DIR/join-token`` (made or renewed through the API); None if that fails."""
    import aiohttp

    from skiff.cli.token import ensure_bootstrap_rbac, ensure_join_token
    from skiff.client import ApiClient, ApiError, ClientConfig

    try:
        config = await asyncio.to_thread(ClientConfig.from_kubeconfig, admin_kubeconfig)
        async with ApiClient(config, user_agent="skiff-up") as client:
            await ensure_bootstrap_rbac(client)
            return await ensure_join_token(client, data_dir / "join-token")
    except (ApiError, OSError, ValueError, aiohttp.ClientError) as err:
        print(f"skiff up: no join token: {err}", file=sys.stderr, flush=True)
        return None


async def run(args: argparse.Namespace) -> int:
    from skiff.apiserver import kubeconfig
    from skiff.apiserver.audit import ensure_default_policy
    from skiff.apiserver.pki import ensure_encryption_config, ensure_kubelet_serving_cert
    from skiff.apiserver.server import ApiServer, ApiServerConfig
    from skiff.localcluster.components import (
        CONTROL_PLANE_LABELS,
        STOP_ORDER,
        LocalCluster,
        components,
        kubelet_serving_prefix,
    )
    from skiff.localcluster.identities import write_kubeconfigs
    from skiff.localcluster.readiness import wait_for_node_ready
    from skiff.localcluster.supervisor import Supervisor
    from skiff.store.facade import FacadeServer
    from skiff.store.sqlite import SqliteStore

    addresses = await asyncio.to_thread(plan_addresses, args)
    args.listen = args.listen or f"https://{addresses.api_address}:2379"
    store_config = ServeConfig.from_args(args)
    data_dir = store_config.data_dir.resolve()
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    try:  # the etcd v3 API serves TLS with client certs from DATA_DIR/pki/etcd unless --listen says http://
        etcd_tls = await asyncio.to_thread(serving_tls, replace(store_config, data_dir=data_dir))
    except ValueError as err:
        print(f"skiff up: {err}", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(f"skiff up: {line}", flush=True)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    encryption_config = (
        Path(args.encryption_provider_config)
        if args.encryption_provider_config
        else await asyncio.to_thread(ensure_encryption_config, data_dir)
    )
    audit_policy = (
        Path(args.audit_policy_file)
        if args.audit_policy_file
        else await asyncio.to_thread(ensure_default_policy, data_dir / "audit-policy.yaml")
    )
    store = await SqliteStore.open(data_dir / DB_FILE)
    facade = FacadeServer(
        store,
        store_config.name,
        store_config.advertise_peer_url,
        cluster_token=store_config.initial_cluster_token,
        tls=etcd_tls,
    )
    api = ApiServer(
        ApiServerConfig(
            store_url=f"sqlite://{data_dir / DB_FILE}",
            data_dir=data_dir,
            bind_address=addresses.api_address,
            secure_port=args.secure_port,
            insecure_port=args.insecure_port,
            token_auth_file=Path(args.token_auth_file) if args.token_auth_file else None,
            # One compactor per store: the API server's (the facade runs none here).
            compaction_interval_s=store_config.compaction_interval_s,
            service_cluster_ip_range=addresses.service_cidr,
            service_node_port_range=args.service_node_port_range,
            encryption_provider_config=encryption_config,
            audit_policy_file=audit_policy,
            audit_log_path=args.audit_log_path,
            audit_log_maxsize=args.audit_log_maxsize,
            audit_log_maxbackup=args.audit_log_maxbackup,
            authorization_modes=args.authorization_mode,
            # Its kubelet's serving cert comes from the cluster CA (below): verify kubelets against it.
            kubelet_certificate_authority=Path(args.kubelet_certificate_authority)
            if args.kubelet_certificate_authority
            else data_dir / "pki" / "ca.crt",
        ),
        store=store,
    )
    supervisor = Supervisor(data_dir / "logs", on_event=say)
    try:
        try:
            await facade.start(store_config.listen)
            await api.start()
        except (OSError, RuntimeError, ValueError) as err:
            print(f"skiff up: cannot start: {err}", file=sys.stderr)
            return 1
        assert api.pki is not None
        say(f"Kubernetes API on {api.url} (data: {data_dir})")
        say(f"etcd v3 API on {facade.url}; try: {etcdctl_command(facade.url, etcd_tls, data_dir)} member list")
        if etcd_tls is None:
            warn_plaintext("skiff up", facade.address)
        admin = data_dir / "admin.kubeconfig"
        await asyncio.to_thread(kubeconfig.write, admin, kubeconfig.build(api.url, api.pki), merge_existing=False)
        await asyncio.to_thread(write_kubeconfigs, data_dir, api.url, api.pki, args.node_name)
        cluster = LocalCluster(
            data_dir=data_dir,
            node_name=args.node_name,
            addresses=addresses,
            with_kubelet=not args.no_kubelet,
            with_proxy=not args.no_proxy,
            with_etcd_operator=not args.no_etcd_operator,
        )
        if cluster.with_kubelet:
            hosts = (addresses.node_ip, args.node_name, "localhost", "127.0.0.1")
            serving = kubelet_serving_prefix(data_dir)
            await asyncio.to_thread(ensure_kubelet_serving_cert, api.pki, serving, args.node_name, hosts)
        for component in components(cluster):
            await supervisor.start(component)
            say(f"started {component.name} (log: {supervisor.log_path(component.name)})")
        target = Path(args.kubeconfig) if args.kubeconfig else kubeconfig.default_path()
        config = kubeconfig.build(api.url, api.pki)
        await asyncio.to_thread(kubeconfig.write, target, config, merge_existing=args.kubeconfig is None)
        how = "written to" if args.kubeconfig else "merged into"
        say(f"kubeconfig {how} {target} (context {kubeconfig.DEFAULT_NAME})")
        token = await join_token(admin, data_dir)
        if token:
            say(
                f"join another node: skiff kubelet --server {api.url} --token {token} --certificate-authority "
                f"{data_dir}/pki/ca.crt --node-name NAME --node-ip {addresses.extra_node_ip(2)}"
            )
        if cluster.with_kubelet:
            waiter = asyncio.ensure_future(
                wait_for_node_ready(admin, cluster.node_name, READY_TIMEOUT_S, labels=CONTROL_PLANE_LABELS)
            )
            stop_waiter = asyncio.ensure_future(stopping.wait())
            await asyncio.wait({waiter, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
            stop_waiter.cancel()
            if not waiter.done():
                waiter.cancel()
            elif not waiter.result():
                say(f"node {cluster.node_name} is not Ready yet (see {supervisor.log_path('kubelet')})")
        if not stopping.is_set():
            say(f"ready: node {cluster.node_name} ({addresses.node_ip}); try: kubectl --kubeconfig {target} get nodes")
        await stopping.wait()
        say("stopping")
        return 0
    finally:
        await supervisor.stop([n for n in STOP_ORDER if n in supervisor.components])
        await api.stop()
        await facade.stop()
        await store.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
