"""EtcdClient against real etcd 3.4 and 3.5 members on loopback.

The membership test walks the operator's scale-up path end to end: a learner
is added (and its peer URL updated, as when its pod comes back with a new IP)
before its process starts with ``--initial-cluster-state=existing``; it is
promoted once in sync; leadership moves to it; it is removed.  Every wait is
bounded; every process is stopped by PID.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
import pytest_asyncio

from conftest import ETCD_VERSIONS, etcd_binary
from skiff.etcdoperator.etcdclient import (
    EtcdClient,
    EtcdError,
    Member,
    is_learner_not_ready,
    is_member_not_found,
    is_retryable_membership,
)
from skiff.store.etcd_process import EtcdMember, free_ports

T = TypeVar("T")

pytestmark = pytest.mark.timeout(60)
WAIT = 20.0


async def until(what: str, attempt: Callable[[], Awaitable[T]], retry: Callable[[EtcdError], bool]) -> T:
    """``attempt()`` until it returns, retrying errors ``retry`` accepts, for at most WAIT seconds.

    Errors ``retry`` rejects propagate as they are.
    """
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return await attempt()
        except EtcdError as err:
            if not retry(err):
                raise
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: gave up after {WAIT}s: {err}") from err
        await asyncio.sleep(0.1)


def dropped(err: EtcdError) -> bool:
    """The membership change timed out: etcd's Raft silently drops a conf change proposed while the previous one
    is applied by etcd but not yet acknowledged to Raft (pendingConfIndex), and the request then waits out its
    deadline.  Seen with 3.4.23 and 3.5.1 for back-to-back changes (remove then add)."""
    return err.code == grpc.StatusCode.DEADLINE_EXCEEDED or "request timed out" in err.message


def change(what: str, attempt: Callable[[], Awaitable[T]]) -> Awaitable[T]:
    return until(what, attempt, dropped)


async def add_learner(client: EtcdClient, peer_url: str) -> Member:
    """MemberAdd(learner) retried over dropped proposals, idempotent by peer URL as the operator must be."""
    try:
        member, _ = await change("add learner", lambda: client.member_add([peer_url], learner=True))
        return member
    except EtcdError as err:
        if "Peer URLs already exists" not in err.message:
            raise
        return next(m for m in await client.member_list() if peer_url in m.peer_urls)


@pytest.fixture(params=ETCD_VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


async def start_single(version: str, data_dir: Path, stack: AsyncExitStack) -> tuple[EtcdMember, EtcdClient]:
    member = await EtcdMember.start(etcd_binary(version), data_dir, name="m0")
    stack.push_async_callback(member.stop)
    # A short deadline: a dropped membership change (see `dropped`) costs 2 s, not 5 s.
    client = EtcdClient(member.client_url, timeout=2.0)
    stack.push_async_callback(client.close)
    return member, client


async def test_membership_lifecycle(version: str, tmp_path: Path, stack: AsyncExitStack) -> None:
    m0, c0 = await start_single(version, tmp_path / "m0", stack)

    [only] = await c0.member_list()
    assert only == Member(only.id, "m0", (m0.peer_url,), (m0.client_url,), is_learner=False)
    status0 = await c0.status()
    assert (status0.member_id, status0.leader, status0.version) == (only.id, only.id, version)
    assert status0.is_leader and not status0.is_learner and status0.revision >= 1 and status0.raft_term >= 1

    # Add a learner.  Its pod then comes back with a new IP before it starts: MemberUpdate would make etcd record
    # it as a voter (3.4 and 3.5.1), so the client refuses, and the learner is removed and added again instead.
    first_peer_port, peer_port, client_port, moved_peer_port = free_ports(4)
    learner = await add_learner(c0, f"http://127.0.0.1:{first_peer_port}")
    assert learner.is_learner and learner.name == "" and learner.client_urls == ()
    assert {m.id for m in await c0.member_list()} == {only.id, learner.id}
    peer_url = f"http://127.0.0.1:{peer_port}"
    with pytest.raises(EtcdError, match="refusing to update learner") as refused:
        await c0.member_update(learner.id, [peer_url])
    assert refused.value.code is None
    assert [m.is_learner for m in await c0.member_list() if m.id == learner.id] == [True]
    assert [m.id for m in await change("remove", lambda: c0.member_remove(learner.id))] == [only.id]
    learner = await add_learner(c0, peer_url)

    # etcd allows one learner at a time (--max-learners): a transient refusal.
    with pytest.raises(EtcdError) as too_many:
        await change("second learner", lambda: c0.member_add(["http://127.0.0.1:1"], learner=True))
    assert is_retryable_membership(too_many.value) and not is_member_not_found(too_many.value)
    # Not started yet, so not in sync.
    with pytest.raises(EtcdError) as not_ready:
        await c0.member_promote(learner.id)
    assert is_learner_not_ready(not_ready.value) and not_ready.value.code == grpc.StatusCode.FAILED_PRECONDITION

    # Its process joins the existing cluster; the later --initial-cluster-state flag wins over spawn's "new".
    m1 = await EtcdMember.spawn(
        etcd_binary(version),
        tmp_path / "m1",
        name="m1",
        client_port=client_port,
        peer_port=peer_port,
        initial_cluster=f"m0={m0.peer_url},m1={peer_url}",
        extra_args=["--initial-cluster-state=existing"],
    )
    stack.push_async_callback(m1.stop)
    c1 = EtcdClient(m1.client_url, timeout=2.0)
    stack.push_async_callback(c1.close)

    # A learner answers Status (saying it is one) and serializable reads, but not MemberList (3.4 and 3.5).
    status = await until("learner status", c1.status, lambda e: e.code == grpc.StatusCode.UNAVAILABLE)
    assert status.is_learner and status.member_id == learner.id and status.leader == only.id
    assert await c1.revision(serializable=True) >= 1
    with pytest.raises(EtcdError, match="not supported for learner"):
        await c1.member_list()

    members = await until(
        "promote", lambda: c0.member_promote(learner.id), lambda e: is_learner_not_ready(e) or dropped(e)
    )
    assert sorted((m.name, m.is_learner) for m in members) == [("m0", False), ("m1", False)]
    assert not any(m.is_learner for m in await c0.member_list())
    # Promoting a voter is a permanent refusal, not "not ready".
    with pytest.raises(EtcdError, match="can only promote a learner member") as voter:
        await change("promote a voter", lambda: c0.member_promote(learner.id))
    assert not is_learner_not_ready(voter.value) and not is_retryable_membership(voter.value)

    # MoveLeader is only served by the leader.
    with pytest.raises(EtcdError, match="not leader"):
        await c1.move_leader(learner.id)
    await c0.move_leader(learner.id)
    status1 = await c1.status()
    assert status1.is_leader and status1.leader == learner.id and (await c0.status()).leader == learner.id
    await c1.move_leader(only.id)
    assert (await c0.status()).is_leader

    # A voter's pod comes back with a new IP: update its peer URL while it still runs, then restart it there
    # (same data dir, so its --initial-cluster flags are ignored); the cluster regains its quorum.
    moved_url = f"http://127.0.0.1:{moved_peer_port}"
    members = await change("update", lambda: c0.member_update(learner.id, [moved_url]))
    assert [m.peer_urls for m in members if m.id == learner.id] == [(moved_url,)]
    await m1.stop()
    m1 = await EtcdMember.spawn(
        etcd_binary(version),
        tmp_path / "m1",
        name="m1",
        client_port=client_port,
        peer_port=moved_peer_port,
        initial_cluster=f"m0={m0.peer_url},m1={moved_url}",
    )
    stack.push_async_callback(m1.stop)
    await m1.wait_ready(WAIT)
    assert await c0.put("after-move", "ok") > 0
    assert [m.peer_urls for m in await c1.member_list() if m.id == learner.id] == [(moved_url,)]

    with pytest.raises(EtcdError) as unknown:
        await change("remove unknown", lambda: c0.member_remove(0x1234))
    assert is_member_not_found(unknown.value) and unknown.value.code == grpc.StatusCode.NOT_FOUND
    assert "member not found" in str(unknown.value) and "MemberRemove" in str(unknown.value)

    # etcd (--strict-reconfig-check) refuses with "unhealthy cluster" to remove a voter while the remaining ones
    # would not all have been connected for 5 s (its HealthInterval): m1 just reconnected, so this retries ~5 s.
    members = await until("remove", lambda: c0.member_remove(learner.id), is_retryable_membership)
    assert [m.id for m in members] == [only.id]
    assert await c0.put("after-remove", "ok") > 0  # the single member has its quorum


async def test_kv_and_maintenance(version: str, tmp_path: Path, stack: AsyncExitStack) -> None:
    _, client = await start_single(version, tmp_path / "m0", stack)

    first = await client.put("/p/a", "1")
    second = await client.put(b"/p/b", b"2")
    third = await client.put("/q", "3")
    assert second == first + 1 and third == second + 1
    assert await client.get("/p/a") == b"1" and await client.get("/absent") is None
    assert await client.get_prefix("/p/") == {b"/p/a": b"1", b"/p/b": b"2"}
    assert await client.revision() == await client.revision(serializable=False) == third
    assert (await client.status()).revision == third

    _, compacted_before, header = await client.hash_kv()
    assert compacted_before <= 0 and header == third  # -1: never compacted
    await client.compact(second)
    assert (await client.hash_kv())[1] == second
    assert await client.alarms() == []

    after = await client.bump_revision(200, concurrency=8)
    assert after >= third + 200 and await client.revision(serializable=False) == after
    assert await client.get("/skiff/etcd-operator/revision-bump") is None
    assert await client.get_prefix("/p/") == {b"/p/a": b"1", b"/p/b": b"2"}
    assert await client.bump_revision(0) == after  # deleting an absent key writes nothing


async def test_errors_carry_code_within_deadline() -> None:
    # Nothing listens there: UNAVAILABLE (or the deadline), promptly, and retryable.
    [port] = free_ports(1)
    async with EtcdClient(f"http://127.0.0.1:{port}", timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(EtcdError) as failed:
            await client.member_list()
        assert time.monotonic() - started < 5
    assert failed.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert is_retryable_membership(failed.value) and "MemberList" in str(failed.value)
    with pytest.raises(ValueError, match="TLS"):
        EtcdClient("https://127.0.0.1:2379")


def _etcd(message: str, code: grpc.StatusCode) -> EtcdError:
    return EtcdError(message, code=code)


FP = grpc.StatusCode.FAILED_PRECONDITION
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(_etcd("etcdserver: member not found", grpc.StatusCode.NOT_FOUND), (True, False, False), id="nf"),
        pytest.param(
            _etcd("etcdserver: can only promote a learner member which is in sync with leader", FP),
            (False, True, False),
            id="learner-not-ready",
        ),
        pytest.param(_etcd("etcdserver: can only promote a learner member", FP), (False, False, False), id="voter"),
        pytest.param(_etcd("etcdserver: unhealthy cluster", UNAVAILABLE), (False, False, True), id="unhealthy"),
        pytest.param(
            _etcd("etcdserver: re-configuration failed due to not enough started members", FP),
            (False, False, True),
            id="not-enough-started",
        ),
        pytest.param(_etcd("etcdserver: too many learner members in cluster", FP), (False, False, True), id="learners"),
        pytest.param(_etcd("etcdserver: request timed out", UNAVAILABLE), (False, False, True), id="timeout"),
        pytest.param(
            _etcd("Deadline Exceeded", grpc.StatusCode.DEADLINE_EXCEEDED), (False, False, True), id="deadline"
        ),
        pytest.param(_etcd("etcdserver: Peer URLs already exists", FP), (False, False, False), id="url-exists"),
        pytest.param(ValueError("member not found"), (False, False, False), id="not-an-etcd-error"),
    ],
)
def test_error_predicates(error: BaseException, expected: tuple[bool, bool, bool]) -> None:
    assert (is_member_not_found(error), is_learner_not_ready(error), is_retryable_membership(error)) == expected
