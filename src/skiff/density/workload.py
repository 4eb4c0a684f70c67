"""The density workload: which Deployments exist, and the paced create, churn and delete that drive them.

The shape is ClusterLoader2's load test (perf-tests ``clusterloader2/testing/load/config.yaml``): one namespace
per ``nodes_per_namespace`` nodes; in each, 1/4 of the pods in big Deployments (250 replicas), 1/4 in medium
ones (30) and 1/2 in small ones (5).  CL2's integer division drops the remainder; here the plan always holds
exactly ``config.total_pods`` replicas: each class's share is split into ceil(share / size) near-equal
Deployments, so Deployments shrink (never grow) when the cluster is small.

Guarantees:
- every API call is retried on 429, 5xx and connection errors with bounded back-off, and raises after
  ``MAX_ATTEMPTS`` (the error carries a note naming the object): nothing is dropped silently;
- a create answered AlreadyExists after a failed attempt counts as done (that attempt landed); a delete
  answered NotFound means gone (the only error that does);
- ``Churn.run`` leaves every Deployment existing at its planned replicas when it returns.
Time comes from an injected ``Clock`` so tests never sleep for real.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from skiff.client import ApiClient, ApiError, is_already_exists, is_not_found
from skiff.client.clock import Clock, RealClock
from skiff.client.resources import DEPLOYMENTS, NAMESPACES
from skiff.density.config import DensityConfig

log = logging.getLogger(__name__)

BIG, MEDIUM, SMALL = "big", "medium", "small"
#: CL2 load config: BIG_GROUP_SIZE, MEDIUM_GROUP_SIZE, SMALL_GROUP_SIZE, and the share of a namespace's pods each
#: class holds (small takes what the other two leave, so the shares always add up).
GROUP_SIZES = {BIG: 250, MEDIUM: 30, SMALL: 5}
GROUP_QUARTERS = {BIG: 1, MEDIUM: 1}
DENSITY_LABEL = "density"
GENERATION_ANNOTATION = "density/generation"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
MAX_ATTEMPTS = 10
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 5.0
#: Churn change kinds, and how often each is drawn (a scale is undone by a later scale, so it comes twice as often).
SCALE, UPDATE, RECREATE = "scale", "update", "recreate"
CHANGE_WEIGHTS = {SCALE: 2, UPDATE: 1, RECREATE: 1}
#: A churn scale moves a Deployment by at most this many replicas (and at most half its planned size).
MAX_SCALE_STEP = 5

T = TypeVar("T")
Key = tuple[str, str]


@dataclass(frozen=True)
class DeploymentPlan:
    namespace: str
    name: str
    replicas: int
    size: str  # BIG, MEDIUM or SMALL

    @property
    def key(self) -> Key:
        return self.namespace, self.name


# -- the plan (pure) -------------------------------------------------------------------------------------------


def namespace_names(config: DensityConfig) -> list[str]:
    """One namespace per ``nodes_per_namespace`` nodes (the last may be partial), numbered from 1 like CL2's."""
    count = -(-config.nodes // config.nodes_per_namespace)
    return [f"{config.namespace_prefix}-{i}" for i in range(1, count + 1)]


def plan_deployments(config: DensityConfig) -> list[DeploymentPlan]:
    """Every Deployment of the run, namespace by namespace; replicas add up to ``config.total_pods`` exactly."""
    plans: list[DeploymentPlan] = []
    for i, namespace in enumerate(namespace_names(config)):
        nodes_here = min(config.nodes_per_namespace, config.nodes - i * config.nodes_per_namespace)
        plans += _namespace_plans(namespace, nodes_here * config.pods_per_node)
    return plans


def _namespace_plans(namespace: str, pods: int) -> list[DeploymentPlan]:
    shares = {size: pods * quarters // 4 for size, quarters in GROUP_QUARTERS.items()}
    shares[SMALL] = pods - sum(shares.values())
    return [
        DeploymentPlan(namespace, f"{size}-deployment-{j}", replicas, size)
        for size, share in shares.items()
        for j, replicas in enumerate(split_replicas(share, GROUP_SIZES[size]))
    ]


def split_replicas(total: int, size: int) -> list[int]:
    """``total`` replicas as ceil(total / size) Deployments, none above ``size``, differing by at most one."""
    count = -(-total // size)
    if count == 0:
        return []
    base, extra = divmod(total, count)
    return [base + (1 if k < extra else 0) for k in range(count)]


def deployment_body(plan: DeploymentPlan, generation_label: str = "1") -> dict[str, Any]:
    """The Deployment for ``plan``; bumping ``generation_label`` changes the pod template (a rolling update)."""
    labels = {"app": plan.name, DENSITY_LABEL: "true"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": plan.name, "namespace": plan.namespace, "labels": dict(labels)},
        "spec": {
            "replicas": plan.replicas,
            "selector": {"matchLabels": {"app": plan.name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {GENERATION_ANNOTATION: generation_label}},
                "spec": {
                    # Short but not 0: deletion still takes the graceful path hollow nodes finish.
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "pause",
                            "image": PAUSE_IMAGE,
                            # Small enough that 110 pods fit a hollow node's 32 CPU / 256Gi.
                            "resources": {"requests": {"cpu": "10m", "memory": "10Mi"}},
                        }
                    ],
                },
            },
        },
    }


# -- retries ---------------------------------------------------------------------------------------------------


def is_transient(err: BaseException) -> bool:
    """Worth repeating: throttled (429), failed on the server (5xx) or no answer at all (TimeoutError is OSError)."""
    if isinstance(err, ApiError):
        return err.code == 429 or err.code >= 500
    return isinstance(err, OSError | aiohttp.ClientError)


async def retrying(what: str, call: Callable[[int], Awaitable[T]], clock: Clock) -> T:
    """``call(attempt)`` until it succeeds; transient errors back off 0.1 s doubling to 5 s (or the server's
    Retry-After), anything else or the last attempt's error is raised with a note saying ``what`` failed."""
    delay = BACKOFF_START_S
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return await call(attempt)
        except Exception as err:
            if not is_transient(err) or attempt == MAX_ATTEMPTS:
                err.add_note(f"{what}: failed on attempt {attempt} of {MAX_ATTEMPTS}")
                raise
            log.debug("%s: attempt %d failed (%s); retrying in %.1fs", what, attempt, err, delay)
            retry_after = err.details.retry_after_seconds if isinstance(err, ApiError) and err.details else 0
            await clock.sleep(max(delay, float(retry_after)))
            delay = min(delay * 2, BACKOFF_MAX_S)
    raise AssertionError("unreachable")


async def _create_deployment(client: ApiClient, plan: DeploymentPlan, generation: str, clock: Clock) -> None:
    async def attempt(n: int) -> None:
        try:
            await client.create(DEPLOYMENTS, deployment_body(plan, generation), plan.namespace)
        except ApiError as err:
            if not (n > 1 and is_already_exists(err)):  # after a lost answer, AlreadyExists is our own create
                raise

    await retrying(f"create deployment {plan.namespace}/{plan.name}", attempt, clock)


async def _delete_deployment(client: ApiClient, namespace: str, name: str, clock: Clock) -> None:
    async def attempt(_: int) -> None:
        try:
            await client.delete(DEPLOYMENTS, name, namespace, propagation_policy="Background")
        except ApiError as err:
            if not is_not_found(err):
                raise

    await retrying(f"delete deployment {namespace}/{name}", attempt, clock)


# -- phases ----------------------------------------------------------------------------------------------------


async def ensure_namespaces(client: ApiClient, names: list[str], *, clock: Clock | None = None) -> None:
    """Create each namespace; one that already exists is fine (a rerun, or a create whose answer was lost)."""
    clock = clock or RealClock()
    for name in names:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {DENSITY_LABEL: "true"}}}

        async def attempt(_: int, body: dict[str, Any] = body) -> None:
            try:
                await client.create(NAMESPACES, body)
            except ApiError as err:
                if not is_already_exists(err):
                    raise

        await retrying(f"create namespace {name}", attempt, clock)


async def create_deployments(
    client: ApiClient,
    plans: Sequence[DeploymentPlan],
    pods_per_s: float,
    on_created: Callable[[DeploymentPlan], None],
    *,
    clock: Clock | None = None,
) -> None:
    """Create ``plans`` in order so that the replicas asked for grow at ``pods_per_s``: plan k goes out at
    start + (replicas of plans[:k]) / pods_per_s.  The schedule is absolute, so a slow call is caught up on."""
    clock = clock or RealClock()
    start = clock.monotonic()
    asked = 0
    for plan in plans:
        await clock.sleep(start + asked / pods_per_s - clock.monotonic())
        await _create_deployment(client, plan, "1", clock)
        on_created(plan)
        asked += plan.replicas


async def delete_all(client: ApiClient, namespaces: list[str], qps: float, *, clock: Clock | None = None) -> None:
    """Delete every density Deployment at ``qps`` deletes/s with Background propagation: the garbage collector
    removes ReplicaSets and pods, hollow nodes finish the pods' deletion.  Does not wait for pods to go."""
    clock = clock or RealClock()
    names: list[Key] = []
    for namespace in namespaces:

        async def attempt(_: int, namespace: str = namespace) -> dict[str, Any]:
            return await client.list_all(DEPLOYMENTS, namespace, label_selector=f"{DENSITY_LABEL}=true")

        listed = await retrying(f"list deployments in {namespace}", attempt, clock)
        names += [(namespace, item["metadata"]["name"]) for item in listed.get("items") or []]
    start = clock.monotonic()
    for k, (namespace, name) in enumerate(names):
        await clock.sleep(start + k / qps - clock.monotonic())
        await _delete_deployment(client, namespace, name, clock)


@dataclass(frozen=True)
class _Change:
    kind: str
    plan: DeploymentPlan
    replicas: int  # the target of a scale; the planned replicas otherwise


class Churn:
    """CL2-style churn: ``changes_per_s`` changes for ``duration_s`` seconds, each one of
    - scale: a medium or small Deployment moves a few replicas off plan, and a later scale of it moves it back;
    - update: a small Deployment's pod template gets a new ``density/generation`` (a rolling update);
    - recreate: a small Deployment is deleted and created again with the same name and planned replicas.
    Changes start on schedule and run concurrently, never two at once on one Deployment.  A failed change is
    counted (``errors``, and ``errors_by_kind``) and logged; it does not stop the loop.  Draws come from a seeded
    RNG in schedule order, so a run's sequence of changes is reproducible."""

    def __init__(
        self,
        client: ApiClient,
        plans: Sequence[DeploymentPlan],
        changes_per_s: float,
        duration_s: float,
        seed: int = 1,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._rate = changes_per_s
        self._duration = duration_s
        self._rng = random.Random(seed)
        self._clock = clock or RealClock()
        self._plans = {plan.key: plan for plan in plans}
        self._candidates = {
            SCALE: [p for p in plans if p.size in (MEDIUM, SMALL)] or list(plans),
            UPDATE: [p for p in plans if p.size == SMALL] or list(plans),
        }
        self._candidates[RECREATE] = self._candidates[UPDATE]
        self._replicas = {plan.key: plan.replicas for plan in plans}  # what we last set
        self._generation = {plan.key: 1 for plan in plans}
        self._off_plan: set[Key] = set()  # may differ from the plan: restored at the end
        self._busy: set[Key] = set()
        self.counts = {SCALE: 0, UPDATE: 0, RECREATE: 0, "errors": 0}
        self.errors_by_kind: Counter[str] = Counter()

    async def run(self) -> dict[str, int]:
        """Churn, then put every Deployment back to plan; returns {"scale", "update", "recreate", "errors"}."""
        if self._plans and self._rate > 0:
            start = self._clock.monotonic()
            async with asyncio.TaskGroup() as tasks:  # waits for in-flight changes; cancels them if we are
                for k in range(int(self._duration * self._rate + 1e-9)):  # 1e-9: 0.29 * 100 is 28.99…
                    await self._clock.sleep(start + k / self._rate - self._clock.monotonic())
                    change = self._draw()
                    if change is None:
                        log.debug("churn: every candidate is busy; slot %d skipped", k)
                        continue
                    self._busy.add(change.plan.key)
                    tasks.create_task(self._apply(change))
        await self._restore()
        return dict(self.counts)

    def _draw(self) -> _Change | None:
        kind = self._rng.choices(list(CHANGE_WEIGHTS), weights=list(CHANGE_WEIGHTS.values()))[0]
        free = [p for p in self._candidates[kind] if p.key not in self._busy]
        if not free:
            return None
        plan = self._rng.choice(free)
        replicas = plan.replicas
        if kind == SCALE and self._replicas[plan.key] == plan.replicas:
            step = self._rng.randint(1, max(1, min(MAX_SCALE_STEP, plan.replicas // 2)))
            replicas = plan.replicas + self._rng.choice((step, -step))
        return _Change(kind, plan, replicas)

    async def _apply(self, change: _Change) -> None:
        plan, key = change.plan, change.plan.key
        try:
            if change.kind == SCALE:
                await self._scale(plan, change.replicas)
            elif change.kind == UPDATE:
                await self._update(plan)
            else:
                await self._recreate(plan)
            self.counts[change.kind] += 1
        except Exception as err:  # one failed change must not end the churn: counted and logged instead
            self.counts["errors"] += 1
            self.errors_by_kind[change.kind] += 1
            log.warning("churn: %s of %s/%s failed: %s", change.kind, plan.namespace, plan.name, err)
        finally:
            self._busy.discard(key)

    async def _scale(self, plan: DeploymentPlan, replicas: int) -> None:
        self._off_plan.add(plan.key)
        body = {"spec": {"replicas": replicas}}

        async def attempt(_: int) -> None:
            await self._client.patch(DEPLOYMENTS, plan.name, body, plan.namespace)

        await retrying(f"scale deployment {plan.namespace}/{plan.name} to {replicas}", attempt, self._clock)
        self._replicas[plan.key] = replicas
        if replicas == plan.replicas:
            self._off_plan.discard(plan.key)

    async def _update(self, plan: DeploymentPlan) -> None:
        generation = self._generation[plan.key] + 1
        body = {"spec": {"template": {"metadata": {"annotations": {GENERATION_ANNOTATION: str(generation)}}}}}

        async def attempt(_: int) -> None:
            await self._client.patch(DEPLOYMENTS, plan.name, body, plan.namespace)

        await retrying(f"update deployment {plan.namespace}/{plan.name}", attempt, self._clock)
        self._generation[plan.key] = generation

    async def _recreate(self, plan: DeploymentPlan) -> None:
        self._off_plan.add(plan.key)
        await _delete_deployment(self._client, plan.namespace, plan.name, self._clock)
        await _create_deployment(self._client, plan, str(self._generation[plan.key]), self._clock)
        self._replicas[plan.key] = plan.replicas
        self._off_plan.discard(plan.key)

    async def _restore(self) -> None:
        """Every Deployment a change may have left off plan gets its planned replicas, or is created again."""
        for key in sorted(self._off_plan):
            plan = self._plans[key]
            body = {"spec": {"replicas": plan.replicas}}

            async def attempt(_: int, plan: DeploymentPlan = plan, body: dict[str, Any] = body) -> bool:
                try:
                    await self._client.patch(DEPLOYMENTS, plan.name, body, plan.namespace)
                except ApiError as err:
                    if not is_not_found(err):
                        raise
                    return False
                return True

            if not await retrying(f"restore deployment {plan.namespace}/{plan.name}", attempt, self._clock):
                await _create_deployment(self._client, plan, str(self._generation[plan.key]), self._clock)
            self._replicas[key] = plan.replicas
        self._off_plan.clear()
