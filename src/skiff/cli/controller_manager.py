"""``skiff controller-manager``: run the workload, namespace and GC controllers against an API server.

Flags as kube-controller-manager spells them: ``--kubeconfig``,
``--controllers`` (``*``, ``-name``, ``name``), ``--leader-elect`` (default
true; the Lease is kube-system/kube-controller-manager),
``--use-service-account-credentials`` (each controller acts as its own
ServiceAccount in kube-system, skiff.client.clientbuilder; the kubeconfig's
identity keeps the shared informers and the Lease).  ``--port`` serves
``/healthz``, ``/readyz`` and ``/metrics`` over plain HTTP on
``--bind-address`` (off unless given; 0 picks a free port, printed on
stdout).  Runs until SIGTERM/SIGINT, then releases the Lease and exits 0.
Besides kube-controller-manager's, ``--auto-approve-kubelet-serving=false``
turns off Skiff's approval of kubelet serving certificates
(skiff.controllers.csrapproving; on by default).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ControllerManagerFlags:
    kubeconfig: str | None
    controllers: tuple[str, ...]
    leader_elect: bool
    lease_name: str
    lease_namespace: str
    lease_duration_s: float
    renew_deadline_s: float
    retry_period_s: float
    bind_address: str
    port: int | None
    options: dict[str, Any]
    use_service_account_credentials: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ControllerManagerFlags:
        from skiff.controllers.manager import parse_controllers_flag

        return cls(
            kubeconfig=args.kubeconfig,
            controllers=tuple(parse_controllers_flag(args.controllers)),
            leader_elect=args.leader_elect,
            lease_name=args.leader_elect_resource_name,
            lease_namespace=args.leader_elect_resource_namespace,
            lease_duration_s=args.leader_elect_lease_duration,
            renew_deadline_s=args.leader_elect_renew_deadline,
            retry_period_s=args.leader_elect_retry_period,
            bind_address=args.bind_address,
            port=args.port,
            options=controller_options(args),
            use_service_account_credentials=args.use_service_account_credentials,
        )


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|ms|s|m|h)")
_GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    """Seconds of a Go duration as kube-controller-manager takes them (``15s``, ``500ms``, ``8760h0m0s``);
    a bare number is seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    parts = _GO_DURATION_PART.findall(text)
    if not parts or _GO_DURATION_PART.sub("", text):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (want e.g. 15s, 500ms, 8760h)")
    return sum(float(number) * _GO_DURATION_UNITS[unit] for number, unit in parts)


#: Flags handed to controllers through ControllerContext.options under the flag's own name (kube-controller-manager
#: spelling); unset flags are left out so each controller's default stays its single definition.
OPTION_FLAGS: tuple[tuple[str, Any, str], ...] = (
    ("cluster-cidr", str, "CIDR the node-ipam controller allocates pod CIDRs from"),
    ("node-cidr-mask-size", int, "prefix length of each node's pod CIDR"),
    ("node-monitor-grace-period", _duration, "how long a node may go unheard before it is NotReady/Unknown"),
    ("node-startup-grace-period", _duration, "the same for a node that has just registered"),
    ("terminated-pod-gc-threshold", int, "terminated pods kept before pod GC deletes the oldest"),
    ("pod-gc-period", _duration, "how often pod GC runs"),
    ("resource-quota-sync-period", _duration, "how often quota usage is recomputed in full"),
    ("max-endpoints-per-slice", int, "endpoints per EndpointSlice"),
    ("root-ca-file", str, "CA bundle published as kube-root-ca.crt (default: the kubeconfig's CA)"),
    ("local-volume-dir", str, "directory under which the local provisioner creates hostPath volumes"),
    ("garbage-collector-rediscovery-period", _duration, "how often the garbage collector re-reads discovery"),
    ("cluster-signing-cert-file", str, "PEM CA certificate the csrsigning controller issues certificates with"),
    ("cluster-signing-key-file", str, "PEM private key of --cluster-signing-cert-file"),
    ("cluster-signing-duration", _duration, "longest lifetime of a signed certificate (controller default 8760h)"),
    (
        "auto-approve-kubelet-serving",
        _bool,
        "true/false: csrapproving approves kubelets' serving certificate requests for their own loopback addresses "
        "and names (Skiff only; upstream leaves them to an administrator)",
    ),
)


def controller_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, _, _ in OPTION_FLAGS:
        value = getattr(args, name.replace("-", "_"))
        if value is not None:
            options[name] = value
    if options.get("local-volume-dir") is not None:
        options["local_volume_dir"] = options.pop("local-volume-dir")  # the local provisioner's key
    for item in args.controller_option or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"skiff controller-manager: --controller-option wants KEY=VALUE, got {item!r}")
        options[key] = value
    return options


def register(subparsers: Any) -> None:
    from skiff.controllers.manager import LEASE_NAME, LEASE_NAMESPACE

    parser = subparsers.add_parser(
        "controller-manager",
        help="run the controllers (deployment, replicaset, garbage collector, namespace, ...)",
        description="Run Skiff's controllers against an API server, leader-elected.",
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig to reach the API server (default $KUBECONFIG)")
    parser.add_argument(
        "--controllers",
        default="*",
        help="controllers to run: '*' for all on by default, 'name' to enable, '-name' to disable (default '*')",
    )
    parser.add_argument(
        "--leader-elect",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        help="contend for the kube-system/kube-controller-manager Lease before running (default true)",
    )
    parser.add_argument(
        "--leader-elect-resource-name", default=LEASE_NAME, help=f"the Lease's name (default {LEASE_NAME})"
    )
    parser.add_argument(
        "--leader-elect-resource-namespace",
        default=LEASE_NAMESPACE,
        help=f"the Lease's namespace (default {LEASE_NAMESPACE})",
    )
    for flag, default, text in (
        ("--leader-elect-lease-duration", "15s", "how long a lease holds without renewal"),
        ("--leader-elect-renew-deadline", "10s", "how long the leader tries to renew before giving up"),
        ("--leader-elect-retry-period", "2s", "the wait between attempts to acquire or renew"),
    ):
        parser.add_argument(flag, type=_duration, default=_duration(default), help=f"{text} (default {default})")
    parser.add_argument(
        "--use-service-account-credentials",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="run each controller as its own ServiceAccount in kube-system (default false)",
    )
    for name, kind, text in OPTION_FLAGS:
        parser.add_argument(f"--{name}", type=kind, default=None, help=f"{text} (default: the controller's own)")
    parser.add_argument(
        "--controller-option",
        action="append",
        metavar="KEY=VALUE",
        help="any other controller option, passed through ControllerContext.options (repeatable)",
    )
    parser.add_argument("--bind-address", default="127.0.0.1", help="address for --port (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help="serve /healthz and /metrics on this HTTP port (0: any; default off)"
    )
    parser.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from skiff.client import ApiClient, ClientConfig, ConfigError
    from skiff.client.clientbuilder import ServiceAccountClientBuilder
    from skiff.controllers.manager import ControllerManager, discover_specs, health_app, select_specs, unknown_names

    flags = ControllerManagerFlags.from_args(args)
    specs = discover_specs()
    unknown = unknown_names(flags.controllers, specs)
    if unknown:
        known = ", ".join(spec.name for spec in specs)
        print(f"skiff controller-manager: unknown controllers {', '.join(unknown)} (known: {known})", file=sys.stderr)
        return 2
    try:
        config = ClientConfig.from_kubeconfig(flags.kubeconfig)
    except (ConfigError, OSError) as err:
        print(f"skiff controller-manager: {err}", file=sys.stderr)
        return 1
    async with ApiClient(config, user_agent="skiff-controller-manager") as client:
        accounts = ServiceAccountClientBuilder(client, user_agent="skiff-controller-manager")
        manager = ControllerManager(
            client,
            select_specs(specs, flags.controllers),
            lease_name=flags.lease_name,
            lease_namespace=flags.lease_namespace,
            lease_timings=(flags.lease_duration_s, flags.renew_deadline_s, flags.retry_period_s),
            options=flags.options,
            service_account_clients=accounts.client if flags.use_service_account_credentials else None,
        )
        runner: web.AppRunner | None = None
        if flags.port is not None:
            runner = web.AppRunner(health_app(manager))
            await runner.setup()
            site = web.TCPSite(runner, flags.bind_address, flags.port)
            await site.start()
            host, port = runner.addresses[0][:2]
            print(f"skiff controller-manager serving health on http://{host}:{port}", flush=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, manager.stop)
        try:
            names = ", ".join(s.name for s in manager.specs)
            print(f"skiff controller-manager {manager.identity} running {names}", flush=True)
            await manager.run(leader_elect=flags.leader_elect)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if runner is not None:
                await runner.cleanup()
            await accounts.close()
    return 0
