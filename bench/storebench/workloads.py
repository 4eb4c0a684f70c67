"""The measured workloads: concurrent puts, single-key and prefix reads, watch fan-out.

Every loop is bounded by a deadline (and the watch cell by an event count
too), so a slow or stuck target cannot hang the run.  Keys of every cell are
distinct; values are 256 bytes (the default of etcd's ``benchmark`` tool).
Latencies are wall-clock, measured around each awaited call in the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from skiff.store.errors import StoreError
from skiff.store.protocol import Store, Watcher
from skiff.store.types import Put, Range, prefix_end
from storebench.cpu import CpuMeter, CpuUse
from storebench.stats import Latency

#: etcd's benchmark tool default --val-size.
VALUE_SIZE = 256
#: Keys preloaded for the range cells, and the prefix range's limit.
RANGE_KEYS = 1000
RANGE_LIMIT = 500
#: A cell gives up after this many failed calls (they are counted and reported).
MAX_ERRORS = 100
#: Watchers are created this many at a time.
WATCH_OPEN_BATCH = 50


@dataclass
class Cell:
    """One measured cell: latencies, optional throughput, CPU, and errors seen."""

    latency: Latency
    ops: int
    seconds: float
    cpu: CpuUse
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ops": self.ops,
            "seconds": round(self.seconds, 3),
            "ops_per_s": round(self.ops_per_s, 1),
            "latency": self.latency.as_dict(),
            "bench_cpu_pct": round(self.cpu.bench_pct, 1),
            "bench_loop_cpu_pct": round(self.cpu.bench_loop_pct, 1),
            "server_cpu_pct": _rounded(self.cpu.server_pct),
            "server_main_thread_cpu_pct": _rounded(self.cpu.server_main_pct),
            "errors": self.errors[:5],
            "error_count": len(self.errors),
            **self.extra,
        }


def _rounded(pct: float | None) -> float | None:
    return None if pct is None else round(pct, 1)


def padded_value(head: bytes = b"") -> bytes:
    return head + b"v" * (VALUE_SIZE - len(head))


async def _timed_loop(
    clients: int, seconds: float, call: Callable[[int, int], Awaitable[object]], server_pid: int | None
) -> Cell:
    """Run ``clients`` tasks, each awaiting ``call(client, n)`` back to back until the deadline."""
    samples: list[int] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    async def client(index: int) -> None:
        n = 0
        while time.monotonic() < deadline and len(errors) < MAX_ERRORS:
            started = time.perf_counter_ns()
            try:
                await call(index, n)
            except StoreError as err:
                errors.append(f"{type(err).__name__}: {err}")
            else:
                samples.append(time.perf_counter_ns() - started)
            n += 1

    meter = CpuMeter(server_pid)
    meter.start()
    began = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.monotonic() - began
    return Cell(Latency.of_ns(samples), len(samples), elapsed, meter.stop(), errors)


async def measure_writes(store: Store, clients: int, seconds: float, server_pid: int | None) -> Cell:
    """Puts of distinct keys from ``clients`` concurrent tasks for ``seconds``."""
    prefix = f"/bench/write/c{clients}/"
    value = padded_value()
    # Warm up the connection and the write path outside the measurement.
    for i in range(20):
        await store.put(Put(f"/bench/warmup/c{clients}/{i}".encode(), value))

    async def put(client: int, n: int) -> object:
        return await store.put(Put(f"{prefix}{client}/{n}".encode(), value))

    return await _timed_loop(clients, seconds, put, server_pid)


async def preload_range_keys(store: Store) -> bytes:
    """Write RANGE_KEYS keys under one prefix, 100 puts per txn; returns the prefix."""
    prefix = b"/bench/range/"
    value = padded_value()
    for start in range(0, RANGE_KEYS, 100):
        ops = tuple(Put(prefix + b"%06d" % i, value) for i in range(start, min(start + 100, RANGE_KEYS)))
        await store.txn((), ops)
    return prefix


async def measure_get(store: Store, prefix: bytes, seconds: float, server_pid: int | None) -> Cell:
    """Linearizable single-key reads, one client, back to back."""
    keys = [prefix + b"%06d" % i for i in range(RANGE_KEYS)]

    async def get(_client: int, n: int) -> object:
        return await store.range(Range(keys[n * 7919 % RANGE_KEYS]))

    return await _timed_loop(1, seconds, get, server_pid)


async def measure_prefix_range(store: Store, prefix: bytes, seconds: float, server_pid: int | None) -> Cell:
    """Linearizable reads of the first RANGE_LIMIT of RANGE_KEYS keys under a prefix, one client."""
    request = Range(prefix, prefix_end(prefix), limit=RANGE_LIMIT)
    probe = await store.range(request)
    if len(probe.kvs) != RANGE_LIMIT or not probe.more or probe.count != RANGE_KEYS:
        raise RuntimeError(f"prefix range returned {len(probe.kvs)} kvs, more={probe.more}, count={probe.count}")

    async def scan(_client: int, _n: int) -> object:
        return await store.range(request)

    return await _timed_loop(1, seconds, scan, server_pid)


@dataclass(frozen=True)
class WatchPlan:
    """How many events a fan-out cell writes and how fast.

    The rate is capped so that the deliveries the client must process per
    second (rate x watchers) stay within ``delivery_budget``: every watcher
    lives in this one Python process, and past that budget the figure would
    measure the client, not the server.
    """

    watchers: int
    events: int
    rate: float

    @classmethod
    def for_cell(cls, watchers: int, seconds: float, max_rate: float, delivery_budget: float) -> WatchPlan:
        rate = max(1.0, min(max_rate, delivery_budget / watchers))
        return cls(watchers, max(10, int(rate * seconds)), rate)


async def measure_watch_fanout(store: Store, plan: WatchPlan, server_pid: int | None, wait_s: float) -> Cell:
    """``plan.watchers`` watchers on one prefix; a writer puts ``plan.events`` keys at ``plan.rate``.

    Each value starts with the writer's ``time.monotonic_ns()`` taken just
    before the put is submitted.  Per (watcher, event) the cell records

    * delay from submit = delivery - submission (the primary figure; it
      includes the write's own commit latency), and
    * delay from ack = delivery - the moment the writer's put returned (can be
      negative: a watcher may hear of a commit before the writer does).

    Delivery is when the watcher's task receives the response from the Store's
    watcher, i.e. after every client-side layer; with many watchers in one
    process the last ones wait for the event loop to reach them.
    """
    prefix = f"/bench/watch/w{plan.watchers}/".encode()
    watchers = await _open_watchers(store, prefix, plan.watchers)
    from_submit: list[int] = []
    deliveries: list[tuple[int, int]] = []  # (mod_revision, delivered_ns)
    acks: dict[int, int] = {}
    put_latencies: list[int] = []
    errors: list[str] = []

    async def consume(watcher: Watcher) -> None:
        seen = 0
        async for response in watcher:
            now = time.monotonic_ns()
            for event in response.events:
                from_submit.append(now - int.from_bytes(event.kv.value[:8], "big"))
                deliveries.append((event.kv.mod_revision, now))
                seen += 1
            if seen >= plan.events:
                return

    async def write() -> None:
        interval = 1.0 / plan.rate
        start = time.monotonic()
        for i in range(plan.events):
            await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
            submitted = time.monotonic_ns()
            try:
                result = await store.put(Put(prefix + b"%06d" % i, padded_value(submitted.to_bytes(8, "big"))))
            except StoreError as err:
                errors.append(f"{type(err).__name__}: {err}")
                continue
            acked = time.monotonic_ns()
            acks[result.revision] = acked
            put_latencies.append(acked - submitted)

    meter = CpuMeter(server_pid)
    consumers = [asyncio.create_task(consume(w)) for w in watchers]
    try:
        meter.start()
        began = time.monotonic()
        await write()
        _done, pending = await asyncio.wait(consumers, timeout=wait_s)
        elapsed = time.monotonic() - began
        cpu = meter.stop()
    finally:
        for task in consumers:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*consumers, return_exceptions=True)
        await asyncio.gather(*(w.close() for w in watchers), return_exceptions=True)
    from_ack = [delivered - acks[rev] for rev, delivered in deliveries if rev in acks]
    expected = plan.watchers * (plan.events - len(errors))
    cell = Cell(Latency.of_ns(from_submit), len(from_submit), elapsed, cpu, errors)
    cell.extra = {
        "watchers": plan.watchers,
        "events_written": plan.events - len(errors),
        "rate_per_s": round(plan.rate, 2),
        "deliveries_expected": expected,
        "deliveries_missing": expected - len(from_submit),
        "watchers_unfinished": len(pending),
        "delay_from_ack": _signed_latency(from_ack),
        "put_latency": Latency.of_ns(put_latencies).as_dict(),
        "spread": _spread(deliveries).as_dict(),
        # This process's CPU per delivery: watchers x this ~ spread means the client set the fan-out's width.
        "bench_cpu_us_per_delivery": round(cpu.bench_pct / 100 * elapsed * 1e6 / max(1, len(from_submit)), 1),
    }
    return cell


async def _open_watchers(store: Store, prefix: bytes, count: int) -> list[Watcher]:
    watchers: list[Watcher] = []
    try:
        for start in range(0, count, WATCH_OPEN_BATCH):
            batch = min(WATCH_OPEN_BATCH, count - start)
            watchers += await asyncio.gather(*(store.watch(prefix, prefix_end(prefix)) for _ in range(batch)))
    except BaseException:
        await asyncio.gather(*(w.close() for w in watchers), return_exceptions=True)
        raise
    return watchers


def _signed_latency(samples: list[int]) -> dict[str, Any]:
    """Like Latency, but for samples that may be negative (reported as they are)."""
    shifted = Latency.of_ns(samples)
    return shifted.as_dict() | {"negative": sum(1 for s in samples if s < 0)}


def _spread(deliveries: list[tuple[int, int]]) -> Latency:
    """Per event: last delivery - first delivery across all watchers (the fan-out's own width)."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for rev, at in deliveries:
        first[rev] = min(first.get(rev, at), at)
        last[rev] = max(last.get(rev, at), at)
    return Latency.of_ns([last[rev] - first[rev] for rev in first])
