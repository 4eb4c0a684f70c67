"""Request workloads against a running API server: closed-loop cells, the open-loop rate, bulk loading.

* Closed loop (get, create, update, patch, list): ``clients`` tasks each send
  the next request as soon as the previous one answered, for ``seconds``;
  requests/s is answered requests over the cell's wall time, p50/p99 the
  latency of one request (queueing behind the other clients included).
* Open loop (``measure_rate``): requests are *due* at fixed times (``rate``
  per second) and each is sent at its due time whether or not earlier ones
  answered; latency runs from the due time, so a server (or client) that
  falls behind shows it in the figure instead of silently slowing the load
  down (no coordinated omission).

Every loop is bounded by a deadline and by MAX_ERRORS failed requests (failures
are counted and reported, never hidden).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from apiserverbench.client import MERGE_PATCH, Api, RequestFailed, pod, pods_path
from storebench.cpu import CpuMeter
from storebench.stats import Latency
from storebench.workloads import Cell

MAX_ERRORS = 100
#: Concurrent creates while loading pods for the list and RSS figures.
LOAD_CONCURRENCY = 32


async def _closed_loop(
    clients: int, seconds: float, call: Callable[[int, int], Awaitable[object]], server_pid: int
) -> Cell:
    samples: list[int] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    async def client(index: int) -> None:
        n = 0
        while time.monotonic() < deadline and len(errors) < MAX_ERRORS:
            started = time.perf_counter_ns()
            try:
                await call(index, n)
            except (RequestFailed, OSError) as err:
                errors.append(f"{type(err).__name__}: {err}")
            else:
                samples.append(time.perf_counter_ns() - started)
            n += 1

    meter = CpuMeter(server_pid)
    meter.start()
    began = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return Cell(Latency.of_ns(samples), len(samples), time.monotonic() - began, meter.stop(), errors)


async def load_pods(api: Api, namespace: str, count: int, start: int = 0, prefix: str = "p") -> float:
    """Create pods ``prefix-<start>`` .. ``prefix-<start+count-1>`` with LOAD_CONCURRENCY tasks; pods/s."""
    next_index = iter(range(start, start + count))
    errors: list[str] = []

    async def worker() -> None:
        for i in next_index:
            try:
                await api.call("POST", pods_path(namespace), pod(f"{prefix}-{i:06d}", namespace), expect=201)
            except RequestFailed as err:
                errors.append(str(err))
                if len(errors) >= MAX_ERRORS:
                    raise RuntimeError(f"loading pods failed {len(errors)} times; last: {err}") from err

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(LOAD_CONCURRENCY)))
    elapsed = time.monotonic() - began
    if errors:
        raise RuntimeError(f"loading pods: {len(errors)} failed; first: {errors[0]}")
    return count / elapsed if elapsed > 0 else 0.0


async def measure_get(api: Api, namespace: str, names: list[str], clients: int, seconds: float, pid: int) -> Cell:
    async def get(client: int, n: int) -> object:
        return await api.call("GET", pods_path(namespace, names[(client * 7919 + n) % len(names)]))

    return await _closed_loop(clients, seconds, get, pid)


async def measure_create(api: Api, namespace: str, clients: int, seconds: float, pid: int) -> Cell:
    async def create(client: int, n: int) -> object:
        name = f"c{client}-{n:06d}"
        return await api.call("POST", pods_path(namespace), pod(name, namespace), expect=201)

    return await _closed_loop(clients, seconds, create, pid)


@dataclass
class OwnedPod:
    """A pod one client updates: its last answered body, whose resourceVersion the next PUT carries."""

    name: str
    body: dict[str, object]


async def owned_pods(api: Api, namespace: str, count: int, prefix: str) -> list[OwnedPod]:
    owned = []
    for i in range(count):
        name = f"{prefix}-{i:04d}"
        created = await api.call("POST", pods_path(namespace), pod(name, namespace), expect=201)
        owned.append(OwnedPod(name, orjson.loads(created)))
    return owned


async def _put(api: Api, namespace: str, target: OwnedPod, n: int) -> None:
    body = target.body
    meta = body["metadata"]
    assert isinstance(meta, dict)
    meta["annotations"] = {"bench/n": str(n)}
    answered = await api.call("PUT", pods_path(namespace, target.name), body)
    target.body = orjson.loads(answered)


async def measure_update(api: Api, namespace: str, clients: int, seconds: float, pid: int) -> Cell:
    """PUT of a whole pod (a changed annotation) carrying the resourceVersion of the last answer."""
    owned = await owned_pods(api, namespace, clients, "upd")

    async def update(client: int, n: int) -> object:
        await _put(api, namespace, owned[client], n)
        return None

    return await _closed_loop(clients, seconds, update, pid)


async def measure_patch(api: Api, namespace: str, clients: int, seconds: float, pid: int) -> Cell:
    """JSON merge patches of one annotation, one pod per client."""
    owned = await owned_pods(api, namespace, clients, "mp")

    async def patch(client: int, n: int) -> object:
        body = {"metadata": {"annotations": {"bench/n": str(n)}}}
        return await api.call("PATCH", pods_path(namespace, owned[client].name), body, content_type=MERGE_PATCH)

    return await _closed_loop(clients, seconds, patch, pid)


async def measure_list(api: Api, namespace: str, expected: int, seconds: float, pid: int) -> Cell:
    """Full lists (no limit) of a namespace holding ``expected`` pods, one client back to back."""
    probe = orjson.loads(await api.call("GET", pods_path(namespace)))
    if len(probe["items"]) != expected:
        raise RuntimeError(f"list of {namespace} returned {len(probe['items'])} pods, expected {expected}")
    size = 0

    async def list_all(_client: int, _n: int) -> object:
        nonlocal size
        size = len(await api.call("GET", pods_path(namespace)))
        return None

    cell = await _closed_loop(1, seconds, list_all, pid)
    cell.extra = {"response_bytes": size}
    return cell


async def measure_rate(api: Api, namespace: str, rate: float, seconds: float, pid: int) -> Cell:
    """Open loop at ``rate`` requests/s: creates and PUT updates alternating, for ``seconds``.

    Updates go round-robin over rate/2 pods, so each pod is updated about once
    a second: a PUT overlaps the previous one of its pod (a 409, counted as an
    error) only if the server answers slower than that.
    """
    owned = await owned_pods(api, namespace, max(1, int(rate / 2)), "rate")
    total = int(rate * seconds)
    samples: list[int] = []
    errors: list[str] = []
    late_sends: list[int] = []

    async def one(i: int, due_ns: int) -> None:
        late_sends.append(time.perf_counter_ns() - due_ns)
        try:
            if i % 2 == 0:
                await api.call("POST", pods_path(namespace), pod(f"r-{i:06d}", namespace), expect=201)
            else:
                await _put(api, namespace, owned[(i // 2) % len(owned)], i)
        except (RequestFailed, OSError) as err:
            errors.append(f"{type(err).__name__}: {err}")
        else:
            samples.append(time.perf_counter_ns() - due_ns)

    meter = CpuMeter(pid)
    meter.start()
    began_ns = time.perf_counter_ns()
    tasks = []
    for i in range(total):
        due_ns = began_ns + int(i * 1e9 / rate)
        await asyncio.sleep(max(0.0, (due_ns - time.perf_counter_ns()) / 1e9))
        tasks.append(asyncio.create_task(one(i, due_ns)))
        if len(errors) >= MAX_ERRORS:
            break
    _done, pending = await asyncio.wait(tasks, timeout=60)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    elapsed = (time.perf_counter_ns() - began_ns) / 1e9
    cell = Cell(Latency.of_ns(samples), len(samples), elapsed, meter.stop(), errors)
    cell.extra = {
        "rate_per_s": rate,
        "requests_due": total,
        "unanswered": total - len(samples) - len(errors),
        "send_lag": Latency.of_ns(late_sends).as_dict(),
    }
    return cell
