"""EtcdBackup and EtcdRestore end to end, and recovery from a lost quorum, against real etcd members.

The module's cluster is the original project's ``example-etcd-cluster.yaml`` applied unchanged; the
backup scenarios run against it in order, each writing keys before and reading them back after:
one-shot Local backup, periodic backup with retention, S3 backup (moto's server on 127.0.0.1), restore
from the one-shot backup (keys written before the backup present, keys written after it absent, the
revision moved forward), the original's backup/restore examples applied unchanged, and last the
destructive ones: two of three members lose their data (recovered, loss window reported), then all three
(recovered from the newest backup, later writes lost and counted).

The operator runs with ``AWS_ENDPOINT_URL`` pointing at the moto server: that is how the original's S3
examples, which name no endpoint, reach "S3" here without being edited.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import (
    EtcdOperatorEnv,
    assert_keys,
    condition,
    operator_env,
    write_keys,
)

NAME = "example-etcd-cluster"
CLIENT = f"http://{NAME}-client:2379"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "etcd-operator"
BUCKET = "skiff-etcd-backups"
EXAMPLE_BUCKET = "mybucket"
AWS_SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "aws"},
    "stringData": {
        "credentials": "[default]\naws_access_key_id = skiff-test\naws_secret_access_key = skiff-test-secret\n",
        "config": "[default]\nregion = us-east-1\n",
    },
}


def figure(text: str) -> None:
    print(f"FIGURE: {text}")


@dataclass
class S3Server:
    endpoint: str
    client: Any


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """moto's S3 on 127.0.0.1 (a port the kernel picks), with the test buckets made."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="skiff-test",
            aws_secret_access_key="skiff-test-secret",
            region_name="us-east-1",
        )
        for bucket in (BUCKET, EXAMPLE_BUCKET):
            client.create_bucket(Bucket=bucket)
        yield S3Server(endpoint, client)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def etcd_env(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[EtcdOperatorEnv]:
    with operator_env(tmp_path_factory.mktemp("etcdop"), {"AWS_ENDPOINT_URL": s3.endpoint}) as env:
        env.apply(AWS_SECRET)
        yield env


def example(name: str) -> str:
    return (EXAMPLES / name).read_text()


@pytest.fixture(scope="module")
def seeded(etcd_env: EtcdOperatorEnv) -> dict[str, str]:
    """The original's example cluster, applied unchanged, ready at 3 with keys written."""
    env = etcd_env
    env.ok("apply", "-f", "-", stdin=example("example-etcd-cluster.yaml"))
    env.wait_ready(NAME, 3)
    with env.client(NAME) as client:
        return write_keys(client, "/seed/", 50)


def backup_manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "etcd.database.coreos.com/v1beta2",
        "kind": "EtcdBackup",
        "metadata": {"name": name},
        "spec": spec,
    }


def wait_backup(env: EtcdOperatorEnv, name: str, timeout: float = 60) -> dict[str, Any]:
    """The EtcdBackup once status.succeeded is true; fails at once on succeeded false with a reason."""

    def done() -> dict[str, Any]:
        obj = env.get("etcdbackup", name) or {}
        status = obj.get("status") or {}
        assert not (status.get("succeeded") is False and status.get("reason")), f"backup {name} failed: {status}"
        return obj if status.get("succeeded") is True else {}

    return env.wait(f"EtcdBackup {name} succeeded", done, timeout=timeout)


@dataclass(frozen=True)
class OneShot:
    before: dict[str, str]  # written before the backup: must come back with a restore
    after: dict[str, str]  # written after it: must be gone after a restore
    revision: int
    path: str


@pytest.fixture(scope="module")
def one_shot(etcd_env: EtcdOperatorEnv, seeded: dict[str, str]) -> OneShot:
    env = etcd_env
    with env.client(NAME) as client:
        before = write_keys(client, "/before-backup/", 30)
        started = time.monotonic()
        env.apply(
            backup_manifest("once", etcdEndpoints=[CLIENT], storageType="Local", local={"path": "once/etcd.backup"})
        )
        obj = wait_backup(env, "once")
        figure(f"one-shot Local backup of a small store: {time.monotonic() - started:.1f}s")
        after = write_keys(client, "/after-backup/", 30)
    return OneShot(before, after, int(obj["status"]["etcdRevision"]), "once/etcd.backup")


def test_one_shot_local_backup(etcd_env: EtcdOperatorEnv, seeded: dict[str, str], one_shot: OneShot) -> None:
    env = etcd_env
    status = env.get("etcdbackup", "once")["status"]  # type: ignore[index]
    assert status["succeeded"] is True and status["etcdVersion"].startswith("3.5."), status
    assert status["lastSuccessDate"], status
    [record] = status["backups"]
    assert record["path"] == one_shot.path and record["revision"] == one_shot.revision, record
    file = env.backup_dir / one_shot.path
    assert file.is_file() and file.stat().st_size == record["size"] > 0, (file, record)
    with env.client(NAME) as client:
        assert one_shot.revision >= 1 + len(seeded) + len(one_shot.before)
        assert one_shot.revision < client.revision()  # the keys after it came later
        assert_keys(client, "/seed/", seeded)
        assert_keys(client, "/before-backup/", one_shot.before)
        assert_keys(client, "/after-backup/", one_shot.after)


def test_periodic_backup_keeps_the_newest_two(etcd_env: EtcdOperatorEnv, seeded: dict[str, str]) -> None:
    env = etcd_env
    stop = threading.Event()
    written: dict[str, str] = {}

    def keep_writing() -> None:
        with env.client(NAME) as client:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                key = f"/periodic/{len(written):05d}"
                client.put(key, "x")
                written[key] = "x"
                time.sleep(0.05)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    seen: set[int] = set()
    try:
        policy = {"backupIntervalInSecond": 1, "maxBackups": 2}
        env.apply(
            backup_manifest(
                "every",
                etcdEndpoints=[CLIENT],
                storageType="Local",
                local={"path": "periodic/etcd.backup"},
                backupPolicy=policy,
            )
        )

        def four_taken() -> bool:
            status = (env.get("etcdbackup", "every") or {}).get("status") or {}
            seen.update(int(r["revision"]) for r in status.get("backups") or [])
            return len(seen) >= 4

        env.wait("four periodic backups taken", four_taken, timeout=60)

        def consistent() -> list[dict[str, Any]]:
            """status.backups and the files on disk agree (between two backups, one a second)."""
            status = (env.get("etcdbackup", "every") or {}).get("status") or {}
            records: list[dict[str, Any]] = status.get("backups") or []
            on_disk = {p.name for p in (env.backup_dir / "periodic").iterdir() if not p.name.startswith(".")}
            return records if {r["path"].rsplit("/", 1)[-1] for r in records} == on_disk else []

        records = env.wait("status.backups to match the files kept", consistent, timeout=30, interval=0.2)
    finally:
        stop.set()
        writer.join()
    env.ok("delete", "etcdbackup", "every")
    env.wait("the periodic backup to stop", lambda: env.get("etcdbackup", "every") is None, timeout=30)
    seen.update(int(r["revision"]) for r in records)
    names = [r["path"].rsplit("/", 1)[-1] for r in records]
    assert len(records) == 2, f"maxBackups 2, status.backups lists {names}"
    assert all(re.fullmatch(r"etcd\.backup_v\d+_\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d", n) for n in names), names
    # Newest first, by revision (the original sorted names as strings: _v100_ below _v99_), and the newest two.
    revisions = [int(r["revision"]) for r in records]
    assert revisions == sorted(seen, reverse=True)[:2], f"kept {revisions}, taken {sorted(seen)}: not the newest two"
    assert revisions[0] > revisions[1], revisions
    assert all(f"_v{rev}_" in name for rev, name in zip(revisions, names, strict=True)), (revisions, names)
    with env.client(NAME) as client:
        assert_keys(client, "/periodic/", written)
        assert_keys(client, "/seed/", seeded)


def test_s3_backup(etcd_env: EtcdOperatorEnv, seeded: dict[str, str], s3: S3Server) -> None:
    env = etcd_env
    with env.client(NAME) as client:
        before = write_keys(client, "/s3/", 20)
    s3_spec = {
        "path": f"{BUCKET}/{NAME}/etcd.backup",
        "awsSecret": "aws",
        "endpoint": s3.endpoint,
        "forcePathStyle": True,
    }
    env.apply(backup_manifest("to-s3", etcdEndpoints=[CLIENT], storageType="S3", s3=s3_spec))
    status = wait_backup(env, "to-s3")["status"]
    head = s3.client.head_object(Bucket=BUCKET, Key=f"{NAME}/etcd.backup")
    assert head["ContentLength"] == status["backups"][0]["size"] > 0, (head, status)
    assert status["backups"][0]["path"] == f"{BUCKET}/{NAME}/etcd.backup"
    with env.client(NAME) as client:
        assert_keys(client, "/s3/", before)
        assert_keys(client, "/seed/", seeded)


def restore_manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "etcd.database.coreos.com/v1beta2",
        "kind": "EtcdRestore",
        "metadata": {"name": name},
        "spec": {"etcdCluster": {"name": NAME}, **spec},
    }


def wait_restore(env: EtcdOperatorEnv, name: str, timeout: float = 150) -> dict[str, Any]:
    """The EtcdRestore once succeeded; at that moment the cluster must already be healthy at its size."""

    def done() -> dict[str, Any]:
        obj = env.get("etcdrestore", name) or {}
        status = obj.get("status") or {}
        assert status.get("phase") != "Failed", f"restore {name} failed: {status}\n{env.report()}"
        if status.get("succeeded") is True:
            assert env.is_ready(NAME, 3), f"restore {name} succeeded before the cluster was healthy\n{env.report()}"
            return obj
        return {}

    return env.wait(f"EtcdRestore {name} succeeded", done, timeout=timeout)


def test_restore_from_one_shot_backup(etcd_env: EtcdOperatorEnv, seeded: dict[str, str], one_shot: OneShot) -> None:
    env = etcd_env
    env.wait_ready(NAME, 3)
    with env.client(NAME) as client:
        revision_before = client.revision()
        old_members = {m.name for m in client.member_list()}
    started = time.monotonic()
    env.apply(restore_manifest("from-once", backupStorageType="Local", local={"path": one_shot.path}))
    obj = wait_restore(env, "from-once")
    figure(f"restore of a small store into a 3-member cluster: {time.monotonic() - started:.1f}s")
    assert obj["status"].get("restoredRevision") == one_shot.revision, obj["status"]
    env.wait_ready(NAME, 3)
    with env.client(NAME) as client:
        members = client.member_list()
        assert len(members) == 3 and not {m.name for m in members} & old_members, (old_members, members)
        assert_keys(client, "/seed/", seeded)
        assert_keys(client, "/before-backup/", one_shot.before)
        assert_keys(client, "/after-backup/", {})
        revision_after = client.revision()
        assert revision_after > revision_before, f"revision went back: {revision_before} -> {revision_after}"
        after_restore = write_keys(client, "/after-restore/", 10)
        assert_keys(client, "/after-restore/", after_restore)


def test_original_backup_and_restore_examples_apply_unchanged(
    etcd_env: EtcdOperatorEnv, seeded: dict[str, str], s3: S3Server
) -> None:
    env = etcd_env
    env.wait_ready(NAME, 3)
    with env.client(NAME) as client:
        before = write_keys(client, "/examples/", 20)
    backups = ("example-etcd-backup-local.yaml", "example-etcd-backup.yaml", "example-etcd-periodic-backup.yaml")
    names = [yaml.safe_load(example(manifest))["metadata"]["name"] for manifest in backups]
    try:
        for manifest, name in zip(backups, names, strict=True):
            env.ok("apply", "-f", "-", stdin=example(manifest))
            status = wait_backup(env, name)["status"]
            print(f"{manifest}: {status['backups'][0]}")
    finally:
        # The periodic ones would fire again later and become the newest recovery source of the tests below.
        env.ok("delete", "etcdbackup", *names, "--ignore-not-found", "--wait=false")
    local_files = list((env.backup_dir / NAME).glob("etcd.backup*"))
    assert local_files, f"the Local example wrote nothing under {env.backup_dir / NAME}"
    assert s3.client.head_object(Bucket=EXAMPLE_BUCKET, Key="etcd.backup")["ContentLength"] > 0
    periodic = s3.client.list_objects_v2(Bucket=EXAMPLE_BUCKET, Prefix="etcd.backup_v")
    assert periodic.get("KeyCount") == 1, periodic.get("Contents")
    with env.client(NAME) as client:
        write_keys(client, "/examples-after/", 10)
    env.ok("apply", "-f", "-", stdin=example("example-etcd-restore.yaml"))
    wait_restore(env, NAME)
    env.wait_ready(NAME, 3)
    with env.client(NAME) as client:
        assert_keys(client, "/examples/", before)
        assert_keys(client, "/examples-after/", {})
        assert_keys(client, "/seed/", seeded)
    # example-etcd-restore-local.yaml restores the path the Local backup example writes to.
    restore_local = yaml.safe_load(example("example-etcd-restore-local.yaml"))["spec"]["local"]["path"]
    backup_local = yaml.safe_load(example("example-etcd-backup-local.yaml"))["spec"]["local"]["path"]
    assert restore_local == backup_local and (env.backup_dir / restore_local).is_file(), (
        f"the Local restore example names {restore_local}; the Local backup example wrote {sorted(local_files)}"
    )


def members_by_name(env: EtcdOperatorEnv) -> dict[str, int]:
    return {m.name: m.id for m in env.voters(NAME)}


def wait_recovered(env: EtcdOperatorEnv, since: str) -> tuple[dict[str, Any], bool]:
    """Condition Recovering False reason Recovered with a transition after ``since``; and whether True was seen."""
    seen_recovering = False

    def recovered() -> dict[str, Any]:
        nonlocal seen_recovering
        obj = env.etcd_cluster(NAME)
        cond = condition(obj, "Recovering")
        seen_recovering |= cond.get("status") == "True"
        fresh = cond.get("lastTransitionTime", "") > since
        return obj if cond.get("status") == "False" and cond.get("reason") == "Recovered" and fresh else {}

    obj = env.wait("Recovering False reason Recovered", recovered, timeout=150)
    return obj, seen_recovering


LOSS = re.compile(r"restored from (?P<source>.+) at revision (?P<revision>\d+)")


def take_recovery_backup(env: EtcdOperatorEnv, name: str) -> int:
    env.apply(
        backup_manifest(name, etcdCluster={"name": NAME}, storageType="Local", local={"path": f"{name}/etcd.backup"})
    )
    return int(wait_backup(env, name)["status"]["etcdRevision"])


def assert_recovery_events(env: EtcdOperatorEnv, recovery: dict[str, Any], seen_recovering: bool) -> None:
    """Recovering True was observed, or at least the QuorumLost event that starts it; and a Recovered event."""
    events = env.events_for("EtcdCluster", NAME)
    started = [e for e in events if e["reason"] == "QuorumLost" and recovery["source"] in e.get("message", "")]
    finished = [e for e in events if e["reason"] == "Recovered" and recovery["source"] in e.get("message", "")]
    assert started and finished, [(e["reason"], e.get("message")) for e in events]
    assert seen_recovering or started[0]["type"] == "Warning", started


def a_second_ago() -> str:
    """RFC 3339 (seconds), comparable with a condition's lastTransitionTime: the API server shares our clock."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))


def test_two_of_three_members_lost_recovers(etcd_env: EtcdOperatorEnv, seeded: dict[str, str]) -> None:
    env = etcd_env
    env.wait_ready(NAME, 3)
    with env.client(NAME) as client:
        before = write_keys(client, "/before-loss/", 20)
    backup_revision = take_recovery_backup(env, "before-loss")
    with env.client(NAME) as client:
        later = write_keys(client, "/after-loss-backup/", 20)
        last_written = client.revision()
    env.wait(
        "the operator to observe the latest revision",
        lambda: int((env.etcd_cluster(NAME).get("status") or {}).get("revision") or 0) >= last_written,
        timeout=30,
    )
    since = a_second_ago()
    started = time.monotonic()
    env.delete_members_with_data(*sorted(members_by_name(env))[:2], frozen_first=True)
    obj, seen_recovering = wait_recovered(env, since)
    env.wait_ready(NAME, 3, timeout=150)
    figure(f"recovery from losing 2 of 3 members (grace 5s included): {time.monotonic() - started:.1f}s")
    recovery = obj["status"]["recovery"]
    message = condition(obj, "Recovering")["message"]
    print(f"2 of 3 lost: {message}; recovery {recovery}; Recovering True seen: {seen_recovering}")
    match = LOSS.search(message)
    assert match and int(match.group("revision")) == recovery["revision"], (message, recovery)
    assert_recovery_events(env, recovery, seen_recovering)
    for field in ("source", "revision", "lastObservedRevision", "lostRevisions", "time"):
        assert field in recovery, (field, recovery)
    assert recovery["lastObservedRevision"] >= last_written, recovery
    with env.client(NAME) as client:
        assert_keys(client, "/seed/", seeded)
        assert_keys(client, "/before-loss/", before)
        if recovery["source"].startswith("backup"):  # only the backup's data is left
            assert recovery["revision"] == backup_revision
            assert_keys(client, "/after-loss-backup/", {})
            assert recovery["lostRevisions"] == recovery["lastObservedRevision"] - backup_revision > 0, recovery
            assert "are lost" in message
        else:  # the survivor had everything: nothing lost
            assert_keys(client, "/after-loss-backup/", later)
            assert recovery["revision"] >= last_written and recovery["lostRevisions"] == 0, recovery
        assert client.revision() > recovery["lastObservedRevision"], "no revision bump after the rebuild"


def test_all_members_lost_recovers_from_the_newest_backup(etcd_env: EtcdOperatorEnv, seeded: dict[str, str]) -> None:
    env = etcd_env
    env.wait_ready(NAME, 3)
    with env.client(NAME) as client:
        before = write_keys(client, "/before-total-loss/", 20)
    backup_revision = take_recovery_backup(env, "before-total-loss")
    with env.client(NAME) as client:
        write_keys(client, "/lost-with-the-members/", 20)
        last_written = client.revision()
    env.wait(
        "the operator to observe the latest revision",
        lambda: int((env.etcd_cluster(NAME).get("status") or {}).get("revision") or 0) >= last_written,
        timeout=30,
    )
    since = a_second_ago()
    started = time.monotonic()
    env.delete_members_with_data(*members_by_name(env))
    obj, seen_recovering = wait_recovered(env, since)
    env.wait_ready(NAME, 3, timeout=150)
    figure(f"recovery from losing all 3 members from a backup (grace 5s included): {time.monotonic() - started:.1f}s")
    recovery = obj["status"]["recovery"]
    message = condition(obj, "Recovering")["message"]
    print(f"3 of 3 lost: {message}; recovery {recovery}")
    assert recovery["source"] == "backup before-total-loss/etcd.backup", recovery
    assert recovery["revision"] == backup_revision, recovery
    lost = last_written - backup_revision
    assert recovery["lostRevisions"] == lost > 0, (recovery, last_written)
    assert f"revisions {backup_revision + 1}..{last_written} ({lost}) written after it are lost" in message, message
    assert_recovery_events(env, recovery, seen_recovering)
    with env.client(NAME) as client:
        assert_keys(client, "/seed/", seeded)
        assert_keys(client, "/before-total-loss/", before)
        assert_keys(client, "/lost-with-the-members/", {})
        assert client.revision() > last_written, "revision went back after the rebuild"
