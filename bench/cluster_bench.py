"""A whole ``skiff up`` cluster: idle memory of the control plane and pod startup latency.

Run from the repository root::

    python bench/cluster_bench.py               # 100 pods
    python bench/cluster_bench.py --pods 30     # a quick look

Starts ``skiff up`` on a fresh data dir (its own 127.N/16 address plan), waits
for its "ready" line, lets it idle, then sums the resident memory of the
control plane: the ``skiff up`` process (store, API server, etcd API) and its
component processes (controller-manager, scheduler, kubelet, proxy) — pods
excluded.  Then creates --pods real-process pods at once (busybox ``sleep``,
i.e. a host shell) and times, per pod, from its create response to the watch
event that shows it Running (Kubernetes' pod startup SLI, without image pulls).
Prints figures and PASS/MISS against issue C's targets (p99 <= 1 s; idle RSS
<= 250 MiB) and writes OUT/cluster.json.  Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from skiff.client import ApiClient, ClientConfig
from skiff.client.resources import PODS
from storebench.runlog import log
from storebench.stats import percentile

TARGET_P99_S = 1.0
TARGET_RSS_MIB = 250.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=100, help="pods to start at once (default 100)")
    parser.add_argument("--rate", type=float, default=0.0, help="pods created per second; 0 = all at once (default 0)")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds to idle before measuring RSS (default 20)")
    parser.add_argument("--out", default="bench/out", help="directory for cluster.json (default bench/out)")
    return parser.parse_args(argv)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def component_name(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return next((a.decode() for a in argv if a in (b"controller-manager", b"scheduler", b"kubelet", b"proxy")), "?")


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "startup"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
        },
    }


async def startup_latency(client: ApiClient, count: int, rate: float) -> list[float]:
    listed = await client.list(PODS, "default")
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        rv = listed["metadata"]["resourceVersion"]
        async for event in client.watch(PODS, "default", resource_version=rv, label_selector="bench=startup"):
            name = event.object["metadata"]["name"]
            if (event.object.get("status") or {}).get("phase") == "Running" and name not in running:
                running[name] = time.monotonic()
                if len(running) == count:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())

    async def create(i: int) -> None:
        name = f"startup-{i}"
        await client.create(PODS, pod(name), "default")
        created[name] = time.monotonic()

    if rate > 0:  # paced, as Kubernetes' density tests create pods at a fixed throughput
        for i in range(count):
            await create(i)
            await asyncio.sleep(1 / rate)
    else:
        await asyncio.gather(*(create(i) for i in range(count)))
    try:
        await asyncio.wait_for(done.wait(), 300)
    finally:
        watcher.cancel()
    return sorted(running[n] - created[n] for n in created if n in running)


async def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="skiff-cluster-bench-"))
    out_path = workdir / "up.out"
    cmd = [sys.executable, "-m", "skiff.cli.main", "up", "--data-dir", str(workdir / "data")]
    cmd += ["--kubeconfig", str(workdir / "kubeconfig"), "--api-port", "0", "--node-name", "bench-node"]
    with out_path.open("wb") as out:
        up = await asyncio.create_subprocess_exec(*cmd, stdout=out, stderr=out, start_new_session=True)
    results: dict[str, Any] = {"pods": args.pods, "rate": args.rate or "burst"}
    try:
        deadline = time.monotonic() + 180
        while not re.search(r"^skiff up: ready", out_path.read_text(), re.M):
            if up.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"skiff up did not become ready:\n{out_path.read_text()}")
            await asyncio.sleep(0.2)
        log(f"cluster ready; idling {args.idle:.0f}s")
        await asyncio.sleep(args.idle)
        parts = {"skiff up (store, apiserver, etcd API)": rss_mib(up.pid)}
        for child in children(up.pid):
            parts[component_name(child)] = rss_mib(child)
        results["idle_rss_mib"] = parts
        total = sum(parts.values())
        results["idle_rss_total_mib"] = total
        config = await asyncio.to_thread(ClientConfig.from_kubeconfig, workdir / "kubeconfig")
        async with ApiClient(config, user_agent="cluster-bench") as client:
            log(f"starting {args.pods} pods")
            latencies = await startup_latency(client, args.pods, args.rate)
        results["startup_s"] = {
            "started": len(latencies),
            "p50": percentile(latencies, 50),
            "p99": percentile(latencies, 99),
            "max": latencies[-1] if latencies else None,
        }
    finally:
        if up.returncode is None:
            os.killpg(up.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(up.wait(), 120)
            except TimeoutError:
                os.killpg(up.pid, signal.SIGKILL)
                await up.wait()
    report(results)
    await asyncio.to_thread(save, results, Path(args.out))
    return 0


def save(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"cluster-{results['rate']}.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


def report(results: dict[str, Any]) -> None:
    print("| component | idle RSS MiB |\n|---|---|")
    for name, mib in results["idle_rss_mib"].items():
        print(f"| {name} | {mib:.0f} |")
    total = results["idle_rss_total_mib"]
    verdict = "PASS" if total <= TARGET_RSS_MIB else "MISS"
    print(f"| **total** | **{total:.0f}** ({verdict}, target <= {TARGET_RSS_MIB:.0f}) |\n")
    s = results["startup_s"]
    verdict = "PASS" if s["p99"] is not None and s["p99"] <= TARGET_P99_S else "MISS"
    head = f"pod startup, {s['started']}/{results['pods']} pods ({results['rate']}/s)"
    print(f"{head}: p50 {s['p50']:.3f} s, p99 {s['p99']:.3f} s, ", end="")
    print(f"max {s['max']:.3f} s ({verdict}, target p99 <= {TARGET_P99_S:.0f} s)")


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
