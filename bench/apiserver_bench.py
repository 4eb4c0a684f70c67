"""API server benchmarks: ``skiff apiserver`` over SQLite and over real etcd 3.5.1, driven over HTTP(S).

Run from the repository root (after ``make install-test``; ``pip install py-spy`` for profiles)::

    python bench/apiserver_bench.py                          # both stores, 10,000 pods: ~6-8 minutes
    python bench/apiserver_bench.py --store sqlite --seconds 3 --watchers 100 --pods 6000   # a quick look
    python bench/apiserver_bench.py --store both --pods 100000   # the RSS figure at 100k pods (long)

Per store, on a fresh data directory, in this order: load 500 and 5,000 pods
into two namespaces (for the list cells), then the closed-loop cells get,
create, update (PUT), patch (merge) with ``--clients`` concurrent requests,
list of 500 and of 5,000 pods (one client), the open-loop ``rate`` cell
(``--rate`` creates + PUTs per second), watch fan-out at each ``--watchers``
count, and last the memory figure: pods are created until ``--pods`` are
stored and the API server's VmRSS is read.  py-spy records the API server
during the list of 5,000 and the rate cell (``--no-profile`` skips it).
Prints tables and PASS/MISS lines against issue B's targets and writes
OUT/apiserver.json and OUT/apiserver.md.  Figures only: nothing is asserted.
See docs/apiserver-bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import sys
from pathlib import Path
from typing import Any

import orjson

from apiserverbench import cells
from apiserverbench.client import HTTP, HTTPS, Api, ensure_namespace, open_api
from apiserverbench.report import tables, target_lines, write_outputs
from apiserverbench.servers import ETCD, SQLITE, STORES, RunningServer, peak_rss_bytes, rss_bytes, running
from apiserverbench.watch import measure_watch_fanout
from storebench.profile import PySpyRecording, py_spy_path
from storebench.report import profile_lines
from storebench.runlog import log, recorded
from storebench.workloads import WatchPlan

LIST_SIZES = (500, 5000)
NS_GET = "bench-list-500"  # the get cell reads pods of the 500-pod namespace
NS_RSS = "bench-rss"
#: Connections of the open-loop cell's pool (see apiserverbench/client.py).
RATE_CONNECTIONS = 32
#: Pod counts at which RSS is read on the way to --pods.
RSS_STEPS = (10_000, 50_000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=(SQLITE, ETCD, "both"), default="both", help="default both")
    parser.add_argument("--pods", type=int, default=10_000, help="pods stored for the memory figure (default 10000)")
    parser.add_argument("--watchers", default="100,1000", help="watchers per fan-out cell (default 100,1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each cell (default 10)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent requests in closed-loop cells (default 8)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of the open-loop cell (default 200)")
    parser.add_argument("--watch-rate", type=float, default=20.0, help="max creates/s in a fan-out cell (default 20)")
    parser.add_argument(
        "--watch-delivery-budget",
        type=float,
        default=5000.0,
        help="cap on rate x watchers, the deliveries/s this one client process must read (default 5000)",
    )
    parser.add_argument("--transport", choices=(HTTPS, HTTP), default=HTTPS, help="https (client cert) or http")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="do not run py-spy")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out", help="output dir (bench/out)")
    args = parser.parse_args(argv)
    args.stores = list(STORES) if args.store == "both" else [args.store]
    args.watchers = [int(w) for w in args.watchers.split(",") if w]
    if args.pods < sum(LIST_SIZES):
        parser.error(f"--pods must be at least {sum(LIST_SIZES)} (the list cells' pods count towards it)")
    return args


class Profiled:
    """py-spy over the API server for one cell, when asked; a failure to profile is recorded, not raised."""

    def __init__(self, args: argparse.Namespace, server: RunningServer, data: dict[str, Any], cell: str) -> None:
        self._on = args.profile
        self._data = data
        self._cell = cell
        name = f"pyspy-apiserver-{server.store}-{cell.replace(' ', '-')}.txt"
        self._recording = PySpyRecording(server.pid, max(1.0, args.seconds - 1), args.out / name)

    async def __aenter__(self) -> None:
        if self._on:
            await self._recording.start()

    async def __aexit__(self, *exc: object) -> None:
        if not self._on:
            return
        try:
            self._data["profile"][self._cell] = (await self._recording.finish()).as_dict()
        except Exception as err:  # profiling is optional: say why it is missing
            self._data["profile"][self._cell] = {"error": str(err)}


def log_cell(name: str, cell: dict[str, Any]) -> None:
    lat = cell["latency"]
    log(
        f"  {name}: {cell['ops_per_s']:,.0f} req/s p50 {lat['p50_ms']:.2f} ms p99 {lat['p99_ms']:.2f} ms "
        f"({cell['error_count']} errors; apiserver CPU {cell['server_cpu_pct']}%, bench CPU {cell['bench_cpu_pct']}%; "
        f"RSS {cell['apiserver_rss_mib']} MiB, peak {cell['apiserver_peak_mib']} MiB)"
    )


def rss_point(server: RunningServer, pods: int, load_rate: float | None) -> dict[str, Any]:
    return {
        "pods": pods,
        "rss": rss_bytes(server.pid),
        "peak": peak_rss_bytes(server.pid),
        "etcd_rss": rss_bytes(server.etcd_pid) if server.etcd_pid else None,
        "load_pods_per_s": None if load_rate is None else round(load_rate, 1),
    }


def memory_after(server: RunningServer) -> dict[str, Any]:
    """The API server's RSS and peak RSS (MiB) right after a cell: which cell grows memory."""
    rss, peak = rss_bytes(server.pid), peak_rss_bytes(server.pid)
    return {
        "apiserver_rss_mib": None if rss is None else round(rss / (1 << 20)),
        "apiserver_peak_mib": None if peak is None else round(peak / (1 << 20)),
    }


async def bench_store(store: str, args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"errors": {}, "requests": {}, "watch": {}, "profile": {}, "rss": {"points": []}}
    log(f"{store}: starting")
    async with recorded(data, "start"), running(store) as server, open_api(server, args.transport) as api:
        log(f"{store}: apiserver pid {server.pid} ({args.transport}), etcd pid {server.etcd_pid or '-'}")
        stored = 0
        data["rss"]["points"].append(rss_point(server, stored, None))
        for size in LIST_SIZES:
            namespace = f"bench-list-{size}"
            await ensure_namespace(api, namespace)
            rate = await cells.load_pods(api, namespace, size)
            stored += size
            data["rss"]["points"].append(rss_point(server, stored, rate))
            log(f"  loaded {size} pods at {rate:,.0f} pods/s")
        await bench_requests(server, api, args, data)
        await bench_watches(server, api, args, data)
        async with recorded(data, "rss"):
            await ensure_namespace(api, NS_RSS)
            loaded = 0
            for goal in sorted({*(g for g in RSS_STEPS if g < args.pods), args.pods}):
                stored = await count_pods(api)
                missing = max(0, goal - stored)
                log(f"  loading {missing:,} more pods to {goal:,}")
                rate = await cells.load_pods(api, NS_RSS, missing, start=loaded)
                loaded += missing
                await asyncio.sleep(2)  # let in-flight work settle before reading RSS
                data["rss"]["points"].append(rss_point(server, stored + missing, rate if missing else None))
                point = data["rss"]["points"][-1]
                log(f"  RSS {point['rss'] / (1 << 20):,.0f} MiB at {point['pods']:,} pods (load {rate:,.0f} pods/s)")
    log(f"{store}: stopped")
    return data


async def count_pods(api: Api) -> int:
    """Pods stored, all namespaces: a list of one and its remainingItemCount."""
    page = orjson.loads(await api.call("GET", "/api/v1/pods?limit=1"))
    return len(page["items"]) + int(page["metadata"].get("remainingItemCount", 0))


async def bench_requests(server: RunningServer, api: Api, args: argparse.Namespace, data: dict[str, Any]) -> None:
    names = [f"p-{i:06d}" for i in range(LIST_SIZES[0])]
    workloads: list[tuple[str, Any]] = [
        ("get", lambda: cells.measure_get(api, NS_GET, names, args.clients, args.seconds, server.pid)),
        ("create", lambda: cells.measure_create(api, "bench-create", args.clients, args.seconds, server.pid)),
        ("update", lambda: cells.measure_update(api, "bench-update", args.clients, args.seconds, server.pid)),
        ("patch", lambda: cells.measure_patch(api, "bench-patch", args.clients, args.seconds, server.pid)),
    ]
    for size in LIST_SIZES:
        workloads.append(
            (f"list {size}", lambda s=size: cells.measure_list(api, f"bench-list-{s}", s, args.seconds, server.pid))
        )
    workloads.append(("rate", lambda: measure_rate_on_a_pool(server, args)))
    for namespace in ("bench-create", "bench-update", "bench-patch", "bench-rate"):
        await ensure_namespace(api, namespace)
    for name, run_cell in workloads:
        async with recorded(data, f"requests/{name}"):
            profiled = name in (f"list {LIST_SIZES[-1]}", "rate")
            async with Profiled(args, server, data, name) if profiled else contextlib.nullcontext():
                cell = (await run_cell()).as_dict()
            cell |= memory_after(server)
            data["requests"][name] = cell
            log_cell(name, cell)


async def measure_rate_on_a_pool(server: RunningServer, args: argparse.Namespace) -> cells.Cell:
    """The open-loop cell over its own pool of RATE_CONNECTIONS pre-opened connections."""
    async with open_api(server, args.transport, connections=RATE_CONNECTIONS) as api:
        return await cells.measure_rate(api, "bench-rate", args.rate, args.seconds, server.pid)


async def bench_watches(server: RunningServer, api: Api, args: argparse.Namespace, data: dict[str, Any]) -> None:
    for watchers in args.watchers:
        async with recorded(data, f"watch/{watchers}"):
            namespace = f"bench-watch-{watchers}"
            await ensure_namespace(api, namespace)
            plan = WatchPlan.for_cell(watchers, args.seconds, args.watch_rate, args.watch_delivery_budget)
            cell = (
                await measure_watch_fanout(api, namespace, plan, server.pid, plan.events / plan.rate + 30)
            ).as_dict()
            data["watch"][str(watchers)] = cell
            log(
                f"  watch w={watchers}: delay p50 {cell['latency']['p50_ms']:.2f} ms p99 "
                f"{cell['latency']['p99_ms']:.2f} ms, {cell['deliveries_missing']} missing "
                f"(apiserver CPU {cell['server_cpu_pct']}%, bench CPU {cell['bench_cpu_pct']}%)"
            )


async def run(args: argparse.Namespace) -> int:
    if args.profile and py_spy_path() is None:
        log("py-spy not found (pip install py-spy); profiles will be reported as failed")
    results: dict[str, Any] = {
        "meta": {
            "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "command": "python bench/apiserver_bench.py " + " ".join(sys.argv[1:]),
            "load_avg_start": os.getloadavg(),
            "transport": args.transport,
            "seconds": args.seconds,
            "clients": args.clients,
            "rate": args.rate,
            "watchers": args.watchers,
            "pods": args.pods,
        },
        "targets": {},
    }
    for store in args.stores:
        results["targets"][store] = await bench_store(store, args)
    results["meta"]["load_avg_end"] = os.getloadavg()
    print()
    for table in tables(results):
        print(table.text(), end="\n\n")
    for line in target_lines(results):
        print(line)
    for line in profile_lines(results):
        print(line)
    json_path, md_path = await asyncio.to_thread(write_outputs, results, args.out)
    print(f"\nwrote {json_path} and {md_path}")
    failed = sum(len(t["errors"]) for t in results["targets"].values())
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        log("uvloop not installed; using asyncio's loop")
        return asyncio.run(run(args))
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
