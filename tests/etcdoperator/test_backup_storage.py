"""Backup storages (Local, S3 through moto on loopback), periodic names and numeric retention."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from skiff.etcdoperator.backup_storage import (
    BackupNotFound,
    BackupRecord,
    LocalStorage,
    S3Credentials,
    S3Storage,
    StorageSpecError,
    UnsupportedStorage,
    is_periodic_of,
    parse_periodic,
    periodic_name,
    retained,
    secret_text,
    storage_for,
)

WHEN = datetime(2026, 11, 26, 23, 59, 1, tzinfo=UTC)


# -- names and retention --------------------------------------------------------------------------------


def test_periodic_name_is_the_original_format() -> None:
    assert periodic_name("bucket/etcd.db", 42, WHEN) == "bucket/etcd.db_v42_2026-11-26-23:59:01"
    assert parse_periodic("bucket/etcd.db_v42_2026-11-26-23:59:01") == (42, WHEN)
    assert parse_periodic("bucket/etcd.db") is None


def test_is_periodic_of_matches_only_its_own_path() -> None:
    assert is_periodic_of("b/etcd_v1_2026-11-26-23:59:01", "b/etcd")
    assert not is_periodic_of("b/etcd-other_v1_2026-11-26-23:59:01", "b/etcd")
    assert not is_periodic_of("b/etcd_v1_2026-11-26-23:59:01.partial", "b/etcd")


def name(revision: int, second: int = 0) -> str:
    return periodic_name("b/etcd", revision, WHEN.replace(second=second))


@pytest.mark.parametrize(
    ("names", "max_backups", "keep", "delete"),
    [
        pytest.param(
            [name(98), name(99), name(100), name(101)],
            2,
            [name(101), name(100)],
            [name(99), name(98)],
            id="v99-to-v100-digit-boundary",  # coreos/etcd-operator#2113: strings sort v100 < v99
        ),
        pytest.param([name(999), name(1000), name(9)], 1, [name(1000)], [name(999), name(9)], id="v999-to-v1000"),
        pytest.param(
            [name(7, 5), name(7, 30), name(7, 10)],
            2,
            [name(7, 30), name(7, 10)],
            [name(7, 5)],
            id="equal-revisions-by-time",
        ),
        pytest.param([name(1), name(2)], 0, [name(2), name(1)], [], id="zero-is-unlimited"),
        pytest.param([name(1), name(2)], 5, [name(2), name(1)], [], id="fewer-than-max"),
        pytest.param(["b/etcd", name(3), name(4)], 1, [name(4)], [name(3)], id="foreign-names-untouched"),
        pytest.param([name(3), name(3)], 1, [name(3)], [], id="duplicates-once"),
    ],
)
def test_retained_orders_by_parsed_revision_then_time(
    names: list[str], max_backups: int, keep: list[str], delete: list[str]
) -> None:
    assert retained(names, max_backups) == (keep, delete)


def test_record_status_round_trip() -> None:
    record = BackupRecord("b/etcd.db", 12, "3.5.1", 24576, "2026-11-26T23:59:01Z", 3735928559)
    doc = record.to_status()
    assert doc == {
        "path": "b/etcd.db",
        "revision": 12,
        "etcdVersion": "3.5.1",
        "size": 24576,
        "time": "2026-11-26T23:59:01Z",
        "hash": "3735928559",
    }
    assert BackupRecord.from_status(doc) == record
    assert BackupRecord.from_status({**doc, "hash": 3735928559}) == record


# -- Local ----------------------------------------------------------------------------------------------


async def test_local_save_fetch_list_delete(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    storage = LocalStorage(root)
    source = tmp_path / "snap.db"
    source.write_bytes(b"snapshot-bytes")
    stored = await storage.save(source, "team/etcd.db_v5_2026-11-26-23:59:01")
    assert stored == "team/etcd.db_v5_2026-11-26-23:59:01"
    assert (root / stored).read_bytes() == b"snapshot-bytes"
    await storage.save(source, "team/etcd.db_v6_2026-11-26-23:59:02")
    await storage.save(source, "other/etcd.db")
    (root / "team" / ".etcd.db_v7_x.partial").write_bytes(b"half")  # an interrupted save is never listed

    assert sorted(await storage.list("team/etcd.db_v")) == [
        "team/etcd.db_v5_2026-11-26-23:59:01",
        "team/etcd.db_v6_2026-11-26-23:59:02",
    ]
    assert sorted(await storage.list("")) == sorted(
        ["team/etcd.db_v5_2026-11-26-23:59:01", "team/etcd.db_v6_2026-11-26-23:59:02", "other/etcd.db"]
    )
    assert await storage.list("missing/dir/x") == []

    dest = tmp_path / "restored.db"
    await storage.fetch(stored, dest)
    assert dest.read_bytes() == b"snapshot-bytes"

    await storage.delete(stored)
    await storage.delete(stored)  # absent is fine
    assert not (root / stored).exists()
    with pytest.raises(BackupNotFound):
        await storage.fetch(stored, dest)


@pytest.mark.parametrize("bad", ["/etc/passwd", "../escape.db", "a/../../b", "", "dir/"])
def test_local_rejects_paths_outside_the_root(tmp_path: Path, bad: str) -> None:
    with pytest.raises(StorageSpecError) as caught:
        LocalStorage(tmp_path).resolve(bad)
    assert isinstance(caught.value, ValueError)
    assert caught.value.reason


async def test_storage_for_local_and_unsupported(tmp_path: Path) -> None:
    storage, path = await storage_for(None, "ns", "Local", {"path": "./x//etcd.db"}, local_root=tmp_path)  # type: ignore[arg-type]
    assert isinstance(storage, LocalStorage) and path == "x/etcd.db"
    with pytest.raises(StorageSpecError, match=r"\.\."):
        await storage_for(None, "ns", "", {"path": "../etcd.db"}, local_root=tmp_path)  # type: ignore[arg-type]
    for kind in ("ABS", "GCS", "OSS"):
        with pytest.raises(UnsupportedStorage, match=kind):
            await storage_for(None, "ns", kind, {"path": "c/b"}, local_root=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(StorageSpecError, match="backup directory"):
        await storage_for(None, "ns", "Local", {"path": "x"}, local_root=None)  # type: ignore[arg-type]


# -- S3 (moto on 127.0.0.1) -----------------------------------------------------------------------------

CREDENTIALS = "[default]\naws_access_key_id = AKIDTEST\naws_secret_access_key = secret-test\n"
CONFIG = "[default]\nregion = eu-west-1\n"


def secret(data: dict[str, str]) -> dict[str, Any]:
    """A Secret as the API returns it: base64 data."""
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


class FakeSecrets:
    """The one API call storage_for makes for S3: GET the awsSecret."""

    def __init__(self, secrets: dict[str, dict[str, Any]]) -> None:
        self.secrets = secrets

    async def get(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        assert res.plural == "secrets" and namespace == "ns"
        return self.secrets[name]


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_credentials_from_secret_files() -> None:
    creds = S3Credentials.from_files(CREDENTIALS, CONFIG)
    assert (creds.access_key_id, creds.secret_access_key, creds.region) == ("AKIDTEST", "secret-test", "eu-west-1")
    assert S3Credentials.from_files(CREDENTIALS, "[profile default]\nregion = ap-south-1\n").region == "ap-south-1"
    assert S3Credentials.from_files(CREDENTIALS).region == "us-east-1"
    with pytest.raises(StorageSpecError, match="default"):
        S3Credentials.from_files("[other]\naws_access_key_id = x\naws_secret_access_key = y\n")
    assert secret_text(secret({"credentials": CREDENTIALS})) == {"credentials": CREDENTIALS}


async def test_s3_save_fetch_list_delete(moto_endpoint: str, tmp_path: Path) -> None:
    client: Any = FakeSecrets({"aws": secret({"credentials": CREDENTIALS, "config": CONFIG})})
    section = {
        "path": "etcd-backups/team/etcd.db",
        "awsSecret": "aws",
        "endpoint": moto_endpoint,
        "forcePathStyle": True,
    }
    storage, path = await storage_for(client, "ns", "S3", section, local_root=None)
    assert isinstance(storage, S3Storage) and path == "etcd-backups/team/etcd.db"
    storage._s3.create_bucket(Bucket="etcd-backups", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})

    source = tmp_path / "snap.db"
    source.write_bytes(b"\x00snapshot\xff" * 1000)
    names = [periodic_name(path, rev, WHEN.replace(second=rev - 90)) for rev in (99, 100, 101)]
    for target in names:
        assert await storage.save(source, target) == target
    await storage.save(source, "etcd-backups/team/etcd.db-other_v1_2026-11-26-23:59:01")

    listed = [n for n in await storage.list(f"{path}_v") if is_periodic_of(n, path)]
    assert sorted(listed) == sorted(names)
    keep, delete = retained(listed, 2)
    assert keep == [names[2], names[1]] and delete == [names[0]]
    for victim in delete:
        await storage.delete(victim)
    assert sorted(await storage.list(f"{path}_v")) == sorted(keep)

    dest = tmp_path / "fetched.db"
    await storage.fetch(keep[0], dest)
    assert dest.read_bytes() == source.read_bytes()
    with pytest.raises(BackupNotFound):
        await storage.fetch(names[0], tmp_path / "gone.db")
    await storage.delete(names[0])  # absent is fine


async def test_s3_spec_errors(tmp_path: Path) -> None:
    client: Any = FakeSecrets({"empty": secret({"config": CONFIG})})
    with pytest.raises(StorageSpecError, match="awsSecret"):
        await storage_for(client, "ns", "S3", {"path": "b/k"}, local_root=None)
    with pytest.raises(StorageSpecError, match="bucket"):
        await storage_for(client, "ns", "S3", {"path": "only-bucket", "awsSecret": "empty"}, local_root=None)
    with pytest.raises(StorageSpecError, match="credentials"):
        await storage_for(client, "ns", "S3", {"path": "b/k", "awsSecret": "empty"}, local_root=None)
