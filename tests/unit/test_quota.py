"""Resource quota: what objects charge (skiff.api.quota) and the ResourceQuota admission plugin's checks,
charges and compare-and-swap retries — upstream's messages verbatim."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from test_admission import FakeReader, attrs, row

from skiff.api import quota
from skiff.api.quantity import parse_quantity
from skiff.api.status import MODIFIED, ApiError, conflict
from skiff.registry.admission import Operation, ResourceQuota
from skiff.registry.admission.resource_quota import check_request
from skiff.registry.resource import Obj

PODS = row("", "pods")
SERVICES = row("", "services")
PVCS = row("", "persistentvolumeclaims")
CONFIGMAPS = row("", "configmaps")
DEPLOYMENTS = row("apps", "deployments")
EVENTS = row("", "events")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def amounts(**values: str) -> dict[str, Any]:
    return {name.replace("_", "."): parse_quantity(v) for name, v in values.items()}


def printed(usage: dict[str, Any]) -> dict[str, str]:
    return {name: str(amount) for name, amount in usage.items()}


def container(name: str = "c", requests: Obj | None = None, limits: Obj | None = None, **extra: Any) -> Obj:
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    return {"name": name, "image": "i", "resources": resources, **extra}


def pod(name: str = "p", *containers: Obj, namespace: str = "a", **spec: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": list(containers) or [container()], **spec},
    }


# -- usage -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(pod(), {"count/pods": "1", "pods": "1"}, id="best-effort"),
        pytest.param(
            pod("p", container("a", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "200m", "memory": "128Mi"}),
                container("b", {"cpu": "250m", "ephemeral-storage": "1Gi"})),
            {"count/pods": "1", "pods": "1", "cpu": "350m", "requests.cpu": "350m", "limits.cpu": "200m",
             "memory": "64Mi", "requests.memory": "64Mi", "limits.memory": "128Mi", "ephemeral-storage": "1Gi",
             "requests.ephemeral-storage": "1Gi"},
            id="containers-summed",
        ),
        pytest.param(
            pod("p", container("a", {"cpu": "100m"}), initContainers=[container("i", {"cpu": "500m"})],
                overhead={"cpu": "10m"}),
            {"count/pods": "1", "pods": "1", "cpu": "510m", "requests.cpu": "510m"},
            id="largest-init-container-plus-overhead",
        ),
        pytest.param(
            pod("p", container("a", {"cpu": "100m"}),
                initContainers=[container("side", {"cpu": "200m"}, restartPolicy="Always"),
                                container("i", {"cpu": "250m"})]),
            {"count/pods": "1", "pods": "1", "cpu": "450m", "requests.cpu": "450m"},
            id="sidecars-run-beside-later-init-containers",
        ),
        pytest.param(
            pod("p", container("a", {"hugepages-2Mi": "4Mi", "example.com/gpu": "2"})),
            {"count/pods": "1", "pods": "1", "hugepages-2Mi": "4Mi", "requests.hugepages-2Mi": "4Mi",
             "requests.example.com/gpu": "2"},
            id="hugepages-and-extended",
        ),
        pytest.param(
            {**pod("p", container("a", {"cpu": "1"})), "status": {"phase": "Succeeded"}},
            {"count/pods": "1"},
            id="terminal-pods-count-only-as-objects",
        ),
        pytest.param(
            {**pod("p", container("a", {"cpu": "1"})),
             "metadata": {"name": "p", "deletionTimestamp": "2025-12-31T23:59:00Z", "deletionGracePeriodSeconds": 30}},
            {"count/pods": "1"},
            id="past-deletion-grace",
        ),
    ],
)  # fmt: skip
def test_pod_usage(obj: Obj, expected: dict[str, str]) -> None:
    assert printed(quota.evaluator_for("", "pods").usage(obj, NOW)) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"type": "ClusterIP", "ports": [{"port": 80}]}, {}, id="cluster-ip"),
        pytest.param({"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}, {"services.nodeports": "2"},
                     id="node-port"),
        pytest.param({"type": "LoadBalancer", "ports": [{"port": 80}]},
                     {"services.nodeports": "1", "services.loadbalancers": "1"}, id="load-balancer"),
        pytest.param({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
                      "ports": [{"port": 80, "nodePort": 30080}, {"port": 81}]},
                     {"services.nodeports": "1", "services.loadbalancers": "1"}, id="lb-without-node-ports"),
    ],
)  # fmt: skip
def test_service_usage(spec: Obj, expected: dict[str, str]) -> None:
    usage = quota.remove_zeros(quota.evaluator_for("", "services").usage({"spec": spec}))
    assert printed(usage) == {"count/services": "1", "services": "1", **expected}


def test_claim_and_object_count_usage() -> None:
    claim = {
        "spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1500m"}}},
        "status": {"allocatedResources": {"storage": "2Gi"}},
    }
    assert printed(quota.evaluator_for("", "persistentvolumeclaims").usage(claim)) == {
        "persistentvolumeclaims": "1",
        "count/persistentvolumeclaims": "1",
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
        "requests.storage": "2Gi",
        "gold.storageclass.storage.k8s.io/requests.storage": "2Gi",
    }
    assert printed(quota.evaluator_for("", "configmaps").usage({})) == {"count/configmaps": "1", "configmaps": "1"}
    assert printed(quota.evaluator_for("apps", "deployments").usage({})) == {"count/deployments.apps": "1"}


def test_matching_resources() -> None:
    hard = ["pods", "count/pods", "requests.cpu", "requests.example.com/gpu", "services", "count/configmaps",
            "gold.storageclass.storage.k8s.io/requests.storage", "requests.hugepages-2Mi"]  # fmt: skip
    assert quota.evaluator_for("", "pods").matching_resources(hard) == [
        "pods", "count/pods", "requests.cpu", "requests.example.com/gpu", "requests.hugepages-2Mi",
    ]  # fmt: skip
    assert quota.evaluator_for("", "services").matching_resources(hard) == ["services"]
    assert quota.evaluator_for("", "configmaps").matching_resources(hard) == ["count/configmaps"]
    assert quota.evaluator_for("", "persistentvolumeclaims").matching_resources(hard) == [
        "gold.storageclass.storage.k8s.io/requests.storage"
    ]


def rq(name: str = "q", hard: Obj | None = None, used: Obj | None = None, namespace: str = "a", **spec: Any) -> Obj:
    hard = hard if hard is not None else {"pods": "2"}
    return {
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "7"},
        "spec": {"hard": hard, **spec},
        "status": {"hard": hard, "used": used if used is not None else dict.fromkeys(hard, "0")},
    }


BURSTABLE = pod("p", container("a", {"cpu": "100m"}))
TERMINATING = pod("p", activeDeadlineSeconds=30)
PRIORITIZED = pod("p", priorityClassName="high")
CROSS_NAMESPACE = pod("p", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
    {"topologyKey": "k", "namespaces": ["other"]}]}})  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "matched", "unmatched"),
    [
        pytest.param({"scopes": ["BestEffort"]}, pod(), BURSTABLE, id="best-effort"),
        pytest.param({"scopes": ["NotBestEffort"]}, BURSTABLE, pod(), id="not-best-effort"),
        pytest.param({"scopes": ["Terminating"]}, TERMINATING, pod(), id="terminating"),
        pytest.param({"scopes": ["NotTerminating"]}, pod(), TERMINATING, id="not-terminating"),
        pytest.param({"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}, PRIORITIZED, pod(),
            id="priority-in"),
        pytest.param({"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "NotIn", "values": ["high"]}]}}, pod(), PRIORITIZED,
            id="priority-not-in"),
        pytest.param({"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "Exists"}]}},
                     PRIORITIZED, pod(), id="priority-exists"),
        pytest.param({"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "DoesNotExist"}]}}, pod(), PRIORITIZED,
            id="priority-does-not-exist"),
        pytest.param({"scopeSelector": {"matchExpressions": [
            {"scopeName": "CrossNamespacePodAffinity", "operator": "Exists"}]}}, CROSS_NAMESPACE, pod(),
            id="cross-namespace-affinity"),
        pytest.param({"scopes": ["Terminating", "BestEffort"]}, TERMINATING, BURSTABLE, id="all-scopes-must-match"),
    ],
)  # fmt: skip
def test_scopes(spec: Obj, matched: Obj, unmatched: Obj) -> None:
    scoped = rq(**spec)
    pods = quota.evaluator_for("", "pods")
    assert quota.quota_matches(scoped, pods, matched)
    assert not quota.quota_matches(scoped, pods, unmatched)


def test_scoped_quotas_never_match_other_kinds() -> None:
    scoped = rq(hard={"services": "1", "pods": "1"}, scopes=["NotTerminating"])
    assert not quota.quota_matches(scoped, quota.evaluator_for("", "services"), {"spec": {}})
    assert quota.quota_matches(rq(hard={"services": "1"}), quota.evaluator_for("", "services"), {"spec": {}})


def test_quota_matches_on_status_hard_only() -> None:
    fresh = rq()
    fresh["status"] = {}
    assert not quota.quota_matches(fresh, quota.evaluator_for("", "pods"), pod())


# -- check_request ----------------------------------------------------------------------------------


def create(info: Any, obj: Obj, **kw: Any) -> Any:
    return attrs(info, Operation.CREATE, obj, name=obj["metadata"]["name"], **kw)


def check(quotas: list[Obj], a: Any) -> dict[str, dict[str, str]]:
    evaluator = quota.evaluator_for(a.info.group, a.info.plural)
    return {name: printed(used) for name, used in check_request(quotas, a, evaluator, NOW).items()}


def refusal(quotas: list[Obj], a: Any) -> str:
    with pytest.raises(ApiError) as err:
        check(quotas, a)
    assert err.value.code == 403
    return err.value.message


def test_charges_every_matching_quota() -> None:
    quotas = [
        rq("q1", {"pods": "2", "requests.cpu": "1"}, {"pods": "1", "requests.cpu": "500m"}),
        rq("q2", {"count/pods": "10"}, {"count/pods": "3"}),
        rq("scoped", {"pods": "5"}, {"pods": "0"}, scopes=["BestEffort"]),
        rq("other", {"services": "1"}, {"services": "0"}),
    ]
    assert check(quotas, create(PODS, BURSTABLE)) == {
        "q1": {"pods": "2", "requests.cpu": "600m"},
        "q2": {"count/pods": "4"},
    }


def test_exceeded_quota_message() -> None:
    quotas = [rq("compute", {"pods": "2", "requests.cpu": "1", "limits.cpu": "2"},
                 {"pods": "2", "requests.cpu": "950m", "limits.cpu": "0"})]  # fmt: skip
    heavy = pod("p3", container("a", {"cpu": "100m"}, {"cpu": "1"}))
    assert refusal(quotas, create(PODS, heavy)) == (
        'pods "p3" is forbidden: exceeded quota: compute, requested: pods=1,requests.cpu=100m, '
        "used: pods=2,requests.cpu=950m, limited: pods=2,requests.cpu=1"
    )


def test_must_specify_and_status_unknown() -> None:
    quotas = [rq("compute", {"requests.cpu": "1", "limits.memory": "1Gi", "pods": "5"})]
    bare = pod("p", container("b"), container("a", {"memory": "1Mi"}))
    assert refusal(quotas, create(PODS, bare)) == (
        'pods "p" is forbidden: failed quota: compute: must specify limits.memory for: a,b; requests.cpu for: a,b'
    )
    uncomputed = rq("new", {"pods": "5", "count/pods": "5"}, {"pods": "0"})
    assert refusal([uncomputed], create(PODS, pod())) == (
        'pods "p" is forbidden: status unknown for quota: new, resources: count/pods,pods'
    )


def test_object_counts() -> None:
    quotas = [
        rq(
            "objects",
            {"configmaps": "1", "count/deployments.apps": "1"},
            {"configmaps": "1", "count/deployments.apps": "0"},
        )
    ]
    cm = {"metadata": {"name": "cm", "namespace": "a"}}
    assert refusal(quotas, create(CONFIGMAPS, cm)) == (
        'configmaps "cm" is forbidden: exceeded quota: objects, requested: configmaps=1, used: configmaps=1, '
        "limited: configmaps=1"
    )
    deployment = {"metadata": {"name": "d", "namespace": "a"}, "spec": {}}
    assert check(quotas, create(DEPLOYMENTS, deployment)) == {
        "objects": {"configmaps": "1", "count/deployments.apps": "1"}
    }


def test_updates_charge_the_increase() -> None:
    old = {
        "metadata": {"name": "s", "namespace": "a", "resourceVersion": "5"},
        "spec": {"type": "ClusterIP", "ports": [{"port": 80}]},
    }
    new = copy.deepcopy(old)
    new["spec"]["type"] = "NodePort"
    quotas = [rq("svc", {"services": "1", "services.nodeports": "1"}, {"services": "1", "services.nodeports": "0"})]
    update = attrs(SERVICES, Operation.UPDATE, new, name="s", old=old)
    assert check(quotas, update) == {"svc": {"services": "1", "services.nodeports": "1"}}
    claim_old = {"metadata": {"name": "c", "namespace": "a", "resourceVersion": "5"},
                 "spec": {"resources": {"requests": {"storage": "1Gi"}}}}  # fmt: skip
    claim_new = copy.deepcopy(claim_old)
    claim_new["spec"]["resources"]["requests"]["storage"] = "3Gi"
    storage = [rq("st", {"requests.storage": "2Gi"}, {"requests.storage": "1Gi"})]
    assert refusal(storage, attrs(PVCS, Operation.UPDATE, claim_new, name="c", old=claim_old)) == (
        'persistentvolumeclaims "c" is forbidden: exceeded quota: st, requested: requests.storage=2Gi, '
        "used: requests.storage=1Gi, limited: requests.storage=2Gi"
    )


# -- the plugin -------------------------------------------------------------------------------------


class StoredQuotas(FakeReader):
    """Quotas in a store: status writes are a compare-and-swap on resourceVersion."""

    def __init__(self, *quotas: Obj, conflicts: int = 0) -> None:
        super().__init__({("", "resourcequotas"): list(quotas)})
        self.conflicts = conflicts
        self.writes = 0

    async def update_status(self, group: str, plural: str, namespace: str, obj: Obj) -> Obj:
        await asyncio.sleep(0)  # let concurrent requests interleave
        items = self.objects[("", "resourcequotas")]
        index = next(i for i, q in enumerate(items) if q["metadata"]["name"] == obj["metadata"]["name"])
        stored = items[index]
        if self.conflicts:
            self.conflicts -= 1
            stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)
            raise conflict(plural, group, obj["metadata"]["name"], MODIFIED)
        if obj["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]:
            raise conflict(plural, group, obj["metadata"]["name"], MODIFIED)
        written = copy.deepcopy(obj)
        written["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)
        items[index] = written
        self.writes += 1
        return copy.deepcopy(written)

    def used(self, name: str = "q") -> dict[str, str]:
        found = next(q for q in self.objects[("", "resourcequotas")] if q["metadata"]["name"] == name)
        return found["status"]["used"]  # type: ignore[no-any-return]


async def test_plugin_charges_status_used() -> None:
    store = StoredQuotas(rq())
    plugin = ResourceQuota(store, store, clock=lambda: NOW)
    await plugin.validate(create(PODS, pod("p1")))
    await plugin.validate(create(PODS, pod("p2")))
    assert store.used() == {"pods": "2"}
    with pytest.raises(ApiError) as err:
        await plugin.validate(create(PODS, pod("p3")))
    assert err.value.message == (
        'pods "p3" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2'
    )


async def test_plugin_skips_dry_runs_subresources_and_ignored_resources() -> None:
    store = StoredQuotas(rq(hard={"pods": "1", "count/events": "0"}, used={"pods": "0", "count/events": "0"}))
    plugin = ResourceQuota(store, store)
    await plugin.validate(create(PODS, pod(), dry_run=True))
    await plugin.validate(attrs(PODS, Operation.CREATE, pod(), name="p", subresource="binding"))
    await plugin.validate(create(EVENTS, {"metadata": {"name": "e", "namespace": "a"}}))
    await plugin.validate(attrs(PODS, Operation.UPDATE, pod(), name="p", old=pod()))  # pods: create only
    assert store.writes == 0


async def test_plugin_retries_lost_races_then_gives_up() -> None:
    store = StoredQuotas(rq(), conflicts=2)
    await ResourceQuota(store, store).validate(create(PODS, pod("p1")))
    assert store.used() == {"pods": "1"}
    stubborn = StoredQuotas(rq(), conflicts=10)
    with pytest.raises(ApiError) as err:
        await ResourceQuota(stubborn, stubborn).validate(create(PODS, pod("p1")))
    assert err.value.code == 409
    assert err.value.message == (
        'Operation cannot be fulfilled on resourcequotas "q": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )


async def test_concurrent_creates_never_overshoot() -> None:
    store = StoredQuotas(rq(hard={"pods": "5"}))
    plugin = ResourceQuota(store, store)
    results = await asyncio.gather(
        *(plugin.validate(create(PODS, pod(f"p{i}"))) for i in range(10)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(refused) == 5 and all(r.code == 403 for r in refused)
    assert store.used() == {"pods": "5"}
    assert plugin._locks == {}  # per-namespace locks are dropped once idle
