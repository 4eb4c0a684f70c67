"""``skiff bench density``: a density test of a whole control plane on hollow nodes (see skiff.density).

Starts its own cluster (store, API server, controller-manager, scheduler,
``skiff sim nodes``) on a temporary data dir, so it never touches the
cluster of ``skiff up``; writes OUT/report.json, OUT/report.md and charts.
Exit code 0 when every phase finished (the SLO verdicts are in the report;
they are figures, not a pass/fail of the command), 1 when a phase failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks of a whole cluster", description=__doc__)
    kinds = parser.add_subparsers(dest="bench_command", metavar="WHICH", required=True)
    density = kinds.add_parser(
        "density", help="ClusterLoader2-style density test on hollow nodes, held to Kubernetes' SLOs"
    )
    density.add_argument("--nodes", type=int, required=True, help="hollow nodes")
    density.add_argument("--pods-per-node", type=int, default=30, help="pods per node (default 30, as CL2)")
    density.add_argument(
        "--store", default="sqlite", help="sqlite (embedded) or etcd (real etcd 3.5.1); default sqlite"
    )
    density.add_argument(
        "--apiservers", type=int, default=1, help="API server processes sharing the store (default 1: store embedded)"
    )
    density.add_argument("--create-qps", type=float, default=20.0, help="pods created per second (default 20, as CL2)")
    density.add_argument("--churn-qps", type=float, default=20.0, help="changes per second while churning (default 20)")
    density.add_argument("--churn-seconds", type=float, default=60.0, help="length of the churn phase; 0 skips it")
    density.add_argument("--delete-qps", type=float, default=20.0, help="Deployments deleted per second (default 20)")
    density.add_argument("--timeout", type=float, default=3600.0, help="seconds any one phase may take (default 3600)")
    density.add_argument("--out", required=True, help="directory for report.json, report.md, charts and logs")
    density.set_defaults(func=run)


async def run(args: argparse.Namespace) -> int:
    from skiff.density.config import DensityConfig
    from skiff.density.run import run_density

    config = DensityConfig(
        nodes=args.nodes,
        pods_per_node=args.pods_per_node,
        out=Path(args.out),
        store=args.store,
        apiservers=args.apiservers,
        create_qps=args.create_qps,
        churn_qps=args.churn_qps,
        churn_s=args.churn_seconds,
        delete_qps=args.delete_qps,
        timeout_s=args.timeout,
    )
    if problems := config.problems():
        for problem in problems:
            print(f"skiff bench density: {problem}", file=sys.stderr)
        return 2
    try:
        await run_density(config, say=lambda line: print(line, flush=True))
    except Exception as err:
        print(f"skiff bench density: {err}", file=sys.stderr)
        return 1
    return 0
