"""The registry's update path: CPU per Lease renewal starting from the watch cache vs reading the store.

Run from the repository root::

    python bench/update_path_bench.py              # 2,000 renewals per variant, best of 3 rounds
    python bench/update_path_bench.py --updates 500 --rounds 1

A GenericRegistry over an embedded SqliteStore with its watch cache, in
process (no HTTP, TLS or admission: the part of a write the store decides),
renews one Lease ``--updates`` times — a kubelet's heartbeat, resourceVersion
pinned — once as the API server does it (the first attempt starts from the
watch cache's copy, upstream's ``cachedExistingObject``) and once with the
cache's copy withheld, so every update first reads the store (a reader
thread's snapshot), as before.  Between renewals the loop yields once, so the
cache has applied the previous write as it would between two heartbeats.
Prints CPU (``time.process_time``) and wall microseconds per update and the
ratio.  Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from skiff.registry.builtin import BUILTIN
from skiff.registry.generic import GenericRegistry
from skiff.registry.watch_cache import WatchCache
from skiff.store.sqlite import SqliteStore

LEASES = next(info for info in BUILTIN if info.plural == "leases")
NAMESPACE = "kube-node-lease"


def lease(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": "2026-11-27T10:00:00.000000Z"},
    }


async def renewals(registry: GenericRegistry, name: str, count: int) -> tuple[float, float]:
    """CPU and wall microseconds per renewal of ``name``."""
    obj = await registry.create(NAMESPACE, lease(name))
    await asyncio.sleep(0.05)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(count):
        obj["spec"]["renewTime"] = f"2026-11-27T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1_000_000:06d}Z"
        obj, _ = await registry.update(NAMESPACE, name, obj)
        await asyncio.sleep(0)
    return (time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6


async def main(updates: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await SqliteStore.open(Path(tmp) / "store.db")
        cache = WatchCache(store, LEASES)
        await cache.start()
        from_cache = GenericRegistry(store, LEASES, cache)
        from_store = GenericRegistry(store, LEASES, cache)
        from_store._cached_state = lambda key: None  # type: ignore[method-assign]
        best: dict[str, tuple[float, float]] = {}
        try:
            for r in range(rounds):
                for label, registry in (("from the cache", from_cache), ("store read first", from_store)):
                    cpu, wall = await renewals(registry, f"{label.split()[0]}-{r}", updates)
                    if label not in best or cpu < best[label][0]:
                        best[label] = (cpu, wall)
        finally:
            await cache.stop()
            await store.close()
    print(f"Lease renewals through GenericRegistry.update, {updates} per round, best of {rounds}")
    print(f"{'variant':<18} {'CPU us':>8} {'wall us':>8}")
    for label, (cpu, wall) in best.items():
        print(f"{label:<18} {cpu:8.0f} {wall:8.0f}")
    ratio = best["store read first"][0] / best["from the cache"][0]
    print(f"store read first / from the cache (CPU): {ratio:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.updates, args.rounds))
