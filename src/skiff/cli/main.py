"""Entry point of the ``skiff`` command.

Each subcommand module exposes ``register(subparsers)``, which adds its parser
and sets ``func`` to an ``async def run(args) -> int``.  Data goes to stdout,
logs to stderr; the exit code is the run function's result.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

# Components fork workers (skiff up, the kubelet) after gRPC may be loaded; every child execs at once, so
# gRPC's fork handlers have nothing to protect and would only log that they skip.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

#: Subcommand modules under skiff.cli, in the order --help lists them.
SUBCOMMANDS = (
    "up",
    "apiserver",
    "controller_manager",
    "scheduler",
    "kubelet",
    "proxy",
    "sim",
    "token",
    "user",
    "store",
    "image",
    "etcd_operator",
    "bench",
)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; when ``argv`` names a subcommand, only that one is loaded.

    Registering a subcommand imports what its flags need (the API server's,
    for instance), so a component process that loaded every subcommand would
    carry the whole control plane in memory.  ``skiff --help`` loads them all.
    """
    parser = argparse.ArgumentParser(prog="skiff", description="A small Kubernetes-compatible control plane.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen_subcommand(argv)
    for name in SUBCOMMANDS:
        if chosen is None or name == chosen:
            importlib.import_module(f"skiff.cli.{name}").register(sub)
    return parser


def _chosen_subcommand(argv: Sequence[str] | None) -> str | None:
    words = list(sys.argv[1:] if argv is None else argv)
    return next((w.replace("-", "_") for w in words if w.replace("-", "_") in SUBCOMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return int(runner.run(args.func(args)))
    except KeyboardInterrupt:
        return 130


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (a dependency; measurably faster gRPC and SQLite hand-offs)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - stay runnable without it
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


if __name__ == "__main__":
    sys.exit(main())
