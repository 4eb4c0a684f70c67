"""Store benchmarks: the SQLite backend in-process, the facade, real etcd 3.5.1 and 3.4.23, side by side.

Run from the repository root (after ``make install-test``)::

    python bench/store_bench.py                      # everything, ~6-8 minutes
    python bench/store_bench.py --targets sqlite,etcd-3.5.1 --seconds 2 --check-perf-load none

Targets run one after another, each on a fresh data directory, so they never
compete for the 2 cores; within a target the cells run in this order: writes
at each client count, single-key and prefix reads, watch fan-out at each
watcher count, then ``etcdctl check perf`` (facade and etcd 3.5.1 only).
Prints a table per metric with ratios against etcd 3.5.1 and writes
``OUT/store.json`` and ``OUT/store.md``.  Figures only: nothing is asserted.
Noisy on a shared machine: the load average at start and end is recorded.
See docs/store-bench.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import sys
from pathlib import Path
from typing import Any

from storebench.check_perf import run_check_perf
from storebench.profile import PySpyRecording, py_spy_path
from storebench.report import build_tables, profile_lines, ratio_lines, write_outputs
from storebench.runlog import log, recorded
from storebench.targets import ETCD_35, FACADE, SQLITE, TARGETS, RunningTarget, find_etcd_binaries, open_target
from storebench.workloads import (
    WatchPlan,
    measure_get,
    measure_prefix_range,
    measure_watch_fanout,
    measure_writes,
    preload_range_keys,
)

#: Targets ``etcdctl check perf`` runs against (the issue asks for these two).
CHECK_PERF_TARGETS = (FACADE, ETCD_35)
#: Targets py-spy is attached to during the largest write cell (Python processes only).
PROFILE_TARGETS = (SQLITE, FACADE)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated subset of {','.join(TARGETS)}")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each write/read cell (default 5)")
    parser.add_argument("--clients", default="1,16,128", help="concurrent writers per write cell (default 1,16,128)")
    parser.add_argument("--watchers", default="100,1000", help="watchers per fan-out cell (default 100,1000)")
    parser.add_argument("--watch-rate", type=float, default=20.0, help="max puts/s in a fan-out cell (default 20)")
    parser.add_argument(
        "--watch-delivery-budget",
        type=float,
        default=5000.0,
        help="cap on rate x watchers, the deliveries/s this one client process must handle (default 5000)",
    )
    parser.add_argument("--check-perf-load", choices=("s", "m", "l", "none"), default="l", help="default l")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the sqlite/facade store in the largest write cell"
    )
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop of this process")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out", help="output dir (bench/out)")
    args = parser.parse_args(argv)
    args.targets = [t for t in args.targets.split(",") if t]
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {', '.join(TARGETS)}")
    args.targets = [t for t in TARGETS if t in args.targets]
    args.clients = [int(c) for c in args.clients.split(",") if c]
    args.watchers = [int(w) for w in args.watchers.split(",") if w]
    return args


async def bench_target(name: str, args: argparse.Namespace, etcdctl: Path | None) -> dict[str, Any]:
    data: dict[str, Any] = {"errors": {}, "write": {}, "range": {}, "watch": {}, "profile": {}}
    log(f"{name}: starting")
    async with recorded(data, "start"), open_target(name) as target:
        log(f"{name}: ready (server pid {target.server_pid or 'this process'}, endpoint {target.endpoint or '-'})")
        await bench_writes(target, args, data)
        await bench_ranges(target, args, data)
        await bench_watches(target, args, data)
        if name in CHECK_PERF_TARGETS and args.check_perf_load != "none":
            async with recorded(data, "check_perf"):
                if etcdctl is None or target.endpoint is None:
                    raise RuntimeError("etcdctl 3.5.1 not found")
                log(f"{name}: etcdctl check perf --load={args.check_perf_load} (60 s)")
                perf = await run_check_perf(etcdctl, target.endpoint, args.check_perf_load)
                data["check_perf"] = perf.as_dict()
                log(f"  check perf: {perf.throughput} writes/s, slowest {perf.slowest_s}s, {perf.verdict}")
    log(f"{name}: stopped")
    return data


async def bench_writes(target: RunningTarget, args: argparse.Namespace, data: dict[str, Any]) -> None:
    for clients in args.clients:
        async with recorded(data, f"write/{clients}"):
            recording = None
            if args.profile and target.name in PROFILE_TARGETS and clients == max(args.clients):
                recording = PySpyRecording(
                    target.profile_pid, args.seconds - 1, args.out / f"pyspy-{target.name}-write-c{clients}.txt"
                )
                await recording.start()
            cell = await measure_writes(target.store, clients, args.seconds, target.server_pid)
            data["write"][str(clients)] = cell.as_dict()
            log(
                f"  write c={clients}: {cell.ops_per_s:,.0f} puts/s p50 {cell.latency.p50_ms:.2f} ms "
                f"p99 {cell.latency.p99_ms:.2f} ms (bench CPU {cell.cpu.bench_pct:.0f}%)"
            )
            if recording is not None:
                try:
                    data["profile"][f"write c={clients}"] = (await recording.finish()).as_dict()
                except Exception as err:  # profiling is optional: say why it is missing
                    data["profile"][f"write c={clients}"] = {"error": str(err)}


async def bench_ranges(target: RunningTarget, args: argparse.Namespace, data: dict[str, Any]) -> None:
    async with recorded(data, "range/get"):
        prefix = await preload_range_keys(target.store)
        cell = await measure_get(target.store, prefix, args.seconds, target.server_pid)
        data["range"]["get"] = cell.as_dict()
        log(f"  get: p50 {cell.latency.p50_ms:.3f} ms p99 {cell.latency.p99_ms:.3f} ms")
    async with recorded(data, "range/prefix"):
        cell = await measure_prefix_range(target.store, prefix, args.seconds, target.server_pid)
        data["range"]["prefix"] = cell.as_dict()
        log(f"  prefix range: p50 {cell.latency.p50_ms:.3f} ms p99 {cell.latency.p99_ms:.3f} ms")


async def bench_watches(target: RunningTarget, args: argparse.Namespace, data: dict[str, Any]) -> None:
    for watchers in args.watchers:
        async with recorded(data, f"watch/{watchers}"):
            plan = WatchPlan.for_cell(watchers, args.seconds, args.watch_rate, args.watch_delivery_budget)
            timeout = plan.events / plan.rate + 30
            cell = await measure_watch_fanout(target.store, plan, target.server_pid, timeout)
            data["watch"][str(watchers)] = cell.as_dict()
            log(
                f"  watch w={watchers}: delay p50 {cell.latency.p50_ms:.2f} ms p99 {cell.latency.p99_ms:.2f} ms, "
                f"{cell.extra['deliveries_missing']} missing (bench CPU {cell.cpu.bench_pct:.0f}%)"
            )


async def run(args: argparse.Namespace) -> int:
    binaries = await find_etcd_binaries()
    etcd35 = binaries.get(ETCD_35.removeprefix("etcd-"))
    if args.profile and py_spy_path() is None:
        log("--profile: py-spy not found (pip install py-spy); profiling will be reported as failed")
    results: dict[str, Any] = {
        "meta": {
            "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "loop": args.loop,
            "command": "python bench/store_bench.py " + " ".join(sys.argv[1:]),
            "load_avg_start": os.getloadavg(),
            "seconds": args.seconds,
            "clients": args.clients,
            "watchers": args.watchers,
            "check_perf_load": args.check_perf_load,
            "etcd_binaries": {v: str(b.etcd) for v, b in binaries.items()},
        },
        "targets": {},
    }
    for name in args.targets:
        results["targets"][name] = await bench_target(name, args, etcd35.etcdctl if etcd35 else None)
    results["meta"]["load_avg_end"] = os.getloadavg()
    print()
    for table in build_tables(results):
        print(table.text(), end="\n\n")
    print(f"Ratios against {ETCD_35} (throughput: higher is better; latency: lower is better):")
    for line in ratio_lines(results):
        print(f"  {line}")
    for line in profile_lines(results):
        print(line)
    json_path, md_path = await asyncio.to_thread(write_outputs, results, args.out)
    print(f"\nwrote {json_path} and {md_path}")
    failed = sum(len(t["errors"]) for t in results["targets"].values())
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.loop == "uvloop":
        try:
            import uvloop

            return uvloop.run(run(args))
        except ImportError:
            log("uvloop not installed; using asyncio's loop")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
