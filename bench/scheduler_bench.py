"""Scheduler throughput on hollow nodes: ``skiff scheduler`` binding pods across 1,000 and 5,000 simulated nodes.

Run from the repository root::

    python bench/scheduler_bench.py                              # 1,000 and 5,000 nodes, 2,000 pods each
    python bench/scheduler_bench.py --nodes 1000 --pods 1000     # a quick look

Per node count, on a fresh ``skiff apiserver`` (SQLite): ``skiff sim nodes``
registers the hollow nodes (32 CPU / 256Gi / 110 pods each; Leases renewed
every --lease-interval seconds; bound pods marked Running unless
--no-pod-status), the pods (100m CPU, 128Mi each) are created while no
scheduler runs, then ``skiff scheduler`` starts and a watch times every
binding.  Throughput = bindings per second from the first binding to the
last (kube-scheduler's scheduler_perf measures the same way).  Each process
has its own interpreter; the machine's cores are shared by all of them.
First, the algorithm alone (no API server) is timed for each node count.
Prints a table and PASS/MISS against issue C's target (>= 300 pods/s) and
writes OUT/scheduler.json (OUT/scheduler-no-pod-status.json with --no-pod-status).  Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from apiserverbench.servers import SQLITE, running
from schedulerbench import algorithm
from schedulerbench.measure import create_pods, watch_bindings
from schedulerbench.procs import child, cpu_seconds, write_kubeconfig
from skiff.client import ApiClient, ClientConfig
from storebench.runlog import log, recorded

TARGET_PODS_PER_S = 300.0
BIND_TIMEOUT_S = 900.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", default="1000,5000", help="hollow node counts, comma-separated (default 1000,5000)")
    parser.add_argument("--pods", type=int, default=2000, help="pods to schedule per node count (default 2000)")
    parser.add_argument("--lease-interval", type=float, default=10.0, help="hollow Lease renewal period (default 10)")
    parser.add_argument("--no-pod-status", action="store_true", help="hollow nodes do not mark pods Running")
    parser.add_argument("--out", default="bench/out", help="directory for the JSON figures (default bench/out)")
    return parser.parse_args(argv)


async def one_size(args: argparse.Namespace, nodes: int) -> dict[str, Any]:
    cell: dict[str, Any] = {"nodes": nodes, "pods": args.pods}
    async with running(SQLITE) as server:
        workdir = server.data_dir.parent
        config_path = workdir / "kubeconfig"
        await asyncio.to_thread(write_kubeconfig, server.https_url, server.data_dir, config_path)
        sim_args = ["nodes", "--count", str(nodes), "--kubeconfig", str(config_path)]
        sim_args += ["--lease-interval", str(args.lease_interval)] + (["--no-pod-status"] if args.no_pod_status else [])
        started = time.monotonic()
        log(f"{nodes} nodes: registering")
        async with child("sim", workdir, r"hollow nodes registered", "sim", *sim_args) as sim_pid:
            cell["register_s"] = round(time.monotonic() - started, 1)
            log(f"{nodes} nodes: registered in {cell['register_s']} s; creating {args.pods} pods")
            async with ApiClient(ClientConfig.from_kubeconfig(config_path), user_agent="scheduler-bench") as client:
                await create_pods(client, "bench", args.pods, "100m", "128Mi")
                bindings = await watch_bindings(client, "bench", args.pods)
                started = time.monotonic()
                api_cpu_before = cpu_seconds(server.pid) or 0.0
                sched_args = ["--kubeconfig", str(config_path), "--leader-elect=false"]
                async with child("scheduler", workdir, r"skiff scheduler", "scheduler", *sched_args) as sched_pid:
                    await asyncio.wait_for(bindings.done.wait(), BIND_TIMEOUT_S)
                    finished = time.monotonic()
                    cell["scheduler_cpu_s"] = cpu_seconds(sched_pid)
                    cell["sim_cpu_s"] = cpu_seconds(sim_pid)
                    cell["apiserver_cpu_s"] = cpu_seconds(server.pid)
                if bindings.task is not None:
                    bindings.task.cancel()
            cell["apiserver_cpu_s"] = round((cell["apiserver_cpu_s"] or 0.0) - api_cpu_before, 2)
            bound = len(bindings.bound_at)
            cell["bound"] = bound
            cell["pods_per_s"] = round(bindings.throughput, 1)
            cell["start_to_all_bound_s"] = round(finished - started, 2)
            if cell.get("scheduler_cpu_s") and bound:
                cell["scheduler_cpu_ms_per_pod"] = round(1000 * cell["scheduler_cpu_s"] / bound, 2)
    verdict = "PASS" if cell["pods_per_s"] >= TARGET_PODS_PER_S else "MISS"
    log(f"{nodes} nodes: {cell['pods_per_s']} pods/s ({verdict} >= {TARGET_PODS_PER_S:g})")
    return cell


def table(cells: list[dict[str, Any]]) -> str:
    head = "| nodes | pods | register s | pods/s | start→all bound s | scheduler CPU ms/pod | target |"
    rows = [head, "|---|---|---|---|---|---|---|"]
    for cell in cells:
        verdict = "PASS" if cell.get("pods_per_s", 0) >= TARGET_PODS_PER_S else "MISS"
        rows.append(
            f"| {cell['nodes']} | {cell['pods']} | {cell.get('register_s')} | {cell.get('pods_per_s')} | "
            f"{cell.get('start_to_all_bound_s')} | {cell.get('scheduler_cpu_ms_per_pod')} | {verdict} ≥ 300 |"
        )
    return "\n".join(rows)


def _write(out: Path, data: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = "scheduler.json" if data["settings"]["pod_status"] else "scheduler-no-pod-status.json"
    (out / name).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data: dict[str, Any] = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "settings": {"pods": args.pods, "lease_interval_s": args.lease_interval, "pod_status": not args.no_pod_status},
        "cells": [],
        "errors": {},
    }
    sizes = [int(n) for n in args.nodes.split(",") if n]
    data["algorithm"] = []
    for nodes in sizes:
        cell = await asyncio.to_thread(algorithm.measure, nodes, args.pods)
        log(f"{nodes} nodes, algorithm alone: {cell['ms_per_pod']} ms/pod ({cell['pods_per_s']} pods/s)")
        data["algorithm"].append(cell)
    for nodes in sizes:
        async with recorded(data, f"nodes-{nodes}"):
            data["cells"].append(await one_size(args, nodes))
    print(table(data["cells"]))
    print()
    print("| nodes | algorithm alone ms/pod | pods/s |")
    print("|---|---|---|")
    for cell in data["algorithm"]:
        print(f"| {cell['nodes']} | {cell['ms_per_pod']} | {cell['pods_per_s']} |")
    await asyncio.to_thread(_write, Path(args.out), data)
    return 1 if data["errors"] else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
