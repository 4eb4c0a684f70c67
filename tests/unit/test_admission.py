"""Admission plugins against a fake reader: exact upstream messages, mutations, and when they apply."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.api.status import ApiError
from skiff.registry.admission import (
    AdmissionChain,
    Attributes,
    DefaultTolerationSeconds,
    LimitRanger,
    NamespaceLifecycle,
    Operation,
    Priority,
    ServiceAccountAdmission,
)
from skiff.registry.builtin import find
from skiff.registry.resource import Obj, ResourceInfo


def row(group: str, plural: str) -> ResourceInfo:
    info = find(group, "v1", plural)
    assert info is not None
    return info


PODS = row("", "pods")
PVCS = row("", "persistentvolumeclaims")
NAMESPACES = row("", "namespaces")
DEPLOYMENTS = row("apps", "deployments")
NODES = row("", "nodes")
PRIORITY_CLASSES = row("scheduling.k8s.io", "priorityclasses")
LSAR = row("authorization.k8s.io", "localsubjectaccessreviews")


class FakeReader:
    """Objects by (group, plural) → list; namespace "" matches every object."""

    def __init__(self, objects: dict[tuple[str, str], list[Obj]] | None = None) -> None:
        self.objects = objects or {}

    async def get(self, group: str, plural: str, namespace: str, name: str, *, fresh: bool = True) -> Obj | None:
        for obj in await self.list(group, plural, namespace):
            if obj["metadata"]["name"] == name:
                return obj
        return None

    async def list(self, group: str, plural: str, namespace: str, *, fresh: bool = True) -> list[Obj]:
        items = self.objects.get((group, plural), [])
        return [o for o in items if not namespace or o["metadata"].get("namespace", "") == namespace]


def ns(name: str, phase: str = "Active") -> Obj:
    return {"metadata": {"name": name}, "status": {"phase": phase}}


def pod(name: str = "p", namespace: str = "a", **spec: Any) -> Obj:
    base: dict[str, Any] = {"containers": [{"name": "c", "image": "i"}]}
    base.update(spec)
    return {"metadata": {"name": name, "namespace": namespace}, "spec": base}


def attrs(
    info: ResourceInfo, op: Operation, obj: Obj | None, namespace: str = "a", name: str = "", **kw: Any
) -> Attributes:
    return Attributes(op, info, namespace if info.namespaced else "", name, obj, **kw)


async def run(plugin: Any, a: Attributes) -> None:
    await AdmissionChain([plugin]).admit(a)
    await AdmissionChain([plugin]).validate(a)


# -- NamespaceLifecycle -------------------------------------------------------------------


LIFECYCLE_READER = FakeReader({("", "namespaces"): [ns("a"), ns("gone", "Terminating")]})


@pytest.mark.parametrize(
    ("a", "code", "message"),
    [
        pytest.param(attrs(PODS, Operation.CREATE, pod(), "a"), None, "", id="active-ns"),
        pytest.param(
            attrs(DEPLOYMENTS, Operation.CREATE, pod("web", "x"), "x"), 404, 'namespaces "x" not found', id="missing-ns"
        ),
        pytest.param(
            attrs(PODS, Operation.UPDATE, pod("p", "x"), "x", "p"), 404, 'namespaces "x" not found', id="update-missing"
        ),
        pytest.param(attrs(PODS, Operation.DELETE, None, "x", "p"), None, "", id="delete-in-missing-ns-passes"),
        pytest.param(
            attrs(PODS, Operation.CREATE, pod("p", "gone"), "gone"),
            403,
            'pods "p" is forbidden: unable to create new content in namespace gone because it is being terminated',
            id="terminating",
        ),
        pytest.param(attrs(PODS, Operation.UPDATE, pod("p", "gone"), "gone", "p"), None, "", id="update-terminating"),
        pytest.param(attrs(NODES, Operation.CREATE, {"metadata": {"name": "n"}}), None, "", id="cluster-scoped"),
        pytest.param(attrs(LSAR, Operation.CREATE, {}, "x"), None, "", id="access-review"),
        pytest.param(
            attrs(NAMESPACES, Operation.DELETE, None, name="kube-system"),
            403,
            'namespaces "kube-system" is forbidden: this namespace may not be deleted',
            id="immortal",
        ),
        pytest.param(attrs(NAMESPACES, Operation.DELETE, None, name="a"), None, "", id="mortal"),
        pytest.param(attrs(NAMESPACES, Operation.CREATE, ns("new")), None, "", id="create-namespace"),
    ],
)
async def test_namespace_lifecycle(a: Attributes, code: int | None, message: str) -> None:
    plugin = NamespaceLifecycle(LIFECYCLE_READER)
    if code is None:
        await run(plugin, a)
        return
    with pytest.raises(ApiError) as caught:
        await run(plugin, a)
    assert (caught.value.code, caught.value.message) == (code, message)


async def test_terminating_namespace_error_carries_the_cause() -> None:
    with pytest.raises(ApiError) as caught:
        await run(NamespaceLifecycle(LIFECYCLE_READER), attrs(PODS, Operation.CREATE, pod("p", "gone"), "gone"))
    body = caught.value.to_dict()
    assert body["reason"] == "Forbidden"
    assert body["details"] == {
        "name": "p",
        "kind": "pods",
        "causes": [
            {
                "reason": "NamespaceTerminating",
                "message": "namespace gone is being terminated",
                "field": "metadata.namespace",
            }
        ],
    }


# -- DefaultTolerationSeconds ----------------------------------------------------------------

NOT_READY = {
    "key": "node.kubernetes.io/not-ready",
    "operator": "Exists",
    "effect": "NoExecute",
    "tolerationSeconds": 300,
}
UNREACHABLE = {
    "key": "node.kubernetes.io/unreachable",
    "operator": "Exists",
    "effect": "NoExecute",
    "tolerationSeconds": 300,
}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(None, [NOT_READY, UNREACHABLE], id="none"),
        pytest.param(
            [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 5,
                }
            ],
            [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 5,
                },
                UNREACHABLE,
            ],
            id="own-not-ready-kept",
        ),
        pytest.param([{"operator": "Exists"}], [{"operator": "Exists"}], id="tolerates-everything"),
        pytest.param(
            [{"key": "x", "operator": "Exists", "effect": "NoSchedule"}],
            [{"key": "x", "operator": "Exists", "effect": "NoSchedule"}, NOT_READY, UNREACHABLE],
            id="unrelated",
        ),
        pytest.param(
            [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}],
            [
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"},
                NOT_READY,
                UNREACHABLE,
            ],
            id="other-effect-does-not-count",
        ),
    ],
)
async def test_default_toleration_seconds(given: Any, expected: list[Obj]) -> None:
    obj = pod() if given is None else pod(tolerations=copy.deepcopy(given))
    await run(DefaultTolerationSeconds(), attrs(PODS, Operation.CREATE, obj))
    assert obj["spec"]["tolerations"] == expected


async def test_default_toleration_seconds_ignores_subresources_and_other_kinds() -> None:
    obj = pod()
    await run(DefaultTolerationSeconds(), attrs(PODS, Operation.UPDATE, obj, subresource="status"))
    await run(DefaultTolerationSeconds(), attrs(DEPLOYMENTS, Operation.CREATE, obj))
    assert "tolerations" not in obj["spec"]


# -- ServiceAccount -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "op", "expected"),
    [
        pytest.param({}, Operation.CREATE, ("default", "default"), id="defaulted"),
        pytest.param({"serviceAccountName": "build"}, Operation.CREATE, ("build", "build"), id="kept"),
        pytest.param({"serviceAccount": "old"}, Operation.CREATE, ("old", "old"), id="deprecated-field"),
        pytest.param({}, Operation.UPDATE, (None, None), id="update-untouched"),
    ],
)
async def test_service_account(spec: Obj, op: Operation, expected: tuple[Any, Any]) -> None:
    obj = pod(**spec)
    await run(ServiceAccountAdmission(), attrs(PODS, op, obj))
    assert (obj["spec"].get("serviceAccountName"), obj["spec"].get("serviceAccount")) == expected


async def test_service_account_leaves_mirror_pods() -> None:
    obj = pod()
    obj["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    await run(ServiceAccountAdmission(), attrs(PODS, Operation.CREATE, obj))
    assert "serviceAccountName" not in obj["spec"]


# -- Priority ---------------------------------------------------------------------------------


def pc(name: str, value: int, default: bool = False, policy: str = "PreemptLowerPriority") -> Obj:
    return {"metadata": {"name": name}, "value": value, "globalDefault": default, "preemptionPolicy": policy}


CLASSES = [pc("high", 1000), pc("never", 7, policy="Never")]


@pytest.mark.parametrize(
    ("classes", "spec", "expected"),
    [
        pytest.param(CLASSES, {}, ("", 0, "PreemptLowerPriority"), id="no-default-class"),
        pytest.param(CLASSES, {"priorityClassName": "high"}, ("high", 1000, "PreemptLowerPriority"), id="named"),
        pytest.param(CLASSES, {"priorityClassName": "never"}, ("never", 7, "Never"), id="policy-from-class"),
        pytest.param(
            [*CLASSES, pc("d2", 50, True), pc("d1", 20, True)],
            {},
            ("d1", 20, "PreemptLowerPriority"),
            id="lowest-default",
        ),
        pytest.param(
            CLASSES,
            {"priorityClassName": "high", "priority": 1000},
            ("high", 1000, "PreemptLowerPriority"),
            id="matching-priority-given",
        ),
    ],
)
async def test_priority_resolves(classes: list[Obj], spec: Obj, expected: tuple[str, int, str]) -> None:
    obj = pod(**spec)
    reader = FakeReader({("scheduling.k8s.io", "priorityclasses"): classes})
    await run(Priority(reader), attrs(PODS, Operation.CREATE, obj))
    got = obj["spec"]
    assert (got.get("priorityClassName", ""), got["priority"], got["preemptionPolicy"]) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param({"priorityClassName": "nope"}, 'pods "p" is forbidden: no PriorityClass with name nope was found',
                     id="unknown"),
        pytest.param(
            {"priorityClassName": "high", "priority": 5},
            'pods "p" is forbidden: the integer value of priority (5) must not be provided in pod spec; '
            "priority admission controller computed 1000 from the given PriorityClass name",
            id="priority-mismatch",
        ),
        pytest.param(
            {"priorityClassName": "never", "preemptionPolicy": "PreemptLowerPriority"},
            'pods "p" is forbidden: the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided '
            "in pod spec; priority admission controller computed Never from the given PriorityClass name",
            id="policy-mismatch",
        ),
    ],
)  # fmt: skip
async def test_priority_refuses(spec: Obj, message: str) -> None:
    reader = FakeReader({("scheduling.k8s.io", "priorityclasses"): CLASSES})
    with pytest.raises(ApiError) as caught:
        await run(Priority(reader), attrs(PODS, Operation.CREATE, pod(**spec)))
    assert (caught.value.code, caught.value.message) == (403, message)


async def test_priority_update_keeps_stored_values() -> None:
    old = pod(priority=1000, preemptionPolicy="Never")
    new = pod()
    await run(Priority(FakeReader()), attrs(PODS, Operation.UPDATE, new, old=old))
    assert (new["spec"]["priority"], new["spec"]["preemptionPolicy"]) == (1000, "Never")


async def test_only_one_global_default_priority_class() -> None:
    reader = FakeReader({("scheduling.k8s.io", "priorityclasses"): [pc("d", 1, True)]})
    plugin = Priority(reader)
    await run(plugin, attrs(PRIORITY_CLASSES, Operation.UPDATE, pc("d", 1, True)))  # itself
    await run(plugin, attrs(PRIORITY_CLASSES, Operation.CREATE, pc("other", 1)))
    with pytest.raises(ApiError) as caught:
        await run(plugin, attrs(PRIORITY_CLASSES, Operation.CREATE, pc("other", 1, True)))
    assert caught.value.message == (
        'priorityclasses.scheduling.k8s.io "other" is forbidden: '
        "PriorityClass d is already marked as default. Only one default can exist"
    )


# -- LimitRanger -------------------------------------------------------------------------------


def limit_range(*items: Obj, namespace: str = "a") -> Obj:
    return {"metadata": {"name": "lr", "namespace": namespace}, "spec": {"limits": list(items)}}


def container(name: str = "c", requests: Obj | None = None, limits: Obj | None = None) -> Obj:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": "i", "resources": resources}


def ranger(*ranges: Obj) -> LimitRanger:
    return LimitRanger(FakeReader({("", "limitranges"): list(ranges)}))


async def test_limit_ranger_fills_defaults_and_annotates() -> None:
    lr = limit_range(
        {"type": "Container", "default": {"cpu": "500m", "memory": "1Gi"}, "defaultRequest": {"cpu": "100m"}}
    )
    obj = pod(containers=[container("web", limits={"memory": "2Gi"})], initContainers=[container("init")])
    await run(ranger(lr), attrs(PODS, Operation.CREATE, obj))
    web, init = obj["spec"]["containers"][0], obj["spec"]["initContainers"][0]
    assert web["resources"] == {"limits": {"memory": "2Gi", "cpu": "500m"}, "requests": {"cpu": "100m"}}
    assert init["resources"] == {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "100m"}}
    assert obj["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu request for container web; cpu limit for container web; "
        "cpu request for init container init; cpu, memory limit for init container init"
    )


async def test_limit_ranger_ignores_other_namespaces_and_updates() -> None:
    lr = limit_range({"type": "Container", "default": {"cpu": "1"}}, namespace="other")
    obj = pod()
    await run(ranger(lr), attrs(PODS, Operation.CREATE, obj))
    assert obj["spec"]["containers"][0].get("resources") in (None, {})
    obj = pod()
    await run(ranger(limit_range({"type": "Container", "default": {"cpu": "1"}})), attrs(PODS, Operation.UPDATE, obj))
    assert "resources" not in obj["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("item", "containers", "message"),
    [
        pytest.param({"type": "Container", "min": {"cpu": "100m"}}, [container(requests={"cpu": "50m"})],
                     "minimum cpu usage per Container is 100m, but request is 50m", id="min-request"),
        pytest.param({"type": "Container", "min": {"cpu": "100m"}}, [container()],
                     "minimum cpu usage per Container is 100m.  No request is specified", id="min-no-request"),
        pytest.param({"type": "Container", "min": {"cpu": "100m"}},
                     [container(requests={"cpu": "200m"}, limits={"cpu": "50m"})],
                     "minimum cpu usage per Container is 100m, but limit is 50m", id="min-limit"),
        pytest.param({"type": "Container", "max": {"memory": "1Gi"}}, [container(limits={"memory": "2Gi"})],
                     "maximum memory usage per Container is 1Gi, but limit is 2Gi", id="max-limit"),
        pytest.param({"type": "Container", "max": {"memory": "1Gi"}}, [container()],
                     "maximum memory usage per Container is 1Gi.  No limit is specified", id="max-no-limit"),
        pytest.param({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
                     [container(requests={"cpu": "250m"}, limits={"cpu": "1"})],
                     "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000", id="ratio"),
        pytest.param({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}, [container(limits={"cpu": "1"})],
                     "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0",
                     id="ratio-no-request"),
        pytest.param({"type": "Pod", "max": {"cpu": "1"}},
                     [container("a", limits={"cpu": "600m"}), container("b", limits={"cpu": "600m"})],
                     "maximum cpu usage per Pod is 1, but limit is 1200m", id="pod-sum"),
        pytest.param({"type": "Container", "min": {"cpu": "1"}, "max": {"cpu": "2"}},
                     [container(requests={"cpu": "500m"}, limits={"cpu": "3"})],
                     "[minimum cpu usage per Container is 1, but request is 500m, "
                     "maximum cpu usage per Container is 2, but limit is 3]", id="aggregate"),
    ],
)  # fmt: skip
async def test_limit_ranger_refuses(item: Obj, containers: list[Obj], message: str) -> None:
    # Defaulting (max → default) happens in the LimitRange strategy, not here: items are as stored.
    obj = pod(containers=containers)
    with pytest.raises(ApiError) as caught:
        await ranger(limit_range(item)).validate(attrs(PODS, Operation.CREATE, obj))
    assert (caught.value.code, caught.value.message) == (403, f'pods "p" is forbidden: {message}')


async def test_limit_ranger_claims() -> None:
    lr = limit_range({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}})
    claim = {"metadata": {"name": "data", "namespace": "a"}, "spec": {"resources": {"requests": {"storage": "20Gi"}}}}
    with pytest.raises(ApiError) as caught:
        await run(ranger(lr), attrs(PVCS, Operation.CREATE, claim))
    assert caught.value.message == (
        'persistentvolumeclaims "data" is forbidden: '
        "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
    )
    claim["spec"]["resources"]["requests"]["storage"] = "5Gi"
    await run(ranger(lr), attrs(PVCS, Operation.CREATE, claim))
