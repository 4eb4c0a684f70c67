"""Watch fan-out over HTTP: W watch streams on one namespace's pods, one writer creating pods.

Each watcher is its own HTTP connection (``GET …/pods?watch=1&resourceVersion=RV``,
RV from a list just before, so no initial events), opened WATCH_OPEN_BATCH at
a time; the cell starts once every stream's response headers arrived (the
server registers the watcher before it answers).  The writer creates pods
``ev-<i>`` at ``plan.rate`` per second (capped by ``storebench``'s
``WatchPlan`` so this one client process can keep up with rate x watchers
deliveries).  A watcher notes ``time.monotonic_ns()`` as soon as it has read
an event's line and finds the pod's name with a byte search (no JSON parse).

Per (watcher, event):

* **delay from response** (the primary figure) = delivery - the moment the
  writer's POST response arrived.  A watcher may hear of the pod before the
  writer reads its own response; such samples count as 0 and are counted
  (``before_response``);
* **delay from send** = delivery - the moment the POST was sent (includes
  the create's own latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import orjson

from apiserverbench.client import JSON, Api, RequestFailed, pod, pods_path
from storebench.cpu import CpuMeter
from storebench.stats import Latency
from storebench.workloads import Cell, WatchPlan, _spread

WATCH_OPEN_BATCH = 50
_NAME = b'"name":"ev-'


async def _open_watch(api: Api, namespace: str, revision: str) -> aiohttp.ClientResponse:
    url = f"{api.base}{pods_path(namespace)}?watch=1&resourceVersion={revision}&timeoutSeconds=600"
    response = await api.session.get(url, headers={"Accept": JSON})
    if response.status != 200:
        body = await response.read()
        response.release()
        raise RequestFailed(f"watch: {response.status} {body[:300]!r}")
    return response


async def measure_watch_fanout(api: Api, namespace: str, plan: WatchPlan, pid: int, wait_s: float) -> Cell:
    listed = orjson.loads(await api.call("GET", pods_path(namespace) + "?limit=1"))
    revision = listed["metadata"]["resourceVersion"]
    streams: list[aiohttp.ClientResponse] = []
    try:
        for start in range(0, plan.watchers, WATCH_OPEN_BATCH):
            batch = min(WATCH_OPEN_BATCH, plan.watchers - start)
            streams += await asyncio.gather(*(_open_watch(api, namespace, revision) for _ in range(batch)))
        return await _run(api, namespace, plan, pid, wait_s, streams)
    finally:
        for response in streams:
            response.close()


async def _run(
    api: Api, namespace: str, plan: WatchPlan, pid: int, wait_s: float, streams: list[aiohttp.ClientResponse]
) -> Cell:
    deliveries: list[tuple[int, int]] = []  # (event index, delivered_ns)
    sent: dict[int, int] = {}
    answered: dict[int, int] = {}
    create_latencies: list[int] = []
    errors: list[str] = []

    async def consume(response: aiohttp.ClientResponse) -> None:
        seen = 0
        while seen < plan.events:
            line = await response.content.readline()
            now = time.monotonic_ns()
            if not line:
                return
            at = line.find(_NAME)
            if at < 0:
                continue  # a BOOKMARK or another pod
            end = line.index(b'"', at + len(_NAME))
            deliveries.append((int(line[at + len(_NAME) : end]), now))
            seen += 1

    async def write() -> None:
        interval = 1.0 / plan.rate
        start = time.monotonic()
        for i in range(plan.events):
            await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
            sent[i] = time.monotonic_ns()
            try:
                await api.call("POST", pods_path(namespace), pod(f"ev-{i:06d}", namespace), expect=201)
            except RequestFailed as err:
                errors.append(str(err))
                continue
            answered[i] = time.monotonic_ns()
            create_latencies.append(answered[i] - sent[i])

    meter = CpuMeter(pid)
    consumers = [asyncio.create_task(consume(r)) for r in streams]
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
    from_response = [at - answered[i] for i, at in deliveries if i in answered]
    before_response = sum(1 for d in from_response if d < 0)
    expected = plan.watchers * len(answered)
    cell = Cell(Latency.of_ns([max(0, d) for d in from_response]), len(deliveries), elapsed, cpu, errors)
    cell.extra = {
        "watchers": plan.watchers,
        "events_written": len(answered),
        "rate_per_s": round(plan.rate, 2),
        "deliveries_expected": expected,
        "deliveries_missing": expected - len(from_response),
        "watchers_unfinished": len(pending),
        "before_response": before_response,
        "delay_from_send": Latency.of_ns([at - sent[i] for i, at in deliveries if i in sent]).as_dict(),
        "create_latency": Latency.of_ns(create_latencies).as_dict(),
        "spread": _spread(deliveries).as_dict(),
    }
    return cell
