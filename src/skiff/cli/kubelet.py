"""``skiff kubelet``: register a Node and run the pods bound to it as supervised process groups.

Runs until SIGTERM or SIGINT.  By default pods keep running when the kubelet
exits, and the next kubelet on the same ``--root-dir`` adopts them;
``--stop-pods-on-exit`` stops them gracefully first (``skiff up`` passes it
when the cluster stops).  It reaches the API server through --kubeconfig, or
--server/--token/--certificate-authority (a bootstrap token from ``skiff up``'s
join line or ``skiff token create``).  SIGUSR1 prints every asyncio task's stack to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from skiff.client import ClientConfig
from skiff.client.cluster_defaults import CLUSTER_DNS, CLUSTER_DOMAIN
from skiff.localcluster.paths import default_data_dir


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "kubelet",
        help="run pods bound to this node as processes",
        description="Register a Node and run its pods as supervised process groups.",
    )
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--node-ip", required=True, help="the node's address in 127.0.0.0/8 (e.g. 127.0.1.1)")
    parser.add_argument("--labels", default="", help="extra node labels k=v,k2=v2")
    parser.add_argument("--register-with-taints", default="", help="taints key=value:Effect,...")
    parser.add_argument("--pod-manifest-path", default=None, help="directory of static pod manifests")
    parser.add_argument("--root-dir", default=None, help="pod state directory (default DATA_DIR/kubelet/NODE)")
    parser.add_argument(
        "--data-dir", default=str(default_data_dir()), help="default parent of --root-dir (default: as skiff up)"
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig (default $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--server", default=None, help="API server URL, instead of --kubeconfig (with --token)")
    parser.add_argument("--token", default=None, help="bearer token for --server (e.g. a bootstrap token)")
    parser.add_argument("--certificate-authority", default=None, help="CA file that signed --server's certificate")
    parser.add_argument("--port", type=int, default=10250, help="kubelet HTTPS port; 0 picks a free one")
    parser.add_argument("--pod-cidr", default=None, help="pod CIDR override (default: node.spec.podCIDR)")
    parser.add_argument("--cluster-dns", default=CLUSTER_DNS)
    parser.add_argument("--cluster-domain", default=CLUSTER_DOMAIN)
    parser.add_argument("--stop-pods-on-exit", action="store_true", help="stop pods gracefully when the kubelet exits")
    parser.set_defaults(func=run)


def parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        labels[key] = value
    return labels


def parse_taints(text: str) -> list[dict[str, str]]:
    taints = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key_value, _, effect = item.partition(":")
        key, _, value = key_value.partition("=")
        taint = {"key": key, "effect": effect or "NoSchedule"}
        if value:
            taint["value"] = value
        taints.append(taint)
    return taints


def write_client_kubeconfig(root: Path, config: ClientConfig) -> Path:
    """``ROOT/kubelet.kubeconfig`` for --server/--token (mode 0600: it holds the token); its path.

    The kubelet reads its connection from a kubeconfig, as upstream's does
    after ``--bootstrap-kubeconfig``; the token itself stays the credential
    (no client certificate is requested through a CSR yet).
    """
    user: dict[str, Any] = {"token": config.token} if config.token else {}
    cluster: dict[str, Any] = {"server": config.server}
    if config.ca_file:
        cluster["certificate-authority"] = str(Path(config.ca_file).resolve())
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default", "cluster": cluster}],
        "users": [{"name": "kubelet", "user": user}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "kubelet"}}],
        "current-context": "default",
    }
    root.mkdir(parents=True, exist_ok=True)
    path = root / "kubelet.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        yaml.safe_dump(document, file)
    return path


async def run(args: argparse.Namespace) -> int:
    from skiff.kubelet.agent import Kubelet, KubeletConfig

    root = Path(args.root_dir) if args.root_dir else Path(args.data_dir) / "kubelet" / args.node_name
    kubeconfig_path = Path(args.kubeconfig) if args.kubeconfig else None
    if args.server or args.token:
        if args.kubeconfig or not (args.server and args.token):
            print(
                "skiff kubelet: give --server with --token (and --certificate-authority), or --kubeconfig",
                file=sys.stderr,
            )
            return 2
        client_config = ClientConfig(server=args.server, ca_file=args.certificate_authority, token=args.token)
        kubeconfig_path = await asyncio.to_thread(write_client_kubeconfig, root, client_config)
    config = KubeletConfig(
        node_name=args.node_name,
        node_ip=args.node_ip,
        root_dir=root,
        kubeconfig=kubeconfig_path,
        port=args.port,
        labels=parse_labels(args.labels),
        taints=parse_taints(args.register_with_taints),
        pod_cidr=args.pod_cidr,
        pod_manifest_path=Path(args.pod_manifest_path) if args.pod_manifest_path else None,
        cluster_dns=args.cluster_dns,
        cluster_domain=args.cluster_domain,
        stop_pods_on_exit=args.stop_pods_on_exit,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kubelet = Kubelet(config)

    def dump_tasks() -> None:
        """SIGUSR1: every asyncio task's stack to stderr, to see what a stuck kubelet waits for."""
        for task in asyncio.all_tasks():
            task.print_stack(file=sys.stderr)

    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    try:
        runner = asyncio.create_task(kubelet.run(stop))
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()
        else:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        waiter.cancel()
    finally:
        await kubelet.close()
    return 0
