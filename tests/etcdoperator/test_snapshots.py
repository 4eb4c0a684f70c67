"""Snapshots streamed by EtcdClient.snapshot and checked by verify_snapshot, with real etcd 3.4 and 3.5.

Each version's snapshot is verified with etcdutl (3.5.1) and with 3.4's
``etcdctl snapshot status`` (the fallback when no etcdutl is installed), and
the same bad files fail with both tools.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from conftest import ETCD_VERSIONS, etcd_binary
from skiff.etcdoperator.etcdclient import EtcdClient, EtcdError
from skiff.etcdoperator.snapshots import SnapshotError, SnapshotInfo, verify_snapshot
from skiff.store.etcd_process import EtcdMember, free_ports

pytestmark = pytest.mark.timeout(60)
KEYS = 50


async def take_snapshot(version: str, base: Path) -> tuple[Path, int]:
    async with await EtcdMember.start(etcd_binary(version), base / "etcd") as member:
        async with EtcdClient(member.client_url) as client:
            for i in range(KEYS):
                revision = await client.put(f"/registry/k{i:03}", b"v" * 1000)
            dest = base / "backup.db"
            size = await client.snapshot(dest)
    assert size == dest.stat().st_size and size > KEYS * 1000
    assert not dest.with_name("backup.db.part").exists()
    return dest, revision


@pytest.fixture(scope="module", params=ETCD_VERSIONS)
def snapshot(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A snapshot of a member holding KEYS keys, and the revision it was taken at (one member per version)."""
    version = str(request.param)
    return asyncio.run(take_snapshot(version, tmp_path_factory.mktemp(f"snap-{version}")))


@pytest.fixture(params=["etcdutl", "etcdctl-3.4"])
def tool(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def verify(path: Path, tool: str) -> SnapshotInfo:
    if tool == "etcdutl":
        return await verify_snapshot(path)  # the default: any installed etcdutl
    return await verify_snapshot(path, binary=etcd_binary("3.4.23"))


async def test_verify_reports_revision_and_keys(snapshot: tuple[Path, int], tool: str) -> None:
    path, revision = snapshot
    info = await verify(path, tool)
    assert info.revision == revision
    # totalKey counts bolt entries in every bucket: one per revision in "key", plus etcd's meta and membership.
    assert info.total_keys >= KEYS
    assert 0 < info.total_size <= path.stat().st_size - 32
    assert info == await verify(path, tool)


async def test_snapshot_restores_with_hash_check(snapshot: tuple[Path, int], tmp_path: Path) -> None:
    # What the restore-datadir init container runs: the sha256 trailer EtcdClient.snapshot kept is what it checks.
    etcdutl = etcd_binary("3.5.1").etcdutl
    process = await asyncio.create_subprocess_exec(
        str(etcdutl),
        "snapshot",
        "restore",
        str(snapshot[0]),
        "--data-dir",
        str(tmp_path / "restored"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output.decode()


async def test_truncated_snapshot_is_rejected(snapshot: tuple[Path, int], tmp_path: Path) -> None:
    # `snapshot status` alone would accept a file cut in half: the sha256 trailer check catches it.
    data = snapshot[0].read_bytes()
    for cut in (len(data) // 2, len(data) - 1, 512 * 3 + 32):  # the last one ends where a trailer could
        truncated = tmp_path / f"cut-{cut}.db"
        truncated.write_bytes(data[:cut])
        with pytest.raises(SnapshotError, match="sha256"):
            await verify_snapshot(truncated)


async def test_corrupt_bolt_file_fails_in_the_tool(tool: str, tmp_path: Path) -> None:
    # A consistent sha256 trailer over bytes that are no bolt database: only the tool can tell.
    body = b"not a bolt database".ljust(8192, b"\0")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(body + hashlib.sha256(body).digest())
    with pytest.raises(SnapshotError, match="invalid database") as failed:
        await verify(corrupt, tool)
    assert ("etcdutl" if tool == "etcdutl" else "etcdctl") in str(failed.value)


async def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="No such file"):
        await verify_snapshot(tmp_path / "absent.db")


async def test_snapshot_from_unreachable_member_leaves_no_file(tmp_path: Path) -> None:
    [port] = free_ports(1)
    async with EtcdClient(f"127.0.0.1:{port}", timeout=1.0, snapshot_timeout=2.0) as client:
        with pytest.raises(EtcdError):
            await client.snapshot(tmp_path / "backup.db")
    assert not (tmp_path / "backup.db").exists() and not (tmp_path / "backup.db.part").exists()
