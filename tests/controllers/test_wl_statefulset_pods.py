"""StatefulSet identity, claims, ordering and rollout decisions, and ControllerRevision hashing."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.client.timefmt import parse_rfc3339
from skiff.controllers import history
from skiff.controllers import statefulset_pods as sp


def sts(replicas: int = 3, **spec: Any) -> dict[str, Any]:
    base = {
        "replicas": replicas,
        "serviceName": "web-svc",
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}},
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
    }
    base.update(spec)
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u", "generation": 2}, "spec": base}


def pod(
    ordinal: int, *, ready: bool = True, revision: str = "web-new", phase: str = "Running", deleting: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"web-{ordinal}", "labels": {"app": "web", "controller-revision-hash": revision}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}]}}


def describe(actions: list[sp.Action]) -> list[str]:
    out = []
    for action in actions:
        if isinstance(action, sp.Create):
            out.append(f"create {action.ordinal} {action.revision}")
        else:
            out.append(f"delete {action.pod['metadata']['name']} {action.reason}")
    return out


@pytest.mark.parametrize(
    ("the_set", "pods", "expected"),
    [
        pytest.param(sts(), [], ["create 0 update"], id="ordered-first"),
        pytest.param(sts(), [pod(0, ready=False)], [], id="ordered-waits-for-ready"),
        pytest.param(sts(), [pod(0)], ["create 1 update"], id="ordered-next-after-ready"),
        pytest.param(sts(), [pod(0), pod(1, phase="Failed")], ["delete web-1 failed"], id="failed-replaced"),
        pytest.param(
            sts(podManagementPolicy="Parallel"),
            [],
            ["create 0 update", "create 1 update", "create 2 update"],
            id="parallel",
        ),
        pytest.param(sts(1), [pod(0), pod(1), pod(2)], ["delete web-2 condemned"], id="scale-down-highest-first"),
        pytest.param(sts(1), [pod(0), pod(1), pod(2, deleting=True)], [], id="scale-down-one-at-a-time"),
        pytest.param(
            sts(1, podManagementPolicy="Parallel"),
            [pod(0), pod(1), pod(2)],
            ["delete web-2 condemned", "delete web-1 condemned"],
            id="parallel-scale-down",
        ),
        pytest.param(
            sts(2),
            [pod(0, revision="web-old"), pod(1, revision="web-old")],
            ["delete web-1 update"],
            id="rolling-highest",
        ),
        pytest.param(sts(2), [pod(0, revision="web-old"), pod(1, ready=False)], [], id="rolling-waits-ready"),
        pytest.param(sts(2), [pod(0, revision="web-old"), pod(1)], ["delete web-0 update"], id="rolling-next"),
        pytest.param(
            sts(2, updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}),
            [pod(0, revision="web-old"), pod(1)],
            [],
            id="partition-holds",
        ),
        pytest.param(
            sts(2, updateStrategy={"type": "OnDelete"}),
            [pod(0, revision="web-old"), pod(1, revision="web-old")],
            [],
            id="on-delete",
        ),
    ],
)
def test_plan(the_set: dict[str, Any], pods: list[dict[str, Any]], expected: list[str]) -> None:
    assert describe(sp.plan(the_set, pods, "web-new")) == expected


def test_revision_below_partition_is_current() -> None:
    the_set = sts(3, updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    assert [sp.revision_for_new_pod(the_set, o) for o in range(3)] == ["current", "current", "update"]


def test_new_pod_identity_and_claims() -> None:
    template = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    the_set = sts(volumeClaimTemplates=[template])
    made = sp.new_pod(the_set, the_set["spec"]["template"], "web-abc", 1)
    assert made["metadata"]["name"] == "web-1"
    assert "generateName" not in made["metadata"]
    assert made["metadata"]["labels"] == {
        "app": "web",
        sp.POD_NAME_LABEL: "web-1",
        sp.POD_INDEX_LABEL: "1",
        "controller-revision-hash": "web-abc",
    }
    assert made["spec"]["hostname"] == "web-1" and made["spec"]["subdomain"] == "web-svc"
    assert made["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}}]
    (claim,) = sp.claims_for(the_set, 1)
    assert claim["metadata"]["name"] == "data-web-1"
    assert claim["metadata"]["labels"] == {"app": "web"}
    assert "ownerReferences" not in claim["metadata"]  # Retain is the default
    deleting = sts(volumeClaimTemplates=[template], persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete"})
    (owned,) = sp.claims_for(deleting, 0)
    assert owned["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"


def test_status_completes_rolling_update() -> None:
    the_set = sts(2)
    mid = sp.calculate_status(the_set, [pod(0, revision="web-old"), pod(1)], "web-old", "web-new", 0, 0.0)
    assert (mid["currentReplicas"], mid["updatedReplicas"], mid["currentRevision"]) == (1, 1, "web-old")
    done = sp.calculate_status(the_set, [pod(0), pod(1)], "web-old", "web-new", 0, 0.0)
    assert (done["currentReplicas"], done["currentRevision"], done["readyReplicas"]) == (2, "web-new", 2)


def test_ordinal_of() -> None:
    assert sp.ordinal_of("web", "web-12") == 12
    assert sp.ordinal_of("web", "web-x-1") is None
    assert sp.ordinal_of("web", "webby-1") is None


def test_revision_hash_is_stable_and_depends_on_collisions() -> None:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    data = history.revision_data(template)
    assert data["spec"]["template"]["$patch"] == "replace"
    assert history.template_of({"data": data}) == template
    first = history.hash_revision(data, None)
    assert first == history.hash_revision(history.revision_data(dict(reversed(list(template.items())))), 0)
    assert first != history.hash_revision(data, 1)
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")
    revision = history.new_revision(sts(), "apps/v1", "StatefulSet", template, 3, None)
    assert revision["metadata"]["name"] == f"web-{first}"
    assert revision["metadata"]["labels"] == {"a": "b", "controller-revision-hash": first}
    assert revision["revision"] == 3


def test_available_replicas_wait_for_min_ready_seconds() -> None:
    the_set = sts(1, minReadySeconds=30)
    ready = pod(0)
    ready["status"]["conditions"][0]["lastTransitionTime"] = "2026-01-01T00:00:00Z"
    start = parse_rfc3339("2026-01-01T00:00:00Z")
    assert sp.calculate_status(the_set, [ready], "web-new", "web-new", 0, start + 10)["availableReplicas"] == 0
    assert sp.calculate_status(the_set, [ready], "web-new", "web-new", 0, start + 30)["availableReplicas"] == 1
