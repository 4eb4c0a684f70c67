"""DaemonSet, StatefulSet (+ local provisioner), Job and CronJob controllers against a real API server.

No kubelet and no scheduler: the tests create Node objects themselves and
play the kubelet by patching pod status (Running/Ready, Succeeded, Failed).
The controllers run in the test's event loop over one client, built
directly so a test can give them options (the volume dir) and a FakeClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from apiserver_harness import RunningApiServer, running_apiserver
from cm_harness import container, eventually, mark_ready, new_namespace, pods_of

from skiff.client import ApiClient, ApiError, ClientConfig
from skiff.client.clock import Clock, FakeClock, RealClock
from skiff.client.controller import Controller, ControllerContext
from skiff.client.informer import InformerFactory
from skiff.client.resources import (
    CONTROLLERREVISIONS,
    CRONJOBS,
    DAEMONSETS,
    JOBS,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    PODS,
    STATEFULSETS,
)
from skiff.client.timefmt import rfc3339
from skiff.controllers.cronjob import CronJobController
from skiff.controllers.daemonset import DaemonSetController
from skiff.controllers.job import JobController
from skiff.controllers.local_provisioner import VOLUME_DIR_OPTION, LocalProvisioner
from skiff.controllers.statefulset import StatefulSetController

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("wl")) as srv:
        yield srv


@contextlib.asynccontextmanager
async def running_controllers(
    server: RunningApiServer,
    builders: Sequence[Callable[[ControllerContext], Controller]],
    *,
    clock: Clock | None = None,
    options: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[ApiClient, list[Controller]]]:
    client = ApiClient(ClientConfig.from_kubeconfig(server.kubeconfig), user_agent="wl-test")
    informers = InformerFactory(client)
    context = ControllerContext(client=client, informers=informers, clock=clock or RealClock(), options=options or {})
    controllers = [build(context) for build in builders]
    await informers.start()
    await informers.wait_synced()
    runs = [asyncio.create_task(c.run(2)) for c in controllers]
    try:
        yield client, controllers
    finally:
        for ctrl in controllers:
            ctrl.shutdown()
        await asyncio.gather(*runs, return_exceptions=True)
        for ctrl in controllers:
            await ctrl.recorder.flush()  # type: ignore[attr-defined]
        await informers.stop()
        await client.close()


async def set_phase(client: ApiClient, pod: Obj, phase: str) -> None:
    meta = pod["metadata"]
    await client.patch(PODS, meta["name"], {"status": {"phase": phase}}, meta["namespace"], subresource="status")


async def mark_all_ready(client: ApiClient, ns: str, selector: str) -> None:
    """Play the kubelet for every pod not yet ready; a pod the controller deleted meanwhile is skipped."""
    for pod in await pods_of(client, ns, selector):
        if condition(pod, "Ready"):
            continue
        try:
            await mark_ready(client, pod)
        except ApiError as err:
            if err.code != 404:
                raise


def condition(obj: Obj, kind: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


# -- DaemonSet ----------------------------------------------------------------------------------------


def daemonset(name: str, node_selector: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"containers": [container()]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"ds": name}},
            "template": {"metadata": {"labels": {"ds": name}}, "spec": spec},
        },
    }


def pinned_node(pod: Obj) -> str:
    required = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    (term,) = required["nodeSelectorTerms"]
    (field,) = term["matchFields"]
    assert field["key"] == "metadata.name" and field["operator"] == "In"
    return str(field["values"][0])


async def test_daemonset_one_pod_per_node_and_node_selector(server: RunningApiServer) -> None:
    async with running_controllers(server, [DaemonSetController]) as (client, _):
        nodes = [f"wl-ds-node-{i}" for i in range(3)]
        for i, name in enumerate(nodes):
            labels = {"kubernetes.io/hostname": name, "tier": "edge" if i < 2 else "core"}
            await client.create(NODES, {"metadata": {"name": name, "labels": labels}})
        ns = await new_namespace(client, "ds")
        await client.create(DAEMONSETS, daemonset("everywhere"), ns)
        await client.create(DAEMONSETS, daemonset("edge", {"tier": "edge"}), ns)

        async def spread(selector: str, count: int) -> list[Obj] | None:
            pods = await pods_of(client, ns, selector)
            return pods if len(pods) == count else None

        everywhere = await eventually(lambda: spread("ds=everywhere", 3), "3 daemon pods")
        assert sorted(pinned_node(p) for p in everywhere) == nodes
        for p in everywhere:
            assert "controller-revision-hash" in p["metadata"]["labels"]
            tolerated = {t["key"] for t in p["spec"]["tolerations"]}
            assert "node.kubernetes.io/not-ready" in tolerated and "node.kubernetes.io/unreachable" in tolerated
        edge = await eventually(lambda: spread("ds=edge", 2), "2 edge pods")
        assert sorted(pinned_node(p) for p in edge) == nodes[:2]
        for p in everywhere:
            await mark_ready(client, p)

        async def status_ready() -> Obj | None:
            st = (await client.get(DAEMONSETS, "everywhere", ns)).get("status") or {}
            return st if st.get("numberReady") == 3 else None

        st = await eventually(status_ready, "numberReady 3")
        assert st["desiredNumberScheduled"] == 3 and st["currentNumberScheduled"] == 3
        assert st["updatedNumberScheduled"] == 3 and st["numberMisscheduled"] == 0
        revisions = await client.list(CONTROLLERREVISIONS, ns)
        assert {r["metadata"]["name"].rsplit("-", 1)[0] for r in revisions["items"]} == {"everywhere", "edge"}

        # A new node gets a pod; a rolling update replaces pods one node at a time.
        await client.create(NODES, {"metadata": {"name": "wl-ds-node-3", "labels": {"tier": "core"}}})
        await eventually(lambda: spread("ds=everywhere", 4), "a 4th daemon pod")
        patch = {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}}
        await client.patch(DAEMONSETS, "everywhere", patch, ns)

        async def rolled() -> bool:
            await mark_all_ready(client, ns, "ds=everywhere")
            pods = await pods_of(client, ns, "ds=everywhere")
            return len(pods) == 4 and all((p["metadata"].get("annotations") or {}).get("v") == "2" for p in pods)

        await eventually(rolled, "all daemon pods updated")
        for name in [*nodes, "wl-ds-node-3"]:
            await client.delete(NODES, name)


# -- StatefulSet + local provisioner --------------------------------------------------------------------


def statefulset(name: str, replicas: int) -> Obj:
    claim = {
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "local-path",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": f"{name}-svc",
            "selector": {"matchLabels": {"sts": name}},
            "template": {"metadata": {"labels": {"sts": name}}, "spec": {"containers": [container()]}},
            "volumeClaimTemplates": [claim],
        },
    }


async def test_statefulset_ordered_start_claims_bound_and_ordered_scale_down(
    server: RunningApiServer, tmp_path: Path
) -> None:
    volumes = tmp_path / "volumes"
    options = {VOLUME_DIR_OPTION: str(volumes)}
    async with running_controllers(server, [StatefulSetController, LocalProvisioner], options=options) as (client, _):
        ns = await new_namespace(client, "sts")
        await client.create(STATEFULSETS, statefulset("web", 2), ns)

        async def names() -> list[str]:
            return sorted(p["metadata"]["name"] for p in await pods_of(client, ns, "sts=web"))

        async def only_first() -> list[Obj] | None:
            pods = await pods_of(client, ns, "sts=web")
            return pods if [p["metadata"]["name"] for p in pods] == ["web-0"] else None

        (first,) = await eventually(only_first, "web-0")
        assert first["spec"]["hostname"] == "web-0" and first["spec"]["subdomain"] == "web-svc"
        labels = first["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == "web-0" and labels["apps.kubernetes.io/pod-index"] == "0"
        assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}} in first["spec"]["volumes"]

        async def bound(name: str) -> Obj | None:
            claim = await client.get(PERSISTENTVOLUMECLAIMS, name, ns)
            return claim if (claim.get("status") or {}).get("phase") == "Bound" else None

        claim = await eventually(lambda: bound("data-web-0"), "data-web-0 Bound")
        volume = await client.get(PERSISTENTVOLUMES, claim["spec"]["volumeName"])
        assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
        assert Path(volume["spec"]["hostPath"]["path"]).parent == volumes
        assert await asyncio.to_thread(Path(volume["spec"]["hostPath"]["path"]).is_dir)
        assert (volume.get("status") or {}).get("phase") == "Bound"

        # web-1 waits for web-0 to be Running and Ready.
        await asyncio.sleep(0.5)
        assert await names() == ["web-0"]
        await mark_ready(client, first)
        await eventually(lambda: _equals(names, ["web-0", "web-1"]), "web-1 after web-0 is ready")
        await eventually(lambda: bound("data-web-1"), "data-web-1 Bound")
        for pod in await pods_of(client, ns, "sts=web"):
            await mark_ready(client, pod)

        async def status_ready() -> Obj | None:
            st = (await client.get(STATEFULSETS, "web", ns)).get("status") or {}
            return st if st.get("readyReplicas") == 2 and st.get("currentRevision") else None

        st = await eventually(status_ready, "readyReplicas 2")
        assert st["currentRevision"] == st["updateRevision"] and st["updatedReplicas"] == 2

        # A rolling update replaces web-1, then web-0, each once the previous one is Running and Ready.
        await client.patch(STATEFULSETS, "web", {"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}}, ns)

        async def rolled() -> Obj | None:
            await mark_all_ready(client, ns, "sts=web")
            got = await client.get(STATEFULSETS, "web", ns)
            st = got.get("status") or {}
            done = st.get("updatedReplicas") == 2 and st.get("currentRevision") == st.get("updateRevision")
            return st if done and st["updateRevision"] != st_before["updateRevision"] else None

        st_before = st
        after = await eventually(rolled, "the rolling update to finish")
        pods = await pods_of(client, ns, "sts=web")
        assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods} == {after["updateRevision"]}

        await client.patch(STATEFULSETS, "web", {"spec": {"replicas": 0}}, ns)
        await eventually(lambda: _equals(names, []), "scaled to zero")
        # Retain (the default): the claims stay.
        assert (await client.get(PERSISTENTVOLUMECLAIMS, "data-web-1", ns))["status"]["phase"] == "Bound"


async def test_statefulset_adopts_orphan_member(server: RunningApiServer) -> None:
    async with running_controllers(server, [StatefulSetController]) as (client, _):
        ns = await new_namespace(client, "stsadopt")
        orphan = {"metadata": {"name": "solo-0", "labels": {"sts": "solo"}}, "spec": {"containers": [container()]}}
        created = await client.create(PODS, orphan, ns)
        body = statefulset("solo", 1)
        del body["spec"]["volumeClaimTemplates"]
        sts = await client.create(STATEFULSETS, body, ns)

        async def adopted() -> Obj | None:
            pod = await client.get(PODS, "solo-0", ns)
            refs = pod["metadata"].get("ownerReferences") or []
            return pod if refs and refs[0]["uid"] == sts["metadata"]["uid"] else None

        pod = await eventually(adopted, "the orphan adopted")
        assert pod["metadata"]["uid"] == created["metadata"]["uid"]


async def _equals(probe: Callable[[], Any], expected: Any) -> bool:
    return bool(await probe() == expected)


# -- Job ----------------------------------------------------------------------------------------------


def job(name: str, **spec: Any) -> Obj:
    template = {"spec": {"restartPolicy": "Never", "containers": [container()]}}
    return {"metadata": {"name": name}, "spec": {"template": template, **spec}}


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(JobController, "backoff_base_s", 0.0)


async def job_pods(client: ApiClient, ns: str, name: str, count: int) -> list[Obj]:
    async def enough() -> tuple[list[Obj]] | None:
        pods = await pods_of(client, ns, f"batch.kubernetes.io/job-name={name}")
        active = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")]
        return (active,) if len(active) == count else None

    (found,) = await eventually(enough, f"{count} active pods of {name}")
    return found


async def finished(client: ApiClient, ns: str, name: str, kind: str) -> Obj:
    async def done() -> Obj | None:
        got = await client.get(JOBS, name, ns)
        return got if condition(got, kind) else None

    return await eventually(done, f"job {name} {kind}")


async def test_job_completes_and_counts_through_finalizer(server: RunningApiServer) -> None:
    async with running_controllers(server, [JobController]) as (client, _):
        ns = await new_namespace(client, "job")
        created = await client.create(JOBS, job("done", completions=3, parallelism=2), ns)
        uid = created["metadata"]["uid"]
        assert created["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        pods = await job_pods(client, ns, "done", 2)
        for pod in pods:
            assert "batch.kubernetes.io/job-tracking" in pod["metadata"]["finalizers"]
            assert pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == uid
            assert pod["metadata"]["labels"]["job-name"] == "done"
            await set_phase(client, pod, "Succeeded")
        (last,) = await job_pods(client, ns, "done", 1)
        await set_phase(client, last, "Succeeded")
        got = await finished(client, ns, "done", "Complete")
        assert condition(got, "SuccessCriteriaMet") is not None
        st = got["status"]
        assert st["succeeded"] == 3 and st.get("failed", 0) == 0 and st["active"] == 0
        assert st["completionTime"] and st["startTime"]
        assert not (st.get("uncountedTerminatedPods") or {}).get("succeeded")
        for pod in (await client.list(PODS, ns))["items"]:
            assert "batch.kubernetes.io/job-tracking" not in (pod["metadata"].get("finalizers") or [])


async def test_job_fails_after_backoff_limit(server: RunningApiServer, fast_backoff: None) -> None:
    async with running_controllers(server, [JobController]) as (client, _):
        ns = await new_namespace(client, "jobfail")
        await client.create(JOBS, job("flaky", backoffLimit=1), ns)
        (first,) = await job_pods(client, ns, "flaky", 1)
        await set_phase(client, first, "Failed")
        (second,) = await job_pods(client, ns, "flaky", 1)
        assert second["metadata"]["name"] != first["metadata"]["name"]
        await set_phase(client, second, "Failed")
        got = await finished(client, ns, "flaky", "Failed")
        assert condition(got, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
        assert got["status"]["failed"] == 2 and "completionTime" not in got["status"]


async def test_indexed_job_and_ttl_after_finished(server: RunningApiServer) -> None:
    async with running_controllers(server, [JobController]) as (client, _):
        ns = await new_namespace(client, "jobidx")
        spec = {"completions": 3, "parallelism": 3, "completionMode": "Indexed", "ttlSecondsAfterFinished": 0}
        await client.create(JOBS, job("idx", **spec), ns)
        pods = await job_pods(client, ns, "idx", 3)
        key = "batch.kubernetes.io/job-completion-index"
        assert sorted(p["metadata"]["annotations"][key] for p in pods) == ["0", "1", "2"]
        for pod in pods:
            index = pod["metadata"]["annotations"][key]
            assert pod["metadata"]["labels"][key] == index
            assert pod["spec"]["hostname"] == f"idx-{index}"
            (env,) = pod["spec"]["containers"][0]["env"]
            assert env["name"] == "JOB_COMPLETION_INDEX"
            assert env["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{key}']"
            await set_phase(client, pod, "Succeeded")

        async def gone() -> bool:
            return not any(j["metadata"]["name"] == "idx" for j in (await client.list(JOBS, ns))["items"])

        await eventually(gone, "the job deleted by its ttl")


async def test_job_deleted_releases_pod_finalizers(server: RunningApiServer) -> None:
    async with running_controllers(server, [JobController]) as (client, _):
        ns = await new_namespace(client, "jobdel")
        await client.create(JOBS, job("gone", suspend=False), ns)
        (pod,) = await job_pods(client, ns, "gone", 1)
        await client.delete(JOBS, "gone", ns, propagation_policy="Orphan")

        async def released() -> bool:
            got = await client.get(PODS, pod["metadata"]["name"], ns)
            return "batch.kubernetes.io/job-tracking" not in (got["metadata"].get("finalizers") or [])

        await eventually(released, "the tracking finalizer removed from the orphaned pod")


async def test_job_suspend_deletes_pods_and_resumes(server: RunningApiServer) -> None:
    async with running_controllers(server, [JobController]) as (client, _):
        ns = await new_namespace(client, "jobsus")
        await client.create(JOBS, job("nap", parallelism=2, completions=2), ns)
        await job_pods(client, ns, "nap", 2)
        await client.patch(JOBS, "nap", {"spec": {"suspend": True}}, ns)
        suspended = await finished(client, ns, "nap", "Suspended")
        assert condition(suspended, "Suspended")["reason"] == "JobSuspended"  # type: ignore[index]
        await job_pods(client, ns, "nap", 0)
        await client.patch(JOBS, "nap", {"spec": {"suspend": False}}, ns)
        await job_pods(client, ns, "nap", 2)


# -- CronJob ------------------------------------------------------------------------------------------


async def test_cronjob_creates_job_when_due_with_fake_clock(server: RunningApiServer) -> None:
    clock = FakeClock(start=time.time() + 120)
    async with running_controllers(server, [CronJobController], clock=clock) as (client, controllers):
        ns = await new_namespace(client, "cron")
        template = {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container()]}}}}
        body = {
            "metadata": {"name": "tick"},
            "spec": {"schedule": "*/1 * * * *", "concurrencyPolicy": "Allow", "jobTemplate": template},
        }
        await client.create(CRONJOBS, body, ns)
        expected = f"tick-{int(clock.now() // 60)}"

        async def jobs() -> list[str]:
            return sorted(j["metadata"]["name"] for j in (await client.list(JOBS, ns))["items"])

        await eventually(lambda: _equals(jobs, [expected]), "the first job")
        first = await client.get(JOBS, expected, ns)
        assert first["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"].endswith(":00Z")
        assert first["metadata"]["ownerReferences"][0]["kind"] == "CronJob"

        async def active(count: int) -> Obj | None:
            st = (await client.get(CRONJOBS, "tick", ns)).get("status") or {}
            return st if len(st.get("active") or []) == count and st.get("lastScheduleTime") else None

        await eventually(lambda: active(1), "status.active with the job")
        clock.advance(60)
        second = f"tick-{int(clock.now() // 60)}"
        await eventually(lambda: _equals(jobs, sorted([expected, second])), "the second job a minute later")
        await eventually(lambda: active(2), "two active jobs (Allow)")

        # Forbid: no new job while one is active.
        await client.patch(CRONJOBS, "tick", {"spec": {"concurrencyPolicy": "Forbid"}}, ns)
        (controller,) = controllers
        assert isinstance(controller, CronJobController)

        async def seen_forbid() -> bool:
            cached = controller.cronjobs.get(f"{ns}/tick") or {}
            return bool(cached.get("spec", {}).get("concurrencyPolicy") == "Forbid")

        await eventually(seen_forbid, "the controller's cache to see Forbid")
        clock.advance(60)
        await asyncio.sleep(0.5)
        assert await jobs() == sorted([expected, second])

        # Finished jobs leave status.active; successfulJobsHistoryLimit 1 keeps only the newest.
        await client.patch(CRONJOBS, "tick", {"spec": {"successfulJobsHistoryLimit": 1}}, ns)
        for i, name in enumerate([expected, second]):
            done_at = rfc3339(clock.now() - 30 + i)
            status = {
                "startTime": done_at,
                "completionTime": done_at,
                "succeeded": 1,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": done_at},
                    {"type": "Complete", "status": "True", "lastTransitionTime": done_at},
                ],
            }
            await client.patch(JOBS, name, {"status": status}, ns, subresource="status")
        # With nothing active, Forbid lets the start missed a minute ago happen now.
        third = f"tick-{int(clock.now() // 60)}"
        await eventually(
            lambda: _equals(jobs, [second, third]), "the older finished job removed, the missed one started"
        )
        st = await eventually(lambda: active(1), "only the new job active")
        assert st["active"][0]["name"] == third
        assert st["lastSuccessfulTime"] == rfc3339(clock.now() - 29)
