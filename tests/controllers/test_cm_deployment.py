"""Deployment controller with the ReplicaSet controller against a real API server (pods marked ready by the test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from apiserver_harness import KUBECTL, RunningApiServer, running_apiserver
from cm_harness import (
    auto_ready,
    container,
    eventually,
    mark_ready,
    new_namespace,
    pods_of,
    run_kubectl,
    running_manager,
)

from skiff.client import ApiClient
from skiff.client.resources import DEPLOYMENTS, REPLICASETS

CONTROLLERS = ["deployment", "replicaset"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("cm-deploy")) as srv:
        yield srv


def deployment(name: str, replicas: int, **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container()]}},
            **spec,
        },
    }


async def rs_by_revision(client: ApiClient, ns: str) -> dict[str, dict[str, Any]]:
    items = (await client.list(REPLICASETS, ns))["items"]
    return {rs["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "?"): rs for rs in items}


async def wait_complete(client: ApiClient, ns: str, name: str, replicas: int) -> dict[str, Any]:
    async def complete() -> dict[str, Any] | None:
        d = await client.get(DEPLOYMENTS, name, ns)
        st = d.get("status") or {}
        conds = {c["type"]: c for c in st.get("conditions") or []}
        ok = (
            st.get("observedGeneration") == d["metadata"]["generation"]
            and st.get("updatedReplicas") == replicas
            and st.get("replicas") == replicas
            and st.get("availableReplicas") == replicas
            and conds.get("Progressing", {}).get("reason") == "NewReplicaSetAvailable"
            and conds.get("Available", {}).get("status") == "True"
        )
        return d if ok else None

    return await eventually(complete, f"deployment {name} complete")


async def set_image(client: ApiClient, ns: str, name: str, image: str) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{**container(), "image": image}]}}}}
    await client.patch(DEPLOYMENTS, name, patch, ns, patch_type="strategic")


async def test_rolling_update_respects_max_unavailable_and_surge(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "dep")
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
        await client.create(DEPLOYMENTS, deployment("web", 4, strategy=strategy), ns)
        async with auto_ready(client, ns):
            d = await wait_complete(client, ns, "web", 4)
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
        (first,) = (await rs_by_revision(client, ns)).values()
        annotations = first["metadata"]["annotations"]
        assert annotations["deployment.kubernetes.io/desired-replicas"] == "4"
        assert annotations["deployment.kubernetes.io/max-replicas"] == "5"
        assert first["metadata"]["labels"]["pod-template-hash"] == first["metadata"]["name"].removeprefix("web-")

        await set_image(client, ns, "web", "python:3.12")

        # Nobody marks the new pods ready: the rollout must stop at new 2 / old 3 (5 = 4 + maxSurge pods,
        # 3 = 4 - maxUnavailable available) and stay there.
        async def stalled() -> dict[str, dict[str, Any]] | None:
            rss = await rs_by_revision(client, ns)
            sizes = {rev: rs["spec"]["replicas"] for rev, rs in rss.items()}
            return rss if sizes == {"1": 3, "2": 2} else None

        rss = await eventually(stalled, "rollout to stall at old 3 / new 2")
        assert (
            rss["2"]["spec"]["template"]["metadata"]["labels"]["pod-template-hash"]
            != first["metadata"]["labels"]["pod-template-hash"]
        )
        d = await client.get(DEPLOYMENTS, "web", ns)
        assert d["status"]["updatedReplicas"] <= 2
        async with auto_ready(client, ns):
            d = await wait_complete(client, ns, "web", 4)
        rss = await rs_by_revision(client, ns)
        assert rss["1"]["spec"]["replicas"] == 0 and rss["2"]["spec"]["replicas"] == 4
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        assert len(await pods_of(client, ns, "app=web")) == 4


async def test_recreate_scales_old_to_zero_first(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "dep")
        await client.create(DEPLOYMENTS, deployment("batch", 2, strategy={"type": "Recreate"}), ns)
        async with auto_ready(client, ns):
            await wait_complete(client, ns, "batch", 2)
        await set_image(client, ns, "batch", "python:3.12")
        async with auto_ready(client, ns):
            await wait_complete(client, ns, "batch", 2)
        rss = await rs_by_revision(client, ns)
        assert rss["1"]["spec"]["replicas"] == 0 and rss["2"]["spec"]["replicas"] == 2


async def test_pause_resume_and_history_limit(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "dep")
        await client.create(DEPLOYMENTS, deployment("api", 1, revisionHistoryLimit=1), ns)
        async with auto_ready(client, ns):
            await wait_complete(client, ns, "api", 1)
            code, _, err = await run_kubectl(KUBECTL, server.kubeconfig, "-n", ns, "rollout", "pause", "deployment/api")
            assert code == 0, err

            async def paused() -> bool:
                d = await client.get(DEPLOYMENTS, "api", ns)
                conds = {c["type"]: c for c in d["status"].get("conditions") or []}
                return conds["Progressing"]["reason"] == "DeploymentPaused" and conds["Progressing"]["status"] == (
                    "Unknown"
                )

            await eventually(paused, "Progressing DeploymentPaused")
            await set_image(client, ns, "api", "python:3.11")
            await client.patch(DEPLOYMENTS, "api", {"metadata": {"labels": {"touched": "yes"}}}, ns)
            assert len(await rs_by_revision(client, ns)) == 1  # paused: no new ReplicaSet
            code, _, err = await run_kubectl(
                KUBECTL, server.kubeconfig, "-n", ns, "rollout", "resume", "deployment/api"
            )
            assert code == 0, err
            await wait_complete(client, ns, "api", 1)
            await set_image(client, ns, "api", "python:3.12")
            await wait_complete(client, ns, "api", 1)

            async def pruned() -> bool:
                return sorted(await rs_by_revision(client, ns)) == ["2", "3"]

            await eventually(pruned, "history pruned to one old ReplicaSet")


async def test_kubectl_rollout_status_undo_restart(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "dep")
        await client.create(DEPLOYMENTS, deployment("site", 2), ns)
        kc = server.kubeconfig
        async with auto_ready(client, ns):
            code, out, err = await run_kubectl(
                KUBECTL, kc, "-n", ns, "rollout", "status", "deployment/site", "--timeout=90s"
            )
            assert code == 0, err
            assert 'deployment "site" successfully rolled out' in out
            await set_image(client, ns, "site", "python:3.12")
            code, out, err = await run_kubectl(
                KUBECTL, kc, "-n", ns, "rollout", "status", "deployment/site", "--timeout=90s"
            )
            assert code == 0, err
            code, out, err = await run_kubectl(KUBECTL, kc, "-n", ns, "rollout", "undo", "deployment/site")
            assert code == 0, err
            code, out, err = await run_kubectl(
                KUBECTL, kc, "-n", ns, "rollout", "status", "deployment/site", "--timeout=90s"
            )
            assert code == 0, err
            d = await client.get(DEPLOYMENTS, "site", ns)
            assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3"
            rss = await rs_by_revision(client, ns)
            assert sorted(rss) == ["2", "3"]  # revision 1's ReplicaSet became revision 3
            assert rss["3"]["spec"]["template"]["spec"]["containers"][0]["image"] == "python:3"
            assert rss["3"]["spec"]["replicas"] == 2 and rss["2"]["spec"]["replicas"] == 0
            code, out, err = await run_kubectl(KUBECTL, kc, "-n", ns, "rollout", "restart", "deployment/site")
            assert code == 0, err
            code, out, err = await run_kubectl(
                KUBECTL, kc, "-n", ns, "rollout", "status", "deployment/site", "--timeout=90s"
            )
            assert code == 0, err
            assert sorted(await rs_by_revision(client, ns)) == ["2", "3", "4"]
            code, out, err = await run_kubectl(KUBECTL, kc, "-n", ns, "rollout", "history", "deployment/site")
            assert code == 0, err
            assert "4" in out


async def test_progress_deadline_exceeded(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "dep")
        await client.create(DEPLOYMENTS, deployment("slow", 1, progressDeadlineSeconds=1), ns)

        async def timed_out() -> bool:
            d = await client.get(DEPLOYMENTS, "slow", ns)
            conds = {c["type"]: c for c in (d.get("status") or {}).get("conditions") or []}
            prog = conds.get("Progressing", {})
            return prog.get("reason") == "ProgressDeadlineExceeded" and prog.get("status") == "False"

        await eventually(timed_out, "ProgressDeadlineExceeded")
        code, _, err = await run_kubectl(
            KUBECTL, server.kubeconfig, "-n", ns, "rollout", "status", "deployment/slow", "--timeout=30s"
        )
        assert code != 0 and "exceeded its progress deadline" in err
        for pod in await pods_of(client, ns, "app=slow"):
            await mark_ready(client, pod)
        await wait_complete(client, ns, "slow", 1)


async def test_kubectl_scale_up_and_down(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "dep")
        await client.create(DEPLOYMENTS, deployment("scaled", 1), ns)
        async with auto_ready(client, ns):
            await wait_complete(client, ns, "scaled", 1)
            for replicas in (5, 2):
                code, _, err = await run_kubectl(
                    KUBECTL, server.kubeconfig, "-n", ns, "scale", "deployment/scaled", f"--replicas={replicas}"
                )
                assert code == 0, err
                await wait_complete(client, ns, "scaled", replicas)
                assert len(await pods_of(client, ns, "app=scaled")) == replicas
        (rs,) = (await rs_by_revision(client, ns)).values()
        assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "2"


async def test_scaling_mid_rollout_is_proportional(server: RunningApiServer) -> None:
    async with running_manager(server.kubeconfig, CONTROLLERS) as (client, _):
        ns = await new_namespace(client, "dep")
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
        await client.create(DEPLOYMENTS, deployment("prop", 4, strategy=strategy), ns)
        async with auto_ready(client, ns):
            await wait_complete(client, ns, "prop", 4)
        await set_image(client, ns, "prop", "python:3.12")

        async def sizes(want: dict[str, int]) -> bool:
            rss = await rs_by_revision(client, ns)
            return {rev: rs["spec"]["replicas"] for rev, rs in rss.items()} == want

        await eventually(lambda: sizes({"1": 3, "2": 2}), "rollout stalled at old 3 / new 2")
        await client.patch(DEPLOYMENTS, "prop", {"spec": {"replicas": 8}}, ns)
        # 9 pods allowed (8 + maxSurge 1), 4 more: old 3*9/5 = 5.4 → 5, new 2*9/5 = 3.6 → 4.
        await eventually(lambda: sizes({"1": 5, "2": 4}), "proportional scale-up to old 5 / new 4")
        rss = await rs_by_revision(client, ns)
        for rs in rss.values():
            annotations = rs["metadata"]["annotations"]
            assert annotations["deployment.kubernetes.io/desired-replicas"] == "8"
            assert annotations["deployment.kubernetes.io/max-replicas"] == "9"
        async with auto_ready(client, ns):
            await wait_complete(client, ns, "prop", 8)
