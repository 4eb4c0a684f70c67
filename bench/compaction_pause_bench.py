"""How long the SQLite store's writes wait while it compacts: batched (the store's way) vs one transaction.

The 5,000-node density run showed the API server's p99 jump to 5-10 s every 300 s, in step with
the API server's compactions: one statement dropped five minutes of history while every write
waited.  This writes ``--keys`` keys ``--rounds`` times (history to drop), then compacts while a
writer keeps putting one key at a time, and prints the writer's worst and p99 put latency during
the compaction, and how long the compaction took, for batches of 1,000 keys and for one batch of
all keys (the old behaviour).  Bounded: fixed key and round counts.

    .venv/bin/python bench/compaction_pause_bench.py [--keys 50000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from skiff.store import sqlite as sqlite_store
from skiff.store.sqlite import SqliteStore
from skiff.store.types import Put

VALUE = b"x" * 1500  # about a pod's size on the wire


async def fill(store: SqliteStore, keys: int, rounds: int) -> None:
    for _ in range(rounds):
        for start in range(0, keys, 500):
            await asyncio.gather(*(store.put(Put(b"/bench/%08d" % k, VALUE)) for k in range(start, start + 500)))


async def measure(batch_keys: int, keys: int, rounds: int) -> tuple[float, float, float, int]:
    sqlite_store.COMPACTION_BATCH_KEYS = batch_keys
    with tempfile.TemporaryDirectory() as tmp:
        store = await SqliteStore.open(Path(tmp) / "bench.db")
        try:
            await fill(store, keys, rounds)
            revision = (await store.put(Put(b"/bench/mark", b"1"))).revision
            latencies: list[float] = []
            done = asyncio.Event()

            async def writer() -> None:
                n = 0
                while not done.is_set():
                    started = time.perf_counter()
                    await store.put(Put(b"/bench/live/%06d" % (n % 1000), VALUE))
                    latencies.append(time.perf_counter() - started)
                    n += 1

            task = asyncio.create_task(writer())
            await asyncio.sleep(0.2)
            started = time.perf_counter()
            await store.compact(revision)
            took = time.perf_counter() - started
            done.set()
            await task
            p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) >= 100 else max(latencies)
            return max(latencies), p99, took, len(latencies)
        finally:
            await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    print(f"{args.keys} keys x {args.rounds} writes each, then compaction with a writer running")
    print("| batch | worst put ms | p99 put ms | puts during | compaction s |")
    print("|---|---|---|---|---|")
    for label, batch in (("1,000 keys (the store's)", 1000), ("all keys at once (before)", 10**9)):
        worst, p99, took, count = await measure(batch, args.keys, args.rounds)
        print(f"| {label} | {worst * 1000:.0f} | {p99 * 1000:.0f} | {count} | {took:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
