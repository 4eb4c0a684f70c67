"""``skiff up``: one command, a working local Skiff on the embedded store.

For now Skiff's main job is its store: ``up`` serves the embedded SQLite store
over etcd's v3 gRPC API (the same as ``skiff store serve``) and says so.  Later
components (API server, controllers, kubelet) join here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from skiff.cli.store import ServeConfig, add_serve_flags, serve


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/skiff``, as other local-cluster tools keep state per user."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "skiff"


def register(subparsers: Any) -> None:
    up = subparsers.add_parser(
        "up",
        help="run a local Skiff on the embedded store (today: the store and its etcd v3 API)",
        description="Run a local Skiff on the embedded store. Today this starts only the store, "
        "served over etcd's v3 gRPC API; later releases add the API server and the rest of the cluster.",
    )
    add_serve_flags(up, data_dir_default=str(default_data_dir()))
    up.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    config = ServeConfig.from_args(args)
    print("skiff up: starting the store only (cluster components come in later releases)", flush=True)
    return await serve(config)
