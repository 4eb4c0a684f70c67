"""Rolling upgrade 3.4.23 -> 3.5.1 under a continuous writer, and the versions the operator must refuse.

While the operator rolls the members, a writer thread keeps putting keys (retrying on another member
when one fails, counting every failed attempt) and a monitor samples every member's Maintenance.Status
twice a second.  Afterwards every acknowledged write must be readable and no sample may show more than
one member unavailable (the roll is one member at a time, gated on health).  The figures (duration,
writes acknowledged / failed attempts) are printed with a ``FIGURE:`` prefix for the closing note.

Then the policy: a downgrade and a skipped minor are refused with condition Upgrading False reason
UpgradeRefused and the pods untouched; a version allowed by policy but with no etcd build on the node
(3.6.0) is reported on the EtcdCluster while the cluster keeps serving.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from operator_harness import (
    EtcdOperatorEnv,
    MemberClient,
    assert_keys,
    condition,
    etcd_cluster_manifest,
    etcd_env,
    write_keys,
)

__all__ = ["etcd_env"]

NAME = "rolling"
FROM, TO = "3.4.23", "3.5.1"
UPGRADE_DEADLINE_S = 150.0
SAMPLE_EVERY_S = 0.5


def figure(text: str) -> None:
    print(f"FIGURE: {text}")


@dataclass
class Writer:
    """Puts ``/upgrade/NNNNNN`` keys one after another; a failed put is retried on the next member."""

    env: EtcdOperatorEnv
    acked: dict[str, str] = field(default_factory=dict)
    failed_attempts: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        client = MemberClient(self.env.endpoints(NAME))
        deadline = time.monotonic() + UPGRADE_DEADLINE_S + 30
        turn = 0
        try:
            while not self.stop.is_set() and time.monotonic() < deadline:
                key, value = f"/upgrade/{len(self.acked):06d}", f"v{len(self.acked)}"
                endpoint = client.endpoints[turn % len(client.endpoints)]
                try:
                    client.put_once(endpoint, key, value)
                except grpc.RpcError as err:
                    self.failed_attempts += 1
                    self.errors.append(f"{endpoint}: {err.code()}")
                    turn += 1
                    if self.failed_attempts % len(client.endpoints) == 0:  # a full round failed: members moved?
                        client.close()
                        client = MemberClient(self.env.endpoints(NAME) or client.endpoints)
                        time.sleep(0.2)
                    continue
                self.acked[key] = value
                time.sleep(0.02)
        finally:
            client.close()


@dataclass(frozen=True)
class Sample:
    at: float
    #: member name -> the version its Status reported, or why it did not answer
    members: dict[str, str]

    @property
    def unavailable(self) -> list[str]:
        return sorted(name for name, version in self.members.items() if not version[:1].isdigit())


@dataclass
class Monitor:
    """Every 0.5 s: etcd's member list, then Maintenance.Status of every member at once (2 s deadline).

    A member counts as available when it answers (as itself: the reply's member id) at any of its addresses:
    the client URLs etcd lists for it, or its pod's current IP (a recreated pod may have a new IP that
    etcd has not published yet; it serves all the same).
    """

    env: EtcdOperatorEnv
    size: int
    samples: list[Sample] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    #: Every address of the last sample (pod IPs and etcd's client URLs): where the next one starts.
    last_urls: list[str] = field(default_factory=list)

    def run(self) -> None:
        endpoints = self.env.endpoints(NAME)
        while not self.stop.is_set():
            # Fresh channels every sample: a cached channel still backing off from a member's restart would
            # fail the call at once although the member is serving again.
            with MemberClient(endpoints) as client:
                self.samples.append(self.sample(client))
            endpoints = self.last_urls or endpoints
            self.stop.wait(SAMPLE_EVERY_S)

    def sample(self, client: MemberClient) -> Sample:
        now = time.time()
        pod_ips = {
            p["metadata"]["name"]: f"{p['status']['podIP']}:2379"
            for p in self.env.member_pods(NAME)
            if (p.get("status") or {}).get("podIP")
        }
        client.endpoints = sorted(set(pod_ips.values()) | set(client.endpoints))
        try:
            members = client.member_list(timeout=1)
        except AssertionError as err:
            return Sample(now, {f"member {i}": f"no member list: {err}" for i in range(self.size)})
        futures: dict[str, list[tuple[int, Any]]] = {}
        for m in members:
            urls = {u.removeprefix("http://") for u in m.client_urls} | (
                {pod_ips[m.name]} if m.name in pod_ips else set()
            )
            futures[m.name or str(m.id)] = [(m.id, client.status_future(u, timeout=2.0)) for u in urls]
        listed = {u.removeprefix("http://") for m in members for u in m.client_urls}
        self.last_urls = sorted(listed | set(pod_ips.values()))
        answers: dict[str, str] = {}
        for name, pending in futures.items():
            answers[name] = "no address"
            for member_id, future in pending:
                try:
                    reply = future.result()
                except grpc.RpcError as err:
                    answers[name] = f"unavailable: {err.code()}"
                    continue
                if int(reply.header.member_id) == member_id:
                    answers[name] = str(reply.version)
                    break
        return Sample(now, answers)


def member_versions(env: EtcdOperatorEnv) -> list[str]:
    with env.client(NAME) as client:
        versions = []
        for endpoint in client.endpoints:
            try:
                versions.append(str(client.status(endpoint).version))
            except grpc.RpcError:
                versions.append("unavailable")
        return versions


def pod_versions(env: EtcdOperatorEnv) -> list[tuple[str, str]]:
    """(image, etcd.version annotation) of each member pod."""
    return [
        (
            next(c["image"] for c in p["spec"]["containers"] if c["name"] == "etcd"),
            p["metadata"].get("annotations", {}).get("etcd.version", ""),
        )
        for p in env.member_pods(NAME)
    ]


@dataclass
class UpgradeRun:
    seeded: dict[str, str]
    writer: Writer
    monitor: Monitor
    duration: float


@pytest.fixture(scope="module")
def upgraded(etcd_env: EtcdOperatorEnv) -> Iterator[UpgradeRun]:
    """A 3-member 3.4.23 cluster rolled to 3.5.1 while the writer and the monitor run; what they saw."""
    env = etcd_env
    env.apply(etcd_cluster_manifest(NAME, 3, version=FROM, repository="quay.io/coreos/etcd"))
    obj = env.wait_ready(NAME, 3)
    assert obj["status"]["currentVersion"] == FROM, obj["status"]
    assert set(member_versions(env)) == {FROM}
    with env.client(NAME) as client:
        seeded = write_keys(client, "/seed/", 50)

    writer, monitor = Writer(env), Monitor(env, 3)
    threads = [threading.Thread(target=writer.run, name="writer"), threading.Thread(target=monitor.run, name="monitor")]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        time.sleep(2)  # some writes against the old version first
        env.patch_spec("etcdcluster", NAME, version=TO)

        def rolled() -> bool:
            status = env.etcd_cluster(NAME).get("status") or {}
            if status.get("currentVersion") != TO:
                return False
            return all(v.startswith("3.5.") for v in member_versions(env)) and env.is_ready(NAME, 3)

        env.wait(f"every member at {TO}", rolled, timeout=UPGRADE_DEADLINE_S, interval=0.3)
        duration = time.monotonic() - started - 2
        time.sleep(2)  # and some writes against the new version
    finally:
        writer.stop.set()
        monitor.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    yield UpgradeRun(seeded, writer, monitor, duration)


def test_rolling_upgrade_keeps_every_acknowledged_write(etcd_env: EtcdOperatorEnv, upgraded: UpgradeRun) -> None:
    env, writer, monitor = etcd_env, upgraded.writer, upgraded.monitor
    total = len(writer.acked) + writer.failed_attempts
    worst = max((len(s.unavailable) for s in monitor.samples), default=0)
    figure(f"rolling upgrade {FROM} -> {TO} of 3 members: {upgraded.duration:.1f}s")
    figure(
        f"writes during the upgrade: {len(writer.acked)} acknowledged, {writer.failed_attempts} failed attempts "
        f"(retried on another member), {writer.failed_attempts / max(total, 1):.2%} of {total} attempts"
    )
    figure(f"member availability during the upgrade: {len(monitor.samples)} samples, at most {worst} unavailable")
    bad = [s for s in monitor.samples if len(s.unavailable) > 1]
    timeline = "\n".join(
        f"{time.strftime('%H:%M:%S', time.gmtime(s.at))}.{int(s.at % 1 * 1000):03d} {s.members}"
        for s in monitor.samples
    )
    assert not bad, f"more than one member unavailable at once: {bad[:10]}\nsamples:\n{timeline}\n{env.report()}"
    assert len(writer.acked) > 50, f"the writer hardly wrote: {len(writer.acked)} ({writer.errors[-5:]})"
    with env.client(NAME) as client:
        found = client.get_prefix("/upgrade/")
        lost = sorted(k for k, v in writer.acked.items() if found.get(k) != v)
        assert not lost, f"{len(lost)} acknowledged writes not readable after the upgrade: {lost[:10]}"
        assert_keys(client, "/seed/", upgraded.seeded)
    obj = env.etcd_cluster(NAME)
    assert obj["status"]["currentVersion"] == TO
    assert condition(obj, "Available").get("status") == "True"
    assert condition(obj, "Upgrading").get("status") != "True", condition(obj, "Upgrading")
    assert all(image == f"quay.io/coreos/etcd:v{TO}" and note == TO for image, note in pod_versions(env))
    assert set(member_versions(env)) == {TO}
    assert len(env.voters(NAME)) == 3


def refused(env: EtcdOperatorEnv, version: str) -> str:
    """Ask for ``version``; returns how it was refused (the API's validation or the operator's condition)."""
    code, _, err = env.kubectl(
        "patch", "etcdcluster", NAME, "--type", "merge", "-p", f'{{"spec":{{"version":"{version}"}}}}'
    )
    if code != 0:
        assert version in err, f"patch to {version} failed for another reason: {err}"
        return f"rejected by the API server: {err.strip()}"

    def refusal() -> dict[str, Any]:
        cond = condition(env.etcd_cluster(NAME), "Upgrading")
        return cond if cond.get("reason") == "UpgradeRefused" and version in cond.get("message", "") else {}

    cond = env.wait(f"the upgrade to {version} refused", refusal, timeout=30)
    assert cond["status"] == "False" and TO in cond["message"], cond
    return f"condition Upgrading False UpgradeRefused: {cond['message']}"


def assert_untouched(env: EtcdOperatorEnv, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert all(image.endswith(f":v{TO}") for image, _ in pod_versions(env)), pod_versions(env)
        time.sleep(0.5)
    assert set(member_versions(env)) == {TO}
    assert len(env.voters(NAME)) == 3


def test_backward_and_skipped_versions_are_refused(etcd_env: EtcdOperatorEnv, upgraded: UpgradeRun) -> None:
    env = etcd_env
    try:
        for version in (FROM, "3.7.0"):
            how = refused(env, version)
            print(f"{version}: {how}")
            assert_untouched(env, seconds=3)
            with env.client(NAME) as client:
                written = write_keys(client, f"/refused-{version}/", 10)
                assert_keys(client, f"/refused-{version}/", written)
    finally:
        env.patch_spec("etcdcluster", NAME, version=TO)
    env.wait_ready(NAME, 3)
    with env.client(NAME) as client:
        assert_keys(client, "/seed/", upgraded.seeded)


def test_version_without_a_local_build_is_reported_and_the_cluster_keeps_serving(
    etcd_env: EtcdOperatorEnv, upgraded: UpgradeRun
) -> None:
    """3.6.0 is one minor up (allowed by policy) but no etcd 3.6 is installed: a clear condition, no outage."""
    env = etcd_env
    missing = "3.6.0"
    env.wait_ready(NAME, 3)
    try:
        env.patch_spec("etcdcluster", NAME, version=missing)

        def reported() -> dict[str, Any]:
            obj = env.etcd_cluster(NAME)
            for cond in (obj.get("status") or {}).get("conditions") or []:
                if missing in cond.get("message", "") and cond["type"] in ("Upgrading", "Degraded"):
                    if cond["type"] == "Degraded" or cond["status"] == "False":
                        return dict(cond)
            return {}

        cond = env.wait(f"a condition naming {missing}", reported, timeout=60)
        print(f"{missing}: condition {cond}")
        events = [e for e in env.events_for("EtcdCluster", NAME) if missing in e.get("message", "")]
        assert events, "no Event names the unavailable version"
        healthy = [v for v in member_versions(env) if v.startswith("3.5.")]
        assert len(healthy) >= 2, f"the cluster lost quorum over a missing build: {member_versions(env)}"
        with env.client(NAME) as client:
            written = write_keys(client, "/missing-build/", 10)
            assert_keys(client, "/missing-build/", written)
    finally:
        env.patch_spec("etcdcluster", NAME, version=TO)
    # Setting the version back is how a person undoes a failed upgrade: the stuck member must come back.
    env.wait(
        f"all three members back at {TO} after the failed upgrade was undone",
        lambda: sorted(member_versions(env)) == [TO] * 3,
        timeout=60,
    )
    env.wait_ready(NAME, 3)
    with env.client(NAME) as client:
        assert_keys(client, "/seed/", upgraded.seeded)
