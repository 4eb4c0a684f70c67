"""``skiff kubelet``: register a Node and run the pods bound to it as supervised process groups.

Runs until SIGTERM or SIGINT.  By default pods keep running when the kubelet
exits, and the next kubelet on the same ``--root-dir`` adopts them;
``--stop-pods-on-exit`` stops them gracefully first (``skiff up`` passes it
when the cluster stops).  It reaches the API server through --kubeconfig, or
--server/--token/--certificate-authority: a bootstrap token from ``skiff up``'s
join line or ``skiff token create``, which the kubelet trades for a client
certificate of its own (``skiff.kubelet.tls_bootstrap``: a CSR the
controller-manager approves and signs) before it does anything else; it then
runs with ``ROOT/kubelet.kubeconfig`` and that certificate, and a restart
reuses them.  SIGUSR1 prints every asyncio task's stack to stderr.

Its HTTPS API (logs, exec, attach, port-forward for the API server) is
secured as kubeadm configures a kubelet (``skiff.kubelet.server_auth``):
client certificates verified against ``--client-ca-file`` (default: the CA
it trusts for the API server, the cluster CA) or bearer tokens checked with a
TokenReview (``--authentication-token-webhook``, default true); no anonymous
access (``--anonymous-auth``, default false); each request authorized with a
SubjectAccessReview (``--authorization-mode Webhook``, the default; or
AlwaysAllow).  It serves ``--tls-cert-file``/``--tls-private-key-file``, or
else a self-signed certificate.  With ``--rotate-server-certificates`` (on by
default for a kubelet joining with ``--token``, off otherwise, and off when
given ``--tls-cert-file``) it asks, as its node, for a serving certificate
from the cluster CA (a ``kubernetes.io/kubelet-serving`` CSR for its node IP
and name, ``skiff.kubelet.server_certificate``) and serves it once issued.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from skiff.client import ClientConfig
from skiff.client.cluster_defaults import CLUSTER_DNS, CLUSTER_DOMAIN
from skiff.kubelet.server_auth import AUTHORIZATION_MODES, AuthConfig
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
    parser.add_argument(
        "--token", default=None, help="bootstrap token for --server, traded for the node's client certificate"
    )
    parser.add_argument("--certificate-authority", default=None, help="CA file that signed --server's certificate")
    parser.add_argument("--port", type=int, default=10250, help="kubelet HTTPS port; 0 picks a free one")
    parser.add_argument("--pod-cidr", default=None, help="pod CIDR override (default: node.spec.podCIDR)")
    parser.add_argument("--cluster-dns", default=CLUSTER_DNS)
    parser.add_argument("--cluster-domain", default=CLUSTER_DOMAIN)
    parser.add_argument("--stop-pods-on-exit", action="store_true", help="stop pods gracefully when the kubelet exits")
    add_api_security_flags(parser)
    parser.set_defaults(func=run)


def parse_bool(text: str) -> bool:
    """A boolean flag value spelled as Go's flags take it (``--anonymous-auth=false``)."""
    value = text.strip().lower()
    if value in ("1", "t", "true"):
        return True
    if value in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def add_api_security_flags(parser: argparse.ArgumentParser) -> None:
    """Who may use the kubelet's HTTPS API, and the certificate it serves (defaults: AuthConfig's)."""
    defaults = AuthConfig()
    parser.add_argument(
        "--client-ca-file",
        default=None,
        help="CA whose client certificates authenticate to the kubelet API (CN user, O groups); "
        "default: the CA trusted for the API server (the cluster CA)",
    )
    parser.add_argument(
        "--anonymous-auth",
        type=parse_bool,
        nargs="?",
        const=True,
        default=defaults.anonymous,
        help=f"serve unauthenticated requests as system:anonymous (default {str(defaults.anonymous).lower()})",
    )
    parser.add_argument(
        "--authentication-token-webhook",
        type=parse_bool,
        nargs="?",
        const=True,
        default=defaults.token_webhook,
        help="authenticate bearer tokens with a TokenReview to the API server "
        f"(default {str(defaults.token_webhook).lower()})",
    )
    parser.add_argument(
        "--authorization-mode",
        choices=AUTHORIZATION_MODES,
        default=defaults.authorization_mode,
        help="Webhook: ask the API server (SubjectAccessReview) for each request; AlwaysAllow: any authenticated "
        f"user may do anything (default {defaults.authorization_mode})",
    )
    parser.add_argument("--tls-cert-file", default=None, help="serving certificate (default: a self-signed one)")
    parser.add_argument("--tls-private-key-file", default=None, help="key of --tls-cert-file")
    parser.add_argument(
        "--rotate-server-certificates",
        type=parse_bool,
        nargs="?",
        const=True,
        default=None,
        help="ask for a serving certificate from the cluster CA (a kubelet-serving CSR) and serve it once issued "
        "(default: true with --token and without --tls-cert-file, else false)",
    )


def rotate_server_certificates(args: argparse.Namespace) -> bool:
    """The flag as given, else on for a kubelet that joins with a bootstrap token and has no --tls-cert-file."""
    if args.rotate_server_certificates is not None:
        return bool(args.rotate_server_certificates)
    return bool(args.token) and not args.tls_cert_file


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


async def bootstrap_kubeconfig(args: argparse.Namespace, root: Path, stop: asyncio.Event) -> Path | None:
    """TLS bootstrapping for --server/--token: the kubeconfig to run with; None when stopped first."""
    from skiff.kubelet.tls_bootstrap import ensure_client_certificate

    bootstrap = ClientConfig(server=args.server, ca_file=args.certificate_authority, token=args.token)
    exchange = asyncio.create_task(ensure_client_certificate(root, args.node_name, bootstrap))
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({exchange, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not exchange.done():
            exchange.cancel()
            await asyncio.gather(exchange, return_exceptions=True)
    return exchange.result() if not exchange.cancelled() else None


async def run(args: argparse.Namespace) -> int:
    from skiff.client import ApiError
    from skiff.kubelet.agent import Kubelet, KubeletConfig
    from skiff.kubelet.tls_bootstrap import BootstrapError

    root = Path(args.root_dir) if args.root_dir else Path(args.data_dir) / "kubelet" / args.node_name
    kubeconfig_path = Path(args.kubeconfig) if args.kubeconfig else None
    if (args.server or args.token) and (args.kubeconfig or not (args.server and args.token)):
        print(
            "skiff kubelet: give --server with --token (and --certificate-authority), or --kubeconfig", file=sys.stderr
        )
        return 2
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        print("skiff kubelet: give --tls-cert-file with --tls-private-key-file", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.server:
        try:
            kubeconfig_path = await bootstrap_kubeconfig(args, root, stop)
        except (BootstrapError, ApiError, OSError) as err:
            print(f"skiff kubelet: TLS bootstrap failed: {err}", file=sys.stderr)
            return 1
        if kubeconfig_path is None:
            return 0
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
        auth=AuthConfig(
            client_ca_file=Path(args.client_ca_file) if args.client_ca_file else None,
            anonymous=args.anonymous_auth,
            token_webhook=args.authentication_token_webhook,
            authorization_mode=args.authorization_mode,
        ),
        tls_files=(Path(args.tls_cert_file), Path(args.tls_private_key_file)) if args.tls_cert_file else None,
        rotate_server_certificates=rotate_server_certificates(args),
    )
    try:
        kubelet = Kubelet(config)
    except (ValueError, OSError) as err:
        print(f"skiff kubelet: {err}", file=sys.stderr)
        return 1

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
