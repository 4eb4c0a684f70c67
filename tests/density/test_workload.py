"""The density workload: the CL2-shaped plan (exact totals), the Deployment body, pacing, retries and churn.

Pure logic against an in-memory fake of the API client and a clock that advances when slept on: no server,
no real sleeps.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from skiff.client import ApiError
from skiff.density.config import DensityConfig
from skiff.density.workload import (
    BIG,
    GENERATION_ANNOTATION,
    GROUP_SIZES,
    MAX_ATTEMPTS,
    MEDIUM,
    SMALL,
    Churn,
    DeploymentPlan,
    create_deployments,
    delete_all,
    deployment_body,
    ensure_namespaces,
    is_transient,
    namespace_names,
    plan_deployments,
    split_replicas,
)

SHAPES = [
    pytest.param(1, 1, id="1x1"),
    pytest.param(3, 7, id="3x7"),
    pytest.param(50, 10, id="50x10"),
    pytest.param(100, 30, id="100x30"),
    pytest.param(150, 30, id="150x30-partial-namespace"),
    pytest.param(101, 110, id="101x110"),
    pytest.param(1000, 10, id="1000x10"),
    pytest.param(2500, 17, id="2500x17"),
    pytest.param(5000, 30, id="5000x30"),
]


def config(nodes: int, pods_per_node: int, **kw: Any) -> DensityConfig:
    return DensityConfig(nodes=nodes, pods_per_node=pods_per_node, out=Path("/nonexistent"), **kw)


def pods_by_size(plans: list[DeploymentPlan], namespace: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for p in plans:
        if p.namespace == namespace:
            out[p.size] += p.replicas
    return out


# -- plan ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("nodes", "pods_per_node"), SHAPES)
def test_plan_replicas_add_up_to_total_pods_exactly(nodes: int, pods_per_node: int) -> None:
    cfg = config(nodes, pods_per_node)
    plans = plan_deployments(cfg)
    assert sum(p.replicas for p in plans) == cfg.total_pods
    assert all(1 <= p.replicas <= GROUP_SIZES[p.size] for p in plans)
    assert len({p.key for p in plans}) == len(plans)
    assert {p.namespace for p in plans} == set(namespace_names(cfg))


@pytest.mark.parametrize(("nodes", "pods_per_node"), SHAPES)
def test_each_namespace_holds_a_quarter_big_a_quarter_medium_and_half_small(nodes: int, pods_per_node: int) -> None:
    cfg = config(nodes, pods_per_node)
    plans = plan_deployments(cfg)
    for i, namespace in enumerate(namespace_names(cfg)):
        pods = min(100, nodes - 100 * i) * pods_per_node
        assert pods_by_size(plans, namespace) == Counter(
            {k: v for k, v in {BIG: pods // 4, MEDIUM: pods // 4, SMALL: pods - 2 * (pods // 4)}.items() if v}
        )


@pytest.mark.parametrize(
    ("nodes", "per_namespace", "expected"),
    [
        pytest.param(1, 100, 1, id="one-node"),
        pytest.param(50, 100, 1, id="under-one-namespace"),
        pytest.param(100, 100, 1, id="exactly-one"),
        pytest.param(101, 100, 2, id="one-node-over"),
        pytest.param(5000, 100, 50, id="5000-nodes"),
        pytest.param(10, 3, 4, id="small-namespaces"),
    ],
)
def test_one_namespace_per_nodes_per_namespace(nodes: int, per_namespace: int, expected: int) -> None:
    cfg = config(nodes, 10, nodes_per_namespace=per_namespace, namespace_prefix="dn")
    names = namespace_names(cfg)
    assert len(names) == expected == math.ceil(nodes / per_namespace)
    assert names == [f"dn-{i}" for i in range(1, expected + 1)]
    assert sum(p.replicas for p in plan_deployments(cfg)) == nodes * 10


def test_100_nodes_of_30_pods_is_exactly_the_cl2_load_shape() -> None:
    plans = plan_deployments(config(100, 30))
    sizes = Counter((p.size, p.replicas) for p in plans)
    assert sizes == Counter({(BIG, 250): 3, (MEDIUM, 30): 25, (SMALL, 5): 300})
    assert [p.name for p in plans[:3]] == ["big-deployment-0", "big-deployment-1", "big-deployment-2"]
    assert plans[3].name == "medium-deployment-0"


def test_small_clusters_shrink_deployments_instead_of_dropping_pods() -> None:
    plans = plan_deployments(config(50, 10))  # 500 pods: too few for two big Deployments
    assert Counter((p.size, p.replicas) for p in plans) == Counter({(BIG, 125): 1, (MEDIUM, 25): 5, (SMALL, 5): 50})


@pytest.mark.parametrize(
    ("total", "size", "expected"),
    [
        pytest.param(0, 5, [], id="nothing"),
        pytest.param(3, 5, [3], id="under-one"),
        pytest.param(750, 250, [250, 250, 250], id="exact"),
        pytest.param(251, 250, [126, 125], id="just-over"),
        pytest.param(125, 30, [25, 25, 25, 25, 25], id="even-split"),
        pytest.param(11, 5, [4, 4, 3], id="uneven-split"),
    ],
)
def test_split_replicas(total: int, size: int, expected: list[int]) -> None:
    assert split_replicas(total, size) == expected


def test_deployment_body() -> None:
    body = deployment_body(DeploymentPlan("density-1", "small-deployment-7", 5, SMALL), "3")
    assert (body["apiVersion"], body["kind"]) == ("apps/v1", "Deployment")
    assert body["metadata"] == {
        "name": "small-deployment-7",
        "namespace": "density-1",
        "labels": {"app": "small-deployment-7", "density": "true"},
    }
    spec = body["spec"]
    assert spec["replicas"] == 5
    assert spec["selector"] == {"matchLabels": {"app": "small-deployment-7"}}
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    template = spec["template"]
    assert template["metadata"]["labels"] == {"app": "small-deployment-7", "density": "true"}
    assert template["metadata"]["annotations"] == {GENERATION_ANNOTATION: "3"}
    assert template["spec"]["terminationGracePeriodSeconds"] == 1
    [container] = template["spec"]["containers"]
    assert container["image"] == "registry.k8s.io/pause:3.9"
    assert container["resources"] == {"requests": {"cpu": "10m", "memory": "10Mi"}}
    assert deployment_body(DeploymentPlan("n", "d", 1, BIG))["spec"]["template"]["metadata"]["annotations"] == {
        GENERATION_ANNOTATION: "1"
    }


@pytest.mark.parametrize(
    ("err", "transient"),
    [
        pytest.param(ApiError(429, "TooManyRequests", "slow down"), True, id="429"),
        pytest.param(ApiError(500, "InternalError", "boom"), True, id="500"),
        pytest.param(ApiError(503, "ServiceUnavailable", "x"), True, id="503"),
        pytest.param(aiohttp.ClientConnectionError("refused"), True, id="connection"),
        pytest.param(TimeoutError(), True, id="timeout"),
        pytest.param(ConnectionResetError(), True, id="reset"),
        pytest.param(ApiError(409, "AlreadyExists", "x"), False, id="already-exists"),
        pytest.param(ApiError(404, "NotFound", "x"), False, id="not-found"),
        pytest.param(ApiError(422, "Invalid", "x"), False, id="invalid"),
        pytest.param(ValueError("bug"), False, id="bug"),
    ],
)
def test_is_transient(err: BaseException, transient: bool) -> None:
    assert is_transient(err) is transient


# -- fakes -----------------------------------------------------------------------------------------------------


class AutoClock:
    """A monotonic clock that jumps forward by whatever is slept."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


class FakeApi:
    """Deployments and namespaces in dicts; ``fail[verb]`` holds errors the next calls of that verb raise, and
    ``lose[verb]`` how many of the next calls do their work and then lose the answer."""

    def __init__(self, clock: AutoClock) -> None:
        self.clock = clock
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.namespaces: set[str] = set()
        self.calls: list[tuple[str, str, float]] = []
        self.fail: dict[str, list[BaseException]] = {}
        self.lose: Counter[str] = Counter()

    def _enter(self, verb: str, what: str) -> None:
        self.calls.append((verb, what, self.clock.t))
        if self.fail.get(verb):
            raise self.fail[verb].pop(0)

    def _leave(self, verb: str) -> None:
        if self.lose[verb]:
            self.lose[verb] -= 1
            raise aiohttp.ServerDisconnectedError()

    async def create(self, res: Any, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self._enter("create", name)
        if res.kind == "Namespace":
            if name in self.namespaces:
                raise ApiError(409, "AlreadyExists", name)
            self.namespaces.add(name)
        else:
            if (namespace, name) in self.deployments:
                raise ApiError(409, "AlreadyExists", name)
            self.deployments[(str(namespace), name)] = body
        self._leave("create")
        return body

    async def patch(self, res: Any, name: str, patch: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self._enter("patch", name)
        obj = self.deployments.get((str(namespace), name))
        if obj is None:
            raise ApiError(404, "NotFound", name)
        spec = patch["spec"]
        if "replicas" in spec:
            obj["spec"]["replicas"] = spec["replicas"]
        if "template" in spec:
            obj["spec"]["template"]["metadata"]["annotations"].update(spec["template"]["metadata"]["annotations"])
        self._leave("patch")
        return obj

    async def delete(self, res: Any, name: str, namespace: str | None = None, **options: Any) -> dict[str, Any]:
        self._enter("delete", name)
        assert options == {"propagation_policy": "Background"}
        if self.deployments.pop((str(namespace), name), None) is None:
            raise ApiError(404, "NotFound", name)
        self._leave("delete")
        return {}

    async def list_all(self, res: Any, namespace: str | None = None, **selectors: Any) -> dict[str, Any]:
        self._enter("list", str(namespace))
        assert selectors == {"label_selector": "density=true"}
        return {"items": [obj for (ns, _), obj in sorted(self.deployments.items()) if ns == namespace]}


@pytest.fixture
def clock() -> AutoClock:
    return AutoClock()


@pytest.fixture
def api(clock: AutoClock) -> FakeApi:
    return FakeApi(clock)


def plans_of(*replicas: int, size: str = SMALL) -> list[DeploymentPlan]:
    return [DeploymentPlan("ns", f"d{i}", r, size) for i, r in enumerate(replicas)]


# -- create / delete -------------------------------------------------------------------------------------------


async def test_creates_are_paced_by_cumulative_replicas(api: FakeApi, clock: AutoClock) -> None:
    plans = plans_of(10, 5, 20, 5)
    created: list[str] = []
    await create_deployments(api, plans, 10.0, lambda p: created.append(p.name), clock=clock)  # type: ignore[arg-type]
    assert created == ["d0", "d1", "d2", "d3"]
    assert [round(t - 1000.0, 6) for _, _, t in api.calls] == [0.0, 1.0, 1.5, 3.5]


async def test_transient_errors_are_retried_until_the_create_lands(api: FakeApi, clock: AutoClock) -> None:
    api.fail["create"] = [ApiError(503, "ServiceUnavailable", "x"), aiohttp.ClientConnectionError("refused")]
    await create_deployments(api, plans_of(5), 10.0, lambda p: None, clock=clock)  # type: ignore[arg-type]
    assert len(api.calls) == 3
    assert ("ns", "d0") in api.deployments


async def test_a_create_whose_answer_was_lost_counts_as_done(api: FakeApi, clock: AutoClock) -> None:
    api.lose["create"] = 1
    await create_deployments(api, plans_of(5), 10.0, lambda p: None, clock=clock)  # type: ignore[arg-type]
    assert len(api.calls) == 2 and ("ns", "d0") in api.deployments


async def test_already_exists_on_the_first_attempt_is_an_error(api: FakeApi, clock: AutoClock) -> None:
    api.deployments[("ns", "d0")] = deployment_body(plans_of(1)[0])
    with pytest.raises(ApiError) as info:
        await create_deployments(api, plans_of(5), 10.0, lambda p: None, clock=clock)  # type: ignore[arg-type]
    assert info.value.code == 409


async def test_gives_up_loudly_after_max_attempts(api: FakeApi, clock: AutoClock) -> None:
    api.fail["create"] = [ApiError(500, "InternalError", "down")] * (MAX_ATTEMPTS + 5)
    with pytest.raises(ApiError) as info:
        await create_deployments(api, plans_of(5), 10.0, lambda p: None, clock=clock)  # type: ignore[arg-type]
    assert len(api.calls) == MAX_ATTEMPTS
    assert any("create deployment ns/d0" in note for note in info.value.__notes__)
    assert clock.t - 1000.0 < 60  # bounded back-off


async def test_non_transient_errors_are_not_retried(api: FakeApi, clock: AutoClock) -> None:
    api.fail["create"] = [ApiError(422, "Invalid", "bad")]
    with pytest.raises(ApiError):
        await create_deployments(api, plans_of(5), 10.0, lambda p: None, clock=clock)  # type: ignore[arg-type]
    assert len(api.calls) == 1


async def test_ensure_namespaces_tolerates_existing_ones(api: FakeApi, clock: AutoClock) -> None:
    api.namespaces.add("density-1")
    api.fail["create"] = [ApiError(429, "TooManyRequests", "x")]
    await ensure_namespaces(api, ["density-1", "density-2"], clock=clock)  # type: ignore[arg-type]
    assert api.namespaces == {"density-1", "density-2"}


async def test_delete_all_is_paced_and_background(api: FakeApi, clock: AutoClock) -> None:
    for plan in plans_of(1, 1, 1, 1):
        api.deployments[plan.key] = deployment_body(plan)
    api.fail["delete"] = [ApiError(404, "NotFound", "gone already")]  # d0: deleted by someone else meanwhile
    await delete_all(api, ["ns"], 2.0, clock=clock)  # type: ignore[arg-type]
    assert list(api.deployments) == [("ns", "d0")]  # the fake kept it, but NotFound means gone: no retry, no error
    deletes = [t - 1000.0 for verb, _, t in api.calls if verb == "delete"]
    assert deletes == [0.0, 0.5, 1.0, 1.5]


# -- churn -----------------------------------------------------------------------------------------------------


async def populated(api: FakeApi, clock: AutoClock, plans: list[DeploymentPlan]) -> None:
    await create_deployments(api, plans, 1e9, lambda p: None, clock=clock)  # type: ignore[arg-type]
    api.calls.clear()


def assert_at_plan(api: FakeApi, plans: list[DeploymentPlan]) -> None:
    assert {key: obj["spec"]["replicas"] for key, obj in api.deployments.items()} == {p.key: p.replicas for p in plans}


async def test_churn_runs_at_its_rate_and_ends_at_the_plan(api: FakeApi, clock: AutoClock) -> None:
    plans = plan_deployments(config(50, 10))
    await populated(api, clock, plans)
    start = clock.t
    counts = await Churn(api, plans, 20.0, 10.0, clock=clock).run()  # type: ignore[arg-type]
    assert clock.t - start == pytest.approx(199 / 20)  # the last change starts in the 10th second
    assert counts["errors"] == 0
    assert counts["scale"] + counts["update"] + counts["recreate"] == 200
    assert min(counts["scale"], counts["update"], counts["recreate"]) > 0
    assert_at_plan(api, plans)
    touched = {name for _, name, _ in api.calls}
    assert all(p.size != BIG for p in plans if p.name in touched)
    generations = Counter(
        obj["spec"]["template"]["metadata"]["annotations"][GENERATION_ANNOTATION] for obj in api.deployments.values()
    )
    assert len(generations) > 1  # some small Deployments rolled


async def test_churn_is_reproducible_for_a_seed(clock: AutoClock) -> None:
    plans = plan_deployments(config(50, 10))
    runs = []
    for _ in range(2):
        api = FakeApi(clock)
        await populated(api, clock, plans)
        await Churn(api, plans, 20.0, 5.0, seed=7, clock=clock).run()  # type: ignore[arg-type]
        runs.append([(verb, name) for verb, name, _ in api.calls])
    assert runs[0] == runs[1]


async def test_failed_changes_are_counted_and_the_end_state_is_still_the_plan(api: FakeApi, clock: AutoClock) -> None:
    plans = plan_deployments(config(10, 10))
    await populated(api, clock, plans)
    # A recreate whose create is refused leaves the Deployment missing; failing patches leave scales off plan.
    api.fail["create"] = [ApiError(403, "Forbidden", "no")] * 3
    api.fail["patch"] = [ApiError(422, "Invalid", "no"), ApiError(500, "InternalError", "x")] * 3
    churn = Churn(api, plans, 10.0, 20.0, clock=clock)  # type: ignore[arg-type]
    counts = await churn.run()
    assert counts["errors"] >= 3 + 3
    assert counts["errors"] == sum(churn.errors_by_kind.values())
    assert counts["scale"] + counts["update"] + counts["recreate"] + counts["errors"] == 200
    assert_at_plan(api, plans)


async def test_churn_with_no_time_changes_nothing(api: FakeApi, clock: AutoClock) -> None:
    plans = plans_of(5, 5)
    await populated(api, clock, plans)
    assert await Churn(api, plans, 20.0, 0.0, clock=clock).run() == {  # type: ignore[arg-type]
        "scale": 0,
        "update": 0,
        "recreate": 0,
        "errors": 0,
    }
    assert api.calls == []
