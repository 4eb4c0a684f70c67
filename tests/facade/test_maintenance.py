"""Maintenance rpcs through etcdctl: snapshot save, defrag, alarm list, endpoint status.

Snapshot streams a copy made by the store's ``backup(path)`` (SQLite's online
backup API, see ``facade_maintenance``); the saved file must be a SQLite
database holding the keys written through the facade.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from facade_harness import etcdctl

from conftest import etcd_binary
from skiff.etcd_binaries import EtcdBinary
from skiff.store.facade import FacadeServer
from skiff.store.sqlite import SqliteStore

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def etcdctl351() -> EtcdBinary:
    return etcd_binary("3.5.1")


async def test_snapshot_defrag_alarms_and_status(tmp_path: Path, etcdctl351: EtcdBinary) -> None:
    store = await SqliteStore.open(tmp_path / "skiff.db")
    server = FacadeServer(store)
    try:
        await server.start("http://127.0.0.1:0")  # plaintext, asked for: this test is about maintenance rpcs
        endpoint = server.address
        for i in range(20):
            assert (await etcdctl(etcdctl351, endpoint, "put", f"k{i}", f"v{i}")).rc == 0

        saved = tmp_path / "snapshot.db"
        out = await etcdctl(etcdctl351, endpoint, "snapshot", "save", str(saved))
        assert out.rc == 0, out.text()
        assert f"Snapshot saved at {saved}" in out.stdout, out.text()
        with sqlite3.connect(saved) as copy:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)

        out = await etcdctl(etcdctl351, endpoint, "defrag")
        assert out.stdout == f"Finished defragmenting etcd member[{endpoint}]\n", out.text()

        out = await etcdctl(etcdctl351, endpoint, "alarm", "list")
        assert (out.rc, out.stdout) == (0, ""), out.text()

        out = await etcdctl(etcdctl351, endpoint, "endpoint", "status")
        fields = [f.strip() for f in out.stdout.split(",")]
        # endpoint, id, version, db size, leader, learner, term, index, applied index, errors
        assert fields[0] == endpoint and fields[1] == f"{server.member.id:x}"
        assert fields[2] == "3.5.1" and fields[4:7] == ["true", "false", "2"]
        # 4 bootstrap entries, 20 puts, the alarm list: as a fresh etcd would count.
        assert fields[7] == fields[8] == "25", out.text()
    finally:
        await server.stop()
        await store.close()
