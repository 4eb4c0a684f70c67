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
import sys
from collections.abc import Sequence

#: Subcommand modules under skiff.cli, in the order --help lists them.
SUBCOMMANDS = ("up", "store")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skiff", description="A small Kubernetes-compatible control plane.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"skiff.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency, but stay runnable without it
        runner = asyncio.run
    try:
        return int(runner(args.func(args)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
