"""EtcdCluster end to end: create, resize, heal, pause and operator downtime, against real etcd members.

One ``skiff up --no-etcd-operator`` cluster and one ``skiff etcd-operator`` process for the module (see
``operator_harness``); one 3-member EtcdCluster (``trio``) is shared by the scenarios, each of which
starts from "ready at 3", writes keys before acting and reads every key back afterwards.  Membership is
asserted through etcd's MemberList, never by counting pods.  The first test is the production path
instead: plain ``skiff up`` runs the operator itself, and a 1-member cluster comes up under it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_harness import running_cluster
from operator_harness import (
    EtcdOperatorEnv,
    MemberClient,
    assert_keys,
    condition,
    etcd_cluster_manifest,
    etcd_env,
    member_pid,
    write_keys,
)

__all__ = ["etcd_env"]

TRIO = "trio"


def figure(text: str) -> None:
    print(f"FIGURE: {text}")


def restart_count(pod: dict[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount", 0)) for s in statuses if s.get("name") == "etcd")


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def test_plain_skiff_up_runs_the_operator(tmp_path: Path) -> None:
    """``skiff up`` without ``--no-etcd-operator``: the CRDs exist, ``kubectl get etcd`` works, a cluster runs."""
    with running_cluster(tmp_path / "up") as c:
        c.wait_for(
            "the etcdclusters CRD", lambda: c.kubectl("get", "crd", "etcdclusters.etcd.database.coreos.com")[0] == 0
        )
        for crd in ("etcdbackups", "etcdrestores"):
            c.ok("get", "crd", f"{crd}.etcd.database.coreos.com")
        c.wait_for("kubectl get etcd", lambda: c.kubectl("get", "etcd")[0] == 0)
        env = EtcdOperatorEnv(c, None, tmp_path, tmp_path, tmp_path)
        env.apply(etcd_cluster_manifest("solo", 1))
        started = time.monotonic()
        obj = env.wait_ready("solo", 1, timeout=90)
        figure(f"time to a ready 1-member cluster under skiff up: {time.monotonic() - started:.1f}s")
        [voter] = env.voters("solo")
        [pod] = env.member_pods("solo")
        assert voter.name == pod["metadata"]["name"] and not voter.is_learner
        assert obj["status"]["currentVersion"] == "3.5.1"
        with env.client("solo") as client:
            written = write_keys(client, "/solo/", 10)
            assert_keys(client, "/solo/", written)
        listed = c.ok("get", "etcd")
        assert "solo" in listed, listed


@pytest.fixture(scope="module")
def trio(etcd_env: EtcdOperatorEnv) -> Iterator[dict[str, str]]:
    """The shared 3-member cluster, with keys written right after it came up (read back by every test)."""
    env = etcd_env
    started = time.monotonic()
    env.apply(etcd_cluster_manifest(TRIO, 3))
    env.wait_ready(TRIO, 3)
    figure(f"time to a healthy 3-member cluster: {time.monotonic() - started:.1f}s")
    with env.client(TRIO) as client:
        yield write_keys(client, "/trio/seed/", 50)


def ready_trio(env: EtcdOperatorEnv, seeded: dict[str, str]) -> MemberClient:
    """Every scenario starts from a healthy 3-member cluster still holding the seed keys."""
    env.wait_ready(TRIO, 3)
    client = env.client(TRIO)
    assert_keys(client, "/trio/seed/", seeded)
    return client


def test_create_one_member_cluster(etcd_env: EtcdOperatorEnv) -> None:
    env = etcd_env
    env.apply(etcd_cluster_manifest("single", 1))
    env.wait_ready("single", 1)
    members = env.voters("single")
    assert len(members) == 1 and not members[0].is_learner, members
    with env.client("single") as client:
        written = write_keys(client, "/single/", 20)
        assert_keys(client, "/single/", written)
    # Its pods go with it through the garbage collector (about 25 s later here): not waited for.
    env.ok("delete", "etcdcluster", "single", "--wait=false")


def test_create_three_members_with_services_and_budget(etcd_env: EtcdOperatorEnv, trio: dict[str, str]) -> None:
    env = etcd_env
    with ready_trio(env, trio) as client:
        obj = env.etcd_cluster(TRIO)
        status = obj["status"]
        assert status["currentVersion"] == "3.5.1", status
        assert status.get("phase") == "Running", status
        assert len(status["members"]["ready"]) == 3 and not status["members"].get("unready"), status
        pods = env.member_pods(TRIO)
        voters = client.member_list()
        assert {m.name for m in voters} == {p["metadata"]["name"] for p in pods}, (voters, pods)
        assert not any(m.is_learner for m in voters)
        for pod in pods:
            [owner] = pod["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["name"], owner.get("controller")) == ("EtcdCluster", TRIO, True)
            assert pod["metadata"]["labels"]["app"] == "etcd"
            [container] = [ct for ct in pod["spec"]["containers"] if ct["name"] == "etcd"]
            assert container["image"] == "quay.io/coreos/etcd:v3.5.1"
            assert any(
                v.get("persistentVolumeClaim", {}).get("claimName") == pod["metadata"]["name"]
                for v in pod["spec"]["volumes"]
            )
        headless = env.get("service", TRIO)
        client_svc = env.get("service", f"{TRIO}-client")
        assert headless is not None and headless["spec"]["clusterIP"] == "None", headless
        assert client_svc is not None and client_svc["spec"]["clusterIP"] not in ("", "None"), client_svc
        assert [p["port"] for p in client_svc["spec"]["ports"]] == [2379]
        assert {p["port"] for p in headless["spec"]["ports"]} == {2379, 2380}
        pdb = env.get("pdb", TRIO)
        assert pdb is not None and pdb["spec"]["minAvailable"] == 2, pdb
        assert pdb["spec"]["selector"]["matchLabels"] == {"app": "etcd", "etcd_cluster": TRIO}
        printed = env.ok("get", "etcd", TRIO)
        assert "3/3" in printed and "3.5.1" in printed, printed
        written = write_keys(client, "/trio/create/", 10)
        assert_keys(client, "/trio/create/", written)


def test_resize_three_to_five_to_three(etcd_env: EtcdOperatorEnv, trio: dict[str, str]) -> None:
    env = etcd_env
    with ready_trio(env, trio) as client:
        before = write_keys(client, "/trio/resize/", 20)
    started = time.monotonic()
    env.patch_spec("etcdcluster", TRIO, size=5)
    env.wait_ready(TRIO, 5, timeout=180)
    figure(f"resize 3 -> 5: {time.monotonic() - started:.1f}s")
    voters = env.voters(TRIO)
    assert len(voters) == 5 and not any(m.is_learner for m in voters), voters
    env.wait(
        "PDB minAvailable 3 at size 5", lambda: (env.get("pdb", TRIO) or {}).get("spec", {}).get("minAvailable") == 3
    )
    with env.client(TRIO) as client:
        assert_keys(client, "/trio/resize/", before)
        during = write_keys(client, "/trio/resize-5/", 10)
    started = time.monotonic()
    env.patch_spec("etcdcluster", TRIO, size=3)
    env.wait_ready(TRIO, 3, timeout=120)
    figure(f"resize 5 -> 3: {time.monotonic() - started:.1f}s")
    env.wait("3 member pods left", lambda: len(env.member_pods(TRIO)) == 3, timeout=60)
    with env.client(TRIO) as client:
        voters = client.member_list()
        assert len(voters) == 3, voters
        assert {m.name for m in voters} == {p["metadata"]["name"] for p in env.member_pods(TRIO)}
        assert_keys(client, "/trio/resize/", before)
        assert_keys(client, "/trio/resize-5/", during)
        assert_keys(client, "/trio/seed/", trio)
    env.wait(
        "PDB minAvailable 2 at size 3", lambda: (env.get("pdb", TRIO) or {}).get("spec", {}).get("minAvailable") == 2
    )


def test_killed_member_process_restarts_in_place(etcd_env: EtcdOperatorEnv, trio: dict[str, str]) -> None:
    env = etcd_env
    with ready_trio(env, trio) as client:
        before = write_keys(client, "/trio/kill/", 20)
        voters = {m.name: m.id for m in client.member_list()}
    pod = env.member_pods(TRIO)[0]
    name, uid, restarts = pod["metadata"]["name"], pod["metadata"]["uid"], restart_count(pod)
    old_pid = env.kill_member_process(name)
    started = time.monotonic()

    def restarted() -> bool:
        now = env.get("pod", name)
        return bool(now and restart_count(now) == restarts + 1 and pod_ready(now))

    env.wait(f"{name} restarted in place", restarted, timeout=90)
    env.wait_ready(TRIO, 3)
    figure(f"time to heal a killed member process (restart in place): {time.monotonic() - started:.1f}s")
    assert member_pid(name) not in (None, old_pid)
    now = env.get("pod", name)
    assert now is not None and now["metadata"]["uid"] == uid, "the pod was replaced instead of restarted"
    with env.client(TRIO) as client:
        after = {m.name: m.id for m in client.member_list()}
        assert after == voters, f"membership changed: {voters} -> {after}"
        assert_keys(client, "/trio/kill/", before)
        assert_keys(client, "/trio/seed/", trio)


def test_member_whose_data_is_lost_is_replaced(etcd_env: EtcdOperatorEnv, trio: dict[str, str]) -> None:
    env = etcd_env
    with ready_trio(env, trio) as client:
        before = write_keys(client, "/trio/lost/", 20)
        voters = {m.name: m.id for m in client.member_list()}
    victim = sorted(voters)[0]
    started = time.monotonic()
    env.delete_members_with_data(victim)

    def replaced() -> bool:
        if not env.is_ready(TRIO, 3):
            return False
        names = {m.name: m.id for m in env.voters(TRIO)}
        return victim not in names and voters[victim] not in names.values()

    env.wait(f"{victim} replaced by a new member", replaced, timeout=120)
    figure(f"time to replace a member whose data was lost: {time.monotonic() - started:.1f}s")
    with env.client(TRIO) as client:
        after = {m.name: m.id for m in client.member_list()}
        assert len(after) == 3 and set(after) - set(voters), f"{voters} -> {after}"
        assert_keys(client, "/trio/lost/", before)
        assert_keys(client, "/trio/seed/", trio)
    assert env.get("pvc", victim) is None


def kill_member_while_unattended(env: EtcdOperatorEnv) -> tuple[str, int]:
    """Delete one member's pod and PVC, wait until the pod is gone; returns its name and etcd id."""
    voters = {m.name: m.id for m in env.voters(TRIO)}
    victim = sorted(voters)[-1]
    env.delete_members_with_data(victim)
    env.wait(f"pod {victim} gone", lambda: env.get("pod", victim) is None, timeout=60)
    return victim, voters[victim]


def assert_left_alone(env: EtcdOperatorEnv, victim: str, seconds: float) -> None:
    """For ``seconds`` (several reconcile intervals): two member pods, and etcd still lists the dead member."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pods = [p["metadata"]["name"] for p in env.member_pods(TRIO)]
        assert len(pods) == 2 and victim not in pods, f"the cluster was touched: pods {pods}\n{env.report()}"
        time.sleep(0.5)
    names = [m.name for m in env.voters(TRIO)]
    assert len(names) == 3 and victim in names, f"membership changed while unattended: {names}"


def test_paused_cluster_is_left_alone_until_unpaused(etcd_env: EtcdOperatorEnv, trio: dict[str, str]) -> None:
    env = etcd_env
    with ready_trio(env, trio) as client:
        before = write_keys(client, "/trio/paused/", 20)
    env.patch_spec("etcdcluster", TRIO, paused=True)
    env.wait("status.controlPaused", lambda: env.etcd_cluster(TRIO)["status"].get("controlPaused") is True)
    victim, victim_id = kill_member_while_unattended(env)
    assert_left_alone(env, victim, seconds=4)
    with env.client(TRIO) as client:  # two of three members: quorum kept, still serving
        assert_keys(client, "/trio/paused/", before)
    env.patch_spec("etcdcluster", TRIO, paused=False)
    env.wait_ready(TRIO, 3)
    assert env.etcd_cluster(TRIO)["status"].get("controlPaused") is False
    with env.client(TRIO) as client:
        after = client.member_list()
        assert victim not in {m.name for m in after} and victim_id not in {m.id for m in after}, after
        assert_keys(client, "/trio/paused/", before)
        assert_keys(client, "/trio/seed/", trio)


def test_member_dies_while_operator_is_down(etcd_env: EtcdOperatorEnv, trio: dict[str, str]) -> None:
    env = etcd_env
    assert env.operator is not None
    with ready_trio(env, trio) as client:
        before = write_keys(client, "/trio/down/", 20)
    assert env.operator.stop() == 0
    try:
        victim, victim_id = kill_member_while_unattended(env)
        assert_left_alone(env, victim, seconds=3)
    finally:
        env.operator.start()
    started = time.monotonic()
    env.wait_ready(TRIO, 3)
    figure(f"operator restart to a healed 3-member cluster: {time.monotonic() - started:.1f}s")
    with env.client(TRIO) as client:
        after = client.member_list()
        assert victim not in {m.name for m in after} and victim_id not in {m.id for m in after}, after
        assert_keys(client, "/trio/down/", before)
        assert_keys(client, "/trio/seed/", trio)


def test_actions_are_recorded_as_events(etcd_env: EtcdOperatorEnv, trio: dict[str, str]) -> None:
    env = etcd_env
    with ready_trio(env, trio):
        pass
    events = env.events_for("EtcdCluster", TRIO)
    reasons = {e["reason"] for e in events}
    messages = " ".join(e.get("message", "") for e in events)
    assert len(events) >= 3 and len(reasons) >= 2, [(e["reason"], e.get("message")) for e in events]
    # The members made and removed by the scenarios above are named in the events.
    for pod in env.member_pods(TRIO):
        assert pod["metadata"]["name"] in messages, (pod["metadata"]["name"], messages)
    assert all((e.get("source") or {}).get("component") or e.get("reportingComponent") for e in events), events[:2]
    assert condition(env.etcd_cluster(TRIO), "Available").get("status") == "True"
