"""The etcd backend's own promises on real etcd: failover between members, and TLS.

The cross-backend semantics are the conformance suite's; here, what only a
multi-member cluster or a TLS listener can show:

* the member the client uses stops (leader or follower): reads and writes go on
  on another member, and an open watch resumes there from the last delivered
  revision, with no gap and no duplicate;
* TLS with client-cert auth: a client with the CA and a client cert works;
  one without a client cert is refused with Unavailable.

Watch reads carry a hang guard (fail instead of hanging), not a timing threshold.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from conftest import etcd_binary
from skiff.etcd_binaries import EtcdBinary
from skiff.store.errors import Unavailable
from skiff.store.etcd import EtcdStore
from skiff.store.etcd_process import EtcdMember, start_cluster, stop_all
from skiff.store.protocol import Watcher
from skiff.store.types import Event, EventType, KeyValue, Put, Range, prefix_end

HANG_GUARD_S = 30.0
VERSION = "3.5.1"


@pytest.fixture
def binary() -> EtcdBinary:
    return etcd_binary(VERSION)


@pytest_asyncio.fixture
async def cluster(binary: EtcdBinary, tmp_path: Path) -> AsyncIterator[list[EtcdMember]]:
    members = await start_cluster(binary, 3, tmp_path / "cluster")
    try:
        yield members
    finally:
        await stop_all(members)


async def leader_of(members: list[EtcdMember]) -> EtcdMember:
    leaders = [m for m in members if await m.is_leader()]
    assert len(leaders) == 1, leaders
    return leaders[0]


async def put_events(watcher: Watcher, n: int) -> list[Event]:
    events: list[Event] = []
    async with asyncio.timeout(HANG_GUARD_S):
        while len(events) < n:
            events.extend((await anext(watcher)).events)
    return events


@pytest.mark.parametrize("role", ["leader", "follower"])
async def test_reads_writes_and_watch_go_on_when_the_member_in_use_stops(cluster: list[EtcdMember], role: str) -> None:
    leader = await leader_of(cluster)
    in_use = leader if role == "leader" else next(m for m in cluster if m is not leader)
    others = [m for m in cluster if m is not in_use]
    store = await EtcdStore.connect([in_use.endpoint, *(m.endpoint for m in others)])
    prefix = b"/failover/"
    try:
        watcher = await store.watch(prefix, prefix_end(prefix))
        before = [(await store.put(Put(prefix + b"%02d" % i, b"before"))).revision for i in range(5)]
        assert len(await put_events(watcher, 5)) == 5  # everything before the stop was delivered

        assert await in_use.stop() == -signal.SIGTERM  # a clean exit, not a SIGKILL after the grace period
        # A write straight after the stop: never sent to the stopped member, so safe to send elsewhere.
        after = [(await store.put(Put(prefix + b"%02d" % i, b"after"))).revision for i in range(5, 10)]
        read = await store.range(Range(prefix, prefix_end(prefix)))
        assert [kv.value for kv in read.kvs] == [b"before"] * 5 + [b"after"] * 5
        assert after == list(range(before[-1] + 1, before[-1] + 6))

        resumed = await put_events(watcher, 5)
        await watcher.close()
        assert resumed == [
            Event(EventType.PUT, KeyValue(prefix + b"%02d" % i, b"after", rev, rev, 1))
            for i, rev in zip(range(5, 10), after, strict=True)
        ]
    finally:
        await store.close()


async def test_watch_resumes_without_gap_or_duplicate_while_writes_continue(cluster: list[EtcdMember]) -> None:
    """The watch's member stops while another client keeps writing: every revision arrives exactly once."""
    watch_member, write_member = cluster[0], cluster[1]
    watching = await EtcdStore.connect([watch_member.endpoint, cluster[2].endpoint])
    writing = await EtcdStore.connect([write_member.endpoint])
    prefix = b"/resume/"
    try:
        watcher = await watching.watch(prefix, prefix_end(prefix))
        revisions = []
        for i in range(30):
            revisions.append((await writing.put(Put(prefix + b"k", b"%d" % i))).revision)
            if i == 10:
                await watch_member.stop()
        events = await put_events(watcher, 30)
        await watcher.close()
        assert [e.kv.mod_revision for e in events] == revisions
        assert [e.kv.value for e in events] == [b"%d" % i for i in range(30)]
    finally:
        await watching.close()
        await writing.close()


async def test_every_member_gone_is_unavailable(binary: EtcdBinary, tmp_path: Path) -> None:
    member = await EtcdMember.start(binary, tmp_path / "only")
    store = await EtcdStore.connect([member.endpoint], timeout=2.0)
    try:
        await member.stop()
        with pytest.raises(Unavailable):
            await store.put(Put(b"/gone", b"v"))
        with pytest.raises(Unavailable):
            await store.range(Range(b"/gone"))
    finally:
        await store.close()


async def test_tls_with_client_certs(binary: EtcdBinary, tmp_path: Path) -> None:
    from tls_certs import make_tls_files

    tls = make_tls_files(tmp_path)
    async with await EtcdMember.start(binary, tmp_path / "tls", tls=tls) as member:
        assert member.client_url.startswith("https://")
        store = await EtcdStore.connect(
            [member.endpoint], ca_file=tls.ca_file, cert_file=tls.cert_file, key_file=tls.key_file
        )
        try:
            rev = (await store.put(Put(b"/tls/k", b"v"))).revision
            assert (await store.get(b"/tls/k")) == KeyValue(b"/tls/k", b"v", rev, rev, 1)
        finally:
            await store.close()

        with pytest.raises(Unavailable):
            await EtcdStore.connect([member.endpoint], ca_file=tls.ca_file, timeout=2.0)


async def test_catch_up_larger_than_a_message_arrives_whole(binary: EtcdBinary, tmp_path: Path) -> None:
    """Three 1 MiB values replayed at once exceed etcd's 2 MiB response limit: etcd fragments, we reassemble."""
    async with await EtcdMember.start(binary, tmp_path / "big") as member:
        store = await EtcdStore.connect([member.endpoint])
        try:
            value = b"v" * (1024 * 1024)
            revisions = [(await store.put(Put(b"/big/%d" % i, value))).revision for i in range(3)]
            watcher = await store.watch(b"/big/", prefix_end(b"/big/"), start_revision=revisions[0])
            events = await put_events(watcher, 3)
            await watcher.close()
            assert [(e.kv.mod_revision, len(e.kv.value)) for e in events] == [(r, len(value)) for r in revisions]
        finally:
            await store.close()
