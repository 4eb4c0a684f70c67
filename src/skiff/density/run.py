"""One density run, phase by phase: nodes, create, running, churn, delete — then the report.

The phases follow ClusterLoader2's density and load tests.  Observers (a pod
watch, the API server's request histograms, /proc samples of every
control-plane process) run through all phases, so the report covers the
whole run as an SLO covers a cluster-day.  Progress goes to stdout every few
seconds; a phase that does not finish within the configured timeout fails
the run (after the report of what was measured so far is written).

SIGINT or SIGTERM ends the current phase the same way: the run is marked
failed ("interrupted"), the report of what was measured so far is written and
the cluster is stopped — a long run stopped by hand leaves its figures and no
processes behind.  Further signals while that happens are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from skiff.client import ApiClient, ClientConfig
from skiff.client.resources import NODES
from skiff.density.api_latency import ApiLatency
from skiff.density.cluster import Cluster, running_cluster
from skiff.density.config import DensityConfig
from skiff.density.observe import PodTracker, ProcessSampler
from skiff.density.report import build_report, write_report
from skiff.density.workload import Churn, create_deployments, delete_all, ensure_namespaces, plan_deployments

PROGRESS_INTERVAL_S = 5.0
#: The harness's own client may open this many connections (ClusterLoader2 drives the API with many clients).
CLIENT_CONNECTIONS = 128


class PhaseTimeout(RuntimeError):
    pass


class Interrupted(RuntimeError):
    pass


class StopSignals:
    """SIGINT/SIGTERM set ``stopped`` (once) instead of killing the harness mid-report."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.stopped = asyncio.Event()
        self.name = ""

    def __enter__(self) -> StopSignals:
        loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopped.is_set():
            self.say(f"density: {sig.name} again: already stopping (writing the report, then stopping the cluster)")
            return
        self.name = sig.name
        self.say(f"density: {sig.name}: ending the run; the report of what was measured so far follows")
        self.stopped.set()

    async def unless_stopped(self, work: Awaitable[Any]) -> Any:
        """``work``'s result, or Interrupted (with ``work`` cancelled) once a signal came."""
        task = asyncio.ensure_future(work)
        waiter = asyncio.create_task(self.stopped.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the phase's timeout: the work goes with it
            task.cancel()
            raise
        finally:
            waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise Interrupted(f"interrupted by {self.name}")
        return task.result()


class Progress:
    """Prints one line per interval: the phase, its age and the pod counts."""

    def __init__(self, tracker: PodTracker, say: Callable[[str], None]) -> None:
        self.tracker = tracker
        self.say = say
        self.started = time.monotonic()
        self.phase = "starting"
        self.phase_started = self.started

    def enter(self, phase: str) -> None:
        self.phase, self.phase_started = phase, time.monotonic()
        self.say(f"[{self.phase_started - self.started:7.1f}s] {phase}")

    def line(self, extra: str = "") -> None:
        now = time.monotonic()
        counts = " ".join(f"{k}={v}" for k, v in self.tracker.snapshot().items())
        self.say(
            f"[{now - self.started:7.1f}s] {self.phase} +{now - self.phase_started:.0f}s {counts} {extra}".rstrip()
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            self.line()


async def run_density(config: DensityConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every phase and write the report; returns the report (also when a phase timed out: then it raises)."""
    config.out.mkdir(parents=True, exist_ok=True)
    say(f"density: {config.nodes} nodes x {config.pods_per_node} pods = {config.total_pods} pods, {config.store} store")
    with StopSignals(say) as stop:
        async with running_cluster(config) as cluster:
            say(f"density: control plane up (logs in {config.out / 'logs'})")
            return await _measure(cluster, config, say, stop)


async def _measure(
    cluster: Cluster, config: DensityConfig, say: Callable[[str], None], stop: StopSignals
) -> dict[str, Any]:
    phases: dict[str, float] = {}
    phase_starts: dict[str, float] = {}
    churn_counts: dict[str, int] = {}
    failure: BaseException | None = None
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            ApiClient(cluster.client_config, "skiff-density", max_connections=CLIENT_CONNECTIONS)
        )
        others = [
            await stack.enter_async_context(ApiClient(ClientConfig.from_kubeconfig(path), "skiff-density"))
            for path in cluster.kubeconfigs[1:]
        ]
        tracker = PodTracker(client)
        sampler = ProcessSampler(cluster.pids)
        latency = ApiLatency([client, *others])
        sim_sampler: ProcessSampler | None = None
        progress = Progress(tracker, say)
        await tracker.start()
        await sampler.start()
        await latency.start()
        ticker = asyncio.create_task(progress.run())

        async def phase(name: str, work: Awaitable[Any]) -> Any:
            progress.enter(name)
            started = phase_starts[name] = time.monotonic()
            try:
                async with asyncio.timeout(config.timeout_s):
                    return await stop.unless_stopped(work)
            except TimeoutError as err:
                raise PhaseTimeout(f"phase {name!r} did not finish within {config.timeout_s:.0f}s") from err
            finally:
                phases[name] = round(time.monotonic() - started, 3)

        plans = plan_deployments(config)
        namespaces = sorted({p.namespace for p in plans})
        try:
            await phase("nodes_ready", _start_nodes(cluster, client))
            sim_sampler = ProcessSampler(cluster.sim_pids)
            await sim_sampler.start()
            await stop.unless_stopped(ensure_namespaces(client, namespaces))
            await phase("create", create_deployments(client, plans, config.create_qps, lambda plan: None))
            await phase("running", _until(lambda: tracker.count_running() >= config.total_pods))
            phases["pods_running"] = round(phases["create"] + phases["running"], 3)
            if config.churn_s > 0:
                churn = Churn(client, plans, config.churn_qps, config.churn_s)
                churn_counts = await phase("churn", churn.run())
                await phase(
                    "settle", _until(lambda: tracker.count_running() == tracker.count_live() == config.total_pods)
                )
            await phase("delete", _delete_everything(client, tracker, namespaces, config.delete_qps))
        except Exception as err:  # a phase timed out or failed: the report of what was measured is still written
            failure = err
            say(f"density: FAILED: {err}")
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            await latency.stop()
            await sampler.stop()
            if sim_sampler is not None:
                await sim_sampler.stop()
            await tracker.stop()
        extra = {
            "restarts": cluster.restarts(),
            "failure": None if failure is None else str(failure),
            "hollow_nodes_peak_rss_mb": None if sim_sampler is None else round(sim_sampler.peak_rss_sum_mib(), 1),
        }
        report = build_report(
            config=config,
            tracker=tracker,
            sampler=sampler,
            latency=latency,
            phases=phases,
            churn=churn_counts,
            extra=extra,
            phase_starts=phase_starts,
        )
        await write_report(report, config.out, sampler, latency, tracker)
        say(f"density: report in {config.out / 'report.md'}")
    if failure is not None:
        raise failure
    return report


async def _start_nodes(cluster: Cluster, client: ApiClient) -> None:
    """Start the hollow nodes and wait until the API server lists all of them Ready."""
    await cluster.start_nodes()
    while await _ready_nodes(client) < cluster.config.nodes:  # noqa: ASYNC110 - the state is the API server's
        await asyncio.sleep(1.0)


async def _ready_nodes(client: ApiClient) -> int:
    listed = await client.list_all(NODES)
    return sum(
        1
        for node in listed.get("items", [])
        if any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions", [])
        )
    )


async def _delete_everything(client: ApiClient, tracker: PodTracker, namespaces: list[str], qps: float) -> None:
    await delete_all(client, namespaces, qps)
    await _until(lambda: tracker.count_live() == 0)


async def _until(condition: Callable[[], bool], poll_s: float = 0.2) -> None:
    """Wait for a condition on the observers' state (the caller bounds the wait)."""
    while not condition():  # noqa: ASYNC110 - observers update counters, not events
        await asyncio.sleep(poll_s)
